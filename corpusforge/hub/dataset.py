"""A corpus as a ``datasets.DatasetDict``, and exports for users who do not push.

``load_corpus`` gives one split per data file, with explicit ``Features``
(segments and targets as lists of structs; see ``corpusforge.columnar``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .._atomic import atomic_dir
from .._io import check_output
from ..columnar import arrow_schema, features
from ..corpus import verify_corpus
from ..errors import HubError
from ..validate import corpus_patterns, iter_records
from .shapes import SHAPES, ShapeOptions, check_completion_from, corpus_pattern_list, shape_records
from .stage import record_batches, split_files, stage_into, write_parquet_shards

__all__ = ["export_corpus", "load_corpus", "split_files", "write_parquet_shards"]


def load_corpus(corpus_dir: str | Path):
    """The corpus as a ``datasets.DatasetDict`` (in memory), one split per data file."""
    import datasets
    import pyarrow as pa

    out, patterns = {}, corpus_patterns([corpus_dir])
    for split, files in split_files(corpus_dir).items():
        table = pa.Table.from_batches(list(record_batches(files, patterns)), schema=arrow_schema())
        out[split] = datasets.Dataset(table).cast(features())
    return datasets.DatasetDict(out)


EXPORT_FORMATS = ("parquet", "jsonl", "arrow", *SHAPES)


def export_corpus(corpus_dir: str | Path, out: str | Path, fmt: str, *, overwrite: bool = False,
                  shape: ShapeOptions | None = None) -> Path:
    """Export for users who do not push: ``parquet`` (the Hub layout with its card), ``jsonl`` or ``arrow``; or a
    trainer's shape (``prompt-completion``, ``messages``: per split, JSONL and Parquet, with a card)."""
    if fmt not in EXPORT_FORMATS:
        raise HubError(f"unknown export format {fmt!r}; use {', '.join(EXPORT_FORMATS)}")
    if fmt in SHAPES:
        shape = shape or ShapeOptions(fmt)
        shape.shape = fmt
        shape.check()
        check_completion_from(shape.completion_from, corpus_pattern_list(corpus_dir))
    elif shape is not None and (shape.system or shape.completion_from):
        raise HubError("--system and --completion-from go with --format prompt-completion or messages")
    out = check_output(out, HubError, overwrite=overwrite, inputs=[corpus_dir])
    with atomic_dir(out) as tmp:
        if fmt == "parquet":
            stage_into(corpus_dir, tmp, repo_id=None)
        elif fmt in SHAPES:
            stage_into(corpus_dir, tmp, repo_id=None, shape=shape)
            _shape_jsonl(corpus_dir, tmp / "data", shape)
        elif fmt == "jsonl":
            import orjson

            (tmp / "data").mkdir()
            patterns = corpus_patterns([corpus_dir])
            for split, files in split_files(corpus_dir).items():
                with open(tmp / "data" / f"{split}.jsonl", "wb") as f:
                    for rec in iter_records(files, patterns=patterns):
                        f.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
        else:
            shutil.rmtree(tmp)
            load_corpus(corpus_dir).save_to_disk(str(tmp))
        verify_corpus(corpus_dir, HubError)   # after the records (their errors say more), before the rename
    return out


def _shape_jsonl(corpus_dir, data_dir: Path, shape: ShapeOptions) -> None:
    """``data/{split}.jsonl`` beside the Parquet shards, for trainers that read JSONL."""
    import orjson

    patterns = corpus_patterns([corpus_dir])
    counting = ShapeOptions(shape.shape, shape.system, shape.completion_from)
    for split, files in split_files(corpus_dir).items():
        with open(data_dir / f"{split}.jsonl", "wb") as f:
            for row in shape_records(iter_records(files, patterns=patterns), split, counting):
                f.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
