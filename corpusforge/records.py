"""The record: one rendered example of a reasoning pattern (the public contract).

A record is its full ``text`` plus ``segments`` that cut the text into the
pattern's roles and ``targets`` that mark the words the corpus should
strengthen. Offsets are character offsets into the Unicode string, so
``text[start:end] == segment.text`` holds for Cyrillic as for English.

Two layers of checks:
1. the pydantic model below (types, required fields, formats) — exported as
   ``schemas/record.schema.json`` (JSON Schema, Draft 2020-12);
2. ``structural_errors`` — what a schema cannot say: roles follow the
   pattern's order, spans point at their text, nothing overlaps, and the id is
   the hash of the content.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import SchemaValidator

from .patterns import BUILTIN_PATTERNS, NAME_RE, Pattern

SCHEMA_ID = "https://corpusforge.dev/schemas/record.schema.json"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1   # Arrow and Parquet store seed and index as int64

_ROLE = Annotated[str, Field(pattern=NAME_RE.pattern, description="A role of the record's pattern.")]
_OFFSET = Annotated[int, Field(ge=0, le=INT64_MAX, description="Character offset into `text`.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Segment(_Strict):
    """A span of the text that plays one role of the pattern."""

    role: _ROLE
    start: _OFFSET
    end: _OFFSET
    text: str = Field(description="Must equal text[start:end].")


class Target(_Strict):
    """A span of a marker word the corpus is meant to strengthen (e.g. ' then')."""

    text: str = Field(min_length=1, description="Must equal text[start:end].")
    start: _OFFSET
    end: _OFFSET


class Record(_Strict):
    """One rendered example of a reasoning pattern."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True,
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID},
    )

    id: str = Field(pattern=r"^[0-9a-f]{32}$",
                    description="blake2b-128 hex of the content (see corpusforge.records.content_id).")
    pattern: str = Field(pattern=NAME_RE.pattern, description="The reasoning pattern, e.g. if_then.")
    template: str = Field(pattern=r"^[^@\s]+@[0-9]+$", description="The template that rendered it: name@version.")
    language: str = Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$", description="BCP-47 tag, e.g. en, ru.")
    text: str = Field(min_length=1, description="The full rendered text.")
    segments: list[Segment] = Field(min_length=1, description="Role spans that tile the text exactly (each starts "
                                                              "where the previous ends; the first at 0, the last "
                                                              "at the end), in the pattern's order.")
    targets: list[Target] = Field(description="Marker spans over text (may be empty).")
    slots: dict[str, str] = Field(description="The slot fillers used, by slot name.")
    premise_id: str | None = Field(default=None, description="Shared by records that continue the same premise.")
    seed: int = Field(ge=INT64_MIN, le=INT64_MAX, description="The generation seed (a 64-bit integer).")
    index: int = Field(ge=0, le=INT64_MAX, description="The generation index the record was drawn at.")
    split: str | None = Field(default=None, pattern=NAME_RE.pattern, description="train, validation, test, ...")
    meta: dict[str, Any] | None = Field(default=None, description="Free-form metadata (JSON: no NaN or Infinity, "
                                                                  "integers within int64).")


def content_id(pattern: str, template: str, language: str, text: str,
               segments: Iterable[tuple[str, int, int]], targets: Iterable[tuple[str, int, int]],
               slots: Mapping[str, str]) -> str:
    """The record id: blake2b-128 (hex) of its content, in a canonical JSON form.

    Provenance (seed, index, split, premise_id, meta) is not content: moving a
    record to another split keeps its id; editing its text or spans does not.
    """
    if not isinstance(segments, list):
        segments = list(segments)
    if not isinstance(targets, list):
        targets = list(targets)
    blob = orjson.dumps((pattern, template, language, text, segments, targets, slots), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def build_record(*, pattern: str, template: str, language: str, parts: Sequence[tuple[str, str]],
                 markers: Sequence[str] = (), slots: Mapping[str, str] | None = None, seed: int = 0,
                 index: int = 0, premise_id: str | None = None, split: str | None = None,
                 meta: dict | None = None) -> dict:
    """Assemble a record (as a plain dict) from its role texts, in order.

    ``parts`` are ``(role, text)`` pairs; the record's text is their
    concatenation. Every occurrence of each marker becomes a target span.
    """
    segments, spans, pieces, pos = [], [], [], 0
    for role, piece in parts:
        end = pos + len(piece)
        segments.append({"role": role, "start": pos, "end": end, "text": piece})
        spans.append((role, pos, end))
        pieces.append(piece)
        pos = end
    text = "".join(pieces)
    targets = find_targets(text, markers)
    slots = dict(slots) if slots else {}
    rid = content_id(pattern, template, language, text, spans,
                     [(t["text"], t["start"], t["end"]) for t in targets], slots)
    rec = {"id": rid, "pattern": pattern, "template": template, "language": language, "text": text,
           "segments": segments, "targets": targets, "slots": slots, "premise_id": premise_id,
           "seed": seed, "index": index, "split": split}
    if meta is not None:
        rec["meta"] = meta
    return rec


def find_targets(text: str, markers: Sequence[str]) -> list[dict]:
    """Every whole-word occurrence of each marker in ``text``, sorted by position.

    A marker that begins (ends) with a letter or digit does not match where the
    text has another letter or digit just before (after) it: " then" does not
    match inside " thenceforth", and the Russian " а" not inside " автор".
    """
    found = []
    for marker in markers:
        start = text.find(marker)
        if start == -1:
            continue
        head, tail = marker[:1].isalnum(), marker[-1:].isalnum()
        while start != -1:
            end = start + len(marker)
            if not ((head and start > 0 and text[start - 1].isalnum())
                    or (tail and end < len(text) and text[end].isalnum())):
                found.append({"text": marker, "start": start, "end": end})
                start = text.find(marker, end)
            else:
                start = text.find(marker, start + 1)
    if len(markers) > 1:  # one marker's matches are found in order already
        found.sort(key=lambda t: (t["start"], t["end"]))
    return found


def _as_typed_dicts(node: Any) -> Any:
    """A core schema with every model node replaced by a typed dict of the same fields and config."""
    if isinstance(node, list):
        return [_as_typed_dicts(x) for x in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "model":
        fields = {}
        for name, field in node["schema"]["fields"].items():
            schema = _as_typed_dicts(field["schema"])
            fields[name] = {"type": "typed-dict-field", "schema": schema, "required": schema["type"] != "default"}
        return {"type": "typed-dict", "fields": fields, "extra_behavior": "forbid", "config": node["config"]}
    return {k: _as_typed_dicts(v) for k, v in node.items() if k not in ("metadata", "ref", "cls")}


def _fast_path_validator() -> SchemaValidator:
    """The Record contract validated into plain dicts instead of model instances (about 10 % faster,
    and cheaper to read), for validation's fast path.

    The very same core schema — types, bounds, strictness, no unknown fields — less three regular
    expressions that ``is_sound`` makes redundant: an id equal to a blake2b hex digest is 32 hex
    digits, a pattern found among the known patterns and roles in its role order are names (a
    ``Pattern`` checks its names). So validator + ``is_sound`` accept exactly what ``Record`` +
    ``structural_errors`` accept; anything else is re-read with ``Record`` for the messages.
    """
    schema = _as_typed_dicts(Record.__pydantic_core_schema__)
    fields = schema["fields"]
    for implied in (fields["id"], fields["pattern"], fields["segments"]["schema"]["items_schema"]["fields"]["role"]):
        del implied["schema"]["pattern"]
    return SchemaValidator(schema)


RECORD_DICT_VALIDATOR = _fast_path_validator()


def is_sound(rec: Mapping[str, Any], patterns: Mapping[str, Pattern]) -> bool:
    """The fast path of ``structural_errors`` for a record shaped as a dict (as
    ``RECORD_DICT_VALIDATOR`` returns it): True when the record passes every check."""
    pattern = patterns.get(rec["pattern"])
    if pattern is None or pattern.name != rec["pattern"]:
        return False
    text = rec["text"]
    n, last_end, roles, spans = len(text), 0, [], []
    for seg in rec["segments"]:
        role, start, end = seg["role"], seg["start"], seg["end"]
        if not (last_end == start < end <= n) or text[start:end] != seg["text"]:
            return False
        roles.append(role)
        spans.append((role, start, end))
        last_end = end
    if last_end != n or tuple(roles) not in pattern.role_sequences:
        return False
    meta = rec.get("meta")
    if meta and _meta_problem(meta, "$.meta") is not None:
        return False
    marks = []
    for tgt in rec["targets"]:
        mark, start, end = tgt["text"], tgt["start"], tgt["end"]
        if not (start < end <= n) or text[start:end] != mark:
            return False
        marks.append((mark, start, end))
    return rec["id"] == content_id(rec["pattern"], rec["template"], rec["language"], text, spans, marks, rec["slots"])


def _meta_problem(value: Any, where: str) -> tuple[str, str] | None:
    """The first value inside ``meta`` that JSON or a 64-bit column cannot hold — NaN, ±Infinity, an integer past
    int64 (Parquet and Arrow store meta's numbers as int64) — as ``(json_path, message)``; None when there is none."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return where, "holds NaN or Infinity, which JSON does not allow; use null or a string"
    elif isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            return where, (f"holds the integer {value}, past the 64-bit range that Parquet and Arrow store "
                           f"({INT64_MIN} to {INT64_MAX}); use a string")
    elif isinstance(value, dict):
        for k, v in value.items():
            problem = _meta_problem(v, f"{where}.{k}")
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for i, v in enumerate(value):
            problem = _meta_problem(v, f"{where}[{i}]")
            if problem is not None:
                return problem
    return None


def structural_errors(rec: Record, patterns: Mapping[str, Pattern] = BUILTIN_PATTERNS) -> list[tuple[str, str]]:
    """What the JSON Schema cannot check. Returns ``(json_path, message)`` pairs; empty when sound."""
    if is_sound(rec.model_dump(), patterns):
        return []
    errors: list[tuple[str, str]] = []
    text, n = rec.text, len(rec.text)
    pattern = patterns.get(rec.pattern)
    if pattern is None:
        known = ", ".join(sorted(patterns))
        errors.append(("$.pattern", f"unknown pattern {rec.pattern!r}; known patterns: {known} "
                                    "(a plugin pattern needs its pack: pass --templates DIR)"))

    last_order, last_end, seen = -1, 0, set()
    for i, seg in enumerate(rec.segments):
        where = f"$.segments[{i}]"
        if pattern is not None:
            if seg.role not in pattern.roles:
                errors.append((f"{where}.role", f"role {seg.role!r} is not a role of {pattern.name} "
                                                f"(roles: {', '.join(pattern.roles)})"))
            else:
                order = pattern.roles.index(seg.role)
                if seg.role in seen:
                    errors.append((f"{where}.role", f"role {seg.role!r} appears twice"))
                elif order < last_order:
                    errors.append((f"{where}.role", f"role {seg.role!r} is out of order; {pattern.name} "
                                                    f"orders its roles {' → '.join(pattern.roles)}"))
                last_order = max(last_order, order)
                seen.add(seg.role)
        if not seg.start < seg.end <= n:
            errors.append((where, f"span [{seg.start}, {seg.end}) must be non-empty and inside the "
                                  f"text (length {n})"))
        elif text[seg.start:seg.end] != seg.text:
            errors.append((f"{where}.text", f"does not match text[{seg.start}:{seg.end}] = "
                                            f"{text[seg.start:seg.end]!r}"))
        if seg.start < last_end:
            errors.append((f"{where}.start", f"overlaps the previous segment, which ends at {last_end}"))
        elif seg.start > last_end:
            errors.append((f"{where}.start", f"leaves text[{last_end}:{seg.start}] = {text[last_end:seg.start]!r} "
                                             "in no segment; segments must tile the text"))
        last_end = max(last_end, seg.end)
    if last_end < n:
        errors.append(("$.segments", f"the text after offset {last_end} ({text[last_end:][:30]!r}) is in no "
                                     "segment; segments must tile the text"))
    if pattern is not None:
        missing = [r for r in pattern.required if r not in seen]
        if missing:
            errors.append(("$.segments", f"required role(s) {missing} of {pattern.name} are missing"))

    for i, tgt in enumerate(rec.targets):
        if not tgt.start < tgt.end <= n:
            errors.append((f"$.targets[{i}]", f"span [{tgt.start}, {tgt.end}) must be non-empty and "
                                              f"inside the text (length {n})"))
        elif text[tgt.start:tgt.end] != tgt.text:
            errors.append((f"$.targets[{i}].text", f"does not match text[{tgt.start}:{tgt.end}] = "
                                                   f"{text[tgt.start:tgt.end]!r}"))

    problem = _meta_problem(rec.meta, "$.meta") if rec.meta else None
    if problem is not None:
        errors.append(problem)

    expected = content_id(rec.pattern, rec.template, rec.language, text,
                          ((s.role, s.start, s.end) for s in rec.segments),
                          ((t.text, t.start, t.end) for t in rec.targets), rec.slots)
    if rec.id != expected:
        errors.append(("$.id", f"does not match the content (expected {expected}); the record was edited "
                               "after it was made — regenerate it or recompute the id"))
    return errors


def record_json_schema() -> dict:
    """The Record contract as JSON Schema (Draft 2020-12), as committed in schemas/."""
    return Record.model_json_schema(mode="validation")
