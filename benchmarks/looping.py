"""An ablation, not a speed benchmark (run it alone: ``python -m benchmarks.end_of_text OUT [eot|plain]``): the
quick demo's corpus and recipe, with or without each record's end supervised, then the demo's report with the
transfer measure. Prints the greedy degeneration, the headline and the transfer table's numbers
(``transfer_results.md``, "Why the demo's adapter looped")."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from corpusforge.demo import DEMO_MIX, demo_report
from corpusforge.generate import GenerateConfig, generate
from corpusforge.train.loop import TrainConfig, train


def main(out: Path, end_of_text: bool) -> None:
    corpus = out / "corpus"
    if not corpus.exists():
        generate(GenerateConfig(mix=DEMO_MIX, n=2000, seed=0, overwrite=True, progress=False), corpus)
    started = time.time()
    train(corpus, out / "adapter", TrainConfig(eval_every=0, end_of_text=end_of_text), overwrite=True, echo=print,
          progress=False)
    print("train", round(time.time() - started), "s")
    report, _ = demo_report(corpus, out / "adapter", out / "report", transfer=True, echo=print)
    print("degeneration greedy", json.dumps(report["degeneration"]["greedy"]))
    print("headline", json.dumps(report["headline"]))
    print("transfer", json.dumps({c: (v["any_pattern"]["share"], v["by_language"], v["loop_share"], v["seq_rep_4"],
                                      v["empty_share"]) for c, v in report["transfer"]["conditions"].items()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] != ["plain"])
