"""A text as the model reads it from its start: a tokenizer that puts ``<bos>`` before every text (Gemma's does)
gets it before every record, prompt, control and probe — in training, the report and generation — and never
before a target or marker that follows a prompt. Without it, Gemma 3 writes «Смысл — это» → «'\\n}».

A tiny random-weight model with such a tokenizer stands for Gemma here (its real run is make test-gemma's).
"""

from __future__ import annotations

import json

import pytest

from corpusforge.lm.tokens import from_start, piece_ids, start_tokens, text_ids, without_start

from .conftest import SAMPLE
from .tiny import make_tiny_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("bos")
    with_bos, plain = make_tiny_model(root / "bos", bos=True), make_tiny_model(root / "plain")
    return {"bos": (with_bos, AutoTokenizer.from_pretrained(with_bos)),
            "plain": (plain, AutoTokenizer.from_pretrained(plain))}


def test_texts_begin_with_the_tokenizers_start_and_pieces_do_not(models):
    _, tok = models["bos"]
    bos = tok.convert_tokens_to_ids("<bos>")
    assert start_tokens(tok) == [bos] and start_tokens(models["plain"][1]) == []
    ids = text_ids(tok, "If it rains,")
    assert ids[0] == bos and ids == tok("If it rains,").input_ids            # as the tokenizer itself reads it
    assert bos not in piece_ids(tok, " then") and without_start(tok, ids) == ids[1:]
    assert from_start(tok, ids) == (ids, 0)                                  # never twice
    assert text_ids(models["plain"][1], "If it rains,") == piece_ids(models["plain"][1], "If it rains,")


def test_training_examples_read_each_record_from_its_start(models):
    """Every training example begins with <bos>; its supervised tokens are the same tokens as without it (the
    positions moved with the token put before)."""
    from corpusforge.train.data import encode_prompts, encode_records
    from corpusforge.validate import iter_records

    records = list(iter_records([SAMPLE / "corpus" / "data" / "train.jsonl"]))[:20]
    _, tok = models["bos"]
    bos = tok.convert_tokens_to_ids("<bos>")
    with_bos = encode_records(records, tok, loss_on=None, max_length=64)
    plain = encode_records(records, models["plain"][1], loss_on=None, max_length=64)
    other = models["plain"][1]
    for a, b in zip(with_bos, plain):
        assert a.ids[0] == bos and bos not in a.ids[1:] and len(a.ids) <= 64
        assert tok.decode([a.ids[t] for t in a.supervised]) == other.decode([b.ids[t] for t in b.supervised])
        assert min(a.supervised) >= 2                                       # never the <bos> itself
    controls = encode_prompts([{"prompt": "The capital of France is"}], tok, 64)
    assert controls[0].ids[0] == bos and controls[0].supervised[0] == 2


def test_the_report_measures_a_probe_after_the_start_token(models, tmp_path):
    """A probe's p before and after equals plain transformers + peft on the tokenizer's own encoding of the
    prompt (which begins with <bos>), the target's tokens teacher-forced after it."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from corpusforge.shift.report import build_report
    from corpusforge.train.loop import TrainConfig, train

    folder, tok = models["bos"]
    adapter = tmp_path / "adapter"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(folder), steps=4, batch_size=8, lr=1e-2, eval_every=0,
                                                  checkpoint_every=0), echo=lambda s: None, progress=False)
    report = build_report(adapter, corpus=SAMPLE / "corpus", max_probes=3, max_controls=3, null_draws=1,
                          neutral_prompts=2, echo=lambda s: None)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), str(adapter)).eval()
    for row in report.probes:
        prompt = tok(row.prompt).input_ids                                  # <bos> first, as the tokenizer puts it
        target = tok(row.target, add_special_tokens=False).input_ids
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + target])).logits[0].float(), -1)
        want = sum(float(logp[len(prompt) - 1 + i, t]) for i, t in enumerate(target))
        assert row.logp_after == pytest.approx(want, abs=1e-4), row.prompt
    run = json.loads((adapter / "run.json").read_text())
    assert run["steps"] == 4
