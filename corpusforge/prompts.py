"""Every prompt set corpusforge ships, and the readers of prompt files: one home at the corpus layer.

The sets (``corpusforge/data/``), each disjoint from the others in text (tests/test_prompt_pool.py,
tests/test_transfer.py, tests/test_report.py):

- ``controls.jsonl`` (``DEFAULT_CONTROLS``): prompts whose next token training holds to the base model's;
- ``controls_heldout.jsonl`` (``HELDOUT_CONTROLS``): the report's controls — facts, code, chat, English and
  Russian — never used in training;
- ``neutral.jsonl`` (``NEUTRAL_PROMPTS``): 12 prompts that ask for no pattern; the report's structure section
  and training's own fluency check continue them;
- ``transfer.jsonl`` (``TRANSFER_PROMPTS``): the report's 200 neutral prompts for transfer;
- ``prompt_pool.jsonl`` (``PROMPT_POOL``): the writer's pool, the prompts a model answers to write a corpus
  (made by ``scripts/make_prompt_pool.py``; one JSON object a line with the string fields ``prompt``,
  ``language``, ``topic`` and ``form`` — a pool of one's own needs only the first two; disjoint from the
  transfer set in topics too).

A prompt is a dict with ``prompt``, ``kind`` and, where the file says it, ``language``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ._io import read_text, text_lines
from .errors import CorpusforgeError, GenerateError, ProbeError

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_CONTROLS = DATA / "controls.jsonl"
HELDOUT_CONTROLS = DATA / "controls_heldout.jsonl"
NEUTRAL_PROMPTS = DATA / "neutral.jsonl"
TRANSFER_PROMPTS = DATA / "transfer.jsonl"
PROMPT_POOL = DATA / "prompt_pool.jsonl"
POOL_FIELDS = ("prompt", "language")     # required; the built-in pool's lines also name their ``topic`` and ``form``


def read_prompts(path: str | Path, error: type[CorpusforgeError] = ProbeError, *,
                 what: str = "prompts file", unique: bool = True) -> list[dict]:
    """Plain text (one prompt per line) or JSONL objects with a ``prompt`` (and optional ``kind``, ``language``).

    A bad line is an ``error`` (the caller's kind: a TrainError for training's controls) at its file and line;
    so is a prompt the file already holds, when ``unique`` (a set that is measured or held: a repeated prompt
    would weigh twice in its means)."""
    path = Path(path)
    out = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text_lines(read_text(path, error, what=what)), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise error(f"invalid JSON: {e.msg}", file=str(path), line=number) from None
            if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
                raise error("a JSONL prompt needs a non-empty string field \"prompt\"", file=str(path),
                            line=number, field="prompt")
            out.append({"prompt": item["prompt"], "kind": str(item.get("kind", "")),
                        **({"language": str(item["language"])} if item.get("language") else {})})
        else:
            out.append({"prompt": line, "kind": ""})
        if unique and out[-1]["prompt"] in seen:
            raise error(f"this prompt is on line {seen[out[-1]['prompt']]} already: {out[-1]['prompt'][:60]!r}",
                        file=str(path), line=number,
                        hint="keep one copy: a prompt twice weighs twice in every mean over the set")
        seen.setdefault(out[-1]["prompt"], number)
    if not out:
        raise error(f"the {what} holds no prompts", file=str(path))
    return out


def prompt_language(prompt: dict) -> str:
    """A prompt's language: its ``language`` field, else by script (Cyrillic: ru; anything else: en)."""
    return prompt.get("language") or ("ru" if any("\u0400" <= ch <= "\u04ff" for ch in prompt["prompt"]) else "en")


def read_pool(path: str | Path = PROMPT_POOL) -> list[dict]:
    """The writer's pool, in file order (blank lines skipped); a bad line is a GenerateError at its line."""
    out = []
    for number, line in enumerate(text_lines(read_text(path, GenerateError, what="prompt pool")), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise GenerateError(f"invalid JSON: {e.msg}", file=str(path), line=number) from None
        if not isinstance(item, dict) \
                or not all(isinstance(item.get(f), str) and item[f].strip() for f in POOL_FIELDS) \
                or not all(isinstance(item.get(f, "-"), str) and item.get(f, "-").strip() for f in ("topic", "form")):
            raise GenerateError("a pool line is an object with the non-empty string fields prompt and language (and "
                                "topic and form, when given)",
                                file=str(path), line=number)
        out.append(item)
    return out


def pool_path(spec: str) -> Path:
    """``pool``: the built-in pool; anything else: the path of a .jsonl of the same fields."""
    return PROMPT_POOL if spec == "pool" else Path(spec)
