"""Streaming validation of corpus files: every error, never just the first.

Reads JSONL, gzipped JSONL, Parquet, or a corpus directory one record at a
time (memory stays flat however large the file), checks each record against
the pydantic contract and the structural checks in ``records``, and returns a
report of all problems with file, 1-based physical line, JSON path and a
message a person can act on.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import ValidationError

from .columnar import from_row
from .corpus import BOM, MAX_LINE_BYTES, corpus_files, manifest_patterns, manifest_problems, read_blocks
from .errors import CorpusforgeError, RecordError
from .patterns import BUILTIN_PATTERNS, Pattern, merge_patterns
from .records import RECORD_DICT_VALIDATOR, Record, is_sound, structural_errors


@dataclass
class Issue:
    """One problem: where it is and what to do about it."""

    file: str
    line: int | None
    path: str
    message: str

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message}

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}"


@dataclass
class ValidationReport:
    files: list[str] = field(default_factory=list)
    records: int = 0
    valid: int = 0
    invalid: int = 0
    error_count: int = 0
    file_errors: int = 0
    errors: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.invalid == 0 and self.file_errors == 0

    def to_dict(self) -> dict:
        return {"files": self.files, "records": self.records, "valid": self.valid, "invalid": self.invalid,
                "errors": [e.to_dict() for e in self.errors]}


# ---------------------------------------------------------------------------
# Reading records one at a time


def _loc_to_path(loc: tuple) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_FIELDS = ", ".join(Record.model_fields)


def _pydantic_issues(err: ValidationError, file: str, line: int | None) -> list[Issue]:
    issues = []
    for e in err.errors(include_url=False):
        kind, loc, msg = e["type"], tuple(e["loc"]), e["msg"]
        path = _loc_to_path(loc)
        if kind == "json_invalid":
            detail = re.sub(r"at line 1 column (\d+)", r"at column \1", str(e.get("ctx", {}).get("error", msg)))
            message = f"invalid JSON: {detail}"
        elif kind in ("model_type", "model_attributes_type", "dict_type") and not loc:
            message = f"the line is not a JSON object (got {type(e['input']).__name__}); each line must be one record"
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "extra_forbidden":
            message = (f"unknown field; remove it (record fields: {_FIELDS})" if len(loc) == 1
                       else "unknown field; remove it")
        else:
            shown = repr(e.get("input"))
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            message = f"{msg} (got {shown})"
        issues.append(Issue(file, line, path, message))
    return issues


def _check_line(raw: bytes, file: str, line: int, patterns) -> list[Issue]:
    """Every problem of one line, with a message a person can act on (the slow, thorough path)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return [Issue(file, line, "$", f"not valid UTF-8 (byte {e.start} of the line); save the file as UTF-8")]
    try:
        rec = Record.model_validate_json(text)
    except ValidationError as err:
        return _pydantic_issues(err, file, line)
    return [Issue(file, line, path, msg) for path, msg in structural_errors(rec, patterns)]


def _check_row(item: dict, file: str, row: int, patterns, validate_python) -> list[Issue]:
    """The problems of one Parquet row (none for a sound one): the same fast path as JSONL lines;
    only a failing row is read with Record, for complete messages."""
    try:
        item = from_row(item)
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        return [Issue(file, row, "$.meta", f"slots or meta column cannot be read: {e}")]
    try:
        if is_sound(validate_python(item), patterns):
            return []
    except ValidationError:
        pass
    try:
        rec = Record.model_validate(item)
    except ValidationError as err:
        return _pydantic_issues(err, file, row)
    return [Issue(file, row, p, m) for p, m in structural_errors(rec, patterns)]


def _check_jsonl(path: Path, stream, patterns, report: ValidationReport, sink) -> None:
    file = str(path)
    failed = sound = 0
    number = 0
    validate_json = RECORD_DICT_VALIDATOR.validate_json
    try:
        for first, lines, ended in read_blocks(stream):
            for offset, raw in enumerate(lines):
                # fast path: most lines are sound records; everything else (blank lines, a BOM,
                # an over-long line, an invalid record) takes the slow path below
                try:
                    if is_sound(validate_json(raw), patterns):
                        sound += 1
                        continue
                except ValidationError:
                    pass
                number = first + offset
                if raw is None:
                    failed += 1
                    sink([Issue(file, number, "$", f"line is longer than {MAX_LINE_BYTES // 2**20} MiB; "
                                                   "is this a JSONL file of records?")])
                    continue
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                if not raw or raw.isspace():
                    continue
                problems = _check_line(raw, file, number, patterns)
                if not problems:  # sound once its BOM is gone
                    sound += 1
                    continue
                failed += 1
                if not ended and problems[0].message.startswith("invalid JSON"):
                    problems[0].message += " — the last line has no newline: the file may be truncated"
                sink(problems)
            number = first + len(lines) - 1
    finally:  # sound records count even when the stream breaks further on (a corrupt gzip)
        report.records += sound
        report.valid += sound
    if failed + sound == 0:
        _file_error(report, file, f"file is {'empty' if number == 0 else 'blank'}: it holds no records")


def _check_parquet(path: Path, patterns, report: ValidationReport, sink) -> None:
    import pyarrow.parquet as pq

    file = str(path)
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a bad file
        _file_error(report, file, f"not a readable Parquet file: {e}")
        return
    row = 0
    validate_python = RECORD_DICT_VALIDATOR.validate_python
    for batch in pf.iter_batches(batch_size=2048):
        for item in batch.to_pylist():
            row += 1
            sink(_check_row(item, file, row, patterns, validate_python))
    if row == 0:
        _file_error(report, file, "file is empty: it holds no records")


def _file_error(report: ValidationReport, file: str, message: str) -> None:
    """A problem with a whole file (empty, unreadable): always listed, and the report is not ok."""
    report.file_errors += 1
    report.error_count += 1
    report.errors.append(Issue(file, None, "$", message))


def _append(report: ValidationReport, issue: Issue, max_errors: int | None = None) -> None:
    if max_errors is None or len(report.errors) < max_errors:
        report.errors.append(issue)


def validate_paths(paths: Sequence[str | Path], *, patterns: Mapping[str, Pattern] | None = None,
                   max_errors: int | None = None, quick: bool = False) -> ValidationReport:
    """Validate every record in ``paths`` (files or corpus directories) and report all problems.

    A corpus folder's data files are also checked against its manifest (record count, size, sha256; ``quick``
    skips the sha256): a difference is a file error. ``max_errors`` caps how many errors are *listed*, never
    the counts. Raises ``RecordError`` only for a path that does not exist (or a data file that is missing).
    """
    files = corpus_files(paths)
    known = merge_patterns(patterns if patterns is not None else BUILTIN_PATTERNS, manifest_patterns(paths))
    report = ValidationReport(files=[str(f) for f in files])

    def sink(problems: list[Issue]) -> None:
        report.records += 1
        if problems:
            report.invalid += 1
            report.error_count += len(problems)
            for issue in problems:
                _append(report, issue, max_errors)
        else:
            report.valid += 1

    for path in files:
        name = path.name
        if name.endswith(".parquet"):
            _check_parquet(path, known, report, sink)
            continue
        try:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as stream:
                _check_jsonl(path, stream, known, report, sink)
        except (OSError, EOFError, zlib.error) as e:
            _file_error(report, str(path), f"cannot read the file: {e}")
    for raw in paths:
        if Path(raw).is_dir():
            for file, message in manifest_problems(raw, quick=quick):
                _file_error(report, file, message)
    return report


# ---------------------------------------------------------------------------
# The one reader: records as plain dicts, each held to the checks above


def _first_problem(problems: list[Issue], path: Path) -> RecordError:
    first = problems[0]
    return RecordError(f"{first.path}: {first.message}", file=str(path), line=first.line,
                       hint="run `corpusforge validate` for a full report")


def _jsonl_records(path: Path, patterns) -> Iterator[dict]:
    validate_json = RECORD_DICT_VALIDATOR.validate_json
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as stream:
        for first, lines, _ in read_blocks(stream):
            for offset, raw in enumerate(lines):
                try:
                    rec = validate_json(raw)
                    if is_sound(rec, patterns):
                        if rec["meta"] is None:
                            del rec["meta"]
                        yield rec
                        continue
                except ValidationError:
                    pass
                number = first + offset
                if raw is None:
                    raise RecordError("line too long to be a record", file=str(path), line=number,
                                      hint="run `corpusforge validate` for a full report")
                if number == 1 and raw.startswith(BOM):
                    raw = raw[len(BOM):]
                if not raw or raw.isspace():
                    continue
                problems = _check_line(raw, str(path), number, patterns)
                if problems:
                    raise _first_problem(problems, path)
                rec = Record.model_validate_json(raw).model_dump(exclude_none=False)  # sound once its BOM is gone
                yield {k: v for k, v in rec.items() if not (k == "meta" and v is None)}


def _parquet_records(path: Path, patterns) -> Iterator[dict]:
    import pyarrow.parquet as pq

    validate_python = RECORD_DICT_VALIDATOR.validate_python
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=2048)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise RecordError(f"not a readable Parquet file: {e}", file=str(path)) from None
    import pyarrow

    row = 0
    try:
        for batch in batches:
            for item in batch.to_pylist():
                row += 1
                problems = _check_row(item, str(path), row, patterns, validate_python)
                if problems:
                    raise _first_problem(problems, path)
                yield from_row(item)
    except pyarrow.ArrowException as e:
        raise RecordError(f"the Parquet file cannot be read past row {row}: {e}", file=str(path)) from None


def corpus_patterns(paths: Sequence[str | Path]) -> dict[str, Pattern]:
    """The built-in patterns and those the manifests of corpus folders in ``paths`` declare (a broken manifest
    is a RecordError). Pass them on when reading a corpus's files one by one."""
    return merge_patterns(BUILTIN_PATTERNS, manifest_patterns(paths))


def iter_records(paths: Sequence[str | Path], *, patterns: Mapping[str, Pattern] | None = None) -> Iterator[dict]:
    """Yield every record of ``paths`` (files or corpus folders) as a plain dict, in file order.

    Every record passes the same checks as ``corpusforge validate`` (one reader, one verdict): the
    first that does not stops the reading with a ``RecordError`` naming the file, line and field.
    Plugin patterns come from the corpus's manifest, or from ``patterns``.
    """
    files = corpus_files(paths)
    known = merge_patterns(patterns if patterns is not None else BUILTIN_PATTERNS, manifest_patterns(paths))
    for path in files:
        try:
            if path.name.endswith(".parquet"):
                yield from _parquet_records(path, known)
            else:
                yield from _jsonl_records(path, known)
        except (OSError, EOFError, zlib.error) as e:
            raise RecordError(f"cannot read the file: {e}", file=str(path)) from None


def require_valid(paths: Sequence[str | Path], error: type[CorpusforgeError], *,
                  patterns: Mapping[str, Pattern] | None = None) -> ValidationReport:
    """Validate ``paths``; if any record is invalid, raise ``error`` quoting the first three problems."""
    report = validate_paths(paths, patterns=patterns, max_errors=3)
    if not report.ok:
        first = "; ".join(str(e) for e in report.errors[:3])
        shown = " ".join(str(p) for p in paths)
        raise error(f"the corpus has {report.invalid + report.file_errors} invalid record(s) or file(s), e.g. {first}",
                    hint=f"run `corpusforge validate {shown}` for the full list")
    return report
