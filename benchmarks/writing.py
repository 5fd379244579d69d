"""Model-written corpora: 2,000 records written by the embedded model, beside the template corpus of the same mix.

- the first run (fresh cache): wall time, answers asked, refusals by reason;
- every record through ``validate`` and the detector;
- distinct-1/2/3 and the near-duplicate share, against the templates' corpus of the same mix and size;
- the second run: from the cache alone (``--offline``), its wall time, byte-identical to the first;
- the constraint's cost: the same 128 prompts written under our own token mask (the default engine's pick for
  a clause), under xgrammar, and sampled without a constraint for as many new tokens (plain ``generate`` with
  ``do_sample``), alternating, seconds per answer.
"""

from __future__ import annotations

import json
import shutil
import time

from .common import WORK, Timer

MIX = {"if_then.en": 1, "paradox_conclusion.en": 1, "if_then.ru": 1}
N = 2000
COST_PROMPTS = 128


def _texts(folder) -> list[dict]:
    return [json.loads(line) for f in sorted((folder / "data").iterdir()) for line in f.open(encoding="utf-8")]


def _constraint_cost(records: list[dict]) -> dict:
    """Seconds per answer on the same prompts, batch size and token budget: the clause forced by our own token
    mask (what ``--engine auto`` takes for a clause), by xgrammar, and plain sampling without a constraint
    (``generate`` with ``do_sample``), alternating batch by batch; and how many of each engine's answers the
    clause check refuses."""
    import torch

    from corpusforge.write.constraint import Clause
    from corpusforge.write.run import premise_of
    from corpusforge.write.writers import Ask, LocalWriter, Sampling

    engines = ("mask", "xgrammar")

    prompts = [premise_of(0, r).prompt for r in records[:COST_PROMPTS]]
    writers = {engine: LocalWriter("smollm2-135m", Sampling(), Clause(), batch_size=32, engine=engine)
               for engine in engines}
    tok, model = writers["mask"].lm.tokenizer, writers["mask"].lm.model
    for writer in writers.values():
        writer._lm = writers["mask"].lm                      # one model in memory
    seconds = dict.fromkeys([*engines, "plain"], 0.0)
    refused = dict.fromkeys(engines, 0)
    for start in range(0, len(prompts), 32):
        chunk = prompts[start:start + 32]
        for engine, writer in writers.items():
            with Timer() as t:
                answers = writer.write([Ask(p, f"cost:{start + i}") for i, p in enumerate(chunk)])
            seconds[engine] += t.seconds
            refused[engine] += sum(a is None or Clause().problem(a) is not None for a in answers)
        tok.padding_side = "left"
        batch = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        with Timer() as t, torch.no_grad():
            model.generate(**batch, do_sample=True, temperature=0.9, top_p=0.95, max_new_tokens=64,
                           pad_token_id=tok.eos_token_id)
        seconds["plain"] += t.seconds
    n = len(prompts)
    per = {k: v / n for k, v in seconds.items()}
    return {"s_per_answer": per, "refused": refused, "prompts": n,
            "ratio": per["mask"] / per["plain"], "xgrammar_ratio": per["xgrammar"] / per["plain"]}


def run() -> dict:
    from corpusforge.generate import GenerateConfig, generate
    from corpusforge.neardup import near_duplicate_share
    from corpusforge.stats import compute_stats
    from corpusforge.templates.detect import Detector
    from corpusforge.templates.registry import load_registry
    from corpusforge.validate import validate_paths
    from corpusforge.write import WriteConfig, write_corpus

    WORK.mkdir(exist_ok=True)
    cache, first, second, tmpl = (WORK / name for name in ("write-cache", "written-1", "written-2", "templates-2k"))
    for folder in (cache, first, second, tmpl):
        shutil.rmtree(folder, ignore_errors=True)
    cfg = dict(writer="embedded", mix=MIX, n=N, seed=0, cache=str(cache), progress=False)
    start = time.perf_counter()
    result = write_corpus(WriteConfig(**cfg), first)
    wall_first = time.perf_counter() - start
    with Timer() as again:
        write_corpus(WriteConfig(**cfg, offline=True), second)
    identical = all((first / "data" / f.name).read_bytes() == f.read_bytes() for f in (second / "data").iterdir())
    generate(GenerateConfig(mix=MIX, n=N, seed=0, progress=False), tmpl)

    records, templated = _texts(first), _texts(tmpl)
    report = validate_paths([str(first)])
    detector = Detector(load_registry().list())
    detected = sum(detector.realises(r["text"], r["pattern"]) for r in records) / len(records)
    d_w, d_t = (compute_stats(rs)["distinct"] for rs in (records, templated))
    near_w, near_t = (near_duplicate_share(r["text"] for r in rs) for rs in (records, templated))
    cost = _constraint_cost(records)
    by_lang = {lang: sum(r["language"] == lang for r in records) for lang in ("en", "ru")}
    w = result.manifest.writer
    table = {
        "records (en / ru)": f"{len(records):,} ({by_lang['en']:,} / {by_lang['ru']:,})",
        "first run (fresh cache)": f"{wall_first:.0f} s ({w['asked']:,} answers asked)",
        "refused by reason": ", ".join(f"{n} {k}" for k, n in w["refused"].items()) or "none",
        "validate": "all valid" if report.ok else f"{report.error_count} errors",
        "detector finds the pattern": f"{detected:.1%}",
        "distinct-1/2/3 written": f"{d_w['distinct_1']} / {d_w['distinct_2']} / {d_w['distinct_3']}",
        "distinct-1/2/3 templates": f"{d_t['distinct_1']} / {d_t['distinct_2']} / {d_t['distinct_3']}",
        "near-duplicate share written / templates": f"{near_w:.2%} / {near_t:.2%}",
        "second run (--offline, cache only)": f"{again.seconds:.1f} s, byte-identical: {identical}",
        "constraint cost (s per answer: our mask / xgrammar / plain sampling)":
            " / ".join(f"{v:.3f}" for v in cost["s_per_answer"].values())
            + f" = {cost['ratio']:.2f}x / {cost['xgrammar_ratio']:.2f}x plain",
        f"clauses refused of {cost['prompts']} (our mask / xgrammar)":
            f"{cost['refused']['mask']} / {cost['refused']['xgrammar']}",
    }
    return {
        "summary": (f"{len(records):,} records written by the embedded model in {wall_first:.0f} s (goal <= 600 s); "
                    f"validate: {'all valid' if report.ok else 'errors'}, detector {detected:.0%}; distinct-2 "
                    f"{d_w['distinct_2']} vs the templates' {d_t['distinct_2']} (goal >= 0.40); near-duplicates "
                    f"{near_w:.2%} (goal < 1%); again from the cache {again.seconds:.1f} s, byte-identical "
                    f"{identical} (goal < 30 s); the constraint costs {cost['ratio']:.2f}x plain sampling under our "
                    f"mask (the default for a clause), {cost['xgrammar_ratio']:.2f}x under xgrammar."),
        "table": table, "wall_first_s": wall_first, "wall_cached_s": again.seconds, "identical": identical,
        "distinct_2": d_w["distinct_2"], "distinct_2_templates": d_t["distinct_2"], "near_dup_share": near_w,
        "detected_share": detected, "valid": report.ok, "refused": w["refused"], "asked": w["asked"],
        "constraint_cost": cost,
    }
