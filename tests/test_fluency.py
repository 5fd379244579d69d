"""Training's own fluency check (train/fluency.py): what it measures, on texts and on a tiny model, and when it
warns."""

from __future__ import annotations

import pytest

from corpusforge.degeneration import degeneration, seq_rep_4
from corpusforge.train.fluency import LOOP_BOUND, adapter_side, describe, fluency

from .tiny import make_tiny_model


def test_loops_and_seq_rep_4_on_known_texts():
    looping = "go on go on go on go on"
    assert degeneration(looping)["loops"] and not degeneration("one two three four five six")["loops"]
    assert seq_rep_4("a b c d a b c d") == pytest.approx(1 - 4 / 5)
    assert seq_rep_4("a b c") == 0.0


def test_an_adapter_that_changes_nothing_writes_what_the_base_writes(tmp_path):
    """peft initialises B = 0: the adapter on is the base, so the two sides are the same texts — exactly."""
    from peft import LoraConfig, get_peft_model

    from corpusforge.lm.load import load_model

    lm = load_model(str(make_tiny_model(tmp_path / "m")))
    model = get_peft_model(lm.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    model.train()
    check = fluency(model, lm.tokenizer, ["The sea at night is", "Расскажи о море"], new_tokens=12)
    assert check["before"] == check["after"] and check["within_bounds"] and check["prompts"] == 2
    assert model.training                                           # left as it was
    assert check["continuations"]["before"] == check["continuations"]["after"]
    for name, param in model.named_parameters():                    # a changed adapter: only "after" moves
        if "lora_B" in name:
            param.data.normal_(0, 2.0)
    moved = fluency(model, lm.tokenizer, ["The sea at night is", "Расскажи о море"], new_tokens=12)
    assert moved["continuations"]["before"] == check["continuations"]["before"]
    assert moved["continuations"]["after"] != check["continuations"]["after"]
    # what each evaluation reads during training: the adapter's side alone, the same measure
    assert adapter_side(model, lm.tokenizer, ["The sea at night is", "Расскажи о море"], new_tokens=12) == \
        moved["after"]


def test_a_run_that_loops_more_than_the_base_gets_a_warning_that_says_what_to_do():
    calm = {"prompts": 12, "new_tokens": 48, "before": {"loop_share": 0.0, "seq_rep_4": 0.03},
            "after": {"loop_share": 0.0, "seq_rep_4": 0.04}, "within_bounds": True}
    assert not describe(calm).startswith("warning") and "looping 0% → 0%" in describe(calm)
    looping = {**calm, "after": {"loop_share": 0.25, "seq_rep_4": 0.16}, "within_bounds": False}
    line = describe(looping)
    assert line.startswith("warning") and "looping 0% → 25%" in line and "--end-of-text" in line
    assert f"+{LOOP_BOUND:.0%}" in line


def test_a_run_writes_the_base_once_and_reuses_the_last_evaluation_when_nothing_moved_since(tmp_path, monkeypatch):
    """``FluencyWatch``: the check after the run equals ``fluency``'s, but when the last evaluation fell on the last
    step it writes nothing again; a step after it (the adapter moved) writes the adapter's side anew, never the
    base's."""
    from peft import LoraConfig, get_peft_model

    import corpusforge.train.fluency as fl
    from corpusforge.lm.load import load_model

    lm = load_model(str(make_tiny_model(tmp_path / "m")))
    model = get_peft_model(lm.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 2.0)
    prompts = ["The sea at night is", "Расскажи о море"]
    written: list[int] = []
    real = fl.continue_asks
    monkeypatch.setattr(fl, "continue_asks", lambda m, t, asks: written.append(len(asks)) or real(m, t, asks))
    watch = fl.FluencyWatch(model, lm.tokenizer, prompts, new_tokens=12)
    assert watch.evaluate(3) == adapter_side(model, lm.tokenizer, prompts, new_tokens=12)
    assert written[0] == 4                   # the first evaluation: the base's rows beside the adapter's
    assert watch.final(3) == fluency(model, lm.tokenizer, prompts, new_tokens=12)
    assert written[1:] == [2, 4]             # final(3) wrote nothing; the 2 + 4 are adapter_side and fluency
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 2.0)
    written.clear()
    moved = watch.final(4)
    assert written == [2] and moved == fluency(model, lm.tokenizer, prompts, new_tokens=12)
