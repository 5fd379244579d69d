"""A corpus in the dataset shapes other trainers read (TRL, axolotl, LLaMA-Factory, Unsloth).

- ``prompt-completion``: ``{"prompt": …, "completion": …}`` — the premise role(s) and
  what follows; ``prompt + completion`` is the record's text exactly (the completion
  keeps its leading space), so a trainer that joins them sees what corpusforge trains on.
- ``messages``: ``{"messages": [{"role": "system", …}?, {"role": "user", …},
  {"role": "assistant", …}]}`` — the same split as a chat, each turn trimmed of the
  white space at its edges (the chat template puts its own between turns).

Where the completion starts is chosen by role, like ``--loss-on``: by default every
role after the first; ``completion_from`` names the role(s) it may start at (the first
of them a record has). A record with none of them is left out and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HubError
from ..patterns import Pattern

SHAPES = ("prompt-completion", "messages")


@dataclass
class ShapeOptions:
    shape: str = "prompt-completion"
    system: str | None = None                  # messages: an optional system turn
    completion_from: list[str] | None = None   # roles the completion may start at; None: the second role
    skipped: dict[str, int] = field(default_factory=dict)   # split → records without those roles

    def check(self) -> None:
        if self.shape not in SHAPES:
            raise HubError(f"--format must be one of {', '.join(SHAPES)} for a trainer's shape, got {self.shape!r}")
        if self.system is not None and self.shape != "messages":
            raise HubError("--system goes with --format messages")


def corpus_pattern_list(corpus_dir: str | Path) -> list[Pattern]:
    """The patterns a corpus holds: those of its manifest's templates (every known one without a manifest)."""
    from ..manifest import read_manifest
    from ..validate import corpus_patterns

    known = corpus_patterns([corpus_dir])
    manifest = read_manifest(corpus_dir)
    names = sorted({t.pattern for t in manifest.templates} & set(known)) if manifest else []
    return [known[n] for n in names] or [known[n] for n in sorted(known)]


def check_completion_from(roles: list[str] | None, patterns: Iterable[Pattern]) -> None:
    """Every role ``completion_from`` names is a later role of one of ``patterns`` (a HubError naming them
    otherwise): an unknown role, or a first role (nothing before it to prompt with), would leave every
    record out and export nothing."""
    if roles is None:
        return
    if not roles:
        raise HubError("--completion-from names no role")
    patterns = list(patterns)
    later = {r for p in patterns for r in p.roles[1:]}
    shown = "; ".join(f"{p.name}: {', '.join(p.roles)}" for p in patterns)
    for role in roles:
        if role in later:
            continue
        first = [p.name for p in patterns if p.roles[0] == role]
        if first:
            raise HubError(f"--completion-from {role}: it is the first role of {', '.join(first)}, so nothing comes "
                           f"before it to prompt with; name a later role (the corpus's patterns' roles: {shown})")
        raise HubError(f"--completion-from: no pattern of the corpus has a role {role!r} (their roles: {shown})")


def split_record(rec: dict, completion_from: list[str] | None) -> tuple[str, str] | None:
    """(prompt, completion) of a record, or None when it has no role the completion may start at."""
    segments = rec["segments"]
    if completion_from is None:
        start = segments[1]["start"] if len(segments) > 1 else None
    else:
        start = next((s["start"] for s in segments if s["role"] in completion_from and s["start"] > 0), None)
    if start is None:
        return None
    return rec["text"][:start], rec["text"][start:]


def shaped(rec: dict, prompt: str, completion: str, opts: ShapeOptions) -> dict:
    if opts.shape == "prompt-completion":
        return {"prompt": prompt, "completion": completion, "id": rec["id"], "pattern": rec["pattern"]}
    turns = ([{"role": "system", "content": opts.system}] if opts.system else []) + [
        {"role": "user", "content": prompt.strip()}, {"role": "assistant", "content": completion.strip()}]
    return {"messages": turns, "id": rec["id"], "pattern": rec["pattern"]}


def shape_records(records: Iterable[dict], split: str, opts: ShapeOptions) -> Iterator[dict]:
    """The rows of one split in the chosen shape (records the split leaves out are counted in ``opts.skipped``)."""
    for rec in records:
        parts = split_record(rec, opts.completion_from)
        if parts is None or not parts[1].strip():
            opts.skipped[split] = opts.skipped.get(split, 0) + 1
            continue
        yield shaped(rec, *parts, opts)


def arrow_schema(shape: str):
    import pyarrow as pa

    meta = [("id", pa.string()), ("pattern", pa.string())]
    if shape == "prompt-completion":
        return pa.schema([("prompt", pa.string()), ("completion", pa.string()), *meta])
    turn = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
    return pa.schema([("messages", pa.list_(turn)), *meta])
