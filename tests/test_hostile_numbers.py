"""Hostile input, round two (issue 28): damaged adapters, NaN weights, numbers past int64, a hostile environment,
a full disk. Each case ends with one "Error:" line and exit 1 or 2 (or the right success), no traceback, and
nothing half-written under a final name. The helpers are test_hostile's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpusforge.errors import ReportError

from .conftest import SAMPLE
from .test_hostile import nothing_under, refused

INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory):
    """A tiny model and an adapter trained one step on the sample corpus (what it learned does not matter)."""
    from corpusforge.train.config import TrainConfig
    from corpusforge.train.loop import train

    from .tiny import make_tiny_model

    work = tmp_path_factory.mktemp("numbers")
    model = make_tiny_model(work / "model")
    adapter = work / "adapter"
    train(SAMPLE / "corpus", adapter, TrainConfig(model=str(model), steps=1, batch_size=2, eval_every=0,
                                                  checkpoint_every=0), echo=lambda s: None)
    return model, adapter


def _copy(adapter: Path, tmp_path: Path, name: str = "damaged") -> Path:
    out = tmp_path / name
    shutil.copytree(adapter, out)
    return out


# ---------------------------------------------------------------------------
# Damaged adapters: the file at fault and what to do, before peft (or the Hub) is reached

WEIGHTS = "adapter_model.safetensors"


def _empty_weights(a: Path):
    (a / WEIGHTS).write_bytes(b"")
    return WEIGHTS, "empty"


def _truncated_weights(a: Path):
    data = (a / WEIGHTS).read_bytes()
    (a / WEIGHTS).write_bytes(data[:len(data) // 2])
    return WEIGHTS, "truncated"


def _missing_weights(a: Path):   # peft would go to the Hub for it
    (a / WEIGHTS).unlink()
    return WEIGHTS, "missing"


def _config_list(a: Path):
    (a / "adapter_config.json").write_text("[]")
    return "adapter_config.json", "must be a JSON object"


def _config_wrong_types(a: Path):
    config = json.loads((a / "adapter_config.json").read_text())
    config["r"] = "eight"
    (a / "adapter_config.json").write_text(json.dumps(config))
    return "adapter_config.json", "r: must be a whole number"


def _config_targets_a_number(a: Path):
    config = json.loads((a / "adapter_config.json").read_text())
    config["target_modules"] = 5
    (a / "adapter_config.json").write_text(json.dumps(config))
    return "adapter_config.json", "target_modules: must be a string or a list"


def _run_nested_deep(a: Path):
    (a / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    return "run.json", "more than 64 deep"


DAMAGES = {f.__name__.lstrip("_"): f for f in (_empty_weights, _truncated_weights, _missing_weights, _config_list,
                                               _config_wrong_types, _config_targets_a_number, _run_nested_deep)}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_adapter_is_named_for_try_merge_and_report(run, tiny_adapter, tmp_path, damage):
    model, adapter = tiny_adapter
    damaged = _copy(adapter, tmp_path)
    file, words = DAMAGES[damage](damaged)
    commands = [["try", "--adapter", damaged, "If the lake freezes,", "--device", "cpu"],
                ["merge", "--adapter", damaged, "--out", tmp_path / "m", "--model", model],
                ["report", "--model", model, "--adapter", damaged, "--out", tmp_path / "r", "--corpus",
                 SAMPLE / "corpus"]]
    for command in commands:
        line = refused(run(*command), words, file)
        if file != "run.json":
            assert "train it again" in line
    nothing_under(tmp_path, "m")
    nothing_under(tmp_path, "r")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0, 1, exclude_max=True), extra=st.binary(max_size=16))
def test_any_cut_or_garbage_in_the_weights_is_named(tiny_adapter, tmp_path_factory, cut, extra):
    """The weights file cut anywhere (and garbage put after the cut) is refused, naming the file."""
    from corpusforge.lm.adapter import check_adapter

    _, adapter = tiny_adapter
    damaged = _copy(adapter, tmp_path_factory.mktemp("cut"))
    data = (damaged / WEIGHTS).read_bytes()
    (damaged / WEIGHTS).write_bytes(data[:int(cut * len(data))] + extra)
    with pytest.raises(ReportError) as info:
        check_adapter(damaged)
    assert info.value.file == str(damaged / WEIGHTS)


CONFIG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**70), st.floats(), st.text(max_size=6),
                          st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
                          st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "peft_type",
                              "layers_to_transform", "rank_pattern", "fan_in_fan_out", "bias", "use_dora"]),
       value=CONFIG_VALUES)
def test_adapter_config_fields_of_the_wrong_type_are_named(tiny_adapter, tmp_path_factory, field, value):
    """Whatever a field holds, the check passes it on to peft as peft expects it, or names it."""
    from peft import LoraConfig

    from corpusforge.lm.adapter import check_adapter

    _, adapter = tiny_adapter
    damaged = _copy(adapter, tmp_path_factory.mktemp("cfg"))
    config = json.loads((damaged / "adapter_config.json").read_text())
    config[field] = value
    (damaged / "adapter_config.json").write_text(json.dumps(config))
    try:
        checked = check_adapter(damaged)
    except ReportError as e:
        assert e.file == str(damaged / "adapter_config.json")
        return
    checked.pop("peft_type")
    LoraConfig(**{k: v for k, v in checked.items() if k in LoraConfig.__dataclass_fields__})


def test_try_with_an_empty_prompt(run, tiny_adapter):
    _, adapter = tiny_adapter
    refused(run("try", "--adapter", adapter, ""), "prompt 1 is empty")
    refused(run("try", "--adapter", adapter, "If the lake", "  "), "prompt 2 is empty")


# ---------------------------------------------------------------------------
# NaN and infinity: never written as a model, never printed as a probability


def _fill_weights(adapter: Path, tmp_path: Path, value: float, name: str) -> Path:
    import torch
    from safetensors.torch import load_file, save_file

    out = _copy(adapter, tmp_path, name)
    tensors = load_file(str(out / WEIGHTS))
    save_file({k: torch.full_like(v, value) for k, v in tensors.items()}, str(out / WEIGHTS))
    return out


def test_an_adapter_of_nan_weights_is_refused_by_try_merge_and_report(run, tiny_adapter, tmp_path):
    model, adapter = tiny_adapter
    nan = _fill_weights(adapter, tmp_path, float("nan"), "nan")
    for command in (["try", "--adapter", nan, "If the lake freezes,", "--target", " then"],
                    ["merge", "--adapter", nan, "--out", tmp_path / "m"],
                    ["report", "--model", model, "--adapter", nan, "--out", tmp_path / "r", "--corpus",
                     SAMPLE / "corpus"]):
        refused(run(*command), "the adapter's weights hold NaN or infinity", str(nan / WEIGHTS))
    nothing_under(tmp_path, "m")
    nothing_under(tmp_path, "r")


def test_finite_weights_that_overflow_give_no_nan_probabilities(run, tiny_adapter, tmp_path):
    """Weights of 1e30 are finite, but the model's outputs are not: try and report refuse, naming the adapter."""
    model, adapter = tiny_adapter
    huge = _fill_weights(adapter, tmp_path, 1e30, "huge")
    for command in (["try", "--adapter", huge, "If the lake freezes,", "--target", " then", "--format", "json"],
                    ["report", "--model", model, "--adapter", huge, "--out", tmp_path / "r", "--corpus",
                     SAMPLE / "corpus"], ["merge", "--adapter", huge, "--out", tmp_path / "m"]):
        refused(run(*command), "gives NaN or infinite probabilities", str(huge))
    nothing_under(tmp_path, "m")
    nothing_under(tmp_path, "r")


def test_try_checks_every_prompts_probabilities(run, tiny_adapter, tmp_path, monkeypatch):
    """The check after loading looks at one prompt; every probability try prints is checked too."""
    from corpusforge.shift import build

    _, adapter = tiny_adapter
    huge = _fill_weights(adapter, tmp_path, 1e30, "huge")
    monkeypatch.setattr(build, "_check_finite_outputs", lambda *a: None)
    refused(run("try", "--adapter", huge, "If the lake freezes,"), "NaN or infinite probabilities", str(huge))


def test_merge_refuses_a_model_whose_fidelity_is_nan(run, tiny_adapter, tmp_path):
    """Weights of 100 overflow float16 once merged (the unmerged adapter stays finite): the largest KL is NaN,
    and NaN > tolerance is false — the merge must still be refused, and nothing written."""
    _, adapter = tiny_adapter
    big = _fill_weights(adapter, tmp_path, 100.0, "big")
    refused(run("merge", "--adapter", big, "--out", tmp_path / "m", "--dtype", "float16"),
            "the merged model (float16) gives NaN or infinite probabilities", "nothing was written")
    nothing_under(tmp_path, "m")


def test_merge_checks_the_merged_weights_before_writing(run, tiny_adapter, tmp_path, monkeypatch):
    """Even with a fidelity check that passes (here forced to), non-finite merged weights are never written."""
    from corpusforge import merge

    _, adapter = tiny_adapter
    big = _fill_weights(adapter, tmp_path, 100.0, "big")
    monkeypatch.setattr(merge.measure, "kl", lambda p, q: 0.0)
    refused(run("merge", "--adapter", big, "--out", tmp_path / "m", "--dtype", "float16"),
            "the merged weights (float16) hold NaN or infinity", "nothing was written")
    nothing_under(tmp_path, "m")
