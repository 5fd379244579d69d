"""Transfer: does the structure carry over to prompts that never asked for it — and beside what?

200 neutral prompts (``data/transfer.jsonl``: 25 topics × 4 forms — an open question, an opinion, a
description, a chat turn — in English and in Russian; disjoint from the controls, the report's 12 neutral
prompts, the probes and the training corpora, which a test holds) are continued four ways, all in one batched
``generate`` (``lm.generation.continue_asks``):

- ``base``: the base model, greedy;
- ``lora``: the adapter on, greedy;
- ``lora_sampled`` / ``base_sampled``: both sampled, each prompt's two sides from one random stream;
- ``prompted``: the **prompting baseline** — the base model given ``k`` of the corpus's own records of the
  prompt's language before the prompt (one a line; a record written in answer to a prompt after its prompt),
  greedy: what simply asking buys.

For each: the share of continuations in which the detector finds any of the corpus's patterns (and each
pattern), with a Wilson 95 % interval, by language; the loop share (a word 3-gram three times), seq-rep-4
(the share of a continuation's word 4-grams that repeat an earlier one, averaged) and the share of empty
continuations (the end of text at once: a model that falls silent neither loops nor realises anything).
``lora`` against ``base`` and against ``prompted`` is an exact McNemar test over the same prompts.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..degeneration import degeneration, seq_rep_4  # noqa: F401 (seq_rep_4: the transfer table's)
from ..prompts import TRANSFER_PROMPTS, read_prompts
from .sections import Condition, Share, Transfer
from .structure import mcnemar

CONDITIONS = ("base", "lora", "base_sampled", "lora_sampled", "prompted")


def read_transfer(path: str | Path = TRANSFER_PROMPTS) -> list[dict]:
    return read_prompts(path, what="transfer prompts file")


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a share (95 % by default): sound at 0 and 1, where the normal one is not."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n))


def few_shot(examples: list[str], prompt: str) -> str:
    """The prompting baseline's prompt: the examples, one a line, then the prompt."""
    return "".join(e.strip() + "\n" for e in examples) + prompt


def _share(flags: list[bool]) -> Share:
    hits, n = sum(flags), len(flags)
    low, high = wilson(hits, n)
    return Share(share=hits / n if n else 0.0, ci_low=low, ci_high=high, n=n)


def score(detector, prompts: list[dict], texts: dict[str, list[str]]) -> Transfer:
    """The transfer table from the continuations of each condition (``texts[condition][i]`` for prompt i)."""
    realised = {c: [bool(detector.patterns_in(t)) for t in texts[c]] for c in texts}
    out = Transfer(prompts=len(prompts), conditions={})
    for c in texts:
        rows = [degeneration(t) for t in texts[c]]
        by_language = {}
        for lang in sorted({p.get("language", "") for p in prompts}):
            flags = [f for f, p in zip(realised[c], prompts) if p.get("language", "") == lang]
            by_language[lang or "unknown"] = _share(flags)
        out.conditions[c] = Condition(
            any_pattern=_share(realised[c]), by_language=by_language,
            by_pattern={pat: _share([detector.realises(t, pat) for t in texts[c]]) for pat in detector.patterns},
            loop_share=sum(r["loops"] for r in rows) / max(len(rows), 1),
            empty_share=sum(not t.strip() for t in texts[c]) / max(len(texts[c]), 1),
            seq_rep_4=sum(seq_rep_4(t) for t in texts[c]) / max(len(texts[c]), 1))
    if {"base", "lora"} <= set(texts):
        out.lora_vs_base = mcnemar(realised["base"], realised["lora"])
    if {"lora_sampled", "base_sampled"} <= set(texts):
        out.lora_vs_base_sampled = mcnemar(realised["base_sampled"], realised["lora_sampled"])
    if {"prompted", "lora"} <= set(texts):
        out.lora_vs_prompted = mcnemar(realised["prompted"], realised["lora"])
    return out


def continuations(model, tok, prompts: list[dict], examples: dict[str, list[str]], *, new_tokens: int = 48,
                  seed: int = 0) -> dict[str, list[str]]:
    """Every condition's continuation of every prompt, in one ``continue_asks``. ``examples``: the prompting
    baseline's records by language (a prompt whose language has none gets the English ones)."""
    from ..lm.generation import Ask, continue_asks
    from .passes import encode

    ids = [encode(tok, p["prompt"]) for p in prompts]
    shots = [encode(tok, few_shot(examples.get(p.get("language", "en")) or examples.get("en", []),
                                          p["prompt"])) for p in prompts]
    plan = {"base": (ids, False, False), "lora": (ids, True, False), "base_sampled": (ids, False, True),
            "lora_sampled": (ids, True, True), "prompted": (shots, False, False)}
    asks, where = [], []
    for condition, (id_lists, adapter, sample) in plan.items():
        for i, prompt_ids in enumerate(id_lists):
            asks.append(Ask(prompt_ids, new_tokens, sample, adapter, key=f"transfer:{i}"))
            where.append(condition)
    new = continue_asks(model, tok, asks, seed=seed)
    out: dict[str, list[str]] = {c: [] for c in plan}
    for condition, tokens in zip(where, new):
        out[condition].append(tok.decode(tokens, skip_special_tokens=True))
    return out


def corpus_examples(corpus: Path, k: int = 3) -> dict[str, list[str]]:
    """``k`` training records per language, spread over the corpus's patterns (the first of each in turn); a
    record written in answer to a prompt comes with its prompt, as it was trained (``train --format answer``)."""
    from ..corpus import corpus_files
    from ..validate import corpus_patterns, iter_records

    files = [f for f in corpus_files([corpus]) if f.name.startswith("train")]
    by_lang: dict[str, dict[str, list[str]]] = {}
    for rec in iter_records(files, patterns=corpus_patterns([corpus])):
        prompt = (rec.get("meta") or {}).get("prompt")
        text = f"{prompt}\n{rec['text']}" if isinstance(prompt, str) else rec["text"]
        by_lang.setdefault(rec["language"], {}).setdefault(rec["pattern"], []).append(text)
        if sum(len(v) for by in by_lang.values() for v in by.values()) > 200 * k:
            break
    return {lang: in_turn(by_pattern.values(), k) for lang, by_pattern in by_lang.items()}


def in_turn(groups, limit: int) -> list:
    """At most ``limit`` items, the groups in turn: the first of each group, then the second of each, …"""
    groups = list(groups)
    out, turn = [], 0
    while len(out) < limit and any(turn < len(g) for g in groups):
        out += [g[turn] for g in groups if turn < len(g)][:limit - len(out)]
        turn += 1
    return out


def measure_transfer(model, tok, detector, corpus: Path, *, prompts: list[dict] | None = None, k: int = 3,
                     new_tokens: int = 48, seed: int = 0) -> Transfer:
    prompts = prompts if prompts is not None else read_transfer()
    texts = continuations(model, tok, prompts, corpus_examples(corpus, k), new_tokens=new_tokens, seed=seed)
    return score(detector, prompts, texts).model_copy(update={"k": k, "new_tokens": new_tokens,
                                                              "continuations": texts})
