"""Deterministic draws: every record's randomness comes from a hash.

A record's choices (variant, slot values) are read from
``blake2b(seed, template name, template version, index, attempt)`` — never
from ``seed + index``, whose streams overlap across seeds (seeds 1 and 2 would
share all but one record). The same (seed, template, version, index) gives
the same record on any machine, in any worker, in any shard.
"""

from __future__ import annotations

import hashlib
import random
import struct
import unicodedata
from bisect import bisect_right
from itertools import accumulate
from typing import Sequence

_UNPACK = struct.Struct("<8Q").unpack
_blake2b = hashlib.blake2b
_TWO_POW_M53 = 2.0 ** -53


def uniforms(count: int, *key: object) -> Sequence[int]:
    """``count`` 64-bit integers determined by ``key`` (blake2b, 8 per 64-byte digest)."""
    return uniforms_from(count, "\x1f".join([str(k) for k in key]))


def uniforms_from(count: int, base: str) -> Sequence[int]:
    """``uniforms`` for a key already joined with ``\\x1f`` (hot loops precompute its fixed part)."""
    if count <= 8:  # one digest: the usual case
        return _UNPACK(_blake2b(f"{base}\x1e0".encode(), digest_size=64).digest())
    out: list[int] = []
    block = 0
    while len(out) < count:
        out += _UNPACK(_blake2b(f"{base}\x1e{block}".encode(), digest_size=64).digest())
        block += 1
    return out


def pick(x: int, n: int, cumulative: Sequence[float] | None = None) -> int:
    """Choose an index in ``range(n)`` with the 64-bit draw ``x``; weighted when ``cumulative`` is given."""
    if cumulative is None:
        return (x * n) >> 64
    return min(bisect_right(cumulative, (x >> 11) * _TWO_POW_M53 * cumulative[-1]), n - 1)


def cumulative(weights: Sequence[float] | None) -> list[float] | None:
    return None if weights is None else list(accumulate(weights))


def normalise(text: str) -> str:
    """The form used for exact dedup: NFKC, case-folded, white space collapsed."""
    if not text.isascii():  # NFKC leaves ASCII as it is
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold()
    # the white space of rendered text is usually single ASCII spaces already, and then the
    # split-and-join below would return the same string; the only white space a printable
    # string can hold is the ASCII space (checked over all of Unicode in the tests)
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())


def key64(text: str) -> int:
    """A 64-bit key of a string (dedup sets hold these, not the strings)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def premise_id(premise_text: str) -> str:
    """The same premise text gets the same id in every template, seed and run."""
    return hashlib.blake2b(normalise(premise_text).encode(), digest_size=16).hexdigest()


def split_bounds(splits: dict[str, float]) -> list[float]:
    """The cumulative shares of the splits, in their order, that ``split_of`` draws against."""
    total, acc, bounds = sum(splits.values()), 0.0, []
    for share in splits.values():
        acc += share / total
        bounds.append(acc)
    return bounds


def split_of(pid: str, names: Sequence[str], bounds: Sequence[float]) -> str:
    """Assign a split by hashing the premise id: a premise never lands in two splits."""
    u = int(pid[:16], 16) / 2.0 ** 64
    return names[min(bisect_right(bounds, u), len(names) - 1)]


def keyed_random(key: str) -> random.Random:
    """A random stream determined by ``key`` alone: every process of a distributed run, a resumed run, and each
    row of a batched generation draws the same."""
    return random.Random(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little"))
