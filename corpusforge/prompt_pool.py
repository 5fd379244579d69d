"""The writer's prompt pool: neutral prompts, English and Russian, that a model answers to write a corpus.

``data/prompt_pool.jsonl`` is made by ``scripts/make_prompt_pool.py``; one JSON object a line with the string
fields ``prompt``, ``language``, ``topic`` and ``form`` (a pool of one's own needs only the first two). It is
disjoint from the held-out transfer set (``data/transfer.jsonl``) in topics and from every other prompt set in
text (tests/test_prompt_pool.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from ._io import read_text, text_lines
from .errors import GenerateError

PROMPT_POOL = Path(__file__).resolve().parent / "data" / "prompt_pool.jsonl"
#: 12 prompts that ask for no pattern (English and Russian): the report's structure section and training's own
#: fluency check continue them
NEUTRAL_PROMPTS = Path(__file__).resolve().parent / "data" / "neutral.jsonl"
FIELDS = ("prompt", "language")     # required; the built-in pool's lines also name their ``topic`` and ``form``


def read_pool(path: str | Path = PROMPT_POOL) -> list[dict]:
    """The pool's records, in file order (blank lines skipped); a bad line is a GenerateError at its line."""
    out = []
    for number, line in enumerate(text_lines(read_text(path, GenerateError, what="prompt pool")), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise GenerateError(f"invalid JSON: {e.msg}", file=str(path), line=number) from None
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) and item[f].strip() for f in FIELDS) \
                or not all(isinstance(item.get(f, "-"), str) and item.get(f, "-").strip() for f in ("topic", "form")):
            raise GenerateError("a pool line is an object with the non-empty string fields prompt and language (and "
                                "topic and form, when given)",
                                file=str(path), line=number)
        out.append(item)
    return out


def pool_path(spec: str) -> Path:
    """``pool``: the built-in pool; anything else: the path of a .jsonl of the same fields."""
    return PROMPT_POOL if spec == "pool" else Path(spec)
