"""The run: draw units in order, keep the new ones, write them, describe the corpus; resumable.

Files are written under ``.NAME.partial/`` (locked against a second run) and
renamed into place at the end. Every ``checkpoint_every`` records a JSONL run
notes in ``progress.json`` how much of each file is final, so ``--resume``
finishes an interrupted run to the identical result.
"""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import orjson

from .._atomic import atomic_dir, lock_owner, partial_path, write_atomic
from .._io import check_output, read_bytes
from ..errors import GenerateError
from ..manifest import Counts, Manifest
from ..templates.registry import Registry, load_registry, resolve_templates
from ..templates.sampler import Drawer
from ..templates.spec import Template
from .config import GenerateConfig
from .describe import build_manifest, describe
from .keep import Tally, keep
from .pool import DrawCount, blocks
from .sinks import open_sink

GIVE_UP_AFTER = 20_000      # consecutive units that add nothing new
PROGRESS_FILE = "progress.json"


@dataclass
class GenerateResult:
    path: Path
    records: int
    counts: dict          # records by split
    manifest: Manifest
    units_drawn: int = 0  # units handed to a drawer, blocks drawn ahead included


@dataclass
class Progress:
    """``progress.json``: what an interrupted JSONL run has written for good."""

    fingerprint: str
    command: str
    written: int                # records of this run's range written
    offsets: dict[str, int]     # bytes of each split's file to keep

    def save(self, folder: Path) -> None:
        write_atomic(folder / PROGRESS_FILE, orjson.dumps(asdict(self)))

    @classmethod
    def load(cls, folder: Path) -> Progress | None:
        path = folder / PROGRESS_FILE
        if not path.exists():
            return None
        unreadable = GenerateError("the interrupted run's progress file is unreadable", file=str(path),
                                   hint=f"delete {folder} to start over")
        try:
            data = orjson.loads(read_bytes(path, GenerateError, what="progress file"))
            progress = cls(**data)
        except (orjson.JSONDecodeError, TypeError):
            raise unreadable from None
        if not (isinstance(progress.written, int) and isinstance(progress.offsets, dict) and progress.written >= 0
                and all(isinstance(v, int) and v >= 0 for v in progress.offsets.values())):
            raise unreadable
        for split, size in progress.offsets.items():
            f = folder / "data" / f"{split}.jsonl"
            if not f.is_file() or f.stat().st_size < size:
                raise GenerateError(f"the interrupted run's data file {f.name} is missing or shorter than its "
                                    "checkpoint says", file=str(f), hint=f"delete {folder} to start over")
        return progress


def _resume_state(cfg: GenerateConfig, out: Path) -> Progress | None:
    """What an interrupted run left to finish, checked against this run's options."""
    partial = partial_path(out)
    if not partial.exists():
        return None
    owner = lock_owner(partial)
    if owner is not None:
        raise GenerateError(f"another run is writing in {partial} (pid {owner})",
                            hint="wait for it to finish or stop it; two runs cannot share an output")
    if not cfg.resume:
        raise GenerateError(f"an interrupted run is waiting in {partial}",
                            hint="pass --resume to finish it, or delete that folder to start over")
    state = Progress.load(partial)
    if state is not None and state.fingerprint != cfg.fingerprint():
        raise GenerateError("--resume was given with different options than the interrupted run",
                            hint=f"rerun its command: {state.command}")
    return None if cfg.format == "parquet" else state  # Parquet cannot be appended to: redone, same result


def _progress_bar(cfg: GenerateConfig, total: int, done: int):
    show = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="rec", unit_scale=True, desc="generate", file=sys.stderr,
                smoothing=0.1)


def _init_args(cfg: GenerateConfig) -> tuple:
    """What a spawned worker needs to build its own Drawer."""
    weights = cfg.weights()
    names = [t if not t.endswith((".yaml", ".yml")) else str(Path(t).resolve()) for t in weights]
    return (names, [str(p) for p in cfg.template_paths], list(weights.values()), cfg.seed, cfg.continuations,
            cfg.splits, cfg.format == "jsonl")


def _fresh_folders(tmp: Path, keep_data: bool) -> tuple[Path, Path]:
    """``data/`` (emptied unless resuming) and an empty ``spool/`` for the workers' blocks."""
    data_dir, spool = tmp / "data", tmp / "spool"
    if not keep_data and data_dir.exists():
        for f in data_dir.iterdir():
            f.unlink()
    data_dir.mkdir(exist_ok=True)
    shutil.rmtree(spool, ignore_errors=True)
    spool.mkdir()
    return data_dir, spool


def _give_up_if_stuck(tally: Tally, cfg: GenerateConfig, templates: list[Template]) -> None:
    if tally.idle >= GIVE_UP_AFTER:
        sizes = ", ".join(f"{t.name}: {t.space_size():,}" for t in templates)
        raise GenerateError(
            f"only {tally.kept:,} unique records could be drawn (asked for {cfg.n:,}); the last {GIVE_UP_AFTER:,} "
            f"draws were all duplicates. Space sizes (variants × slot values): {sizes}",
            hint="ask for fewer records, or add slot values or variants")


def _draw_and_write(cfg: GenerateConfig, drawer: Drawer, templates: list[Template], tmp: Path,
                    state: Progress | None, observe: Callable[[int], None] | None) -> tuple[Tally, dict, int]:
    """Draw blocks in order, keep the new candidates, write them; returns the tally, digests and units drawn."""
    lo, hi = cfg.record_range()
    write_from = lo + (state.written if state else 0)
    data_dir, spool = _fresh_folders(tmp, keep_data=state is not None)
    sink = open_sink(cfg.format, data_dir, state.offsets if state else None)
    tally = Tally(lo=lo, hi=hi, write_from=write_from, splits=len(cfg.splits), templates=len(templates))
    split_names, count = list(cfg.splits), DrawCount()
    bar = _progress_bar(cfg, hi - lo, write_from - lo)
    try:
        stream = blocks(cfg.workers, drawer, cfg.format == "jsonl", _init_args(cfg), spool,
                        units_wanted=lambda: -(-(hi - tally.kept) // cfg.continuations), count=count)
        checkpointed = tally.kept
        while tally.kept < hi:
            before = max(tally.kept, write_from)
            for split_index, items in enumerate(keep(next(stream), tally)):
                if items:
                    sink.write_many(split_names[split_index], items)
            done = max(tally.kept, write_from)
            if bar:
                bar.update(done - before)
            if observe:
                observe(done - lo)
            _give_up_if_stuck(tally, cfg, templates)
            if (cfg.format == "jsonl" and tally.kept > write_from
                    and tally.kept // cfg.checkpoint_every > checkpointed // cfg.checkpoint_every):
                Progress(cfg.fingerprint(), cfg.command(), tally.kept - lo, sink.offsets()).save(tmp)
                checkpointed = tally.kept
        stream.close()
    finally:
        sink.close()
        shutil.rmtree(spool, ignore_errors=True)
        if bar:
            bar.close()
    return tally, sink.digests(), count.units


def _counts(tally: Tally, cfg: GenerateConfig, templates: list[Template]) -> Counts:
    split_names = list(cfg.splits)
    by_split = {split_names[i]: c for i, c in enumerate(tally.split_counts) if c}
    by_template, by_pattern = Counter(), Counter()
    for t, count in zip(templates, tally.template_counts):
        by_template[t.ref] += count
        by_pattern[t.pattern.name] += count
    return Counts(records=sum(tally.split_counts), by_split=dict(sorted(by_split.items())),
                  by_template=dict(sorted(by_template.items())), by_pattern=dict(sorted(by_pattern.items())))


def template_inputs(template_paths: list[str], templates: list[Template]) -> list:
    """What a run reads its templates from — packs given, packs in ``CORPUSFORGE_TEMPLATES``, the template
    files used — which its output may never replace."""
    from ..templates.registry import _env_sources

    packs = [p for _, paths in _env_sources() for p in paths]
    return [*template_paths, *packs, *(t.path for t in templates)]


def generate(cfg: GenerateConfig, out: str | Path, *, registry: Registry | None = None,
             observe: Callable[[int], None] | None = None) -> GenerateResult:
    """Generate the corpus described by ``cfg`` into the folder ``out``.

    ``observe(records_written)`` is called after every block is written (for progress in Python;
    raising from it interrupts the run, which ``--resume`` can then finish).
    """
    cfg.check()
    out = Path(out)
    weights = cfg.weights()
    templates = resolve_templates(list(weights), registry or load_registry(cfg.template_paths))
    drawer = Drawer(templates, list(weights.values()), cfg.seed, cfg.continuations, cfg.splits)  # checks early
    check_output(out, GenerateError, overwrite=cfg.overwrite, inputs=template_inputs(cfg.template_paths, templates))
    state = _resume_state(cfg, out)
    # an interruption (Ctrl-C, a full disk, a killed worker) leaves the partial run for --resume;
    # a request that cannot be met (GenerateError) leaves nothing
    with atomic_dir(out, keep_partial=lambda e: not isinstance(e, GenerateError)) as tmp:
        tally, digests, units = _draw_and_write(cfg, drawer, templates, tmp, state, observe)
        (tmp / PROGRESS_FILE).unlink(missing_ok=True)
        counts = _counts(tally, cfg, templates)
        manifest = build_manifest(cfg, templates, tmp / "data", counts, digests)
        describe(tmp, manifest)
    return GenerateResult(out, counts.records, dict(counts.by_split), manifest, units)
