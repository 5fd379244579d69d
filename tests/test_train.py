"""The trainer on a tiny Llama built from a config (seconds), through the same loading path as any folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpusforge.errors import ProbeError, TrainError
from corpusforge.lm.load import load_model
from corpusforge.prompts import read_prompts
from corpusforge.train.data import collate, encode_records, epoch_batches
from corpusforge.train.loop import TrainConfig, make_config, train
from corpusforge.train.lora import parse_layers

from .conftest import ROOT, SAMPLE
from .tiny import make_tiny_model


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def quick(tiny, **kw) -> TrainConfig:
    base = dict(model=str(tiny), steps=4, batch_size=4, eval_every=2, checkpoint_every=2, warmup=1)
    base.update(kw)
    return make_config(base)


def test_labels_come_from_role_spans(tiny):
    lm = load_model(str(tiny))
    rec = json.loads((SAMPLE / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    [ex] = encode_records([rec], lm.tokenizer, loss_on=None, max_length=128)
    enc = lm.tokenizer(rec["text"], return_offsets_mapping=True, add_special_tokens=False)
    first_role_end = rec["segments"][0]["end"]
    starts = [enc["offset_mapping"][t][0] for t in ex.supervised]
    assert ex.supervised and min(starts) >= first_role_end - 1        # nothing of the premise
    assert max(starts) < len(rec["text"])
    later = [t for t in range(1, len(ex.ids)) if enc["offset_mapping"][t][0] >= first_role_end]
    assert set(later) <= set(ex.supervised)                            # everything after it
    [only] = encode_records([rec], lm.tokenizer, loss_on=[rec["segments"][-1]["role"]], max_length=128)
    assert set(only.supervised) < set(ex.supervised) or len(rec["segments"]) == 2


def test_batches_are_length_grouped_and_deterministic():
    lengths = [5, 50, 6, 49, 7, 48, 8, 47] * 8
    a = epoch_batches(lengths, 4, seed=1, epoch=0)
    assert a == epoch_batches(lengths, 4, seed=1, epoch=0) and a != epoch_batches(lengths, 4, seed=1, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(len(lengths)))
    padding = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in a)
    assert padding / sum(lengths) < 0.1


def test_collate_counts_real_tokens_and_labels():
    from corpusforge.train.data import Example

    batch = collate([Example([1, 2, 3], [2]), Example([4, 5], [1])], pad_id=0)
    assert batch.tokens == 5 and batch.supervised == 2
    assert batch.labels.tolist() == [3, 5] and batch.cols.tolist() == [1, 0] and batch.rows.tolist() == [0, 1]


def test_train_writes_a_peft_adapter_that_peft_loads(tiny, tmp_path):
    out = tmp_path / "adapter"
    result = train(SAMPLE / "corpus", out, quick(tiny), echo=lambda s: None)
    assert result.steps == 4 and result.supervised_tokens > 0
    assert {"adapter_config.json", "adapter_model.safetensors", "run.json", "metrics.jsonl"} <= {
        p.name for p in out.iterdir()}
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 4 and run["supervised_tokens"] == result.supervised_tokens
    assert run["non_padding_tokens_per_s"] > 0 and run["peak_memory_mb"] > 0 and len(run["loss_curve"]) == 4
    assert run["corpus_manifest_sha256"]
    import jsonschema

    schema = json.loads((ROOT / "schemas" / "run.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(run)  # the published contract holds for real output
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and "eval_loss" in rows[1]
    assert {"loop_share", "seq_rep_4"} <= set(rows[1]) and "loop_share" not in rows[0]   # with each evaluation
    assert run["fluency"]["prompts"] == 12 and set(run["fluency"]["after"]) == {"loop_share", "seq_rep_4"}
    from peft import PeftModel

    base = load_model(str(tiny)).model
    model = PeftModel.from_pretrained(base, str(out))
    assert any("lora_A" in n for n, _ in model.named_parameters())
    assert not list(tmp_path.glob(".*partial"))


def test_training_moves_the_loss_and_controls_keep_drift_down(tiny, tmp_path):
    free = train(SAMPLE / "corpus", tmp_path / "free", quick(tiny, steps=12, lr=3e-3, use_controls=False),
                 echo=lambda s: None)
    held = train(SAMPLE / "corpus", tmp_path / "held", quick(tiny, steps=12, lr=3e-3, control_weight=50.0),
                 echo=lambda s: None)
    free_curve = free.run.loss_curve
    assert free_curve[-1][1] < free_curve[0][1]
    kl = lambda r: [json.loads(x)["control_kl"] for x in (r.out / "metrics.jsonl").read_text().splitlines()]
    assert kl(free) == [0.0] * 12          # no controls: no penalty measured
    assert max(kl(held)[1:]) > 0           # the penalty is live


def _premise_drift(tiny, adapter: Path) -> float:
    """Mean KL(base ‖ LoRA) at the premise positions of the sample corpus's training records."""
    import torch
    import torch.nn.functional as F
    from peft import PeftModel

    from corpusforge.lm.arch import describe
    from corpusforge.train.step import Head, base_logprobs, lm_logits, premises

    lm = load_model(str(tiny))
    lines = (SAMPLE / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [json.loads(x) for x in lines]
    examples = encode_records(recs[:32], lm.tokenizer, loss_on=None, max_length=128)
    held = premises([e for e in examples if e.supervised], lm.tokenizer.pad_token_id)
    model = PeftModel.from_pretrained(lm.model, str(adapter)).eval()
    head = Head(describe(model.get_base_model()))
    with torch.no_grad():
        after = F.log_softmax(lm_logits(model, held, head), dim=-1)
        before = base_logprobs(model, held, head)
        return float(F.kl_div(after, before, log_target=True, reduction="batchmean"))


def test_premise_weight_holds_the_records_own_premises(tiny, tmp_path):
    """--premise-weight: KL(base ‖ LoRA) at the positions of each record before its supervised roles is part of
    the loss, so the adapter changes what follows the premise, not how the premise itself is read."""
    free = train(SAMPLE / "corpus", tmp_path / "free", quick(tiny, steps=12, lr=3e-3, use_controls=False,
                                                             premise_weight=0.0), echo=lambda s: None)
    held = train(SAMPLE / "corpus", tmp_path / "held", quick(tiny, steps=12, lr=3e-3, use_controls=False,
                                                             premise_weight=50.0), echo=lambda s: None)
    rows = [json.loads(x) for x in (held.out / "metrics.jsonl").read_text().splitlines()]
    assert all("premise_kl" in r for r in rows) and max(r["premise_kl"] for r in rows[1:]) > 0   # live
    assert not any("premise_kl" in json.loads(x) for x in (free.out / "metrics.jsonl").read_text().splitlines())
    assert held.run.loss_curve[-1][1] < held.run.loss_curve[0][1]       # it still learns what follows
    moved, kept = _premise_drift(tiny, free.out), _premise_drift(tiny, held.out)
    assert moved > 1e-3 and kept < moved / 2, (moved, kept)


def test_kept_control_base_trains_the_same_adapter_as_computing_it_each_step(tiny, tmp_path, monkeypatch):
    """The controls' base log-probabilities are computed once and kept; a run that computes them every step
    (as a set too large to keep is) must train the same adapter."""
    from safetensors.torch import load_file

    import corpusforge.train.loop as loop
    import corpusforge.train.step as step

    sizes = []
    real = loop.control_base_cache
    monkeypatch.setattr(loop, "control_base_cache", lambda m, controls, *a: sizes.append(len(controls)) or real(
        m, controls, *a))
    cfg = quick(tiny, steps=5, lr=3e-3, control_batch=3)
    kept = train(SAMPLE / "corpus", tmp_path / "kept", cfg, echo=lambda s: None)
    assert sizes == [15]     # 5 steps of 3: the controls the run reaches, not all of them
    monkeypatch.setattr(step, "CONTROL_CACHE_BYTES", 0)
    each = train(SAMPLE / "corpus", tmp_path / "each", cfg, echo=lambda s: None)
    kl = lambda r: [json.loads(x)["control_kl"] for x in (r.out / "metrics.jsonl").read_text().splitlines()]
    assert kl(kept) == pytest.approx(kl(each), rel=1e-4, abs=1e-7) and max(kl(kept)) > 0
    a, b = (load_file(r.out / "adapter_model.safetensors") for r in (kept, each))
    assert a.keys() == b.keys() and all(float((a[k] - b[k]).abs().max()) < 1e-5 for k in a)


def test_passes_entered_at_the_first_adapted_layer_train_the_same_adapter(tiny, tmp_path, monkeypatch):
    """Below the first layer the LoRA adapts (layer 2 of 4 with the default last half), the controls' inputs are
    kept and each step's control pass starts there, and the premises' base pass starts from the training
    pass's own inputs to it. A run whose passes all run whole must train the same adapter, step for step."""
    from safetensors.torch import load_file

    import corpusforge.train.prepare as prepare
    import corpusforge.train.step as step

    entered = []
    real = step.entered_at
    monkeypatch.setattr(step, "entered_at", lambda *a: entered.append(a[2]) or real(*a))
    cfg = quick(tiny, steps=5, lr=3e-3, eval_every=0, premise_weight=2.0)
    short = train(SAMPLE / "corpus", tmp_path / "entered", cfg, echo=lambda s: None)
    assert set(entered) == {2} and len(entered) == 10      # a control pass and a premise pass a step
    monkeypatch.setattr(prepare, "_entry_layer", lambda *a: None)
    whole = train(SAMPLE / "corpus", tmp_path / "whole", cfg, echo=lambda s: None)
    assert len(entered) == 10
    rows = lambda r: [json.loads(x) for x in (r.out / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss", "control_kl", "premise_kl"):
        got, want = [x[key] for x in rows(short)], [x[key] for x in rows(whole)]
        assert got == pytest.approx(want, rel=1e-4, abs=1e-7) and max(want) > 0, key
    a, b = (load_file(r.out / "adapter_model.safetensors") for r in (short, whole))
    assert a.keys() == b.keys() and all(float((a[k] - b[k]).abs().max()) < 1e-5 for k in a)


def test_resume_gives_the_same_adapter_as_an_uninterrupted_run(tiny, tmp_path):
    from safetensors.torch import load_file

    cfg = quick(tiny, steps=6, checkpoint_every=2, eval_every=0)
    straight = train(SAMPLE / "corpus", tmp_path / "straight", cfg, echo=lambda s: None).out

    def interrupt(row):
        if row["step"] == 5:  # after step 5, before its checkpoint would be due (they come every 2 steps)
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(SAMPLE / "corpus", out, cfg, echo=lambda s: None, observe=interrupt)
    assert not out.exists() and (tmp_path / ".resumed.partial" / "checkpoints").is_dir()
    with pytest.raises(TrainError, match="--resume"):
        train(SAMPLE / "corpus", out, cfg, echo=lambda s: None)
    train(SAMPLE / "corpus", out, cfg, resume=True, echo=lambda s: None)
    a = load_file(str(straight / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


@pytest.mark.parametrize("change, words", [
    (dict(loss_on=["nonesuch"]), "no record of the corpus has these roles"),
    (dict(targets="q_proj,wibble"), "no module(s) ['wibble']"),
    (dict(layers="2-9"), "out of range"),
    (dict(model="/no/such/model"), "not found"),
    (dict(steps=0), "--steps must be at least 1"),
])
def test_bad_input_is_a_clear_error(tiny, tmp_path, change, words):
    with pytest.raises(TrainError) as info:
        train(SAMPLE / "corpus", tmp_path / "out", quick(tiny, **change), echo=lambda s: None)
    assert words in str(info.value)
    assert not (tmp_path / "out").exists()


def test_an_invalid_corpus_is_refused(tiny, tmp_path):
    bad = tmp_path / "bad"
    (bad / "data").mkdir(parents=True)
    (bad / "data" / "train.jsonl").write_bytes((SAMPLE / "invalid.jsonl").read_bytes())
    with pytest.raises(TrainError, match="invalid record"):
        train(bad, tmp_path / "out", quick(tiny), echo=lambda s: None)


def test_cli_train_and_its_errors(run, tiny, tmp_path):
    ok = run("train", SAMPLE / "corpus", "--model", tiny, "--out", tmp_path / "a", "--steps", "2",
             "--batch-size", "4", "--targets", "attention", "--layers", "0-1", "--no-controls", "--progress")
    assert ok.exit_code == 0, ok.output
    assert "wrote " in ok.output and "supervised" in ok.output
    cfg = tmp_path / "train.yaml"
    cfg.write_text("rank: 4\nsteps: 2\nbatch_size: 4\nlr: 0.001\n")
    ok = run("train", SAMPLE / "corpus", "--model", tiny, "--out", tmp_path / "b", "--config", cfg, "--rank", "2")
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "b" / "run.json").read_text())["config"]["rank"] == 2   # the flag wins
    bad = run("train", SAMPLE / "corpus", "--model", tiny, "--out", tmp_path / "c", "--targets", "nope")
    assert bad.exit_code == 1 and "linear modules are" in bad.output and "Traceback" not in bad.output
    cfg.write_text("rnak: 4\n")
    bad = run("train", SAMPLE / "corpus", "--model", tiny, "--out", tmp_path / "d", "--config", cfg)
    assert bad.exit_code == 1 and "unknown key(s) ['rnak']" in bad.output


def test_parsers(tiny):
    from corpusforge.lm.arch import describe

    arch = describe(load_model(str(tiny)).model)
    shorts = lambda targets: list(dict.fromkeys(p.short for p in arch.resolve(targets, None)))  # noqa: E731
    assert shorts("attention") == ["q_proj", "k_proj", "v_proj", "o_proj"]   # the whole attention block
    assert shorts("q,v,gate") == ["q_proj", "v_proj", "gate_proj"]
    assert parse_layers("20-22,25") == [20, 21, 22, 25] and parse_layers(None) is None
    with pytest.raises(TrainError):
        parse_layers("9-2")


def test_control_files(tmp_path):
    text = tmp_path / "c.txt"
    text.write_text("The sky is\n\nDas ist\n", encoding="utf-8")
    assert [p["prompt"] for p in read_prompts(text)] == ["The sky is", "Das ist"]
    jl = tmp_path / "c.jsonl"
    jl.write_text('{"prompt": "Столица —", "kind": "fact"}\n{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(ProbeError) as info:   # the reader's own kind of error by default ...
        read_prompts(jl)
    assert info.value.line == 2 and "prompt" in str(info.value)
    with pytest.raises(TrainError):            # ... and the caller's when it names one (training's controls)
        read_prompts(jl, TrainError)


def test_two_processes_with_torchrun(tiny, tmp_path):
    """DDP over gloo on 2 CPU processes (what `accelerate launch` / torchrun start)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port),
           "-m", "corpusforge", "train", str(SAMPLE / "corpus"), "--model", str(tiny), "--out", str(out),
           "--steps", "3", "--batch-size", "4", "--no-controls", "--eval-every", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["processes"] == 2 and run["steps"] == 3
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3   # one writer
    assert proc.stdout.count("wrote ") == 1


def test_marker_tokens_can_weigh_more(tiny):
    """--target-weight w: the supervised tokens inside a record's target spans weigh w in the loss."""
    lm = load_model(str(tiny))
    rec = json.loads((SAMPLE / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    [plain] = encode_records([rec], lm.tokenizer, loss_on=None, max_length=128)
    [heavy] = encode_records([rec], lm.tokenizer, loss_on=None, max_length=128, target_weight=5.0)
    assert plain.weights is None and heavy.supervised == plain.supervised
    enc = lm.tokenizer(rec["text"], return_offsets_mapping=True, add_special_tokens=False)
    marks = [(t["start"], t["end"]) for t in rec["targets"]]
    heavy_tokens = [t for t, w in zip(heavy.supervised, heavy.weights) if w == 5.0]
    assert heavy_tokens and all(any(a <= enc["offset_mapping"][t][0] < b for a, b in marks) for t in heavy_tokens)
    batch = collate([heavy, plain], pad_id=lm.tokenizer.pad_token_id)
    assert batch.weights is not None and float(batch.weights.sum()) == len(plain.supervised) * 2 + 4 * len(heavy_tokens)


def test_steps_come_from_the_corpus_when_not_given(tiny, tmp_path):
    """No --steps, no --epochs: max(40, ⌈96·(k+1) / examples per step⌉), k = the longest marker's tokens —
    printed at the start and recorded in run.json."""
    from corpusforge.train.recipe import steps_from_corpus

    tok = load_model(str(tiny)).tokenizer

    class Fixed:  # a tokenizer whose every marker is k tokens
        def __init__(self, k):
            self.k = k

        def __call__(self, text, add_special_tokens=False):
            return type("Enc", (), {"input_ids": [0] * self.k})()

    recs = [{"targets": [{"text": " then"}]}]
    assert steps_from_corpus(recs, Fixed(1), 8).steps == 40                 # English markers: the floor
    assert steps_from_corpus(recs, Fixed(6), 8).steps == 84                 # « движение»: 12 · 7
    assert steps_from_corpus(recs, Fixed(6), 32).steps == 40
    assert steps_from_corpus([{"targets": []}], Fixed(6), 8).longest_marker is None
    answers = steps_from_corpus(recs * 546, Fixed(1), 8, answers=True)     # answers: two passes, at least
    assert answers.steps == 137 and "2 passes" in answers.rule
    assert steps_from_corpus(recs * 10, Fixed(6), 8, answers=True).steps == 84
    rule = steps_from_corpus([json.loads(line) for line in
                              (SAMPLE / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()],
                             tok, 4)
    assert rule.marker_tokens >= 2 and rule.steps == max(40, -(-96 * (rule.marker_tokens + 1) // 4))
    lines = []
    out = tmp_path / "auto"
    train(SAMPLE / "corpus", out, make_config(dict(model=str(tiny), batch_size=4, eval_every=0, checkpoint_every=0,
                                                   use_controls=False)), echo=lines.append)
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == rule.steps and run["steps_rule"]["rule"].startswith("max(40")
    assert any("chosen from the corpus" in line for line in lines)


def test_a_language_the_controls_lack_is_warned_about(tiny, tmp_path):
    controls = tmp_path / "en-only.txt"
    controls.write_text("The capital of France is\nWater boils at\n", encoding="utf-8")
    lines = []
    train(SAMPLE / "corpus", tmp_path / "a", quick(tiny, controls=str(controls)), echo=lines.append)
    assert any(line.startswith("warning: the corpus has records in ru") for line in lines)
    lines.clear()
    train(SAMPLE / "corpus", tmp_path / "b", quick(tiny), echo=lines.append)   # the shipped set has Russian
    assert not any(line.startswith("warning") for line in lines)


def test_a_control_twice_in_a_controls_file_is_refused_at_its_line(run, tiny, tmp_path):
    """A prompt twice in a measured or held set weighs twice in every mean over it (the shipped held-out controls
    once held two prompts twice): training's and the report's --controls refuse it at the repeating line;
    `try --file`, which only continues its prompts, takes them as given."""
    from corpusforge.prompts import read_prompts

    twice = tmp_path / "controls.txt"
    twice.write_text("Water boils at\nThe capital of France is\n\nWater boils at\n", encoding="utf-8")
    bad = run("train", SAMPLE / "corpus", "--model", tiny, "--out", tmp_path / "a", "--steps", "2",
              "--controls", twice)
    assert bad.exit_code == 1 and "Traceback" not in bad.output, bad.output
    assert f"{twice}:4: this prompt is on line 1 already: 'Water boils at'" in bad.output
    assert "keep one copy" in bad.output and not (tmp_path / "a").exists()
    jsonl = tmp_path / "controls.jsonl"
    jsonl.write_text('{"prompt": "Солнце встаёт на", "language": "ru"}\n{"prompt": "Солнце встаёт на"}\n',
                     encoding="utf-8")
    with pytest.raises(TrainError, match="controls.jsonl:2: this prompt is on line 1 already"):
        read_prompts(jsonl, TrainError, what="controls file")
    assert len(read_prompts(twice, unique=False)) == 3
