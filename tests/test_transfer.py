"""The transfer measure: its prompts, its statistics on known inputs, and the whole measure on a tiny model."""

from __future__ import annotations

import json

import pytest

from corpusforge.prompts import HELDOUT_CONTROLS, read_prompts
from corpusforge.shift import transfer
from corpusforge.shift.structure import read_neutral
from corpusforge.templates.detect import Detector
from corpusforge.templates.registry import load_registry

from .conftest import ROOT, SAMPLE


def test_the_transfer_prompts_are_many_neutral_and_disjoint_from_every_other_prompt_set():
    prompts = transfer.read_transfer()
    texts = [p["prompt"] for p in prompts]
    assert len(set(texts)) == len(texts) == 200
    assert {p["language"] for p in prompts} == {"en", "ru"}
    assert sum(p["language"] == "ru" for p in prompts) == 100
    others = [p["prompt"] for p in read_prompts(ROOT / "corpusforge" / "data" / "controls.jsonl")]
    others += [p["prompt"] for p in read_prompts(HELDOUT_CONTROLS)] + [p["prompt"] for p in read_neutral()]
    others += [json.loads(line)["text"] for f in (SAMPLE / "corpus" / "data").iterdir() for line in f.open()]
    for t in texts:
        assert not any(t in o or o in t for o in others), t
    detector = Detector(load_registry().list())            # no prompt already realises a pattern
    assert [t for t in texts if detector.patterns_in(t)] == []


def test_wilson_intervals_and_seq_rep_on_known_inputs():
    assert transfer.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert transfer.wilson(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = transfer.wilson(30, 100)
    assert low == pytest.approx(0.2189, abs=1e-4) and high == pytest.approx(0.3958, abs=1e-4)
    assert transfer.seq_rep_4("a b c d a b c d a b c d") == pytest.approx(1 - 4 / 9)
    assert transfer.seq_rep_4("one two three four five") == 0.0 and transfer.seq_rep_4("too short") == 0.0
    shots = transfer.few_shot(["If a, then b.", "If c, then d. "], "Tell me.")
    assert shots == "If a, then b.\nIf c, then d.\nTell me."


def test_the_score_counts_what_the_detector_finds_and_pairs_the_conditions():
    detector = Detector([load_registry().get("if_then.en")])
    prompts = [{"prompt": f"p{i}", "language": "en" if i < 6 else "ru"} for i in range(10)]
    plain, structured = "The sea is calm tonight.", "If the wind rises, then the boats come home."
    texts = {"base": [plain] * 10,
             "lora": [structured] * 8 + [plain] * 2,
             "prompted": [structured] * 2 + [plain] * 8}
    t = transfer.score(detector, prompts, texts)
    assert t.conditions["base"].any_pattern.share == 0.0
    assert t.conditions["lora"].any_pattern.share == 0.8
    assert t.conditions["lora"].by_language["en"].share == 1.0
    assert t.conditions["lora"].by_language["ru"].share == 0.5
    assert t.conditions["lora"].by_pattern["if_then"].share == 0.8
    assert t.lora_vs_base.model_dump() == {"gained": 8, "lost": 0, "p_value": pytest.approx(2 / 2 ** 8)}
    assert t.lora_vs_prompted.gained == 6 and t.lora_vs_prompted.lost == 0
    looping = transfer.score(detector, prompts[:2], {"base": ["go on go on go on go on go on", " "]})
    assert looping.conditions["base"].loop_share == 0.5 and looping.conditions["base"].seq_rep_4 > 0.25
    assert looping.conditions["base"].empty_share == 0.5


def test_the_prompting_baseline_takes_records_of_each_language_from_the_corpus():
    examples = transfer.corpus_examples(SAMPLE / "corpus", k=3)
    assert set(examples) >= {"en", "ru"} and all(len(v) == 3 for v in examples.values())
    ru = "".join(examples["ru"])
    assert sum("\u0400" <= c <= "\u04ff" for c in ru) > len(ru) / 3
