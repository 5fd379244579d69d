"""Training's own check of fluency: after the run (and at each evaluation), the model continues prompts that ask
for no pattern, greedy, with the adapter off and on; the share of continuations that loop and their seq-rep-4
(``corpusforge.degeneration``) go into the progress line, ``metrics.jsonl`` and run.json (with the continuations, to
read), and a run whose adapter loops more than the base by more than the bounds gets a warning.

The prompts are the 12 neutral ones the report also continues (``data/neutral.jsonl``), never the 200 of the
transfer measure: nothing here should be chosen on the set a recipe is judged by. Twelve prompts see a
continuation that starts looping (1 of 12 is 8 points), not a rate to two decimals; the report's transfer measure
(``report --transfer``) is the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..degeneration import degeneration, seq_rep_4
from ..lm.generation import Ask, continue_asks
from ..lm.tokens import text_ids
from ..prompts import NEUTRAL_PROMPTS, read_prompts

NEW_TOKENS = 48
LOOP_BOUND = 0.02        # the adapter's loop share may exceed the base's by this much
SEQ_REP_BOUND = 0.02     # and its mean seq-rep-4 by this much


def neutral_prompts() -> list[str]:
    """The prompts training's fluency check continues."""
    return [p["prompt"] for p in read_prompts(NEUTRAL_PROMPTS)]


def _side(texts: list[str]) -> dict:
    n = max(len(texts), 1)
    return {"loop_share": round(sum(degeneration(t)["loops"] for t in texts) / n, 4),
            "seq_rep_4": round(sum(seq_rep_4(t) for t in texts) / n, 4)}


def adapter_side(model, tok, prompts: list[str], *, new_tokens: int = NEW_TOKENS) -> dict:
    """The adapter's side alone (``fluency``'s ``after``): what each evaluation during training reads — the
    base's side does not change while the adapter trains."""
    return _side(_continued(model, tok, prompts, (True,), new_tokens))


def _continued(model, tok, prompts: list[str], adapter: tuple[bool, ...], new_tokens: int) -> list[str]:
    """Greedy continuations of ``prompts`` with the adapter off and/or on (in ``adapter``'s order); the model is
    put in eval mode for the call and left as it was."""
    asks = [Ask(text_ids(tok, p), new_tokens, False, adapter=on, key=f"fluency:{i}")
            for on in adapter for i, p in enumerate(prompts)]
    training = model.training
    model.eval()
    try:
        new = continue_asks(model, tok, asks)
    finally:
        model.train(training)
    return [tok.decode(ids, skip_special_tokens=True) for ids in new]


def fluency(model, tok, prompts: list[str], *, new_tokens: int = NEW_TOKENS) -> dict:
    """The greedy continuations of ``prompts`` with the adapter off (``before``) and on (``after``), measured."""
    texts = _continued(model, tok, prompts, (False, True), new_tokens)
    return _check(texts[:len(prompts)], texts[len(prompts):], new_tokens)


def _check(before_texts: list[str], after_texts: list[str], new_tokens: int) -> dict:
    before, after = _side(before_texts), _side(after_texts)
    within = after["loop_share"] <= before["loop_share"] + LOOP_BOUND and \
        after["seq_rep_4"] <= before["seq_rep_4"] + SEQ_REP_BOUND
    return {"prompts": len(before_texts), "new_tokens": new_tokens, "before": before, "after": after,
            "within_bounds": within, "continuations": {"before": before_texts, "after": after_texts}}


@dataclass
class FluencyWatch:
    """The check across one run: the base's continuations are written once, beside the adapter's at the first
    evaluation (they do not change while the adapter trains); the adapter's at each evaluation; and the check
    after the run (``final``) reads the last evaluation's when no step came after it — the last evaluation
    falls on the last step, so a run does not write the same 12 continuations twice."""

    model: object
    tok: object
    prompts: list[str]
    new_tokens: int = NEW_TOKENS
    base: list[str] | None = None
    after: list[str] | None = None
    after_step: int | None = None     # the step the adapter's continuations were written at

    def evaluate(self, step: int) -> dict:
        """The adapter's side at ``step`` (and the base's, the first time), measured as ``adapter_side``."""
        sides = (True,) if self.base is not None else (False, True)
        texts = _continued(self.model, self.tok, self.prompts, sides, self.new_tokens)
        if self.base is None:
            self.base, texts = texts[:len(self.prompts)], texts[len(self.prompts):]
        self.after, self.after_step = texts, step
        return _side(texts)

    def final(self, step: int) -> dict:
        """``fluency``'s check of the adapter as it stands after ``step``."""
        if self.after_step != step:
            self.evaluate(step)
        return _check(self.base, self.after, self.new_tokens)


def describe(check: dict) -> str:
    b, a = check["before"], check["after"]
    line = (f"fluency on {check['prompts']} neutral prompts (greedy, {check['new_tokens']} tokens): looping "
            f"{b['loop_share']:.0%} → {a['loop_share']:.0%}, seq-rep-4 {b['seq_rep_4']:.3f} → {a['seq_rep_4']:.3f}")
    if check["within_bounds"]:
        return line
    return (f"warning: {line} — the adapter loops more than the base (bounds: +{LOOP_BOUND:.0%} looping, "
            f"+{SEQ_REP_BOUND} seq-rep-4); read its continuations with `corpusforge report --transfer`, and "
            "consider fewer steps, --end-of-text, or answers to prompts (--format answer)")
