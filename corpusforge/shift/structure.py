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
from pathlib import Path

from ..degeneration import degeneration, degeneration_summary, grams, words  # noqa: F401 (the report's)
from ..prompts import NEUTRAL_PROMPTS, read_prompts


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
        self.grams = {hash(g) for t in texts for g in grams(words(t), self.N)}

    def copied_share(self, texts: list[str]) -> dict:
        made = [g for t in texts for g in grams(words(t), self.N)]
        copied = sum(hash(g) in self.grams for g in made)
        return {"copied_8gram_share": copied / len(made) if made else 0.0, "generated_8grams": len(made)}


def read_neutral(path: str | Path = NEUTRAL_PROMPTS) -> list[dict]:
    return read_prompts(path, what="neutral prompts file")


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
