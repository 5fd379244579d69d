"""The shift report's wall time on the embedded default, CPU only, 20 probes and 20 controls (goal: < 2 min).

Also records the quality bar of the default recipe on held-out prompts and on held-out controls
(benchmarks/heldout_controls.jsonl, never used in training): the markers' probability and rank, the
control KL and the share of controls whose top-1 token is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from .common import WORK, run_child

HELDOUT_CONTROLS = Path(__file__).resolve().parent / "heldout_controls.jsonl"

REPORT = """
import json, sys, time
from corpusforge.shift.report import build_report, write_report
start = time.perf_counter()
controls = sys.argv[4] if len(sys.argv) > 4 else None
r = build_report("smollm2-135m", sys.argv[1], corpus=sys.argv[2], controls_file=controls, echo=lambda s: None)
write_report(r, sys.argv[3], overwrite=True)
print(json.dumps({"seconds": time.perf_counter() - start, "headline": r["headline"], "probes": len(r["probes"]),
                  "controls": len(r["controls"])}))
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
    wall, peak, out = run_child(REPORT, str(adapter), str(corpus), str(WORK / "report"))
    timed = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    _, _, held_out = run_child(REPORT, str(adapter), str(corpus), str(WORK / "report-heldout"), str(HELDOUT_CONTROLS))
    held = json.loads([line for line in held_out.splitlines() if line.startswith("{")][-1])["headline"]
    h = timed["headline"]
    return {
        "summary": (f"report on {timed['probes']} probes and {timed['controls']} controls: {wall:.0f} s wall "
                    f"(goal < 120 s), peak RSS {peak:,.0f} MiB. Default recipe ({trained.run.seconds:.0f} s of "
                    f"training): held-out probes p {h['mean_p_before']:.3f} → {h['mean_p_after']:.3f}, top-1 on "
                    f"{h['top1_share_after']:.0%}; held-out controls: mean KL {held['mean_control_kl']:.4f}, top-1 "
                    f"kept on {held['top1_kept_share']:.0%} (goals: p >= 0.5, KL <= 0.05, >= 90%)."),
        "table": {"report wall time": f"{wall:.0f} s", "report peak RSS": f"{peak:,.0f} MiB",
                  "training time (default recipe)": f"{trained.run.seconds:.0f} s",
                  "probe p before → after": f"{h['mean_p_before']:.3f} → {h['mean_p_after']:.3f}",
                  "probes with the marker top-1": f"{h['top1_share_after']:.0%}",
                  "held-out control KL": f"{held['mean_control_kl']:.4f}",
                  "held-out controls top-1 kept": f"{held['top1_kept_share']:.0%}",
                  "selectivity": f"{h['selectivity']:.0f}"},
        "seconds": wall, "peak_rss_mib": peak, "headline": h, "heldout_controls": held,
    }
