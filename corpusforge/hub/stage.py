"""Staging a corpus as the Hub's repository layout: Parquet shards and the dataset card.

``export --format parquet`` and ``push`` both stage through here, so the folder a
user exports is exactly the one a push would upload.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .._atomic import atomic_dir, sha256_file, write_atomic
from ..columnar import arrow_schema, from_row, to_row
from ..corpus import corpus_files
from ..errors import HubError
from ..manifest import read_manifest
from ..records import Record
from ..stats import compute_stats
from ..validate import corpus_patterns, iter_records, require_valid
from . import shapes
from .dataset_card import check_card, render_card
from .shapes import ShapeOptions

ROWS_PER_SHARD = 500_000
#: A file in every staging folder push makes: a folder holding it is push's own scratch space, replaced without
#: --overwrite on the next push; any other existing folder is the user's and is never replaced without it.
STAGING_MARK = ".corpusforge-staging"
BATCH = 10_000


@dataclass
class PlannedFile:
    """A file of the staged repository: what will be uploaded."""

    path: str
    size: int
    sha256: str


def _split_name(path: Path) -> str:
    return path.name.split(".")[0]


def split_files(corpus_dir: str | Path) -> dict[str, list[Path]]:
    """Data files of a corpus by split (a split may be spread over several files, in order)."""
    splits: dict[str, list[Path]] = {}
    for f in corpus_files([corpus_dir]):
        splits.setdefault(_split_name(f), []).append(f)
    return splits


def _batches(rows, schema):
    """RecordBatches of BATCH rows from an iterable of row dicts."""
    import pyarrow as pa

    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield pa.RecordBatch.from_pylist(batch, schema=schema)
            batch = []
    if batch:
        yield pa.RecordBatch.from_pylist(batch, schema=schema)


def record_batches(files: list[Path], patterns):
    """The records of ``files`` as Arrow batches of the corpus schema."""
    return _batches((to_row(rec) for rec in iter_records(files, patterns=patterns)), arrow_schema())


def _write_split(split: str, batches, schema, data_dir: Path, rows_per_shard: int) -> list[Path]:
    """``data/{split}-0000i-of-0000N.parquet`` from a stream of batches: provisional names until N is known."""
    import pyarrow.parquet as pq

    shards: list[Path] = []
    writer, room = None, 0
    for batch in batches:
        while batch is not None and batch.num_rows:
            if writer is None or room == 0:
                if writer is not None:
                    writer.close()
                shards.append(data_dir / f".{split}-{len(shards):05d}.parquet.partial")
                writer, room = pq.ParquetWriter(shards[-1], schema), rows_per_shard
            part, batch = (batch, None) if batch.num_rows <= room else (batch.slice(0, room), batch.slice(room))
            writer.write_batch(part)
            room -= part.num_rows
    if writer is None:  # a split with no rows still gets its (empty) shard
        shards.append(data_dir / f".{split}-00000.parquet.partial")
        writer = pq.ParquetWriter(shards[-1], schema)
    writer.close()
    finals = []
    for i, provisional in enumerate(shards):
        finals.append(data_dir / f"{split}-{i:05d}-of-{len(shards):05d}.parquet")
        provisional.replace(finals[-1])
    return finals


def write_parquet_shards(corpus_dir: str | Path, data_dir: Path, rows_per_shard: int = ROWS_PER_SHARD,
                         shape: ShapeOptions | None = None) -> list[Path]:
    """Write ``data/{split}-0000i-of-0000N.parquet`` (the Hub's layout) in one streaming pass; returns the files.

    With ``shape``, the rows are in a trainer's shape (prompt-completion or messages) instead of records.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    patterns = corpus_patterns([corpus_dir])
    written = []
    for split, files in split_files(corpus_dir).items():
        if shape is None:
            batches, schema = record_batches(files, patterns), arrow_schema()
        else:
            schema = shapes.arrow_schema(shape.shape)
            batches = _batches(shapes.shape_records(iter_records(files, patterns=patterns), split, shape), schema)
        written += _write_split(split, batches, schema, data_dir, rows_per_shard)
    return written


def stats_and_examples(corpus_dir: Path) -> tuple[dict, dict[str, dict]]:
    """The corpus statistics and one record per pattern (preferring the training split), in one pass."""
    found: dict[str, dict] = {}

    def remember(records):
        for rec in records:
            old = found.get(rec["pattern"])
            if old is None or (old.get("split") != "train" and rec.get("split") == "train"):
                found[rec["pattern"]] = rec
            yield rec

    return compute_stats(remember(iter_records([corpus_dir]))), found


def stage_into(corpus_dir: str | Path, folder: Path, *, repo_id: str | None, existing_card: str | None = None,
               pretty_name: str | None = None, license: str | None = None, shape: ShapeOptions | None = None) -> None:
    """Write the repository layout (Parquet shards and README.md) into the empty folder ``folder``."""
    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    if manifest is None:
        raise HubError("not a corpus folder: no manifest.json", file=str(corpus_dir),
                       hint="push a folder made by `corpusforge generate`")
    stats, examples = stats_and_examples(corpus_dir)
    splits = list(split_files(corpus_dir))
    write_parquet_shards(corpus_dir, folder / "data", shape=shape)
    card = render_card(manifest, stats, examples, splits, repo_id=repo_id, existing=existing_card,
                       pretty_name=pretty_name, license=license, shape=shape)
    write_atomic(folder / "README.md", card)


def stage_repository(corpus_dir: str | Path, staging: str | Path, *, repo_id: str | None,
                     existing_card: str | None = None, pretty_name: str | None = None,
                     license: str | None = None, shape: ShapeOptions | None = None) -> list[PlannedFile]:
    """Write the repository layout into ``staging`` (atomically) and return the plan."""
    staging = Path(staging)
    with atomic_dir(staging) as tmp:
        write_atomic(tmp / STAGING_MARK, f"made by corpusforge push from {Path(corpus_dir).resolve()}\n")
        stage_into(corpus_dir, tmp, repo_id=repo_id, existing_card=existing_card, pretty_name=pretty_name,
                   license=license, shape=shape)
    return [PlannedFile(str(p.relative_to(staging)), p.stat().st_size, sha256_file(p))
            for p in sorted(staging.rglob("*")) if p.is_file() and p.name != STAGING_MARK]


def _expected_rows(files: list[Path], patterns, split: str, shape: ShapeOptions | None):
    """What the staged split must hold, and how a loaded row is compared with it."""
    records = iter_records(files, patterns=patterns)
    if shape is None:
        return records, lambda got, want: Record.model_validate(from_row(got)) == Record.model_validate(want)
    again = ShapeOptions(shape.shape, shape.system, shape.completion_from)   # its own count of skipped records
    return shapes.shape_records(records, split, again), lambda got, want: got == want


def check_staging(corpus_dir: Path, staging: Path, shape: ShapeOptions | None = None) -> None:
    """Every record valid, the card parses, and ``datasets`` reads back exactly the corpus's rows (or their shape)."""
    require_valid([corpus_dir], HubError)
    check_card(staging / "README.md")
    import datasets

    patterns = corpus_patterns([corpus_dir])
    cache = tempfile.mkdtemp(prefix="corpusforge-check-")
    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    try:
        loaded = datasets.load_dataset(str(staging), cache_dir=cache)
        for split, files in split_files(corpus_dir).items():
            if split not in loaded:
                raise HubError(f"datasets did not find split {split!r} in the staged folder", file=str(staging))
            expected, same = _expected_rows(files, patterns, split, shape)
            count = 0
            for row in loaded[split]:
                want = next(expected, None)
                if want is None or not same(row, want):
                    raise HubError(f"the staged Parquet of split {split!r} differs from the corpus at row {count}",
                                   file=str(staging))
                count += 1
            if next(expected, None) is not None:
                raise HubError(f"the staged Parquet of split {split!r} has fewer rows than the corpus",
                               file=str(staging))
        loaded.cleanup_cache_files()
        del loaded
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if bars:
            datasets.utils.logging.enable_progress_bar()
