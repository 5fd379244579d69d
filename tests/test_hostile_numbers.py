"""Hostile input, round two (issue 28): damaged adapters, NaN weights, numbers past int64, a hostile environment,
a full disk. Each case ends with one "Error:" line and exit 1 or 2 (or the right success), no traceback, and
nothing half-written under a final name. The helpers are test_hostile's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from corpusforge.errors import ReportError

from .conftest import SAMPLE
from .test_hostile import cf, nothing_under, refused

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
@example(cut=0.99999, extra=b"\x00")    # found in CI: as many bytes put back as were cut (skipped, see below)
@example(cut=0.99999, extra=b"\x00\x00")   # one byte cut, two put back: refused
def test_any_cut_or_garbage_in_the_weights_is_named(tiny_adapter, tmp_path_factory, cut, extra):
    """The weights file cut anywhere (and garbage put after the cut) is refused, naming the file."""
    from corpusforge.lm.adapter import check_adapter

    _, adapter = tiny_adapter
    damaged = _copy(adapter, tmp_path_factory.mktemp("cut"))
    data = (damaged / WEIGHTS).read_bytes()
    cut_data = data[:int(cut * len(data))] + extra
    # garbage that puts back exactly as many bytes as were cut keeps the file whole in structure (only the last
    # tensor's values change, which no structural check can tell, and a NaN is refused elsewhere): not this case
    assume(len(cut_data) != len(data))
    (damaged / WEIGHTS).write_bytes(cut_data)
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
    monkeypatch.setattr(merge.passes, "kl", lambda p, q: 0.0)
    refused(run("merge", "--adapter", big, "--out", tmp_path / "m", "--dtype", "float16"),
            "the merged weights (float16) hold NaN or infinity", "nothing was written")
    nothing_under(tmp_path, "m")


# ---------------------------------------------------------------------------
# Integers past int64: refused where they enter, by the option or the record contract


@pytest.mark.parametrize("args", [
    ["generate", "--template", "if_then.en", "--n", 10**20, "--out", "{tmp}/c"],
    ["generate", "--template", "if_then.en", "--n", "3", "--seed", 2**70, "--out", "{tmp}/c"],
    ["generate", "--template", "if_then.en", "--n", "3", "--seed", -(2**63) - 1, "--out", "{tmp}/c"],
    ["train", SAMPLE / "corpus", "--steps", "1", "--seed", 2**70, "--out", "{tmp}/c"],
    ["train", SAMPLE / "corpus", "--steps", "1", "--warmup", 2**64, "--out", "{tmp}/c"],
    ["templates", "show", "if_then.en", "--seed", 2**70],
    ["demo", "--seed", 2**70, "--out", "{tmp}/c"],
    ["validate", SAMPLE / "corpus", "--max-errors", 2**64],
    ["push", SAMPLE / "corpus", "--repo", "me/x", "--retries", 2**64, "--dry-run", "--staging", "{tmp}/s"],
], ids=["generate-n", "generate-seed", "generate-seed-low", "train-seed", "train-warmup", "templates-seed",
        "demo-seed", "validate-max-errors", "push-retries"])
def test_integer_options_past_int64_are_usage_errors(run, tmp_path, args):
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    refused(run(*args), "past the 64-bit integer range", codes=(2,))
    nothing_under(tmp_path, "c")


def test_every_integer_option_is_bounded():
    """No command has an integer option of click's unbounded INT (or an IntRange open at one end)."""
    import click

    from corpusforge.cli import main
    from corpusforge.cli.options import Int

    def commands(group):
        for cmd in group.commands.values():
            yield from commands(cmd) if isinstance(cmd, click.Group) else [cmd]

    ints = [(cmd.name, p.name, p.type) for cmd in commands(main) for p in cmd.params
            if isinstance(p.type, (click.types.IntParamType, click.IntRange))]
    assert len(ints) >= 20
    assert [(c, p) for c, p, t in ints if not isinstance(t, Int)] == []


@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.integers(min_value=INT64_MAX + 1, max_value=2**100),
                       st.integers(min_value=-(2**100), max_value=-(2**63) - 1)))
def test_config_files_past_int64_are_refused_too(value):
    from corpusforge.errors import GenerateError, TrainError
    from corpusforge.generate import GenerateConfig
    from corpusforge.train.config import load_config

    with pytest.raises(TrainError):
        load_config(None, seed=value)
    with pytest.raises(GenerateError, match="past the 64-bit integer range"):
        GenerateConfig(templates=["if_then.en"], seed=value).check()


def _meta_holding(good_record: dict, meta: dict) -> dict:
    return dict(good_record, meta=meta)


@pytest.mark.parametrize("meta, where", [({"x": 10**30}, "$.meta.x"), ({"x": 2**63}, "$.meta.x"),
                                         ({"a": {"b": [1, -(2**63) - 1]}}, "$.meta.a.b[1]")])
def test_meta_past_int64_is_refused_by_validate_with_file_line_and_field(run, tmp_path, good_record, meta, where):
    from .conftest import write_jsonl
    from .test_hostile import corpus_copy

    corpus = corpus_copy(tmp_path)
    write_jsonl(corpus / "data" / "train.jsonl", [good_record, _meta_holding(good_record, meta)])
    result = run("validate", corpus)
    assert result.exit_code == 1 and f"train.jsonl:2: {where}: holds the integer" in result.output, result.output
    for command in (["export", corpus, "--format", "parquet", "--out", tmp_path / "e"],
                    ["export", corpus, "--format", "jsonl", "--out", tmp_path / "e"], ["stats", corpus]):
        refused(run(*command), "train.jsonl:2", where, "64-bit")
    nothing_under(tmp_path, "e")


@settings(max_examples=150, deadline=None)
@given(meta=st.recursive(st.one_of(st.integers(min_value=-(2**80), max_value=2**80), st.booleans(), st.none(),
                                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3)),
                         lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                 st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                         max_leaves=8).filter(lambda m: isinstance(m, dict)))
def test_the_fast_path_and_the_model_agree_on_meta(meta):
    """is_sound (validation's fast path) and Record + structural_errors give the same verdict on any meta."""
    from corpusforge.patterns import BUILTIN_PATTERNS
    from corpusforge.records import RECORD_DICT_VALIDATOR, Record, is_sound, structural_errors

    line = (SAMPLE / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    rec = dict(json.loads(line), meta=meta)
    fast = is_sound(RECORD_DICT_VALIDATOR.validate_python(rec), BUILTIN_PATTERNS)
    slow = not structural_errors(Record.model_validate(rec), BUILTIN_PATTERNS)
    assert fast == slow
    exportable = True
    try:
        import orjson

        orjson.dumps(meta)   # what export does with meta
    except TypeError:
        exportable = False
    if slow:
        assert exportable


# ---------------------------------------------------------------------------
# A hostile environment: bytes that are not UTF-8, a terminal that is not UTF-8, bad Hub settings


def _cf_bytes(*args: bytes, env: dict | None = None, encoding: str = "utf-8"):
    """The CLI in its own process with raw bytes for arguments (what a shell passes on), its output read in
    ``encoding``."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    return subprocess.run([sys.executable.encode(), b"-m", b"corpusforge", *args], capture_output=True,
                          encoding=encoding, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})), timeout=60)


@pytest.mark.parametrize("system", [b"\xff\xfe", b"ok \xc3(", b"--system=\xed\xa0\x80"], ids=["ff-fe", "broken", "eq"])
def test_arguments_that_are_not_utf8_are_a_usage_error(tmp_path, system):
    args = [system] if system.startswith(b"--") else [b"--system", system]
    result = _cf_bytes(b"export", str(SAMPLE / "corpus").encode(), b"--format", b"messages", *args,
                       b"--out", str(tmp_path / "e").encode())
    refused(result, "--system is not valid UTF-8", codes=(2,))
    nothing_under(tmp_path, "e")


def test_an_argument_that_is_not_utf8_in_process(run, tmp_path):
    """Python keeps such bytes in argv as lone surrogates; that is what the CLI sees."""
    refused(run("train", SAMPLE / "corpus", "--out", tmp_path / "a", "--system", "x\udcff"),
            "the value of --system is not valid UTF-8 (byte 0xff", codes=(2,))
    refused(run("validate", "\udcc3("), "argument 2 is not valid UTF-8", codes=(2,))


@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "latin-1"}, {"PYTHONIOENCODING": "ascii"},
                                 {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": ""}],
                         ids=["latin-1", "ascii", "lang-c"])
def test_a_terminal_that_is_not_utf8_still_gets_the_output(env):
    """Cyrillic output on a latin-1 or ASCII stdout: the right success (letters latin-1 lacks as escapes; click
    writes UTF-8 to an ASCII stream), no traceback."""
    encoding = "latin-1" if env["PYTHONIOENCODING"] == "latin-1" else "utf-8"
    for args in ([b"stats", str(SAMPLE / "corpus").encode()], [b"templates", b"show", b"if_then.ru", b"--n", b"2"]):
        result = _cf_bytes(*args, env=env, encoding=encoding)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    if encoding == "latin-1":
        assert "\\u0435" in result.stdout and "«" in result.stdout   # е as an escape, « as itself


def test_an_error_naming_a_non_ascii_path_on_an_ascii_terminal(tmp_path):
    refused(cf("validate", tmp_path / "файл.jsonl", env={"PYTHONIOENCODING": "ascii"}), "was not found")


HUB_ENV = {"HF_TOKEN": "hf_test", "HF_HUB_DISABLE_XET": "1"}


@pytest.mark.parametrize("env, words", [
    ({"HF_TOKEN": "hf_tök€n"}, "HF_TOKEN holds a character that is not a printable ASCII"),
    ({"HF_TOKEN": "hf_te st"}, "HF_TOKEN holds a character that is not a printable ASCII"),
    ({"HF_ENDPOINT": "http://[::1"}, "HF_ENDPOINT is not an http(s) URL"),
    ({"HF_ENDPOINT": "not a url"}, "HF_ENDPOINT is not an http(s) URL"),
    ({"HF_ENDPOINT": "http://127.0.0.1:99999"}, "HF_ENDPOINT is not an http(s) URL"),
    ({"ALL_PROXY": "socks5://user:secret@127.0.0.1:9"}, "ALL_PROXY is a SOCKS proxy (socks5), which needs"),
    ({"https_proxy": "socks5h://127.0.0.1:9"}, "https_proxy is a SOCKS proxy"),
], ids=["token-non-ascii", "token-space", "endpoint-ipv6", "endpoint-words", "endpoint-port", "socks", "socks-h"])
def test_bad_hub_settings_are_one_line_before_the_network(tmp_path, env, words):
    import importlib.util

    if "SOCKS" in words and importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed here: a SOCKS proxy works")
    from .test_hostile import corpus_copy

    corpus = corpus_copy(tmp_path)
    line = refused(cf("push", corpus, "--repo", "me/x", "--retries", "1",
                      env={**HUB_ENV, "HF_HOME": str(tmp_path / "hf"), **env}), words)
    assert "secret" not in line and "tök€n" not in line
    assert not (tmp_path / "corpus.hub-staging").exists()
    if "HF_ENDPOINT" in env:   # huggingface_hub reads it on import: every command that imports it is covered
        refused(cf("train", corpus, "--model", "me/model", "--out", tmp_path / "a", env=env), words)
    if "SOCKS" in words:       # a Hub model id goes to the network too
        refused(cf("train", corpus, "--model", "me/model", "--out", tmp_path / "a", env=env), words)
    nothing_under(tmp_path, "a")


# ---------------------------------------------------------------------------
# A full disk: one line, and nothing half-written under the final name


@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 KiB tmpfs (a real full disk; needs root and mount), unmounted after the test."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?); test_merge_onto_a_disk_that_fills_up covers it")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_merge_onto_a_full_disk(run, tiny_adapter, tiny_disk):
    _, adapter = tiny_adapter
    refused(run("merge", "--adapter", adapter, "--out", tiny_disk / "m"), "no space left on the device",
            "nothing was written", str(tiny_disk / "m"))
    assert list(tiny_disk.iterdir()) == []


def test_merge_onto_a_disk_that_fills_up(run, tiny_adapter, tmp_path, monkeypatch):
    """The disk filling up at the last file (simulated in-process: the README's write raises ENOSPC, after the
    weights and tokenizer were written): one line, and the partial folder removed."""
    import errno

    from corpusforge import merge

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    _, adapter = tiny_adapter
    monkeypatch.setattr(merge, "write_atomic", full)
    refused(run("merge", "--adapter", adapter, "--out", tmp_path / "m"), "no space left on the device",
            "nothing was written")
    nothing_under(tmp_path, "m")
