"""The shift report on a tiny model with a trained adapter; the HTML page opened in a real headless browser."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from corpusforge.lm.generation import adapter_scale
from corpusforge.lm.load import load_model
from corpusforge.shift.passes import next_logprobs
from corpusforge.shift.probes import Probe, ProbeError, probes_from_corpus, read_probes
from corpusforge.shift.report import ShiftReport, build_report, write_report
from corpusforge.train.loop import TrainConfig, train

from .browser import dump_dom, headless
from .conftest import ROOT, SAMPLE
from .tiny import make_tiny_model, make_tiny_tokenizer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model and an adapter trained on the sample corpus, for every test of this file."""
    work = tmp_path_factory.mktemp("report")
    model = make_tiny_model(work / "model")
    adapter = work / "adapter"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(model), steps=40, batch_size=8, lr=1e-2, eval_every=0,
                                                  layers="all"), echo=lambda s: None)
    report = build_report(adapter, corpus=SAMPLE / "corpus", echo=lambda s: None)   # the base: run.json's
    out = write_report(report, work / "report")
    return model, adapter, report, out


def test_report_measures_every_section(trained):
    model, adapter, report, out = trained
    assert report.model == str(model) and report.config.model is None   # read from the adapter's run.json
    assert report.config.corpus == str(SAMPLE / "corpus") and report.config.max_probes == 20
    p = report.probes[0]
    assert p.prompt and p.target and 0 <= p.p_before <= 1 and 0 <= p.p_after <= 1 and p.rank_after >= 1
    c = report.controls[0]
    assert c.prompt and c.kl >= 0 and c.language in ("en", "ru")
    nulls = report.nulls
    assert nulls.draws == 3 and len(nulls.probe_delta_logp) == len(report.probes)
    assert len(nulls.control_kl[0]) == 3 and nulls.mean_control_kl > 0   # a random change moves controls
    assert [len(k) for k in nulls.control_top1_kept] == [3] * len(report.controls)
    flat = [k for row in nulls.control_top1_kept for k in row]
    assert report.headline.null_top1_kept_share == pytest.approx(sum(flat) / len(flat))
    from corpusforge.shift.page import summary_lines
    drift = next(line for line in summary_lines(report) if line.startswith("control drift"))
    assert f"random adapters of the same norm: KL {nulls.mean_control_kl:.4f}, top-1 kept on " \
           f"{report.headline.null_top1_kept_share:.0%}" in drift
    assert report.controls_info.also_training_controls == 0           # held out by default
    assert {"en", "ru"} <= set(report.controls_info.languages)
    dose = {d.scale: d for d in report.dose_response}
    # scale 0 is the base pass itself, in the same batches (measure.dose_response): exactly 0, on every CPU —
    # a base from other batches differs by float32 summation order alone (a KL of 5e-9 on an AMD EPYC)
    assert dose[0.0].delta_logp == 0.0 and dose[0.0].control_kl == 0.0
    assert dose[2.0].control_kl >= dose[1.0].control_kl
    layers = {w.layer for w in report.weight_map}
    assert layers == set(range(4))
    assert {w.module for w in report.weight_map} >= {"attention.q_proj", "mlp.down_proj"}
    lens = report.logit_lens[0]
    assert len(lens.before.p) == 4 and len(lens.after.rank) == 4
    assert len(report.attention.grid) == 4 and report.attention.heatmaps
    assert report.generations.rows[0].greedy_diff
    h = report.headline
    assert h.selectivity == pytest.approx(h.mean_delta_logp / h.mean_control_kl)
    clear = [c for c in report.controls if c.base_lead >= 0.1]              # the near-ties left out
    assert all(c.base_lead >= 0 for c in report.controls) and h.clear_controls == len(clear)
    assert h.top1_kept_clear_share == (sum(c.top1_kept for c in clear) / len(clear) if clear else None)


def test_outputs_are_written(trained):
    model, adapter, report, out = trained
    written = json.loads((out / "report.json").read_text())
    assert set(written) == set(ShiftReport.model_fields)
    assert ShiftReport.model_validate(written) == report     # report.json reads back as the report that was built
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"probabilities.png", "dose_response.png", "weight_map.png", "logit_lens.png",
            "attention_grid.png"} <= figures
    html = (out / "index.html").read_text()
    assert "data:image/png;base64," in html and "selectivity" in html and "src=\"http" not in html


def test_scale_zero_is_the_base_model(trained):
    model_dir, adapter, _, _ = trained
    from peft import PeftModel

    lm = load_model(str(model_dir))
    model = PeftModel.from_pretrained(lm.model, str(adapter))
    ids = lm.tokenizer("If the river freezes,", add_special_tokens=False).input_ids
    with model.disable_adapter():
        off = next_logprobs(model, ids)
    with adapter_scale(model, 0.0):
        zero = next_logprobs(model, ids)
    on = next_logprobs(model, ids)
    assert bool((off == zero).all()) and not bool((on == off).all())


def test_the_page_renders_in_a_real_browser(trained, tmp_path):
    """Debian's chromium, headless: the page loads offline, every image decodes, no script error."""
    _, _, _, out = trained
    cmd = headless(tmp_path / "profile", 5000)
    dom = dump_dom(cmd, out / "index.html")
    assert 'data-rendered="yes"' in dom, dom[:500]
    assert 'data-broken="0"' in dom and 'data-errors="0"' in dom
    images = int(dom.split('data-images="')[1].split('"')[0])
    assert images >= 6
    shot = tmp_path / "page.png"
    subprocess.run(cmd + [f"--screenshot={shot}", "--window-size=1280,2000", (out / "index.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000


def test_probe_files_and_their_errors(tmp_path):
    ok = tmp_path / "p.jsonl"
    ok.write_text('{"prompt": "If it rains,", "targets": [" then"], "foils": [" but"], "name": "rain"}\n\n'
                  '{"prompt": "Смысл — это", "targets": [" движение"]}\n', encoding="utf-8")
    assert [p.name for p in read_probes(ok)] == ["rain", None]
    y = tmp_path / "p.yaml"
    y.write_text("- prompt: If it rains,\n  targets: [' then']\n", encoding="utf-8")
    assert read_probes(y)[0].targets == [" then"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "targets": [" then"]}\n{"prompt": "y", "targets": [""]}\n', encoding="utf-8")
    with pytest.raises(ProbeError) as info:
        read_probes(bad)
    assert info.value.line == 2 and "empty" in str(info.value)
    bad.write_text('{"prompt": "y", "target": " then"}\n')
    with pytest.raises(ProbeError):
        read_probes(bad)
    probes = probes_from_corpus(SAMPLE / "corpus", limit=5)
    assert len(probes) == 5 and all(isinstance(p, Probe) and p.targets[0].strip() for p in probes)


def test_report_bad_input(trained, tmp_path, run):
    model, adapter, _, _ = trained
    other = tmp_path / "adapter-copy"
    shutil.copytree(adapter, other)
    run_json = json.loads((other / "run.json").read_text())
    run_json["model"] = "someone/else"
    (other / "run.json").write_text(json.dumps(run_json))
    result = run("report", "--model", model, "--adapter", other, "--out", tmp_path / "r", "--corpus", SAMPLE / "corpus")
    assert result.exit_code == 1 and "trained on 'someone/else'" in result.output
    long_probe = tmp_path / "long.jsonl"
    long_probe.write_text(json.dumps({"prompt": "word " * 400, "targets": [" then"]}) + "\n")
    result = run("report", "--model", model, "--adapter", adapter, "--out", tmp_path / "r", "--probes", long_probe)
    assert result.exit_code == 1 and "longer than the model's context" in result.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"prompt": "x", "targets": []}\n')
    result = run("report", "--model", model, "--adapter", adapter, "--out", tmp_path / "r", "--probes", empty)
    assert result.exit_code == 1 and "Traceback" not in result.output
    result = run("report", "--model", model, "--adapter", tmp_path / "nope", "--out", tmp_path / "r",
                 "--corpus", SAMPLE / "corpus")
    assert result.exit_code == 1 and "not found" in result.output
    assert not (tmp_path / "r").exists()


def test_schema_files_match_the_models():
    from corpusforge.schemas import SCHEMAS, render_schema

    assert {"record", "manifest", "probes", "run", "report"} <= set(SCHEMAS)
    for name in SCHEMAS:
        assert (ROOT / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8") == render_schema(name)


def test_a_trained_adapter_clears_the_random_floor_and_a_weak_one_does_not(trained, tmp_path):
    """The floor can fail: two steps at lr 1e-5 move the targets less than a meaningful shift, so the report
    says NOT significant; the fixture's adapter (40 steps at lr 1e-2) clears random adapters of its size."""
    model, _, report, _ = trained
    h = report.headline
    assert h.significant and h.clears_floor_by > 3 and h.paired_delta_logp_ci95[0] >= h.min_effect
    weak = tmp_path / "weak"
    train(SAMPLE / "corpus", weak, TrainConfig(model=str(model), steps=2, lr=1e-5, batch_size=8, eval_every=0,
                                               layers="all"), echo=lambda s: None)
    w = build_report(weak, model=str(model), corpus=SAMPLE / "corpus", max_probes=8, max_controls=6, null_draws=2,
                     neutral_prompts=2, echo=lambda s: None).headline
    assert not w.significant and w.significant_probes == 0
    assert abs(w.mean_delta_logp) < h.mean_delta_logp / 100


def test_the_floor_is_a_random_adapter_of_the_same_norm(trained):
    from peft import PeftModel

    from corpusforge.lm.generation import lora_layers
    from corpusforge.shift.nulls import random_direction

    model_dir, adapter, _, _ = trained
    model = PeftModel.from_pretrained(load_model(str(model_dir)).model, str(adapter))
    norms = lambda: [float((m.lora_B["default"].weight @ m.lora_A["default"].weight).norm())  # noqa: E731
                     for _, m in lora_layers(model)]
    trained_norms, first = norms(), None
    with random_direction(model, seed=0):
        assert norms() == pytest.approx(trained_norms, rel=1e-4)      # the same size, module by module
        first = [m.lora_A["default"].weight.clone() for _, m in lora_layers(model)]
    with random_direction(model, seed=1):
        assert any(not bool((a == m.lora_A["default"].weight).all()) for a, (_, m) in zip(first, lora_layers(model)))
    assert norms() == trained_norms                                   # and the trained weights come back


def test_default_controls_are_held_out_and_bilingual():
    from corpusforge.prompts import DEFAULT_CONTROLS, HELDOUT_CONTROLS, read_prompts

    held = {c["prompt"] for c in read_prompts(HELDOUT_CONTROLS)}
    trained_on = {c["prompt"] for c in read_prompts(DEFAULT_CONTROLS)}
    assert held and not held & trained_on
    assert any("\u0400" <= ch <= "\u04ff" for p in held for ch in p) and any(p.isascii() for p in held)


def test_no_shipped_prompt_set_holds_a_prompt_twice():
    """A prompt twice in a measured set weighs twice in its means (the held-out controls once held two Russian
    prompts twice each): the prompt sets' reader refuses a repeat at its line, and the writer's pool holds none."""
    from collections import Counter

    from corpusforge.prompts import (
        DEFAULT_CONTROLS,
        HELDOUT_CONTROLS,
        NEUTRAL_PROMPTS,
        TRANSFER_PROMPTS,
        read_pool,
        read_prompts,
    )

    for path in (DEFAULT_CONTROLS, HELDOUT_CONTROLS, NEUTRAL_PROMPTS, TRANSFER_PROMPTS):
        assert len(read_prompts(path)) > 10, path
    pool = Counter(c["prompt"] for c in read_pool())
    assert len(pool) > 10 and [p for p, n in pool.items() if n > 1] == []


def test_degeneration_and_the_paired_test():
    from corpusforge.shift.structure import degeneration, mcnemar

    loop = degeneration("therefore it is also moving. Therefore it is also moving. Therefore it is also")
    assert loop["loops"] and loop["repeated_3gram_rate"] > 0.4
    fine = degeneration("the river keeps moving toward the sea, and the town wakes slowly around it")
    assert not fine["loops"] and fine["repeated_3gram_rate"] == 0 and fine["distinct_2"] == 1
    assert mcnemar([False] * 6, [True] * 6).model_dump() == {"gained": 6, "lost": 0, "p_value": 2 / 64}
    assert mcnemar([True, False], [True, False]).p_value == 1.0


def test_the_detector_finds_each_pattern_in_its_own_records(run, tmp_path):
    from corpusforge.templates.detect import Detector
    from corpusforge.templates.registry import load_registry
    from corpusforge.templates.sampler import sample

    registry = load_registry()
    detector = Detector(registry.list())
    for t in registry.list():
        if t.pattern.name not in detector.patterns:
            continue   # counterfactual: its marker lives in slot values, not in the template's own words
        recs = sample(t, 100)
        assert sum(detector.realises(r["text"], t.pattern.name) for r in recs) >= 60, t.name
    texts = tmp_path / "t.txt"
    texts.write_text("If it rains tomorrow, then we stay home.\nThe sky is blue.\n"
                     "Если пойдёт дождь, то мы останемся дома.\n", encoding="utf-8")
    result = run("detect", texts, "--pattern", "if_then")
    assert result.exit_code == 0 and f"{texts}:1: if_then" in result.output and f"{texts}:2: —" in result.output
    assert "if_then 2/3" in result.output



def test_a_prompt_cut_for_display_says_so():
    """Tables and figures show a prompt's end (where its target follows); a cut one starts with "…"."""
    from corpusforge.shift.figures import tail

    assert tail("If the river freezes,", 30) == "If the river freezes,"
    assert tail("Говорят, идея рождается каждое утро.", 12) == "…аждое утро."


def test_a_sampled_token_follows_the_cut_distribution():
    """The report's sampling: softmax at the temperature, cut to the most likely tokens whose mass reaches
    top-p, then the token at u. Over an even grid of u each kept token comes up in proportion to its
    renormalised probability, and a token past the cut never does — also when the cut is looked for among
    fewer tokens than it needs."""
    from collections import Counter

    import torch

    from corpusforge.lm.sampling import draw_token as _draw

    scores = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3]]))
    grid = [i / 1000 for i in range(1000)]
    for within in (4, 2):    # 2: the two most likely hold 0.8 < 0.9, so the draw must look at all of them
        picks = Counter(int(_draw(scores, torch.tensor([u]), 1.0, 0.9, within=within)) for u in grid)
        assert picks[0] == 0                        # 0.5 + 0.3 + 0.15 reaches 0.9: the 0.05 token is cut
        for token, p in ((1, 0.5), (3, 0.3), (2, 0.15)):
            assert picks[token] / 1000 == pytest.approx(p / 0.95, abs=0.002)
    assert int(_draw(scores, torch.tensor([0.0]), 1.0, 0.9)) == 1        # u = 0: the most likely
    hot = Counter(int(_draw(scores, torch.tensor([u]), 0.05, 0.9)) for u in grid)
    assert hot == {1: 1000}                          # a low temperature leaves only the most likely


def test_report_passes_entered_at_the_adapters_first_layer_measure_the_same(tmp_path, monkeypatch):
    """While the report measures, a pass over a batch seen before starts at the adapter's first layer from the
    inputs that layer got the first time (the default last half: layer 2 of 4 here). Every number — scores,
    drift, dose-response, the random floor — must be what whole passes give, and the kept inputs must be used."""
    from peft import PeftModel

    from corpusforge.shift import measure, nulls, passes

    model = make_tiny_model(tmp_path / "model")
    adapter = tmp_path / "adapter"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(model), steps=6, batch_size=8, lr=1e-2, eval_every=0),
          echo=lambda s: None)
    lm = load_model(str(model))
    peft, tok = PeftModel.from_pretrained(lm.model, str(adapter)).eval(), lm.tokenizer
    probes = probes_from_corpus(SAMPLE / "corpus", limit=6)
    controls = [{"prompt": p} for p in ("The capital of France is", "def add(a, b):", "Пушкин родился в")]

    def measures() -> list[float]:
        before = measure.target_logps(peft, tok, probes, scale=0.0)
        rows = measure.probe_rows(peft, tok, probes, before=before)
        drift = measure.control_rows(peft, tok, controls)
        dose = measure.dose_response(peft, tok, probes, controls, before=before)
        null = nulls.null_effects(peft, tok, probes, controls, before, draws=2)
        return ([getattr(r, k) for r in rows for k in ("logp_before", "logp_after", "rank_after")]
                + [getattr(r, k) for r in drift for k in ("kl", "kl_continuation")]
                + [getattr(r, k) for r in dose for k in ("delta_logp", "control_kl")]
                + [x for row in null.probe_delta_logp + null.control_kl for x in row])

    whole = measures()
    calls = []
    real = passes.entered_at
    monkeypatch.setattr(passes, "entered_at", lambda *a: calls.append(a[2]) or real(*a))
    with passes.measuring(peft, passes.probe_ids(tok, probes[0])):
        kept = passes._KEPT[peft]
        entered = measures()
    assert kept.layer == 2 and kept.head and len(kept.inputs) >= 2 and peft not in passes._KEPT
    assert calls and set(calls) == {2}              # the kept inputs were used, at the adapter's first layer
    assert entered == pytest.approx(whole, rel=1e-4, abs=1e-6)
    assert max(abs(x) for x in whole) > 0.1          # the adapter moved something to compare


def test_markers_where_nobody_asked_are_seen_when_written(trained):
    """The unasked measure scores each marker after prompts that ask for none. Handed a probe's own prompt among
    them — where the adapter does write the marker — it must count that pair as newly written; with the adapter
    scaled to 0 nothing moves and nothing is newly written; a prompt unlike the corpus stays unwritten."""
    from peft import PeftModel

    from corpusforge.prompts import prompt_language
    from corpusforge.shift.measure import unasked

    model_dir, adapter, report, _ = trained
    taught = next(p for p in report.probes if p.greedy_after and not p.greedy_before)
    other = "The capital of France is"
    markers = sorted({p.target for p in report.probes})
    lm = load_model(str(model_dir))
    model = PeftModel.from_pretrained(lm.model, str(adapter)).eval()
    prompts = [{"prompt": taught.prompt}, {"prompt": other}]
    found = unasked(model, lm.tokenizer, prompts, markers)
    assert found.pairs == sum(prompt_language(p) == prompt_language({"prompt": m}) for p in prompts for m in markers)
    assert {(r.prompt, r.marker) for r in found.newly_written} >= {(taught.prompt, taught.target)}
    assert all(r.prompt == taught.prompt for r in found.newly_written)
    row = next(r for r in found.most_likely if (r.prompt, r.marker) == (taught.prompt, taught.target))
    assert row.delta_logp == pytest.approx(taught.delta_logp, abs=1e-4)     # the probe's own number
    with adapter_scale(model, 0.0):
        still = unasked(model, lm.tokenizer, prompts, markers)
    assert not still.newly_written and all(abs(r.delta_logp) < 1e-6 for r in still.most_likely)
    u = report.unasked
    assert u.prompts == len(report.controls) + len(report.structure.prompts)
    assert 0 < u.pairs < u.prompts * len(markers)       # each marker after the prompts in its language


def test_heatmap_labels_join_a_characters_byte_pieces(tmp_path):
    """A byte-level tokenizer splits a character it has no merge for into pieces that decode alone to "\ufffd":
    the heatmap labels that run once, with the character, and marks the rest "·" — one label a position."""
    from transformers import AutoTokenizer

    from corpusforge.shift.passes import token_labels

    tok = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path / "tok"))
    text = "Смысл 🙂 then"
    ids = tok(text, add_special_tokens=False).input_ids
    assert any("\ufffd" in tok.decode([i]) for i in ids)          # the case exists with this tokenizer
    labels = token_labels(tok, ids)
    assert len(labels) == len(ids) and not any("\ufffd" in label for label in labels)
    assert "".join(label for label in labels if label != "·") == text
    assert any("🙂" in label for label in labels) and "·" in labels
