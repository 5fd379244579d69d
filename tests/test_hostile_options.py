"""Hostile input, round two (issue 28): options that were silently surprising, a detector that hung on a long line,
a reader of stdout that leaves, workers without bound, and SIGTERM during training.

The conventions are those of ``test_hostile``: one error line with exit 1 or 2, no traceback, nothing under a final
name; anything that could hang runs in its own process with a time limit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusforge.errors import HubError, TrainError

from .conftest import ROOT, SAMPLE
from .test_hostile import LIMIT, cf, corpus_copy, nothing_under, refused

ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")

# ---------------------------------------------------------------------------
# The detector: linear in the text, the same verdicts as the regex it replaced


def old_regex(cues: tuple[str, ...]) -> re.Pattern:
    """The detector's former test of a cue sequence: one regex, ``cue1.*?cue2.*?cue3`` (quadratic when it fails)."""
    parts = [r"(?<!\w)" + re.escape(c) + r"(?!\w)" for c in cues]
    return re.compile(".*?".join(parts), re.IGNORECASE | re.DOTALL)


CUES = st.sampled_from(["if", "then", "and yet", "therefore", "a", "é", "то", "if then", "what remains"])
PIECES = st.sampled_from(["if", "If", "IF", "then", "THEN", "and yet", "and  yet", "therefore", "a", "A", "é", "É",
                          "то", "То", "x", "_", "1", "-", "'", " ", " ", ",", ";", ".", "\n", "\u2028", "ifthen",
                          "thenif", "what", "remains", "é̀"])


@settings(max_examples=600, deadline=None)
@given(cues=st.lists(CUES, min_size=1, max_size=4).map(tuple), pieces=st.lists(PIECES, max_size=14))
def test_the_cue_scan_says_what_the_regex_said(cues, pieces):
    from corpusforge.templates.detect import CueSequence

    text = "".join(pieces)
    sequence = CueSequence("p", "p.en@1", cues, ())
    assert sequence.found_in(text) == (old_regex(cues).search(text) is not None), (cues, text)


def test_a_one_megabyte_line_is_detected_within_the_limit(tmp_path):
    """``if if if …`` with no ``then``: the old regex retried from every ``if`` (140 KB took 15 s, 1 MB over 60 s)."""
    texts = tmp_path / "long.txt"
    texts.write_text("if " * 350_000 + "\n" + "If it rains then it pours. " * 40_000 + "\n", encoding="utf-8")
    result = cf("detect", texts)   # a hang is a timeout here
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{texts}:1: —" in result.stdout and f"{texts}:2: if_then" in result.stdout
    assert "2 text(s)" in result.stdout


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_a_line_separator_inside_a_record_does_not_split_it(run, tmp_path, separator):
    """str.splitlines cuts at these; JSON holds the first three raw, and a plain text line any of them."""
    text = f"If it rains{separator} then the river rises."
    data = tmp_path / "texts.jsonl"
    data.write_text(json.dumps({"text": text}, ensure_ascii=False) + "\n" + text + "\n" + json.dumps({"text": "x"})
                    + "\r\n", encoding="utf-8")
    result = run("detect", data, "--format", "json")
    rows = json.loads(result.output)["texts"]
    assert [(r["line"], r["patterns"]) for r in rows] == [(1, ["if_then"]), (2, ["if_then"]), (3, [])]


def test_line_separators_inside_control_and_probe_files(tmp_path):
    from corpusforge.prompts import read_prompts
    from corpusforge.shift.probes import read_probes

    controls = tmp_path / "controls.jsonl"
    controls.write_text(json.dumps({"prompt": "one\u2028two", "kind": "x"}, ensure_ascii=False) + "\r\n"
                        + "a plain\u2029prompt\r\n", encoding="utf-8")
    assert [p["prompt"] for p in read_prompts(controls)] == ["one\u2028two", "a plain\u2029prompt"]
    probes = tmp_path / "probes.jsonl"
    probes.write_text(json.dumps({"prompt": "If it rains\u2028", "targets": [" then"]}, ensure_ascii=False) + "\n",
                      encoding="utf-8")
    assert [p.prompt for p in read_probes(probes)] == ["If it rains\u2028"]


# ---------------------------------------------------------------------------
# Options that silently meant something else


@pytest.mark.parametrize("args, words", [
    (["--mix", "if_then.en=1,if_then.en=2"], ["--mix", "'if_then.en' is given twice"]),
    (["--mix", "if_then.en=1, if_then.en =1,silence.en=1"], ["--mix", "'if_then.en' is given twice"]),
    (["--template", "if_then.en", "--split", "train=0.5,train=0.5"], ["--split", "'train' is given twice"]),
])
def test_a_name_given_twice_is_a_usage_error(run, tmp_path, args, words):
    refused(run("generate", *args, "--n", "5", "--out", tmp_path / "c"), *words, codes=(2,))
    nothing_under(tmp_path, "c")


@pytest.mark.parametrize("option, value", [("--layers", ""), ("--layers", " , "), ("--loss-on", ""),
                                           ("--loss-on", ",")])
def test_a_blank_training_option_is_a_usage_error_not_the_default(run, tmp_path, option, value):
    refused(run("train", SAMPLE / "corpus", "--model", "/nonexistent", "--out", tmp_path / "a", option, value),
            option, "is empty", codes=(2,))
    nothing_under(tmp_path, "a")


def test_a_blank_layers_or_loss_on_in_a_config_file_is_refused_too(run, tmp_path):
    from corpusforge.train.config import load_config

    for key, value, words in [("layers", '""', "--layers is empty"), ("loss_on", '""', "--loss-on names no role"),
                              ("loss_on", "[]", "--loss-on names no role")]:
        (tmp_path / "t.yaml").write_text(f"{key}: {value}\n", encoding="utf-8")
        refused(run("train", SAMPLE / "corpus", "--config", tmp_path / "t.yaml", "--model", "/nonexistent", "--out",
                    tmp_path / "a"), words)
        with pytest.raises(TrainError, match=words):
            load_config(tmp_path / "t.yaml")
    nothing_under(tmp_path, "a")
    assert load_config(None, layers="all").layers == "all"


@pytest.mark.parametrize("fmt", ["prompt-completion", "messages"])
@pytest.mark.parametrize("value, words", [
    ("nope", ["--completion-from", "no pattern of the corpus has a role 'nope'", "if_then: condition, consequence"]),
    ("thesis", ["--completion-from thesis", "first role of paradox_conclusion", "nothing comes before it"]),
    ("consequence,condition", ["--completion-from condition", "first role of if_then"]),
    ("", ["--completion-from names no role"]),
    (" , ", ["--completion-from names no role"]),
])
def test_completion_from_a_role_that_cannot_start_one_is_a_usage_error(run, tmp_path, fmt, value, words):
    refused(run("export", SAMPLE / "corpus", "--format", fmt, "--completion-from", value, "--out", tmp_path / "e"),
            *words, codes=(2,))
    nothing_under(tmp_path, "e")


def test_completion_from_is_checked_by_push_and_the_library_too(run, tmp_path):
    from corpusforge.hub.dataset import export_corpus
    from corpusforge.hub.shapes import ShapeOptions

    corpus = corpus_copy(tmp_path)
    refused(run("push", corpus, "--repo", "me/x", "--format", "messages", "--completion-from", "thesis",
                "--dry-run"), "first role of paradox_conclusion", codes=(2,))
    assert not (tmp_path / "corpus.hub-staging").exists()
    with pytest.raises(HubError, match="no pattern of the corpus has a role 'nope'"):
        export_corpus(corpus, tmp_path / "e", "prompt-completion",
                      shape=ShapeOptions("prompt-completion", completion_from=["nope"]))
    nothing_under(tmp_path, "e")
    result = run("export", corpus, "--format", "prompt-completion", "--completion-from", "conclusion",
                 "--out", tmp_path / "e")
    assert result.exit_code == 0 and "without a completion role left out" in result.output
    rows = [json.loads(line) for line in (tmp_path / "e" / "data" / "train.jsonl").read_text().splitlines()]
    assert rows and all(r["pattern"] == "paradox_conclusion" and r["prompt"] for r in rows)


# ---------------------------------------------------------------------------
# Workers: never more processes than cores or work


def test_workers_past_the_cores_start_one_per_core_at_most(run, tmp_path, monkeypatch):
    import multiprocessing.pool

    from corpusforge.generate.pool import cores

    started = []
    real_init = multiprocessing.pool.Pool.__init__

    def counting_init(self, processes=None, *args, **kwargs):
        started.append(processes)
        if processes is None or processes > cores():
            raise AssertionError(f"a pool of {processes} processes on {cores()} core(s)")
        real_init(self, processes, *args, **kwargs)

    monkeypatch.setattr(multiprocessing.pool.Pool, "__init__", counting_init)
    result = run("generate", "--template", "if_then.en", "--n", "2500", "--workers", "100000",
                 "--out", tmp_path / "many")
    assert result.exit_code == 0, result.output
    assert f"note: --workers 100000 is more than the {cores()} core(s) here; using at most {cores()}" in result.output
    assert all(p <= min(cores(), 3) for p in started)   # 2,500 records: 3 blocks of 1,000 units at most
    run("generate", "--template", "if_then.en", "--n", "2500", "--out", tmp_path / "one")
    for split in ("train", "validation", "test"):      # the same corpus whatever --workers
        assert (tmp_path / "many" / "data" / f"{split}.jsonl").read_bytes() == \
            (tmp_path / "one" / "data" / f"{split}.jsonl").read_bytes()
    started.clear()
    assert run("generate", "--template", "if_then.en", "--n", "20", "--workers", "2",
               "--out", tmp_path / "small").exit_code == 0
    assert started == []   # one block of work: drawn here, no pool at all


def test_a_hundred_thousand_workers_in_a_real_process(tmp_path):
    result = cf("generate", "--template", "if_then.en", "--n", "20", "--workers", "100000", "--out", tmp_path / "c")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "note: --workers 100000 is more than the" in result.stderr and "wrote 20 records" in result.stdout


# ---------------------------------------------------------------------------
# A reader of stdout that leaves: quiet, exit 141 (as a shell reports SIGPIPE)


def test_detect_piped_to_head_ends_quietly(tmp_path):
    texts = tmp_path / "many.txt"
    texts.write_text("If it rains then the river rises.\n" * 30_000, encoding="utf-8")   # far past a pipe's buffer
    producer = subprocess.Popen([sys.executable, "-m", "corpusforge", "detect", str(texts)], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-1"], stdin=producer.stdout, capture_output=True, text=True, timeout=LIMIT)
    producer.stdout.close()
    err = producer.stderr.read().decode()
    assert producer.wait(timeout=LIMIT) == 141, err
    assert head.stdout == f"{texts}:1: if_then\n"
    assert err == ""   # not "Error: Broken pipe", no "Exception ignored"


def test_stats_whose_reader_is_gone_ends_quietly(tmp_path):
    read, write = os.pipe()
    os.close(read)   # the reader left before the first line
    try:
        result = subprocess.run([sys.executable, "-m", "corpusforge", "stats", str(SAMPLE / "corpus")], env=ENV,
                                stdout=write, stderr=subprocess.PIPE, text=True, timeout=LIMIT)
    finally:
        os.close(write)
    assert result.returncode == 141 and result.stderr == "", result.stderr


def test_stats_piped_to_head(tmp_path):
    result = subprocess.run(f"{sys.executable} -m corpusforge stats {SAMPLE / 'corpus'} | head -1; "
                            "echo \"exit ${PIPESTATUS[0]}\"", shell=True, executable="/bin/bash", env=ENV,
                            capture_output=True, text=True, timeout=LIMIT)
    lines = result.stdout.splitlines()
    assert lines[0] == "records: 200" and lines[-1] in ("exit 0", "exit 141")   # 0 when it all fit in the pipe
    assert result.stderr == ""


# ---------------------------------------------------------------------------
# SIGTERM during training: a checkpoint, as Ctrl-C


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_terminated_training_run_saves_its_checkpoint(tmp_path_factory, tmp_path, signum):
    from .tiny import make_tiny_model

    model = make_tiny_model(tmp_path_factory.getbasetemp() / "tiny-signal" / "model")
    out = tmp_path / "a"
    proc = subprocess.Popen([sys.executable, "-m", "corpusforge", "train", str(SAMPLE / "corpus"), "--model",
                             str(model), "--out", str(out), "--steps", "100000", "--batch-size", "2", "--eval-every",
                             "0", "--checkpoint-every", "0", "--no-progress"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    metrics = tmp_path / ".a.partial" / "metrics.jsonl"
    try:
        end = time.monotonic() + LIMIT
        while proc.poll() is None and time.monotonic() < end and not (metrics.is_file() and metrics.stat().st_size):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signum)
        stdout, stderr = proc.communicate(timeout=LIMIT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "interrupted at step" in stdout and "--resume" in stdout
    [checkpoint] = (tmp_path / ".a.partial" / "checkpoints").glob("step-*")
    assert {p.name for p in checkpoint.iterdir()} == {"adapter_model.safetensors", "state.pt"}
    assert not out.exists() and not list((tmp_path / ".a.partial" / "checkpoints").glob(".*"))


def test_the_sigterm_handler_is_put_back_after_training(tmp_path_factory, tmp_path):
    from corpusforge.train.loop import make_config, train

    from .tiny import make_tiny_model

    model = make_tiny_model(tmp_path_factory.getbasetemp() / "tiny-signal" / "model")
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def observe(row):
        seen.append(signal.getsignal(signal.SIGTERM))
        if row["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)   # as `kill PID` would

    cfg = make_config(dict(model=str(model), steps=50, batch_size=2, eval_every=0, checkpoint_every=0))
    with pytest.raises(KeyboardInterrupt):
        train(SAMPLE / "corpus", tmp_path / "a", cfg, echo=lambda s: None, observe=observe)
    assert seen and seen[0] is not before and signal.getsignal(signal.SIGTERM) is before
    assert [p.name for p in (tmp_path / ".a.partial" / "checkpoints").glob("step-*")] == ["step-2"]
