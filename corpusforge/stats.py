"""Corpus statistics: what a corpus holds, and how varied it is.

Counts by pattern, template, language and split; the length distribution;
distinct-n (the share of n-grams that are unique: 1.0 means no repetition); the near-duplicate share
(``neardup``);
continuations per premise; target marker counts; and premise leakage across
splits (a premise seen in two splits, which generation never produces).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from .neardup import NearDuplicates
from .validate import iter_records


def _quantiles(values: list[int]) -> dict:
    if not values:
        return {"min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    values.sort()
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"min": values[0], "mean": round(sum(values) / len(values), 2), "p50": pick(0.5),
            "p95": pick(0.95), "max": values[-1]}


def compute_stats(records: Iterable[dict]) -> dict:
    """Statistics of an iterable of record dicts (one pass)."""
    by = {k: Counter() for k in ("pattern", "template", "language", "split")}
    markers: Counter = Counter()
    chars: list[int] = []
    words: list[int] = []
    ngrams = {n: set() for n in (1, 2, 3)}
    totals = {n: 0 for n in (1, 2, 3)}
    premise_count: Counter = Counter()
    premise_splits: dict[str, set] = defaultdict(set)
    near, near_count = NearDuplicates(), 0
    n = 0
    for rec in records:
        n += 1
        for key, counter in by.items():
            counter[rec.get(key) or "(none)"] += 1
        text = rec.get("text", "")
        tokens = text.lower().split()
        near_count += near.seen(text)
        chars.append(len(text))
        words.append(len(tokens))
        for k in (1, 2, 3):
            grams = [tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1)]
            totals[k] += len(grams)
            ngrams[k].update(hash(g) for g in grams)
        for tgt in rec.get("targets") or []:
            markers[tgt.get("text")] += 1
        pid = rec.get("premise_id")
        if pid:
            premise_count[pid] += 1
            premise_splits[pid].add(rec.get("split"))
    per_premise = list(premise_count.values())
    return {
        "records": n,
        "by_pattern": dict(by["pattern"].most_common()),
        "by_template": dict(by["template"].most_common()),
        "by_language": dict(by["language"].most_common()),
        "by_split": dict(by["split"].most_common()),
        "length_chars": _quantiles(chars),
        "length_words": _quantiles(words),
        "distinct": {f"distinct_{k}": round(len(ngrams[k]) / totals[k], 4) if totals[k] else 0.0
                     for k in (1, 2, 3)},
        "near_duplicate_share": round(near_count / n, 4) if n else 0.0,
        "premises": {"count": len(per_premise),
                     "continuations_per_premise": _quantiles(per_premise),
                     "leaked_across_splits": sum(1 for s in premise_splits.values() if len(s) > 1)},
        "target_markers": dict(markers.most_common()),
    }


def corpus_stats(paths: Sequence[str | Path]) -> dict:
    """Statistics of the records in ``paths`` (files or corpus directories), streamed."""
    return compute_stats(iter_records(paths))


def format_stats(stats: dict) -> str:
    """A plain-text rendering for the terminal."""
    lines = [f"records: {stats['records']}"]
    for key in ("by_pattern", "by_template", "by_language", "by_split", "target_markers"):
        lines.append(f"{key.replace('_', ' ')}:")
        lines.extend(f"  {name!s:<32} {count:>9}" for name, count in stats[key].items())
    for key in ("length_chars", "length_words"):
        q = stats[key]
        lines.append(f"{key.replace('_', ' ')}: min {q['min']}  mean {q['mean']}  p50 {q['p50']}  "
                     f"p95 {q['p95']}  max {q['max']}")
    d = stats["distinct"]
    lines.append(f"distinct-1/2/3: {d['distinct_1']} / {d['distinct_2']} / {d['distinct_3']}")
    lines.append(f"near-duplicates: {stats['near_duplicate_share']:.2%} of records (word 3-gram Jaccard >= 0.8 with "
                 "an earlier one)")
    p = stats["premises"]
    c = p["continuations_per_premise"]
    lines.append(f"premises: {p['count']}  continuations per premise: min {c['min']} mean {c['mean']} "
                 f"max {c['max']}  leaked across splits: {p['leaked_across_splits']}")
    return "\n".join(lines)
