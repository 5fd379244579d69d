"""Where kept records go: ``data/{split}.jsonl`` or ``data/{split}.parquet`` inside the run's folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .._atomic import sha256_stream
from ..columnar import arrow_schema, to_row


class JsonlSink:
    """Appends lines to ``data/{split}.jsonl`` and hashes them as they go (the manifest's sha256)."""

    def __init__(self, data_dir: Path, offsets: dict[str, int] | None):
        self.data_dir = data_dir
        self.files: dict = {}
        self.hashes: dict = {}
        for split, size in (offsets or {}).items():  # --resume: keep what was written, hash it again
            f = open(data_dir / f"{split}.jsonl", "r+b")
            f.truncate(size)
            self.files[split], self.hashes[split] = f, sha256_stream(f)  # leaves f at its end, to append

    def write(self, split: str, item: bytes | memoryview) -> None:
        f = self.files.get(split)
        if f is None:
            f = self.files[split] = open(self.data_dir / f"{split}.jsonl", "wb", buffering=1 << 20)
            self.hashes[split] = hashlib.sha256()
        f.write(item)
        self.hashes[split].update(item)

    def write_many(self, split: str, items: list) -> None:
        self.write(split, b"".join(items))

    def digests(self) -> dict[str, str]:
        """sha256 of each file written, by file name."""
        return {f"{split}.jsonl": digest.hexdigest() for split, digest in self.hashes.items()}

    def offsets(self) -> dict[str, int]:
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
        return {s: f.tell() for s, f in self.files.items()}

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class ParquetSink:
    ROWS = 20_000

    def __init__(self, data_dir: Path):
        self.data_dir, self.writers, self.buffers = data_dir, {}, {}
        self.schema = arrow_schema()

    def write(self, split: str, rec: dict) -> None:
        buf = self.buffers.setdefault(split, [])
        buf.append(to_row(rec))
        if len(buf) >= self.ROWS:
            self._flush(split)

    def _flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self.buffers.get(split)
        if not rows:
            return
        if split not in self.writers:
            self.writers[split] = pq.ParquetWriter(self.data_dir / f"{split}.parquet", self.schema)
        self.writers[split].write_table(pa.Table.from_pylist(rows, schema=self.schema))
        self.buffers[split] = []

    def write_many(self, split: str, items: list) -> None:
        for rec in items:
            self.write(split, rec)

    def offsets(self) -> None:
        return None

    def digests(self) -> dict[str, str]:
        return {}  # Parquet files are finished by their writers: hashed from disk

    def close(self) -> None:
        for split in list(self.buffers):
            self._flush(split)
        for w in self.writers.values():
            w.close()


def open_sink(fmt: str, data_dir: Path, offsets: dict[str, int] | None = None):
    """The sink for ``fmt``; ``offsets`` (JSONL, --resume): how much of each file to keep."""
    return JsonlSink(data_dir, offsets) if fmt == "jsonl" else ParquetSink(data_dir)
