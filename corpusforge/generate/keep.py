"""Keeping or dropping drawn candidates, in order: exact dedup and the run's range of records.

One process decides, in unit order, so the output does not depend on how many
workers drew the units. A candidate is dropped when its normalised text was kept
before; with continuations, a unit whose premise was kept before adds nothing.
``Tally`` holds those decisions; ``keep`` returns, per split, what to write.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from .pool import Block


@dataclass
class Tally:
    """The sequential decisions: which drawn candidates are kept, and which of those this run writes."""

    lo: int
    hi: int
    write_from: int
    splits: int
    templates: int
    seen: set = field(default_factory=set)
    seen_premises: set = field(default_factory=set)
    kept: int = 0
    idle: int = 0   # consecutive units that added nothing
    split_counts: list = field(default_factory=list)
    template_counts: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.split_counts = [0] * self.splits
        self.template_counts = [0] * self.templates


def keep(block: Block, t: Tally) -> list[list]:
    """Decide the block's candidates in order; return, per split, the lines or records to write.

    The common cases are decided for the whole block with set operations: one candidate per unit
    (no continuations) with a few duplicates at most, or every candidate new. The edges of the
    written range and premises seen before go one candidate at a time (``keep_each``).
    """
    keys, pkeys, n = block.keys, block.premise_keys, len(block.keys)
    if t.write_from <= t.kept and len(block.sizes):
        if pkeys is None and len(block.sizes) == n:
            drop = repeats(keys, t.seen)
            if t.kept + n - len(drop) <= t.hi:
                return keep_all_but(block, t, drop)
        elif (t.kept + n <= t.hi and t.seen.isdisjoint(keys) and len(set(keys)) == n
              and t.seen_premises.isdisjoint(pkeys) and len(set(pkeys)) == len(pkeys)):
            t.seen_premises.update(pkeys)
            return keep_all_but(block, t, [])
    return keep_each(block, t)


def repeats(keys: array, seen: set) -> list[int]:
    """Indexes of the candidates whose key was kept before, in ``seen`` or earlier in ``keys``."""
    unique = set(keys)
    if len(unique) == len(keys) and seen.isdisjoint(unique):
        return []
    clash, here, drop = seen & unique, set(), []
    for j, key in enumerate(keys):
        if key in clash or key in here:
            drop.append(j)
        else:
            here.add(key)
    return drop


def keep_all_but(block: Block, t: Tally, drop: list[int]) -> list[list]:
    """Keep and write every candidate of the block but those in ``drop`` (which must be empty unless
    every unit of the block has one candidate: the idle count below reads drops as units)."""
    n, splits, tmpls = len(block.keys), block.splits, block.templates
    t.seen.update(block.keys)
    t.kept += n - len(drop)
    trailing = 0  # units at the end of the block that added nothing
    while trailing < len(drop) and drop[-1 - trailing] == n - 1 - trailing:
        trailing += 1
    t.idle = t.idle + n if trailing == n else trailing
    for s in range(t.splits):
        t.split_counts[s] += splits.count(s)
    for i in range(t.templates):
        t.template_counts[i] += tmpls.count(i)
    for j in drop:
        t.split_counts[splits[j]] -= 1
        t.template_counts[tmpls[j]] -= 1
    if block.records is not None:
        dropped = set(drop)
        return [[r for j, (r, sp) in enumerate(zip(block.records, splits)) if sp == s and j not in dropped]
                for s in range(t.splits)]
    out: list[list] = []
    for s, (blob, ends) in enumerate(zip(block.lines, block.ends)):
        view, pieces, start = memoryview(blob), [], 0
        for j in drop:
            if splits[j] == s:  # cut out the dropped line: it is this split's candidate number `at`
                at = splits.count(s, 0, j)
                pieces.append(view[start:ends[at - 1] if at else 0])
                start = ends[at]
        pieces.append(view[start:])
        out.append([p for p in pieces if len(p)])
    return out


def keep_each(block: Block, t: Tally) -> list[list]:
    """``keep`` one candidate at a time: duplicates, the edges of the range, premises seen before."""
    out: list[list] = [[] for _ in range(t.splits)]
    seen, seen_add = t.seen, t.seen.add
    keys, splits, tmpls, pkeys = block.keys, block.splits, block.templates, block.premise_keys
    lines, ends = [memoryview(blob) for blob in block.lines], block.ends
    cursor = [0] * t.splits  # per split: how many of the block's candidates of that split came before
    records = block.records
    split_counts, template_counts = t.split_counts, t.template_counts
    kept, idle, lo, hi, write_from = t.kept, t.idle, t.lo, t.hi, t.write_from
    c = 0
    for u, size in enumerate(block.sizes):
        first, c = c, c + size
        if kept >= hi:
            break
        pkey = pkeys[u] if pkeys is not None else None
        if pkey is not None and pkey in t.seen_premises:
            idle += 1
            for j in range(first, c):
                cursor[splits[j]] += 1
            continue
        added = 0
        for j in range(first, c):
            s = splits[j]
            at = cursor[s]
            cursor[s] += 1
            key = keys[j]
            if key in seen or kept >= hi:
                continue
            seen_add(key)
            added += 1
            if kept >= lo:
                split_counts[s] += 1
                template_counts[tmpls[j]] += 1
                if kept >= write_from:
                    if records is not None:
                        out[s].append(records[j])
                    else:
                        out[s].append(lines[s][ends[s][at - 1] if at else 0:ends[s][at]])
            kept += 1
        if pkey is not None and added:
            t.seen_premises.add(pkey)
        idle = 0 if added else idle + 1
    t.kept, t.idle = kept, idle
    return out
