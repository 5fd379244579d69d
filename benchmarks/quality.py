"""Quality of the default recipe, English beside Russian, on held-out probes and held-out controls (issue 14).

    python -m benchmarks.quality [--model smollm2-135m] [--mix en|ru|mix] [--n 3000] [--format text|chat]
                                 [--set key=value ...]

Generates the corpus, trains one LoRA with the default recipe (plus ``--set`` overrides), then loads the
model and the adapter once and measures, adapter off ("before") and on ("after"):

- probes — English: the first 40 marked records of the validation split of a fixed 2,000-record if_then.en +
  paradox_conclusion.en corpus (no premise of a validation split is ever in a train split); Russian:
  ``heldout_probes_ru.jsonl`` (33 probes written by hand with words from outside the templates' lexicons, the
  source's «Смысл — это» → « движение» among them). p of the whole target (product over its tokens), rank of its
  first token, and whether greedy decoding writes the whole target. With ``--format chat`` the probes are in
  chat form (the prompt as the user's turn, the marker at the start of the answer);
- controls — the shipped held-out set (``corpusforge/data/controls_heldout.jsonl``, never trained on), English
  and Russian apart: next-token KL(base ‖ LoRA) and the share whose top-1 token is kept; "clear" counts only
  controls whose base top-1 leads its top-2 by at least 0.1 nats (near-ties flip first); beside it, the share
  that random adapters of the trained one's norm keep (the report's floor, ``shift.nulls``: three draws): what
  any change of this size does to the same controls.

Every run appends a JSON line to ``benchmarks/_work/quality_runs.jsonl``; ``run()`` is ``make bench``'s entry
(the mixed corpus, text format, one run per training seed of ``SEEDS``: a row is their means, with each seed's
top-1 kept beside them); ``benchmarks/chat.py`` compares chat-format training with it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import time
from pathlib import Path

from corpusforge._atomic import partial_path
from corpusforge.shift.measure import CLEAR_LEAD

from .common import HERE, WORK

PROBES_RU = HERE / "heldout_probes_ru.jsonl"
RUNS = WORK / "quality_runs.jsonl"
SEED_PROMPT, SEED_TARGET = "Смысл — это", " движение"
EN = {"if_then.en": 1.0, "paradox_conclusion.en": 1.0}
RU = {"definition_movement.ru": 1.0, "if_then.ru": 1.0, "paradox_conclusion.ru": 1.0}
MIXES = {"en": EN, "ru": RU, "mix": {**EN, **RU}}


def probes(chat: bool) -> dict:
    from corpusforge.generate import GenerateConfig, generate
    from corpusforge.shift.probes import Probe, probes_from_corpus, read_probes

    corpus = WORK / "quality-en-eval"
    if not corpus.exists():
        generate(GenerateConfig(mix=EN, n=2000, seed=0, progress=False), corpus)
    ru = read_probes(PROBES_RU)
    if chat:
        ru = [_chat_form(p, Probe) for p in ru]
    return {"en": probes_from_corpus(corpus, limit=40, chat=chat), "ru": ru}


#: where a Russian paradox's antithesis begins: in chat training it is part of the answer, not the question
_ANTITHESIS = re.compile(r"(?<=[,;.])\s+(?=и всё же|в то же время|Но )")


def _chat_form(probe, Probe):
    """A hand-written probe in the chat form training uses: the premise as the user's turn; for a paradox, the
    antithesis as the start of the answer (the marker follows it); a marker that starts the answer loses its
    space."""
    cut = _ANTITHESIS.search(probe.prompt) if probe.name == "paradox_conclusion" else None
    if cut is None:
        return Probe(prompt=probe.prompt.strip(), targets=[probe.targets[0].lstrip()], name=probe.name, chat=True)
    return Probe(prompt=probe.prompt[:cut.start()].strip(), prefix=probe.prompt[cut.end():].strip(),
                 targets=probe.targets, name=probe.name, chat=True)


def _probe_summary(model, tok, group) -> dict:
    from corpusforge.shift import measure

    rows = measure.probe_rows(model, tok, group)
    return {"n": len(rows), "median_p_before": statistics.median(r.p_before for r in rows),
            "median_p_after": statistics.median(r.p_after for r in rows),
            "rank1_share": sum(r.rank_after == 1 for r in rows) / len(rows),
            "greedy_share": sum(r.greedy_after for r in rows) / len(rows),
            "rows": [r.model_dump() for r in rows]}


def _control_summary(model, tok, prompts: list[dict]) -> dict:
    from corpusforge.shift import measure
    from corpusforge.shift.nulls import DRAWS, random_direction

    base = measure.control_base(model, tok, prompts)
    rows = measure.control_rows(model, tok, prompts, continuation=0, base=base)
    clear = [r for r in rows if r.base_lead >= CLEAR_LEAD]     # the base's top-1 leads its second by that much
    floor = []   # the share kept by random adapters of the trained one's norm (the report's floor), per draw
    for seed in range(DRAWS):
        with random_direction(model, seed):
            kept = [r.top1_kept for r in measure.control_rows(model, tok, prompts, continuation=0, base=base)]
        floor.append(sum(kept) / len(kept))
    return {"n": len(rows), "kl": sum(r.kl for r in rows) / len(rows),
            "top1_kept": sum(r.top1_kept for r in rows) / len(rows), "n_clear": len(clear),
            "top1_kept_clear": sum(r.top1_kept for r in clear) / max(len(clear), 1),
            "top1_kept_random": sum(floor) / len(floor), "top1_kept_random_draws": floor,
            "changed": [(r.prompt, r.top1_before, r.top1_after) for r in rows if not r.top1_kept]}


def measure_adapter(adapter: Path, *, chat: bool = False, model: str = "smollm2-135m") -> dict:
    from peft import PeftModel

    from corpusforge.lm.load import load_model
    from corpusforge.prompts import HELDOUT_CONTROLS, prompt_language, read_prompts

    lm = load_model(model)
    model = PeftModel.from_pretrained(lm.model, str(adapter)).eval()
    out: dict = {}
    for lang, group in probes(chat).items():
        out[f"{lang}_probes"] = _probe_summary(model, lm.tokenizer, group)
    controls = read_prompts(HELDOUT_CONTROLS)
    for lang in ("en", "ru"):
        out[f"{lang}_controls"] = _control_summary(model, lm.tokenizer,
                                                   [c for c in controls if prompt_language(c) == lang])
    out["seed"] = next(r for r in out["ru_probes"]["rows"] if r["prompt"].strip() == SEED_PROMPT)
    return out


def headline(res: dict) -> dict:
    ru, en, s = res["ru_probes"], res["en_probes"], res["seed"]
    return {"model": res.get("model", "smollm2-135m"), "format": res["format"], "mix": res["mix_name"],
            "steps": res["train"]["steps"],
            "train_s": res["train"]["seconds"],
            "ru_median_p": round(ru["median_p_after"], 3), "ru_rank1": round(ru["rank1_share"], 3),
            "seed": f"p {s['p_before']:.4f}->{s['p_after']:.3f}, rank {s['rank_before']}->{s['rank_after']}, "
                    f"greedy {s['greedy_after']}",
            "ru_ctrl_kl": round(res["ru_controls"]["kl"], 4), "ru_top1_kept": round(res["ru_controls"]["top1_kept"], 3),
            "ru_top1_kept_clear": round(res["ru_controls"]["top1_kept_clear"], 3),
            "ru_top1_kept_random": round(res["ru_controls"]["top1_kept_random"], 3),
            "en_median_p": round(en["median_p_after"], 3), "en_rank1": round(en["rank1_share"], 3),
            "en_ctrl_kl": round(res["en_controls"]["kl"], 4), "en_top1_kept": round(res["en_controls"]["top1_kept"], 3),
            "en_top1_kept_random": round(res["en_controls"]["top1_kept_random"], 3)}


def train_and_measure(*, mix: str = "mix", n: int = 3000, fmt: str = "text", overrides: dict | None = None,
                      adapter: Path | None = None, model: str = "smollm2-135m") -> dict:
    from corpusforge.generate import GenerateConfig, generate
    from corpusforge.train.loop import make_config, train

    WORK.mkdir(exist_ok=True)
    corpus = WORK / f"quality-corpus-{mix}"
    if not corpus.exists():
        generate(GenerateConfig(mix=MIXES[mix], n=n, seed=0, progress=False), corpus)
    adapter = adapter or (WORK / f"quality-adapter-{mix}-{fmt}" if model == "smollm2-135m" else
                          WORK / f"quality-adapter-{model}-{mix}-{fmt}")
    shutil.rmtree(partial_path(adapter), ignore_errors=True)   # a scratch adapter: an interrupted run is not resumed
    cfg = make_config({**(overrides or {}), "model": model, "format": fmt, "checkpoint_every": 0, "eval_every": 0})
    trained = train(corpus, adapter, cfg, overwrite=True, echo=lambda s: None, progress=False)
    res = {"model": model, "format": fmt, "mix_name": mix, "overrides": overrides or {},
           "date": time.strftime("%Y-%m-%d %H:%M"),
           "train": {"steps": trained.steps, "seconds": trained.run.seconds, "tokens": trained.tokens}}
    res.update(measure_adapter(adapter, chat=fmt == "chat", model=model))
    res["headline"] = headline(res)
    with open(RUNS, "a", encoding="utf-8") as f:
        f.write(json.dumps(res, ensure_ascii=False, default=str) + "\n")
    return res


#: the training seeds a row of ``make bench`` is measured over: one seed's top-1 kept moves by a control or two
SEEDS = (0, 1, 2)


def over_seeds(results: list[dict]) -> dict:
    """One headline for runs that differ only in their training seed: each number's mean, the top-1 kept shares'
    values per seed beside it (``…_each``), and the source's example on every seed."""
    heads = [r["headline"] for r in results]
    out = {k: (round(statistics.fmean(h[k] for h in heads), 4) if isinstance(v, (int, float)) and
               not isinstance(v, bool) else v) for k, v in heads[0].items()}
    for key in ("ru_top1_kept", "en_top1_kept", "ru_top1_kept_random", "en_top1_kept_random"):
        out[f"{key}_each"] = [h[key] for h in heads]
    seeds = [r["seed"] for r in results]
    p_after = "/".join(format(s["p_after"], ".3f") for s in seeds)
    ranks = "/".join(str(s["rank_after"]) for s in seeds)
    out["seed"] = (f"p {seeds[0]['p_before']:.4f}->{p_after}, rank {seeds[0]['rank_before']}->{ranks}, greedy "
                   f"{sum(s['greedy_after'] for s in seeds)}/{len(seeds)}")
    out["steps"], out["seeds"] = heads[0]["steps"], len(results)
    return out


def run(model: str = "smollm2-135m") -> dict:
    """``make bench``: the default recipe on the mixed English + Russian corpus, text format, one run per training
    seed of ``SEEDS``; the row is their means."""
    results = [train_and_measure(mix="mix", model=model, overrides={"seed": seed}) for seed in SEEDS]
    h = over_seeds(results)
    each = lambda key: " / ".join(f"{x:.0%}" for x in h[f"{key}_each"])  # noqa: E731
    return {
        "summary": (f"{model}: default recipe on 3,000 mixed English + Russian records, {h['steps']} steps, "
                    f"training seeds {', '.join(map(str, SEEDS))} (means; {h['train_s']:.0f} s of training a run). "
                    f"Russian held-out probes: median p {h['ru_median_p']}, rank 1 on {h['ru_rank1']:.0%}; «Смысл — "
                    f"это» → « движение»: {h['seed']}; Russian held-out controls KL {h['ru_ctrl_kl']}, top-1 kept "
                    f"{h['ru_top1_kept']:.1%} ({each('ru_top1_kept')}; {h['ru_top1_kept_clear']:.0%} of the clear "
                    f"ones; random adapters of its norm keep {h['ru_top1_kept_random']:.1%}). English: median p "
                    f"{h['en_median_p']}, rank 1 on {h['en_rank1']:.0%}, controls KL {h['en_ctrl_kl']}, top-1 kept "
                    f"{h['en_top1_kept']:.1%} ({each('en_top1_kept')}; random: {h['en_top1_kept_random']:.1%})."),
        "table": {k: str(v) for k, v in h.items()},
        "headline": h, "ru_controls_changed": [r["ru_controls"]["changed"] for r in results],
    }


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.quality")
    ap.add_argument("--model", default="smollm2-135m", help="an embedded model's name or a folder")
    ap.add_argument("--mix", default="mix", choices=sorted(MIXES))
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--format", dest="fmt", default="text", choices=["text", "chat"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a TrainConfig field")
    args = ap.parse_args(argv)
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    res = train_and_measure(mix=args.mix, n=args.n, fmt=args.fmt, overrides=overrides, model=args.model)
    print("controls changed (ru):", res["ru_controls"]["changed"])
    print(json.dumps(res["headline"], ensure_ascii=False))


if __name__ == "__main__":
    main()
