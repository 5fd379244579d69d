"""An ablation, not a speed benchmark: why the quick demo's adapter looped, one cause at a time (run it alone:
``python -m benchmarks.looping OUT CONDITION [--transfer]``).

The quick demo's corpus (2,000 records) and recipe, changed in one thing per condition, then the demo's report
(with ``--transfer``: also the 200 transfer prompts). Prints the probes' greedy degeneration, training's own
fluency check (12 neutral prompts, greedy), the headline and, with ``--transfer``, the transfer table's numbers
(``transfer_results.md``, "Why the demo's adapter looped"). Every condition but ``eot`` trains without the
records' end, as the demo did when it looped, so that each other cause is seen on its own.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from corpusforge.demo import DEMO_MIX, demo_report
from corpusforge.generate import GenerateConfig, generate
from corpusforge.train.loop import TrainConfig, train

#: condition → the TrainConfig fields it changes (everything else: the default recipe, as the demo trains)
CONDITIONS = {
    "plain": {},                                          # the records never end (the demo before --end-of-text)
    "eot": {"end_of_text": True},                         # each record's end supervised (the demo now)
    "no-premise-hold": {"premise_weight": 0.0},           # no KL at the records' own premise positions
    "half-lr": {"lr": 1e-3},                              # half the learning rate (the default 2e-3)
    "marker-roles": {"loss_on": ["consequence", "conclusion", "movement"]},   # loss on the roles with markers only
}


def main(out: Path, condition: str, transfer: bool) -> None:
    corpus = out.parent / "demo-corpus"
    if not corpus.exists():
        generate(GenerateConfig(mix=DEMO_MIX, n=2000, seed=0, overwrite=True, progress=False), corpus)
    started = time.time()
    result = train(corpus, out / "adapter", TrainConfig(eval_every=0, **CONDITIONS[condition]), overwrite=True,
                   echo=print, progress=False)
    print("train", round(time.time() - started), "s")
    report, _ = demo_report(corpus, out / "adapter", out / "report", transfer=transfer, echo=print)
    print("condition", condition, json.dumps(CONDITIONS[condition]))
    print("fluency", json.dumps({k: v for k, v in (result.run.fluency or {}).items() if k != "continuations"}))
    print("degeneration greedy", report.degeneration.greedy.model_dump_json())
    print("headline", report.headline.model_dump_json(include={"mean_control_kl", "top1_kept_share",
                                                               "top1_share_after", "mean_p_after"}))
    if transfer:
        print("transfer", json.dumps({c: (v.any_pattern.share, v.model_dump()["by_language"], v.loop_share,
                                          v.seq_rep_4, v.empty_share)
                                      for c, v in report.transfer.conditions.items()}))


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] not in CONDITIONS:
        sys.exit(f"usage: python -m benchmarks.looping OUT {{{'|'.join(CONDITIONS)}}} [--transfer]")
    main(Path(sys.argv[1]), sys.argv[2], "--transfer" in sys.argv[3:])
