"""Meeting other trainers: exports in TRL's dataset shapes, proven by training TRL's own SFTTrainer on them."""

from __future__ import annotations

import json

import pytest

from .conftest import SAMPLE
from .tiny import make_tiny_model

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|endoftext|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    """The tiny test model, with a chat template (SFTTrainer applies it to messages)."""
    from transformers import AutoTokenizer

    folder = make_tiny_model(tmp_path_factory.mktemp("tiny-chat") / "model")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("shape", ["prompt-completion", "messages"])
def test_trl_trains_on_each_export(run, tmp_path, tiny_chat_model, shape):
    """The exported folder loads with datasets.load_dataset (its card names the configs) and TRL's SFTTrainer
    runs two steps on it with a finite loss: the shapes are proven against the real consumer."""
    import math

    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = tmp_path / shape
    args = ["export", SAMPLE / "corpus", "--format", shape, "--out", out]
    if shape == "messages":
        args += ["--system", "Reason in structures."]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert {p.name for p in (out / "data").iterdir()} >= {"train.jsonl", "train-00000-of-00001.parquet"}
    first = json.loads((out / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert ds["train"][0] == first and len(ds["train"]) == sum(1 for _ in open(out / "data" / "train.jsonl"))
    if shape == "prompt-completion":
        rec = json.loads((SAMPLE / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
        assert first["prompt"] + first["completion"] == rec["text"]           # nothing lost at the seam
    else:
        assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model)
    cfg = SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=2, per_device_train_batch_size=4, use_cpu=True,
                    bf16=False, fp16=False, report_to=[], save_strategy="no", logging_steps=1, max_length=128,
                    dataloader_num_workers=0, disable_tqdm=True, seed=0)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds["train"], processing_class=tok)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == 2 and losses and all(math.isfinite(x) for x in losses)


def test_completion_from_and_bad_combinations(run, tmp_path):
    out = tmp_path / "pc"
    result = run("export", SAMPLE / "corpus", "--format", "prompt-completion", "--completion-from", "conclusion",
                 "--out", out)
    assert result.exit_code == 0 and "without a completion role left out" in result.output
    rows = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all(r["pattern"] == "paradox_conclusion" for r in rows)
    assert all(r["completion"].startswith((" therefore", " and therefore")) for r in rows)
    bad = run("export", SAMPLE / "corpus", "--format", "jsonl", "--system", "x", "--out", tmp_path / "b")
    assert bad.exit_code == 1 and "--system" in bad.output and not (tmp_path / "b").exists()


def test_merge_writes_a_plain_model_that_matches_the_adapter(run, tmp_path):
    """The merged folder loads with AutoModelForCausalLM and gives the adapter's outputs; a merge that does not
    match within the tolerance writes nothing."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from corpusforge.lm.load import load_model
    from corpusforge.train.loop import TrainConfig, train

    model = make_tiny_model(tmp_path / "model")
    adapter = tmp_path / "adapter"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(model), steps=6, lr=1e-2, batch_size=8, eval_every=0,
                                                  layers="all"), echo=lambda s: None)
    result = run("merge", "--adapter", adapter, "--out", tmp_path / "merged")
    assert result.exit_code == 0, result.output
    assert "KL(merged ‖ unmerged)" in result.output
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    card = (tmp_path / "merged" / "README.md").read_text(encoding="utf-8")
    assert str(model) in card and "corpus" in card and "KL(merged" in card
    lm = load_model(str(model))
    peft_model = PeftModel.from_pretrained(lm.model, str(adapter))
    ids = torch.tensor([lm.tokenizer("If the river freezes,", add_special_tokens=False).input_ids])
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, peft_model(input_ids=ids).logits, atol=1e-4)
    refused = run("merge", "--adapter", adapter, "--out", tmp_path / "m2", "--dtype", "bfloat16",
                  "--tolerance", "1e-9")
    assert refused.exit_code == 1 and "nothing was written" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "m2").exists() and not (tmp_path / ".m2.partial").exists()


def test_chat_format_training_supervises_the_answer_only(tiny_chat_model, tmp_path):
    """--format chat: the premise is the user's turn and what follows the assistant's, through the model's own
    chat template; the loss covers the chosen roles' tokens inside the answer, nothing of the template."""
    from transformers import AutoTokenizer

    from corpusforge.errors import TrainError
    from corpusforge.train.data import encode_chat_records
    from corpusforge.train.loop import TrainConfig, train

    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    rec = json.loads((SAMPLE / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    [ex] = encode_chat_records([rec], tok, loss_on=None, max_length=256)
    rendered = tok.apply_chat_template([{"role": "user", "content": rec["text"][:rec["segments"][1]["start"]].strip()},
                                        {"role": "assistant", "content": rec["text"][rec["segments"][1]["start"]:]
                                         .strip()}], tokenize=False)
    answer = rec["text"][rec["segments"][1]["start"]:].strip()
    supervised_text = tok.decode([ex.ids[t] for t in ex.supervised])
    assert supervised_text.replace(" ", "") == answer.replace(" ", "")     # exactly the answer's tokens
    assert "<|assistant|>" in rendered and "<|" not in supervised_text
    with pytest.raises(TrainError) as info:
        encode_chat_records([rec], tok, loss_on=None, max_length=6)    # the template eats every token
    assert rec["id"] in str(info.value)
    out = tmp_path / "chat-adapter"
    train(SAMPLE / "corpus", out, TrainConfig(model=str(tiny_chat_model), format="chat", steps=3, batch_size=4,
                                              eval_every=0, checkpoint_every=0), echo=lambda s: None)
    assert json.loads((out / "run.json").read_text())["config"]["format"] == "chat"


def test_chat_training_holds_controls_in_chat_form_too(tiny_chat_model):
    """Chat training moves how the model starts an answer; its KL penalty must see that place: every control
    prompt is held back in plain form and, beside it, as a user turn up to the assistant's start. Text training
    keeps the plain ones only."""
    from transformers import AutoTokenizer

    from corpusforge.train.loop import TrainConfig
    from corpusforge.train.prepare import _controls

    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    text = _controls(TrainConfig(format="text"), tok, {"en", "ru"}, echo=lambda s: None)
    chat = _controls(TrainConfig(format="chat", system="Be brief."), tok, {"en", "ru"}, echo=lambda s: None)
    assert len(chat) == 2 * len(text) > 0
    assert [e.ids for e in chat[0::2]] == [e.ids for e in text]                  # the plain form, unchanged
    second = tok.decode(chat[1].ids)
    assert second.startswith("<|system|>") and "Be brief." in second and second.endswith("<|assistant|>")
    assert tok.decode(text[0].ids) in second                                      # its prompt as the user's turn


def test_chat_probes_measure_where_the_adapter_is_used(tiny_chat_model, tmp_path):
    from corpusforge.shift.passes import probe_text
    from corpusforge.shift.probes import probes_from_corpus
    from corpusforge.shift.report import build_report
    from corpusforge.train.loop import TrainConfig, train

    probes = probes_from_corpus(SAMPLE / "corpus", limit=6, chat=True)
    assert all(p.chat for p in probes)
    starts = [p for p in probes if not p.prefix]
    assert starts and all(not p.targets[0].startswith(" ") for p in starts)   # "then" starts the answer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_chat_model)
    text = probe_text(tok, probes[0])
    assert text.startswith("<|user|>" + probes[0].prompt) and text.rstrip().endswith(
        probes[0].prefix or "<|assistant|>")
    adapter = tmp_path / "a"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(tiny_chat_model), format="chat", steps=3, batch_size=4,
                                                  eval_every=0, checkpoint_every=0), echo=lambda s: None)
    report = build_report(adapter, model=str(tiny_chat_model), corpus=SAMPLE / "corpus", max_probes=3, max_controls=3,
                          null_draws=1, neutral_prompts=2, echo=lambda s: None).model_dump()   # report.json's view
    assert all(p["chat"] for p in report["probes"])                       # chat form by default for this adapter
    _check_probe_rows_independently(tiny_chat_model, adapter, report["probes"])
    _check_numbers_in_range(report)
    assert any(abs(r["delta_logp"]) > 1e-3 for r in report["probes"])      # the adapter moved something


def _check_probe_rows_independently(model_folder, adapter, rows):
    """Each probe row's log-probabilities, before and after, equal plain transformers + peft's: the prompt as the
    user's turn through the tokenizer's own chat template (the answer begun by the probe's prefix), the target's
    tokens teacher-forced after it, the adapter disabled for 'before'."""
    import contextlib

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_folder)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_folder), str(adapter)).eval()
    assert rows
    for row in rows:
        turns = [{"role": "user", "content": row["prompt"]}]
        text = (tok.apply_chat_template(turns + [{"role": "assistant", "content": row["prefix"]}], tokenize=False,
                                        continue_final_message=True) if row["prefix"]
                else tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))
        prompt = tok(text, add_special_tokens=False).input_ids
        target_ids = tok(row["target"], add_special_tokens=False).input_ids
        for label, active in (("before", False), ("after", True)):
            with torch.no_grad(), (contextlib.nullcontext() if active else model.disable_adapter()):
                logp = torch.log_softmax(model(input_ids=torch.tensor([prompt + target_ids])).logits[0].float(), -1)
            first = len(prompt) - 1
            want = sum(float(logp[first + i, t]) for i, t in enumerate(target_ids))
            assert row[f"logp_{label}"] == pytest.approx(want, abs=1e-4), (row["prompt"], row["target"], label)
            rank = int((logp[first] > logp[first, target_ids[0]]).sum()) + 1
            assert row[f"rank_{label}"] == rank, (row["prompt"], row["target"], label)


def _check_numbers_in_range(report):
    """Every probe's and control's numbers are finite and where they must be; the headline's intervals are
    ordered and hold their point estimate."""
    import math

    for r in report["probes"]:
        for side in ("before", "after"):
            assert 0 <= r[f"p_{side}"] <= 1 and r[f"logp_{side}"] <= 0 and math.isfinite(r[f"logp_{side}"])
            assert r[f"p_{side}"] == pytest.approx(math.exp(r[f"logp_{side}"]))
            assert isinstance(r[f"rank_{side}"], int) and r[f"rank_{side}"] >= 1
        assert r["delta_logp"] == pytest.approx(r["logp_after"] - r["logp_before"])
        assert r["significant"] in (True, False)
    for c in report["controls"]:
        assert math.isfinite(c["kl"]) and c["kl"] >= -1e-6 and 0 <= c["js"] <= math.log(2) + 1e-6
    head = report["headline"]
    assert head["delta_logp_ci95"][0] <= head["mean_delta_logp"] <= head["delta_logp_ci95"][1]
    assert head["control_kl_ci95"][0] <= head["mean_control_kl"] <= head["control_kl_ci95"][1]
    assert 0 <= head["top1_kept_share"] <= 1 and head["significant"] in (True, False)


def test_try_shows_before_and_after_as_json(run, tmp_path):
    from corpusforge.train.loop import TrainConfig, train

    model = make_tiny_model(tmp_path / "model")
    adapter = tmp_path / "adapter"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(model), steps=6, lr=1e-2, batch_size=8, eval_every=0,
                                                  layers="all"), echo=lambda s: None)
    result = run("try", "--adapter", adapter, "If the river freezes,", "Смысл — это", "--target", " then",
                 "--format", "json", "--max-new-tokens", "6")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["prompt"] for r in rows] == ["If the river freezes,", "Смысл — это"]
    for r in rows:
        assert len(r["top_before"]) == 5 and r["top_before"] != r["top_after"]
        assert {"p", "rank"} <= set(r["target_before"]) and r["target_after"]["p"] != r["target_before"]["p"]
        assert r["greedy_diff"] and r["sampled_before"] is not None
    text = run("try", "--adapter", adapter, "If the river freezes,", "--target", " then", "--max-new-tokens", "4")
    assert text.exit_code == 0 and "target ' then': p " in text.output and "greedy  after:" in text.output
    bad = run("try", "--adapter", adapter)
    assert bad.exit_code == 1 and "no prompt given" in bad.output


def test_the_demo_without_training(run, tmp_path):
    result = run("demo", "--out", tmp_path / "d", "--n", "300", "--no-train")
    assert result.exit_code == 0, result.output
    assert "definition_movement.ru" in result.output and "records: 300" in result.output
