"""Probes (a prompt and the continuations the adapter should make likelier) and controls.

Probe files are JSONL or YAML lists of ``{"prompt", "targets", "foils", "name"}``;
their schema is ``schemas/probes.schema.json``. Without a probe file, probes
are derived from a corpus's held-out split: the text before a target marker is
the prompt, the marker the target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._io import read_text, text_lines
from .._yaml import Lines, compose_bounded, construct_plain
from ..errors import ProbeError
from ..validate import corpus_patterns, iter_records

__all__ = ["Probe", "ProbeError", "probes_from_corpus", "probes_json_schema", "read_probes"]

class Probe(BaseModel):
    """A prompt, the continuation(s) the adapter should make likelier, and optional foils."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, description="The text the model continues.")
    targets: list[str] = Field(min_length=1, description="Continuations to strengthen (multi-token allowed).")
    foils: list[str] = Field(default_factory=list, description="Contrasting continuations, e.g. ' but' for ' then'.")
    name: str | None = Field(default=None, description="A short label for the report.")
    chat: bool = Field(default=False, description="Measure in chat form: the prompt as the user's turn in the "
                                                  "model's chat template, the targets at the start of the answer.")
    prefix: str = Field(default="", description="Chat form: the assistant's answer so far, before the targets.")

    @field_validator("targets", "foils")
    @classmethod
    def _no_empty(cls, values: list[str]) -> list[str]:
        if any(not v for v in values):
            raise ValueError("an empty string is not a continuation")
        return values


def probes_json_schema() -> dict:
    from pydantic import TypeAdapter

    schema = TypeAdapter(list[Probe]).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://corpusforge.dev/schemas/probes.schema.json"
    schema["description"] = "A probe file: a list of probes (JSONL holds one probe object per line)."
    return schema


EXAMPLE = '{"prompt": "If the lake freezes,", "targets": [" then"]}'


def _check(items: list, path: Path, line_of: Callable[[tuple], int | None]) -> list[Probe]:
    """Probes from parsed items; ``line_of((i, field))`` gives the line of item i's field."""
    probes = []
    for i, item in enumerate(items):
        try:
            probes.append(Probe.model_validate(item))
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            loc = tuple(err["loc"])
            message = "unknown field; a probe has prompt, targets, foils and name" \
                if err["type"] == "extra_forbidden" else err["msg"]
            raise ProbeError(message, file=str(path), line=line_of((i, *loc)),
                             field=".".join(str(x) for x in loc) or None,
                             hint="see schemas/probes.schema.json") from None
    if not probes:
        raise ProbeError("the probe file holds no probes", file=str(path))
    return probes


def _yaml_items(text: str, path: Path) -> tuple[list, Lines]:
    node = compose_bounded(text, str(path), ProbeError)
    lines = Lines()
    data = construct_plain(node, str(path), ProbeError, lines) if node is not None else None
    if not isinstance(data, list):
        raise ProbeError("a YAML probe file is a list of probes (- prompt: ...)", file=str(path), line=lines.of(()))
    return data, lines


def _jsonl_items(text: str, path: Path) -> tuple[list, list[int]]:
    items, numbers = [], []
    for number, line in enumerate(text_lines(text), 1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            raise ProbeError(f"not a JSON object; each line of a JSONL probe file is one probe, like {EXAMPLE}",
                             file=str(path), line=number)
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as e:
            raise ProbeError(f"invalid JSON: {e}", file=str(path), line=number) from None
        numbers.append(number)
    return items, numbers


def read_probes(path: str | Path) -> list[Probe]:
    """Probes from a JSONL file (one object a line) or a YAML list; every problem names its line and field."""
    path = Path(path)
    text = read_text(path, ProbeError, what="probe file")
    if path.suffix in (".yaml", ".yml"):
        data, lines = _yaml_items(text, path)
        return _check(data, path, lines.of)
    items, numbers = _jsonl_items(text, path)
    return _check(items, path, lambda loc: numbers[loc[0]])


def _chat_probe(rec: dict, target: dict) -> Probe | None:
    cut = rec["segments"][1]["start"] if len(rec["segments"]) > 1 else target["start"]
    if target["start"] < cut:   # a marker inside the premise has no place in the answer
        return None
    before = rec["text"][cut:target["start"]].lstrip()
    marker = target["text"] if before else target["text"].lstrip()
    return Probe(prompt=rec["text"][:cut].strip(), prefix=before, targets=[marker], name=rec["pattern"], chat=True)


def _answer_probe(rec: dict, target: dict) -> Probe | None:
    prompt = (rec.get("meta") or {}).get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    return Probe(prompt=f"{prompt}\n{rec['text'][:target['start']]}", targets=[target["text"]], name=rec["pattern"])


def probes_from_corpus(corpus: str | Path, limit: int = 20, *, chat: bool = False,
                       answer: bool = False) -> list[Probe]:
    """Probes from the held-out split (validation, else test): text before the first marker → the marker.

    ``chat``: in chat form — the premise (first role) as the user's turn, the answer's text before the marker as
    its prefix (the marker at the very start of the answer loses its leading space, as chat answers do).
    ``answer``: in answer form, as ``train --format answer`` reads a record — its prompt (``meta.prompt``), a line
    break, then the record's text before the marker; records without a prompt give none."""
    corpus = Path(corpus)
    files = [f for f in sorted((corpus / "data").glob("*")) if f.name.split(".")[0] in ("validation", "test")]
    if not files:
        raise ProbeError("the corpus has no validation or test split to derive probes from", file=str(corpus),
                         hint="pass --probes FILE")
    seen, probes = set(), []
    for rec in iter_records(files, patterns=corpus_patterns([corpus])):
        if not rec["targets"]:
            continue
        t = rec["targets"][0]
        prompt = rec["text"][:t["start"]]
        if not prompt.strip() or prompt in seen:
            continue
        probe = _chat_probe(rec, t) if chat else _answer_probe(rec, t) if answer \
            else Probe(prompt=prompt, targets=[t["text"]], name=rec["pattern"])
        if probe is None:
            continue
        seen.add(prompt)
        probes.append(probe)
        if len(probes) >= limit:
            break
    if not probes:
        raise ProbeError("no held-out record carries a target marker to probe", file=str(corpus))
    return probes
