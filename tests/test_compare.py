"""`corpusforge compare`: the LoRA, a steering vector and a k-shot prompt measured the same way, on a tiny
random-weight model with an adapter trained on the sample corpus (the embedded model's run: README, benchmarks)."""

from __future__ import annotations

import json
import math

import pytest

from corpusforge.shift import compare as cmp
from corpusforge.shift import nulls, steer
from corpusforge.shift.compare_page import table_lines
from corpusforge.shift.transfer import read_transfer
from corpusforge.train.loop import TrainConfig, train

from .conftest import SAMPLE
from .tiny import make_tiny_model


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    work = tmp_path_factory.mktemp("compare")
    model = make_tiny_model(work / "model")
    adapter = work / "adapter"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(model), steps=40, batch_size=8, lr=1e-2, eval_every=0,
                                                  layers="all"), echo=lambda s: None)
    result = cmp.compare(adapter, work / "cmp", corpus=SAMPLE / "corpus", max_probes=8, max_controls=12,
                         transfer_prompts=24, new_tokens=16, echo=lambda s: None)
    return model, adapter, work / "cmp", result


def test_one_row_per_method_with_every_measure(compared):
    _, _, out, result = compared
    assert json.loads((out / "compare.json").read_text(encoding="utf-8")) == result
    assert [row["method"] for row in result["methods"]] == ["lora", "vector", "prompt"]
    for row in result["methods"]:
        assert row["probes"]["n"] == 8 and row["controls"]["n"] == 12 and row["transfer"]["any_pattern"]["n"] == 24
        low, high = row["probes"]["delta_logp_ci95"]
        assert low <= row["probes"]["mean_delta_logp"] <= high
        assert 0 <= row["controls"]["kl_ci95"][0] <= row["controls"]["mean_kl"] <= row["controls"]["kl_ci95"][1]
        assert math.isfinite(row["floor"]["floor_mean_abs_delta_logp"]) and isinstance(row["floor"]["significant"],
                                                                                       bool)
        assert {"loop_share", "seq_rep_4", "vs_base", "by_language"} <= set(row["transfer"])
        unasked = row["unasked"]
        assert unasked["pairs"] > 0 and 0 <= unasked["written_after"] <= unasked["pairs"]
    assert "<table>" in (out / "index.html").read_text(encoding="utf-8")
    dose = result["vector"]["dose_response"]    # tried in turn while the score rose, and the one where it fell
    assert [r["strength"] for r in dose] == list(steer.STRENGTHS[:len(dose)]) and len(dose) >= 2
    assert all(a["score"] <= b["score"] for a, b in zip(dose[:-2], dose[1:-1]))
    assert len(dose) == len(steer.STRENGTHS) or dose[-1]["score"] < dose[-2]["score"]
    lines = table_lines(result)
    assert [line.split()[0] for line in lines[1:8]] == ["base", *cmp.METHODS, *cmp.METHODS]
    assert len(result["wins"]) == len(lines) - 9 == len(cmp.MEASURES)
    assert {p["language"] for p in cmp.evenly(read_transfer(), 24)} == {"en", "ru"}


def test_the_trained_lora_clears_its_floor(compared):
    """The positive control of the floor test below: a trained adapter is significant by the same rule."""
    _, _, _, result = compared
    lora = result["methods"][0]
    assert lora["probes"]["mean_delta_logp"] > 1.0 and lora["floor"]["significant"]


def test_a_random_vector_of_the_same_norm_is_not_called_significant(compared):
    """Forty vectors in random directions, of the fitted vector's norm at its layer, each measured as the vector
    method against the floor's 19 draws: the rule calls none of them significant, while the interval over the
    probes against three draws (the report's overall rule) calls some."""
    from corpusforge.lm.load import load_model
    from corpusforge.shift.build import choose_inputs
    from corpusforge.shift.config import make_report_config

    model, adapter, out, _ = compared
    fitted = steer.load_vector(out / "vector")
    # twice the sweep's largest strength: random directions move the probes far enough for the interval-only rule
    # to be fooled, which is what the floor must not be
    vector = steer.SteeringVector(fitted.vector, fitted.layer, 2 * max(steer.STRENGTHS))
    inputs = choose_inputs(adapter, make_report_config(corpus=SAMPLE / "corpus", max_probes=8, max_controls=12))
    lm = load_model(str(model))
    edits = cmp.Edits(lm.model, lm.tokenizer, vector, {})
    base_p = cmp.probe_logps(edits, None, inputs.probes)
    base_c = cmp.control_logps(edits, None, inputs.controls)
    floor, _ = cmp.floors(edits, "vector", inputs.probes, inputs.controls, base_p, base_c, cmp.DRAWS)
    called = interval_alone = 0
    for seed in range(100, 140):
        rand = steer.random_like(vector, seed)
        assert float(rand.vector.norm()) == pytest.approx(float(vector.vector.norm()), rel=1e-5)
        deltas = [a[0] - b[0] for a, b in zip(cmp.probe_logps(edits, "vector", inputs.probes, rand), base_p)]
        called += cmp.significance(deltas, floor)["significant"]
        # the bug this guards against: the interval over the probes against three draws (the report's rule)
        interval_alone += cmp.significance(deltas, floor[:3])["paired_delta_logp_ci95"][0] >= nulls.MIN_EFFECT
    assert called == 0
    assert interval_alone >= 1    # ... calls some of these random vectors significant


def test_the_vector_is_added_where_it_says_and_saved_with_its_provenance(compared):
    from corpusforge.lm.arch import describe
    from corpusforge.lm.load import load_model
    from corpusforge.shift.passes import encode, last_logprobs

    model, _, out, result = compared
    vector = steer.load_vector(out / "vector")
    meta = json.loads((out / "vector" / "vector.json").read_text(encoding="utf-8"))
    assert meta["format"] == steer.FORMAT and meta["method"] == "diffmean" and meta["premises"] > 0
    assert 1 <= vector.layer < 4 and vector.strength in steer.STRENGTHS and result["vector"]["layer"] == vector.layer
    assert {(r["layer"], r["strength"]) for r in meta["sweep"]} >= {(vector.layer, vector.strength)}
    lm = load_model(str(model))
    ids = [encode(lm.tokenizer, "If the river freezes,")]
    plain = last_logprobs(lm.model, ids)[0]
    with steer.steered(lm.model, describe(lm.model), vector):
        moved = last_logprobs(lm.model, ids)[0]
    with steer.steered(lm.model, describe(lm.model), steer.SteeringVector(vector.vector, vector.layer, 0.0)):
        zero = last_logprobs(lm.model, ids)[0]
    assert float((moved - plain).abs().max()) > 1e-3 and float((zero - plain).abs().max()) == 0.0
    assert float((last_logprobs(lm.model, ids)[0] - plain).abs().max()) == 0.0   # the hook is gone after


def test_compare_without_a_corpus_is_one_clear_error(run, compared, tmp_path):
    _, adapter, _, _ = compared
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (bare / name).write_bytes((adapter / name).read_bytes())
    config = json.loads((bare / "adapter_config.json").read_text())
    result = run("compare", "--adapter", bare, "--out", tmp_path / "c", "--model", config["base_model_name_or_path"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--probes FILE or --corpus DIR" in result.output or "needs the corpus" in result.output
    assert not (tmp_path / "c").exists()


def test_a_shared_prefix_gives_the_rows_of_the_whole_pass(compared):
    """The prompt method's examples are one prefix whose keys and values its prompts share: the rows equal those of
    the whole sequences, on the adapted model, to float32 summation order."""
    from peft import PeftModel

    from corpusforge.lm.load import load_model
    from corpusforge.shift.passes import logprob_rows, prefixed_rows

    model, adapter, _, _ = compared
    adapted = PeftModel.from_pretrained(load_model(str(model)).model, str(adapter)).eval()
    prefix, seqs, starts = [5, 9, 13, 22, 40, 41, 7], [[7, 8, 9], [3, 4, 5, 6, 7, 8], [11], [12, 13]], [2, 0, 0, 1]
    shared = list(prefixed_rows(adapted, prefix, seqs, starts, batch_size=3))
    whole = list(logprob_rows(adapted, [prefix + s for s in seqs], starts=[len(prefix) + s for s in starts]))
    assert [tuple(r.shape) for r in shared] == [tuple(r.shape) for r in whole] == [(1, 600), (6, 600), (1, 600),
                                                                                   (1, 600)]
    assert max(float((a - b).abs().max()) for a, b in zip(shared, whole)) < 1e-4


def test_the_sweep_can_try_both_contrasts_and_keeps_the_best(compared):
    from corpusforge.lm.load import load_model

    model, _, _, _ = compared
    lm = load_model(str(model))
    records = cmp._training_records(SAMPLE / "corpus")
    vector = steer.fit_vector(lm.model, lm.tokenizer, records, model_name=str(model), corpus="sample", n=16,
                              contrasts=steer.CONTRASTS)
    sweep = vector.provenance["sweep"]
    assert {r["contrast"] for r in sweep} == set(steer.CONTRASTS)
    best = max(sweep, key=lambda r: r["score"])
    assert (vector.provenance["contrast"], vector.layer, vector.strength) == (best["contrast"], best["layer"],
                                                                              best["strength"])
    cut = steer.cut_earlier("If the river freezes,", 0)     # an earlier word's end, where no marker is due
    assert "If the river freezes,".startswith(cut) and 1 <= len(cut.split(" ")) < 4
    assert steer.cut_earlier("one", 3) == "one"


def test_the_page_renders_in_a_real_browser(compared, tmp_path):
    """Debian's chromium, headless: compare's index.html loads offline with every line of the table, the vector's
    provenance and the continuations (escaped text, not markup)."""
    from .browser import dump_dom, headless

    _, _, out, result = compared
    dom = dump_dom(headless(tmp_path / "profile", 3000), out / "index.html")
    assert dom.count("<tr>") == len(table_lines(result))
    assert "The steering vector" in dom and f'"layer": {result["vector"]["layer"]}' in dom
    assert dom.count("<h3>") == len(result["examples"]["prompts"]) and "<b>vector</b>" in dom
