"""A training step of the default recipe on the demo's mixed corpus (English and Russian), with the controls'
and premises' passes entered at the first adapted layer, beside the same steps with every pass run whole.

Runs are 16 steps each, in child processes, alternating (entered, whole) three times so that a slow minute on a
shared machine falls on both; the ratio of the summed times is the result. Both runs train the same adapter
(``tests/test_train.py`` holds them equal step for step on the tiny model).
"""

from __future__ import annotations

import json

from .common import WORK, demo_corpus, run_child

STEPS = 16
PAIRS = 3

RUN = """
import json, sys
from pathlib import Path
import corpusforge.train.prepare as prepare
if sys.argv[2] == "whole":
    prepare._entry_layer = lambda *a: None
from corpusforge.train.loop import make_config, train
cfg = make_config({"steps": int(sys.argv[3]), "checkpoint_every": 0, "eval_every": 0})
r = train(Path(sys.argv[1]), Path(sys.argv[4]), cfg, overwrite=True, echo=lambda s: None, progress=False)
print(json.dumps({"seconds": r.run.seconds, "loss": r.final_loss}))
"""


def run() -> dict:
    corpus = demo_corpus()
    seconds: dict[str, list[float]] = {"entered": [], "whole": []}
    losses: dict[str, float] = {}
    for _ in range(PAIRS):
        for kind in seconds:
            _, _, out = run_child(RUN, str(corpus), kind, str(STEPS), str(WORK / f"steps-{kind}"))
            timed = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
            seconds[kind].append(timed["seconds"] / STEPS)
            losses[kind] = timed["loss"]
    entered, whole = sum(seconds["entered"]), sum(seconds["whole"])
    per = {k: ", ".join(f"{s:.2f}" for s in v) for k, v in seconds.items()}
    return {
        "summary": (f"default recipe on the demo corpus, {STEPS} steps x {PAIRS} alternating pairs: entered at the "
                    f"first adapted layer {entered / PAIRS:.2f} s/step ({per['entered']}), whole passes "
                    f"{whole / PAIRS:.2f} s/step ({per['whole']}): {whole / entered:.2f}x; final loss "
                    f"{losses['entered']:.5f} vs {losses['whole']:.5f}"),
        "table": {"entered (s/step)": per["entered"], "whole passes (s/step)": per["whole"],
                  "ratio": f"{whole / entered:.2f}x"},
        "ratio": whole / entered, "seconds": seconds, "final_loss": losses,
    }
