"""A corpus as a ``datasets.DatasetDict``, and exports for users who do not push.

``load_corpus`` gives one split per data file, with explicit ``Features``
(segments and targets as lists of structs; see ``corpusforge.columnar``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .._atomic import atomic_dir
from ..columnar import arrow_schema, features, to_row
from ..corpus import corpus_files, iter_records
from ..errors import HubError

ROWS_PER_SHARD = 500_000
BATCH = 10_000


def _split_name(path: Path) -> str:
    return path.name.split(".")[0]


def split_files(corpus_dir: str | Path) -> dict[str, list[Path]]:
    """Data files of a corpus by split (a split may be spread over several files, in order)."""
    splits: dict[str, list[Path]] = {}
    for f in corpus_files([corpus_dir]):
        splits.setdefault(_split_name(f), []).append(f)
    return splits


def _record_batches(files: list[Path]):
    import pyarrow as pa

    schema, batch = arrow_schema(), []
    for rec in iter_records(files):
        batch.append(to_row(rec))
        if len(batch) >= BATCH:
            yield pa.RecordBatch.from_pylist(batch, schema=schema)
            batch = []
    if batch:
        yield pa.RecordBatch.from_pylist(batch, schema=schema)


def load_corpus(corpus_dir: str | Path):
    """The corpus as a ``datasets.DatasetDict`` (in memory), one split per data file."""
    import datasets
    import pyarrow as pa

    out = {}
    for split, files in split_files(corpus_dir).items():
        table = pa.Table.from_batches(list(_record_batches(files)), schema=arrow_schema())
        out[split] = datasets.Dataset(table).cast(features())
    return datasets.DatasetDict(out)


def write_parquet_shards(corpus_dir: str | Path, data_dir: Path, rows_per_shard: int = ROWS_PER_SHARD) -> list[Path]:
    """Write ``data/{split}-0000i-of-0000N.parquet`` (the Hub's layout) in one streaming pass; returns the files.

    Shards are written under provisional names and renamed once N, the number of shards, is known.
    """
    import pyarrow.parquet as pq

    data_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for split, files in split_files(corpus_dir).items():
        shards: list[Path] = []
        writer, room = None, 0
        for batch in _record_batches(files):
            while batch is not None and batch.num_rows:
                if writer is None or room == 0:
                    if writer is not None:
                        writer.close()
                    shards.append(data_dir / f".{split}-{len(shards):05d}.parquet.partial")
                    writer, room = pq.ParquetWriter(shards[-1], arrow_schema()), rows_per_shard
                part, batch = (batch, None) if batch.num_rows <= room else (batch.slice(0, room), batch.slice(room))
                writer.write_batch(part)
                room -= part.num_rows
        if writer is None:  # a split with no rows still gets its (empty) shard
            shards.append(data_dir / f".{split}-00000.parquet.partial")
            writer = pq.ParquetWriter(shards[-1], arrow_schema())
        writer.close()
        for i, provisional in enumerate(shards):
            final = data_dir / f"{split}-{i:05d}-of-{len(shards):05d}.parquet"
            provisional.replace(final)
            written.append(final)
    return written


def export_corpus(corpus_dir: str | Path, out: str | Path, fmt: str, *, overwrite: bool = False) -> Path:
    """Export for users who do not push: ``parquet`` (the Hub layout with its card), ``jsonl`` or ``arrow``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise HubError(f"{out} already exists", hint="pass --overwrite to replace it, or choose another --out")
    if fmt not in ("parquet", "jsonl", "arrow"):
        raise HubError(f"unknown export format {fmt!r}; use parquet, jsonl or arrow")
    with atomic_dir(out) as tmp:
        if fmt == "parquet":
            from .push import stage_repository

            shutil.rmtree(tmp)
            stage_repository(corpus_dir, tmp, repo_id=None)
        elif fmt == "jsonl":
            import orjson

            (tmp / "data").mkdir()
            for split, files in split_files(corpus_dir).items():
                with open(tmp / "data" / f"{split}.jsonl", "wb") as f:
                    for rec in iter_records(files):
                        f.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
        else:
            shutil.rmtree(tmp)
            load_corpus(corpus_dir).save_to_disk(str(tmp))
    return out
