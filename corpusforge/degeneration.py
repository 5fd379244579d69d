"""How much a text repeats itself: the report's and the trainer's measures of degeneration.

A continuation *loops* when one word 3-gram occurs ``LOOP_REPEATS`` times or more ("therefore it is also moving.
Therefore it is also moving. Therefore it is also"); seq-rep-4 is the share of its word 4-grams that repeat an
earlier one (Welleck et al., 2019).
"""

from __future__ import annotations

import re
from collections import Counter

LOOP_REPEATS = 3


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold(), re.UNICODE)


def grams(words: list[str], n: int) -> list[tuple]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def degeneration(text: str) -> dict:
    """Repetition measures of one continuation."""
    found = words(text)
    tri, bi = grams(found, 3), grams(found, 2)
    seen, repeated = set(), 0
    for g in tri:
        repeated += g in seen
        seen.add(g)
    counts = Counter(tri)
    return {"repeated_3gram_rate": repeated / len(tri) if tri else 0.0,
            "distinct_2": len(set(bi)) / len(bi) if bi else 1.0,
            "loops": bool(counts) and max(counts.values()) >= LOOP_REPEATS}


def seq_rep_4(text: str) -> float:
    """The share of the text's word 4-grams that repeat an earlier one (0 for none, or fewer than two)."""
    found = grams(words(text), 4)
    return 1.0 - len(set(found)) / len(found) if found else 0.0
