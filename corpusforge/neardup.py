"""Near-duplicates: texts that share most of their word shingles.

Each text becomes its set of word 3-grams (case-folded); two texts are near-duplicates when the Jaccard
similarity of those sets is at least ``threshold`` (0.8 by default). Candidates are found with MinHash
signatures (64 hash functions mod 2^31 - 1) cut into 16 bands of 4 (banded LSH: a pair at Jaccard 0.8 shares a band with
probability 1 - (1 - 0.8^4)^16 > 0.999), and each candidate is confirmed by its exact Jaccard similarity, so a
pair is never called a near-duplicate on the signature's word alone. Every hash is blake2b, so the verdicts do
not depend on the process (Python's ``hash`` of a string does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

SHINGLE_WORDS = 3
BANDS, ROWS = 16, 4
_PRIME = (1 << 31) - 1      # a*x + b < 2**63: the products stay exact in uint64
_A, _B = ([int.from_bytes(hashlib.blake2b(f"{k}{i}".encode(), digest_size=8).digest(), "little") % (_PRIME - 1) + 1
           for i in range(BANDS * ROWS)] for k in "ab")


def shingles(text: str) -> frozenset[int]:
    """The text's word 3-grams (all its words as one shingle when it has fewer), as 64-bit hashes."""
    words = text.casefold().split()
    grams = [words[i:i + SHINGLE_WORDS] for i in range(max(1, len(words) - SHINGLE_WORDS + 1))]
    return frozenset(int.from_bytes(hashlib.blake2b(" ".join(g).encode(), digest_size=8).digest(), "little")
                     for g in grams)


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _bands(sh: frozenset[int]) -> list[tuple]:
    import numpy as np

    x = np.fromiter((s % _PRIME for s in sh), dtype=np.uint64, count=len(sh))          # (shingles,)
    a, b = (np.array(v, dtype=np.uint64)[:, None] for v in (_A, _B))                 # (hashes, 1)
    signature = ((a * x[None, :] + b) % np.uint64(_PRIME)).min(axis=1).tolist()      # (hashes,)
    return [(band, *signature[band * ROWS:(band + 1) * ROWS]) for band in range(BANDS)]


class NearDuplicates:
    """Texts seen so far; ``seen(text)`` says whether a near-duplicate of ``text`` is among them (and remembers
    ``text`` when none is)."""

    def __init__(self, threshold: float = 0.8):
        self.threshold = threshold
        self._buckets: dict[tuple, list[int]] = {}
        self._kept: list[frozenset[int]] = []

    def seen(self, text: str) -> bool:
        sh = shingles(text)
        bands = _bands(sh)
        candidates = {i for key in bands for i in self._buckets.get(key, ())}
        if any(jaccard(sh, self._kept[i]) >= self.threshold for i in candidates):
            return True
        index = len(self._kept)
        self._kept.append(sh)
        for key in bands:
            self._buckets.setdefault(key, []).append(index)
        return False


def near_duplicate_share(texts: Iterable[str], threshold: float = 0.8) -> float:
    """The share of texts that are near-duplicates of an earlier one (0.0 for none)."""
    index, total, dups = NearDuplicates(threshold), 0, 0
    for text in texts:
        total += 1
        dups += index.seen(text)
    return dups / total if total else 0.0
