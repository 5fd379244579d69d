"""What the model writes, and the effects the target numbers do not show: continuations before and after (in one
batched ``generate``), word diffs, degeneration, structure on prompts that do not ask for it, and copying from
the corpus.

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

from ..degeneration import degeneration, grams, words
from ..lm.generation import Ask, continue_asks
from ..prompts import NEUTRAL_PROMPTS, read_prompts
from .sections import CopyShare, DegenerationPair, DegenerationStats, GenerationRow, Generations, McNemar, PatternShare


def mcnemar(before: list[bool], after: list[bool]) -> McNemar:
    """Exact McNemar test on paired yes/no outcomes: two-sided p of the discordant pairs' split."""
    gained = sum(1 for b, a in zip(before, after) if a and not b)
    lost = sum(1 for b, a in zip(before, after) if b and not a)
    n, k = gained + lost, min(gained, lost)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return McNemar(gained=gained, lost=lost, p_value=p)


class CorpusGrams:
    """The word 8-grams of a corpus's training records, for the copying measure."""

    N = 8

    def __init__(self, texts):
        self.grams = {hash(g) for t in texts for g in grams(words(t), self.N)}

    def copied_share(self, texts: list[str]) -> CopyShare:
        made = [g for t in texts for g in grams(words(t), self.N)]
        copied = sum(hash(g) in self.grams for g in made)
        return CopyShare(copied_8gram_share=copied / len(made) if made else 0.0, generated_8grams=len(made))


def read_neutral(path: str | Path = NEUTRAL_PROMPTS) -> list[dict]:
    return read_prompts(path, what="neutral prompts file")


def structure_transfer(detector, prompts: list[dict], continuations: dict[str, list[str]]) -> list[PatternShare]:
    """Per pattern: the share of neutral prompts whose continuation realises it, before and after, and McNemar."""
    rows = []
    for pattern in detector.patterns:
        before = [detector.realises(c, pattern) for c in continuations["before"]]
        after = [detector.realises(c, pattern) for c in continuations["after"]]
        n = max(len(prompts), 1)
        rows.append(PatternShare(pattern=pattern, share_before=sum(before) / n, share_after=sum(after) / n,
                                 prompts=len(prompts), **mcnemar(before, after).model_dump()))
    return rows


def degeneration_summary(texts_before: list[str], texts_after: list[str]) -> DegenerationPair:
    """Mean repetition measures and the share of looping continuations, before and after."""
    out = {}
    for label, texts in (("before", texts_before), ("after", texts_after)):
        rows = [degeneration(t) for t in texts]
        n = max(len(rows), 1)
        out[label] = DegenerationStats(repeated_3gram_rate=sum(r["repeated_3gram_rate"] for r in rows) / n,
                                       distinct_2=sum(r["distinct_2"] for r in rows) / n,
                                       loop_share=sum(r["loops"] for r in rows) / n, continuations=len(rows))
    return DegenerationPair(**out)


def before_after(model, tok, wanted: dict[str, tuple[list[list[int]], int, bool]], *, seed: int = 0,
                 temperature: float = 0.8) -> dict[str, dict[str, list[str]]]:
    """Every prompt of every kind continued with the adapter off and on, all in one ``continue_asks``: ``wanted``
    maps a kind to (prompts' ids, new tokens, sampled?); returns kind → {"before": texts, "after": texts}.
    A prompt's sampled before and after share their random draws."""
    asks, where = [], []
    for kind, (id_lists, max_new_tokens, sample) in wanted.items():
        for i, ids in enumerate(id_lists):
            for label in ("before", "after"):
                asks.append(Ask(ids, max_new_tokens, sample, adapter=label == "after", key=f"{kind}:{i}"))
                where.append((kind, label))
    texts: dict[str, dict[str, list[str]]] = {kind: {"before": [], "after": []} for kind in wanted}
    for (kind, label), ids in zip(where, continue_asks(model, tok, asks, seed=seed, temperature=temperature)):
        texts[kind][label].append(tok.decode(ids, skip_special_tokens=True))
    return texts


def word_diff(before: str, after: str) -> list[list[str]]:
    """[op, before words, after words] runs, as difflib's opcodes over words."""
    import difflib

    b, a = before.split(" "), after.split(" ")
    return [[op, " ".join(b[i1:i2]), " ".join(a[j1:j2])]
            for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=b, b=a).get_opcodes()]


def generations(probes, markers: list[str], greedy: dict[str, list[str]],
                sampled: dict[str, list[str]]) -> Generations:
    """Greedy and sampled continuations of the probes before and after (``before_after``'s texts), word diffs,
    and the share that follows the structure."""
    rows = [GenerationRow(prompt=probe.prompt, greedy_before=greedy["before"][i], greedy_after=greedy["after"][i],
                          sampled_before=sampled["before"][i], sampled_after=sampled["after"][i],
                          greedy_diff=word_diff(greedy["before"][i], greedy["after"][i]),
                          sampled_diff=word_diff(sampled["before"][i], sampled["after"][i]),
                          follows_before=follows_structure(greedy["before"][i], probe.targets, markers, 0),
                          follows_after=follows_structure(greedy["after"][i], probe.targets, markers, 0))
            for i, probe in enumerate(probes)]
    n = len(rows)
    return Generations(rows=rows, follows_before=sum(r.follows_before for r in rows) / n,
                       follows_after=sum(r.follows_after for r in rows) / n)


def follows_structure(text: str, targets: list[str], markers: list[str], start: int) -> bool:
    """The continuation carries the probe's target marker right where the structure expects it."""
    continuation = text[start:]
    return any(continuation.startswith(t) for t in targets) or any(continuation.startswith(m) for m in markers)
