"""How long a run trains: ``steps``, or ``epochs`` passes, or — when neither is given — the default recipe's rule
(``TrainConfig.step_plan`` decides which, once, into a ``StepPlan``):

    steps = max(40, ⌈96 · (k + 1) / examples per step⌉)

where k is the most tokens any target marker of the training records takes (1 when there is none) and
"examples per step" is batch size × grad accumulation × processes — with batch 8: max(40, 12·(k + 1)). A
marker the tokenizer splits into many pieces (SmolLM2: " then" is 1 token, " движение" 6) belongs to a
language the model knows less well and needs more steps; and too few steps leave the control KL too little
time to pull drift back. The constants are measured, per training seed, by ``benchmarks/quality.py``
(``benchmarks/quality_results.md``: why 96 and not 72).

Records written in answer to prompts (``--format answer``) teach more than a marker — how an answer opens, its
roles, where it ends — and the rule asks for two passes over the training split besides (``ANSWER_EPOCHS``;
``benchmarks/transfer_results.md``: transfer by number of steps).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

EXAMPLES_PER_MARKER_TOKEN = 96
MIN_STEPS = 40
RULE = "max(40, ceil(96 * (k + 1) / examples per step)), k = tokens of the longest marker"
ANSWER_EPOCHS = 2
ANSWER_RULE = RULE.replace("max(40, ", "max(40, 2 passes over the training split, ")


@dataclass
class StepsRule:
    """How the steps were chosen from the corpus (recorded in run.json)."""

    steps: int
    longest_marker: str | None
    marker_tokens: int
    examples_per_step: int
    rule: str = RULE

    def describe(self) -> str:
        marker = f"{self.longest_marker!r} is {self.marker_tokens} token(s)" if self.longest_marker else \
            "no marker in the corpus (k = 1)"
        return f"{self.steps} steps, chosen from the corpus: {self.rule}; {marker}, {self.examples_per_step} " \
               "examples per step"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StepPlan:
    """A run's optimiser steps, and the recipe's rule when it chose them (None: ``steps`` or ``epochs`` did)."""

    steps: int
    rule: StepsRule | None = None


def steps_from_corpus(records: list[dict], tokenizer, examples_per_step: int, *, answers: bool = False) -> StepsRule:
    """The rule's steps for ``records``; ``answers``: records trained in answer to their prompts."""
    markers = sorted({t["text"] for r in records for t in r["targets"]})
    sizes = {m: len(tokenizer(m, add_special_tokens=False).input_ids) for m in markers}
    longest = max(sizes, key=lambda m: (sizes[m], m), default=None)
    k = sizes[longest] if longest else 1
    steps = max(MIN_STEPS, math.ceil(EXAMPLES_PER_MARKER_TOKEN * (k + 1) / examples_per_step))
    if not answers:
        return StepsRule(steps, longest, k, examples_per_step)
    steps = max(steps, math.ceil(ANSWER_EPOCHS * len(records) / examples_per_step))
    return StepsRule(steps, longest, k, examples_per_step, ANSWER_RULE)
