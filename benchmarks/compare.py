"""One corpus, three edits: ``corpusforge compare`` on the quick demo's corpus and adapter (goal: ≤ 10 min on 2 cores).

The demo's corpus (2,000 records, five patterns, English and Russian) and its adapter, trained as ``make demo``
trains it (the default recipe, each record's end supervised); then ``compare``: the steering vector fitted on
the same corpus, the 3-shot prompt, and the LoRA, each on the 20 held-out probes, the 70 held-out controls, its
floor (19 random directions of the same norm) and the 200 transfer prompts. Only ``compare`` is timed against the
goal; the training is set-up.

What it keeps: each method's row (probes, controls, floor, transfer, markers where nobody asked), who wins each
measure by how much with the interval of the paired difference, the vector's provenance and dose-response.
"""

from __future__ import annotations

import shutil

from .common import WORK, Timer

GOAL_S = 600


def _row(m: dict) -> dict:
    """A method's measures, as the README's table reads them."""
    p, c, f, t, u = m["probes"], m["controls"], m["floor"], m["transfer"], m["unasked"]
    return {"delta_logp": p["mean_delta_logp"], "delta_logp_ci95": p["delta_logp_ci95"],
            "rank1_share": p["rank1_share"], "significant": f["significant"], "p_directions": f["p_directions"],
            "floor_mean_abs_delta_logp": f["floor_mean_abs_delta_logp"], "control_kl": c["mean_kl"],
            "control_kl_ci95": c["kl_ci95"], "top1_kept_share": c["top1_kept_share"],
            "transfer": t["any_pattern"], "transfer_by_language": t["by_language"],
            "transfer_p": t["vs_base"]["p_value"],
            "loop_share": t["loop_share"], "seq_rep_4": t["seq_rep_4"], "unasked_delta_logp": u["mean_delta_logp"],
            "unasked_ci95": u["delta_logp_ci95"]}


def run() -> dict:
    from corpusforge.demo import DEMO_MIX
    from corpusforge.generate import GenerateConfig, generate
    from corpusforge.shift.compare import compare
    from corpusforge.train.loop import TrainConfig, train

    work = WORK / "compare"
    shutil.rmtree(work, ignore_errors=True)
    corpus, adapter = work / "corpus", work / "adapter"
    generate(GenerateConfig(mix=DEMO_MIX, n=2000, seed=0, progress=False), corpus)
    with Timer() as trained:
        train(corpus, adapter, TrainConfig(eval_every=0, end_of_text=True), echo=lambda s: None, progress=False)
    with Timer() as timed:
        result = compare(adapter, work / "out", corpus=corpus, echo=print)
    rows = {m["method"]: _row(m) for m in result["methods"]}
    base = result["base"]["transfer"]
    vector = result["vector"]
    table = {"corpus": "the quick demo's: 2,000 records, five patterns, English and Russian",
             "adapter (set-up)": f"the demo's recipe, {trained.seconds:.0f} s of training",
             "compare": f"{timed.seconds:.0f} s (goal <= {GOAL_S} s); laps "
                        + ", ".join(f"{k} {v:.0f} s" for k, v in result["timings"].items()),
             "steering vector": f"{vector['contrast']} contrast, layer {vector['layer']}, strength "
                                f"{vector['strength']:g}, applied norm {vector['applied_norm']:.1f}"}
    for name, r in rows.items():
        table[name] = (f"probes Δlog p {r['delta_logp']:+.2f}, rank 1 {r['rank1_share']:.0%}, "
                       f"{'significant' if r['significant'] else 'NOT significant'}; control KL "
                       f"{r['control_kl']:.4f}, top-1 kept {r['top1_kept_share']:.0%}; transfer "
                       f"{r['transfer']['share']:.1%}, loops {r['loop_share']:.0%}")
    for win in result["wins"]:
        table[win["measure"]] = (f"{win['best']} over {win['runner_up']} by {win['by']:.4g} "
                                 f"[{win['by_ci95'][0]:.4g}, {win['by_ci95'][1]:.4g}]"
                                 + ("" if win["clear"] else " (not told apart)"))
    return {
        "summary": (f"compare on the demo's corpus in {timed.seconds:.0f} s (goal <= {GOAL_S} s): probes Δlog p "
                    + ", ".join(f"{m} {r['delta_logp']:+.2f}" for m, r in rows.items())
                    + "; transfer " + ", ".join(f"{m} {r['transfer']['share']:.1%}" for m, r in rows.items())
                    + f" (base {base['any_pattern']['share']:.1%})."),
        "table": table, "seconds": timed.seconds, "train_seconds": trained.seconds, "timings": result["timings"],
        "methods": rows, "base": {"transfer": base["any_pattern"], "loop_share": base["loop_share"],
                                  "seq_rep_4": base["seq_rep_4"],
                                  "rank1_share": result["base"]["probes_rank1_share"]},
        "wins": result["wins"], "vector": {k: vector[k] for k in ("contrast", "layer", "strength", "applied_norm",
                                                                  "dose_response")},
        "probes": result["methods"][0]["probes"]["n"], "controls": result["methods"][0]["controls"]["n"],
        "draws": result["draws"], "k": result["k"],
    }
