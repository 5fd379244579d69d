"""Effects the target numbers do not show: degeneration, structure on prompts that do not ask for it,
and copying from the corpus.

- **Degeneration** of a continuation: the share of its word 3-grams that repeat an
  earlier one, distinct-2 (unique word bigrams ÷ bigrams), and whether it *loops* (a
  word 3-gram three times or more: "therefore it is also moving. Therefore it is also
  moving. Therefore it is also").
- **Structure transfer**: neutral prompts (open questions, descriptions, short chat
  turns in English and Russian that start no pattern) are continued before and after,
  and the share whose continuation realises each of the corpus's patterns is counted
  with the pattern's own detector (``templates.detect``); an exact McNemar test over the
  prompts says whether the change is more than chance.
- **Copying**: the share of generated word 8-grams found verbatim in the training corpus.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

NEUTRAL_PROMPTS = Path(__file__).resolve().parent.parent / "data" / "neutral.jsonl"
LOOP_REPEATS = 3


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold(), re.UNICODE)


def _grams(words: list[str], n: int) -> list[tuple]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def degeneration(text: str) -> dict:
    """Repetition measures of one continuation."""
    words = _words(text)
    tri, bi = _grams(words, 3), _grams(words, 2)
    seen, repeated = set(), 0
    for g in tri:
        repeated += g in seen
        seen.add(g)
    counts = Counter(tri)
    return {"repeated_3gram_rate": repeated / len(tri) if tri else 0.0,
            "distinct_2": len(set(bi)) / len(bi) if bi else 1.0,
            "loops": bool(counts) and max(counts.values()) >= LOOP_REPEATS}


def degeneration_summary(texts_before: list[str], texts_after: list[str]) -> dict:
    """Mean repetition measures and the share of looping continuations, before and after."""
    out = {}
    for label, texts in (("before", texts_before), ("after", texts_after)):
        rows = [degeneration(t) for t in texts]
        n = max(len(rows), 1)
        out[label] = {"repeated_3gram_rate": sum(r["repeated_3gram_rate"] for r in rows) / n,
                      "distinct_2": sum(r["distinct_2"] for r in rows) / n,
                      "loop_share": sum(r["loops"] for r in rows) / n, "continuations": len(rows)}
    return out


def mcnemar(before: list[bool], after: list[bool]) -> dict:
    """Exact McNemar test on paired yes/no outcomes: two-sided p of the discordant pairs' split."""
    gained = sum(1 for b, a in zip(before, after) if a and not b)
    lost = sum(1 for b, a in zip(before, after) if b and not a)
    n, k = gained + lost, min(gained, lost)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return {"gained": gained, "lost": lost, "p_value": p}


class CorpusGrams:
    """The word 8-grams of a corpus's training records, for the copying measure."""

    N = 8

    def __init__(self, texts):
        self.grams = {hash(g) for t in texts for g in _grams(_words(t), self.N)}

    def copied_share(self, texts: list[str]) -> dict:
        grams = [g for t in texts for g in _grams(_words(t), self.N)]
        copied = sum(hash(g) in self.grams for g in grams)
        return {"copied_8gram_share": copied / len(grams) if grams else 0.0, "generated_8grams": len(grams)}


def read_neutral(path: str | Path = NEUTRAL_PROMPTS) -> list[dict]:
    from ..train.data import read_prompts

    return read_prompts(path)


def structure_transfer(detector, prompts: list[dict], continuations: dict) -> list[dict]:
    """Per pattern: the share of neutral prompts whose continuation realises it, before and after, and McNemar."""
    rows = []
    for pattern in detector.patterns:
        before = [detector.realises(c, pattern) for c in continuations["before"]]
        after = [detector.realises(c, pattern) for c in continuations["after"]]
        n = max(len(prompts), 1)
        rows.append({"pattern": pattern, "share_before": sum(before) / n, "share_after": sum(after) / n,
                     "prompts": len(prompts), **mcnemar(before, after)})
    return rows
