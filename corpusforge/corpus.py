"""A corpus on disk: finding its data files, its manifest's patterns, and reading its physical lines.

A corpus is a folder ``data/{split}.jsonl`` (or ``.jsonl.gz``, ``.parquet``)
plus ``manifest.json`` and ``README.md``. Every reader here streams: memory
stays flat however large the files are. Records are read through
``validate.iter_records``, which holds every record to the same checks as
``corpusforge validate``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from ._io import input_problem
from .errors import RecordError
from .manifest import read_manifest
from .patterns import BUILTIN_PATTERNS, Pattern, patterns_from_dicts

#: A line longer than this is reported as an error and skipped without being held in memory.
MAX_LINE_BYTES = 8 * 1024 * 1024
BOM = b"\xef\xbb\xbf"
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def corpus_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand corpus directories into their data files; a missing path raises ``RecordError``.

    A data file that is a dangling link, a link loop or not a regular file is an error naming it, never
    skipped; in a corpus folder with a manifest, a file the manifest lists must be there and a data file it
    does not list is an error too (a deleted split, or a stray file that would pass for one).
    """
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            data = p / "data" if (p / "data").is_dir() else p
            found = sorted(f for f in data.iterdir() if f.name.endswith(DATA_SUFFIXES) and not f.name.startswith("."))
            for f in found:
                problem = input_problem(f, want="file")
                if problem is not None:
                    raise RecordError(f"data file {problem}", file=str(f),
                                      hint="restore it from the corpus's source, or regenerate the corpus")
            manifest = read_manifest(p)
            if manifest is not None:
                listed = {(p / entry.path) for entry in manifest.files}
                for f in sorted(listed - set(found)):
                    problem = input_problem(f, want="file") or "is not in the corpus's data folder"
                    raise RecordError(f"data file listed in manifest.json {problem}", file=str(f),
                                      hint="restore the file, or regenerate the corpus with the command in "
                                           "manifest.json")
                for f in found:
                    if f not in listed:
                        raise RecordError("data file not listed in manifest.json", file=str(f),
                                          hint="remove it, or regenerate the corpus")
            if not found:
                raise RecordError(f"no data files ({', '.join(DATA_SUFFIXES)}) in this directory", file=str(p))
            files.extend(found)
        else:
            problem = input_problem(p, want="file")
            if problem is not None:
                raise RecordError(problem, file=str(p))
            files.append(p)
    return files


def _count_and_hash(path: Path, *, hashing: bool) -> tuple[int | None, str | None]:
    """A data file's record count and sha256, in one pass. JSONL counts lines (one record each, as written);
    Parquet's count comes from its footer; ``.jsonl.gz`` is decompressed to count — unless not ``hashing``
    (the quick check), when its count is left out (None)."""
    import gzip
    import hashlib

    digest = hashlib.sha256() if hashing else None
    if path.name.endswith(".parquet"):
        count = None
        try:
            import pyarrow.parquet as pq

            count = pq.ParquetFile(path).metadata.num_rows
        except Exception:  # a broken Parquet file is reported by the record reader, with its reason
            pass
        if digest is not None:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    digest.update(chunk)
        return count, digest.hexdigest() if digest else None
    if path.name.endswith(".gz"):
        if digest is None:
            return None, None
        with open(path, "rb") as raw:
            class Hashing:   # hash the compressed bytes while gzip reads them
                def read(self, n=-1):
                    data = raw.read(n)
                    digest.update(data)
                    return data

            count, last = 0, b"\n"
            try:
                with gzip.GzipFile(fileobj=Hashing(), mode="rb") as stream:
                    for chunk in iter(lambda: stream.read(1 << 22), b""):
                        count += chunk.count(b"\n")
                        last = chunk[-1:]
            except (OSError, EOFError):   # a corrupt stream is reported by the record reader
                return None, None
            digest.update(raw.read())
        return count + (last != b"\n"), digest.hexdigest()
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            count += chunk.count(b"\n")
            last = chunk[-1:]
            if digest is not None:
                digest.update(chunk)
    return count + (last != b"\n"), digest.hexdigest() if digest else None


def manifest_problems(corpus_dir: str | Path, *, quick: bool = False) -> list[tuple[str, str]]:
    """(file, problem) for every data file of a corpus folder that differs from what its manifest lists: record
    count, size and sha256. ``quick`` skips the sha256 (and the count of a ``.jsonl.gz``, which needs
    decompressing). A folder without a manifest has nothing to check."""
    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    if manifest is None:
        return []
    problems = []
    for entry in manifest.files:
        path = corpus_dir / entry.path
        problem = input_problem(path, want="file")
        if problem is not None:
            problems.append((str(path), f"data file listed in manifest.json {problem}"))
            continue
        size = path.stat().st_size
        count, digest = _count_and_hash(path, hashing=not quick)
        differ = []
        if count is not None and count != entry.records:
            differ.append(f"{count:,} records, manifest.json says {entry.records:,}")
        if size != entry.bytes:
            differ.append(f"{size:,} bytes, manifest.json says {entry.bytes:,}")
        if digest is not None and digest != entry.sha256:
            differ.append(f"sha256 {digest[:12]}…, manifest.json says {entry.sha256[:12]}…")
        if differ:
            problems.append((str(path), "data file changed since the corpus was made: " + "; ".join(differ)))
    return problems


def verify_corpus(corpus_dir: str | Path, error: type[RecordError] | type = RecordError, *,
                  quick: bool = False) -> None:
    """Raise ``error`` naming the first data file that differs from the corpus's manifest (see
    ``manifest_problems``)."""
    problems = manifest_problems(corpus_dir, quick=quick)
    if problems:
        file, message = problems[0]
        raise error(message, file=file, hint="restore the file, or regenerate the corpus with the command in "
                                             "manifest.json")


def manifest_patterns(paths: Sequence[str | Path]) -> list[Pattern]:
    """Patterns declared in the manifests of corpus directories (plugin patterns travel with a corpus)."""
    found: list[Pattern] = []
    for raw in paths:
        manifest = read_manifest(raw)
        if manifest:
            source = str(Path(raw) / "manifest.json")
            found.extend(p for p in patterns_from_dicts([e.model_dump() for e in manifest.patterns], source)
                         if p.name not in BUILTIN_PATTERNS)
    return found


def read_blocks(stream, chunk_size: int = 1 << 22) -> Iterator[tuple[int, list[bytes | None], bool]]:
    """Yield ``(first_line_number, lines, ended)``: the physical lines of the stream, a chunk at a time.

    Lines have no line break; a line longer than MAX_LINE_BYTES comes as None and
    is never held in memory whole. ``ended`` is False only for a block holding
    just a last line with no newline (a truncated file). Blocks let a hot loop
    run over a list instead of resuming a generator for every line.
    """
    limit = MAX_LINE_BYTES
    number, carry, skipping = 1, b"", False
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            break
        parts = chunk.split(b"\n")
        may_be_long = len(carry) + len(chunk) > limit  # no line of this chunk can be longer than that
        if skipping:  # inside a long line: drop everything up to its end
            if len(parts) == 1:
                continue
            skipping, parts[0] = False, None
        else:
            parts[0] = carry + parts[0]
        carry = parts.pop()
        if may_be_long:
            parts = [line if line is None or len(line) <= limit else None for line in parts]
        if parts:
            yield number, parts, True
            number += len(parts)
        if len(carry) > limit:
            carry, skipping = b"", True
    if skipping:
        yield number, [None], False
    elif carry:
        yield number, [carry], False


def read_lines(stream, chunk_size: int = 1 << 22) -> Iterator[tuple[int, bytes | None, bool]]:
    """Yield ``(line_number, line, ended)`` for each physical line (see ``read_blocks``)."""
    for first, lines, ended in read_blocks(stream, chunk_size):
        for offset, line in enumerate(lines):
            yield first + offset, line, ended
