"""The shift report's wall time on the embedded default, CPU only, 20 probes and 20 controls (goal: < 2 min).

The report now measures the floor (3 matched-norm random adapters), neutral-prompt structure (12 prompts),
copying and degeneration besides the ten original sections; its default controls are the held-out set
(English and Russian, never trained on). The adapter is the default recipe's on the benchmark corpus.

Baseline, in the same run: the same report with every forward pass run whole (not entered at the adapter's
first layer, the head at every position) and a ``generate`` call per side (adapter off, adapter on) instead of
one mixed-adapter call.
"""

from __future__ import annotations

import json
import math

from .common import WORK, run_child


def _same(a, b) -> bool:
    """Equal, numbers to a relative 1e-4 (the two ways sum the same products in another order)."""
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-9)
    return a == b

REPORT = """
import json, sys, time
from corpusforge.lm import generation
from corpusforge.shift.report import build_report, write_report
baseline = sys.argv[4] == "baseline"
if baseline:   # a generate call per side: the adapter's rows never batched beside the base's
    generation._can_mix = lambda model: False
start = time.perf_counter()
r = build_report(sys.argv[1], corpus=sys.argv[2], whole_passes=baseline, echo=lambda s: None)
write_report(r, sys.argv[3], overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - start, "headline": r.headline.model_dump(mode="json"),
                  "probes": len(r.probes), "controls": len(r.controls), "timings": r.timings}))
"""


def run() -> dict:
    from corpusforge.generate import GenerateConfig, generate
    from corpusforge.train.loop import TrainConfig, train

    WORK.mkdir(exist_ok=True)
    corpus = WORK / "train-corpus"
    if not corpus.exists():
        generate(GenerateConfig(mix={"if_then.en": 1, "paradox_conclusion.en": 1}, n=2000, seed=0, progress=False),
                 corpus)
    adapter = WORK / "default-adapter"
    trained = train(corpus, adapter, TrainConfig(), overwrite=True, echo=lambda s: None, progress=False)
    wall, peak, out = run_child(REPORT, str(adapter), str(corpus), str(WORK / "report"), "corpusforge")
    timed = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    base_wall, base_peak, base_out = run_child(REPORT, str(adapter), str(corpus), str(WORK / "report-baseline"),
                                               "baseline")
    base_headline = json.loads([line for line in base_out.splitlines() if line.startswith("{")][-1])["headline"]
    same = all(_same(timed["headline"][k], base_headline[k]) for k in timed["headline"])
    h = timed["headline"]
    slowest = sorted(timed["timings"].items(), key=lambda kv: -kv[1])[:4]
    return {
        "summary": (f"report on {timed['probes']} probes and {timed['controls']} held-out controls: {wall:.0f} s wall "
                    f"(goal < 120 s), peak RSS {peak:,.0f} MiB; baseline (whole passes, a generate call per side) "
                    f"{base_wall:.0f} s, {base_peak:,.0f} MiB: {base_wall / wall:.2f}x; same headline (to 1e-4): "
                    f"{same}; slowest sections "
                    f"{', '.join(f'{k} {v:.0f} s' for k, v in slowest)}. Default recipe "
                    f"({trained.run.seconds:.0f} s of training): p {h['mean_p_before']:.3f} → {h['mean_p_after']:.3f}, "
                    f"top-1 on {h['top1_share_after']:.0%}; held-out controls KL {h['mean_control_kl']:.4f}, top-1 "
                    f"kept {h['top1_kept_share']:.0%}; clears the random-adapter floor "
                    f"{h['clears_floor_by']:.0f}x ({'significant' if h['significant'] else 'NOT significant'})."),
        "table": {"report wall time": f"{wall:.0f} s", "report peak RSS": f"{peak:,.0f} MiB",
                  "baseline wall time": f"{base_wall:.0f} s ({base_wall / wall:.2f}x)",
                  "baseline peak RSS": f"{base_peak:,.0f} MiB", "same headline": str(same),
                  "sections (s)": ", ".join(f"{k} {v:.0f}" for k, v in timed["timings"].items()),
                  "training time (default recipe)": f"{trained.run.seconds:.0f} s",
                  "probe p before → after": f"{h['mean_p_before']:.3f} → {h['mean_p_after']:.3f}",
                  "probes with the marker top-1": f"{h['top1_share_after']:.0%}",
                  "held-out control KL": f"{h['mean_control_kl']:.4f}",
                  "held-out controls top-1 kept": f"{h['top1_kept_share']:.0%}",
                  "floor (random adapters, mean |Δlog-prob|)": f"{h['null_mean_abs_delta_logp']:.4f}",
                  "selectivity": f"{h['selectivity']:.0f}"},
        "seconds": wall, "peak_rss_mib": peak, "baseline_seconds": base_wall, "baseline_peak_rss_mib": base_peak,
        "ratio": base_wall / wall, "same_headline": same, "headline": h, "timings": timed["timings"],
    }
