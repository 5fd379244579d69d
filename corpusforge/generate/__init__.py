"""Generating a corpus: templates → records → a corpus folder, reproducibly.

The output is defined by (templates, seed, n, continuations, splits) alone:
- unit ``i`` (a premise and its continuations) is drawn from a hash of
  (seed, template, version, i) (``templates.sampler``); with ``--workers K``
  units are drawn in K processes (``pool``) but kept or dropped in order by one
  process (``keep``), so the bytes do not depend on K;
- a record is dropped when its normalised text was already kept (exact dedup;
  identical template, variant and slots always give identical text, so
  structural duplicates are dropped by the same check);
- ``--shard i/N`` keeps records ``[i*n//N, (i+1)*n//N)`` of that same sequence,
  so the shards concatenated in order are the unsharded corpus. A shard
  re-draws the records before its range to know what was kept (it renders
  them but does not write them);
- records go to ``sinks``; the run (``run``) writes under ``.NAME.partial/``,
  describes the corpus (``describe``: manifest.json, README.md) and renames it
  into place; ``--resume`` finishes an interrupted run to the identical result.
"""

from .config import DEFAULT_SPLITS, GenerateConfig
from .run import GenerateResult, generate

__all__ = ["DEFAULT_SPLITS", "GenerateConfig", "GenerateResult", "generate"]
