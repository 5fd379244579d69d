"""A text as the model reads it from its start.

A tokenizer may put tokens before every text by default — Gemma's and Llama's ``<bos>`` — and the model was
trained to see them: Gemma 3 without its ``<bos>`` continues «Смысл — это» with «'\\n}», with it with fluent
Russian. SmolLM2's and GPT-2's tokenizers put nothing there. Every text a model reads from its start (a record,
a prompt, a control, a probe) goes through ``text_ids``; a piece that follows another text (a target, a marker)
is tokenised alone, without them (``piece_ids``).
"""

from __future__ import annotations

_PROBE = "If it"


def start_tokens(tok) -> list[int]:
    """The tokens ``tok`` puts before a text by default (read once, from a probe text; kept on the tokenizer)."""
    cached = getattr(tok, "_corpusforge_start", None)
    if cached is not None:
        return cached
    plain = tok(_PROBE, add_special_tokens=False).input_ids
    full = tok(_PROBE).input_ids
    start = list(full[:len(full) - len(plain)]) if len(full) > len(plain) and full[-len(plain):] == plain else []
    try:
        tok._corpusforge_start = start
    except AttributeError:   # a tokenizer that takes no attribute: read again next time
        pass
    return start


def from_start(tok, ids: list[int]) -> tuple[list[int], int]:
    """``ids`` with the start tokens before them (unless they already begin with them, as a chat template may
    write them) and how many tokens were put there."""
    start = start_tokens(tok)
    if not start or ids[:len(start)] == start:
        return list(ids), 0
    return start + list(ids), len(start)


def without_start(tok, ids: list[int]) -> list[int]:
    """``ids`` without the start tokens they begin with: a text that another one goes before."""
    start = start_tokens(tok)
    return list(ids[len(start):]) if start and ids[:len(start)] == start else list(ids)


def text_ids(tok, text: str) -> list[int]:
    """A text the model reads from its start: its start tokens, then the text's."""
    return from_start(tok, tok(text, add_special_tokens=False).input_ids)[0]


def piece_ids(tok, text: str) -> list[int]:
    """A piece that follows another text (a target, a marker): its own tokens only."""
    return tok(text, add_special_tokens=False).input_ids
