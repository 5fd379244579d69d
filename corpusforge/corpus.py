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
    """Expand corpus directories into their data files; a missing path raises ``RecordError``."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            data = p / "data" if (p / "data").is_dir() else p
            found = sorted(f for f in data.iterdir() if f.is_file() and f.name.endswith(DATA_SUFFIXES))
            if not found:
                raise RecordError(f"no data files ({', '.join(DATA_SUFFIXES)}) in this directory", file=str(p))
            files.extend(found)
        else:
            problem = input_problem(p, want="file")
            if problem is not None:
                raise RecordError(problem, file=str(p))
            files.append(p)
    return files


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
