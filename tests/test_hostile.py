"""Hostile and careless input, and faults, across every command (issue 12's 86 probes, and generated ones).

Every case must end within a time limit with exit code 1 (bad data) or 2 (bad usage), one error line that
names the file, line, field or option, no traceback, and nothing (not even a partial folder) under a final
name. Commands that could hang run in a subprocess with a timeout; the rest run in-process.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corpusforge.errors import CorpusforgeError, GenerateError, ProbeError, RecordError, TemplateError, TrainError

from .conftest import ROOT, SAMPLE, write_jsonl
from .test_templates import GOOD

LIMIT = 60  # seconds any one command may take here (the slowest legitimate one takes a few)

GOOD_TEMPLATE = GOOD   # the same small valid template the template tests use


def cf(*args, env: dict | None = None, timeout: float = LIMIT, cwd: Path | None = None):
    """The real CLI in its own process (so a hang is a timeout, not a stuck suite)."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "corpusforge", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output[-2000:]
    return lines[0]


def refused(result, *words: str, codes=(1, 2)) -> str:
    """The command failed cleanly: exit 1 or 2, one error line holding ``words``, no traceback."""
    code = result.returncode if hasattr(result, "returncode") else result.exit_code
    text = (result.stdout + result.stderr) if hasattr(result, "stderr") and isinstance(result.stderr, str) \
        else result.output
    assert code in codes, f"exit {code}: {text[-2000:]}"
    assert "Traceback" not in text, text[-3000:]
    line = error_line(text)
    for word in words:
        assert word in line, f"{word!r} not in {line!r}"
    return line


def nothing_under(folder: Path, name: str) -> None:
    """No final folder and no partial folder for ``name``."""
    assert not (folder / name).exists()
    assert not (folder / f".{name}.partial").exists()


@contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging) when the block runs past ``seconds``."""
    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pack_with(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    pack = tmp_path / "pack"
    pack.mkdir(exist_ok=True)
    (pack / name).write_text(text, encoding="utf-8")
    return pack


def corpus_copy(tmp_path: Path) -> Path:
    out = tmp_path / "corpus"
    shutil.copytree(SAMPLE / "corpus", out)
    return out


# ---------------------------------------------------------------------------
# Hangs: a plugin template or a typo must not stop the machine


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text, words", [
    (ALIAS_BOMB, "expands to more than"),
    (GOOD_TEMPLATE.replace('" then it moves."',
                           '" then{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}."'),
     "range of 100,000 items"),
    (GOOD_TEMPLATE.replace('" then it moves."',
                           '" then{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}."'),
     "longer than 2 s"),
    (GOOD_TEMPLATE.replace('" then it moves."', '" then {{ subject * 1000000000 }}."'), "over the limit"),
    (GOOD_TEMPLATE.replace('" then it moves."', '" then {{ subject|center(1000000000) }}."'), "larger than"),
    (GOOD_TEMPLATE.replace('" then it moves."', '" then {{ 2 ** 100000000 }}."'), "larger than"),
    (GOOD_TEMPLATE.replace('" then it moves."', '" then {{ \'%0999999999d\' % 1 }}."'), "larger than"),
], ids=["alias-bomb", "nested-range", "slow-loops", "repeat", "center", "power", "format-width"])
def test_hostile_templates_stop_within_seconds_with_file_and_line(tmp_path, text, words):
    pack = pack_with(tmp_path, text)
    started = time.monotonic()
    result = cf("templates", "lint", pack / "t.yaml")
    assert time.monotonic() - started < 30
    line = refused(result, words)
    assert f"{pack / 't.yaml'}:" in line   # file and line


def test_a_hostile_template_stops_generate_too(tmp_path):
    pack = pack_with(tmp_path, GOOD_TEMPLATE.replace('" then it moves."', '" then {{ subject * 1000000000 }}."'))
    refused(cf("generate", "--template", "t.en", "--templates", pack, "--n", "5", "--out", tmp_path / "c"),
            "over the limit")
    nothing_under(tmp_path, "c")


def test_a_lexicon_fifo_or_directory_is_named_not_read(tmp_path):
    pack = pack_with(tmp_path, GOOD_TEMPLATE.replace("subject: [the river, the mind, a question]",
                                                     "subject: {file: lexicon/subjects.txt}"))
    (pack / "lexicon").mkdir()
    os.mkfifo(pack / "lexicon" / "subjects.txt")
    refused(cf("templates", "lint", pack), "is a FIFO")
    refused(cf("templates", "list", "--templates", pack), "is a FIFO")
    refused(cf("generate", "--template", "t.en", "--n", "3", "--out", tmp_path / "c",
               env={"CORPUSFORGE_TEMPLATES": str(pack)}), "is a FIFO")
    nothing_under(tmp_path, "c")
    os.unlink(pack / "lexicon" / "subjects.txt")
    (pack / "lexicon" / "subjects.txt").mkdir()
    refused(cf("templates", "lint", pack), "is a directory")


def test_out_that_is_a_fifo_is_refused_not_opened(tmp_path):
    os.mkfifo(tmp_path / "f")
    refused(cf("generate", "--template", "if_then.en", "--n", "3", "--out", tmp_path / "f", "--overwrite"),
            "is a FIFO")
    assert not (tmp_path / ".f.partial").exists()


@pytest.mark.parametrize("layers", ["0-99999999", "0-999999"])
def test_huge_layer_ranges_are_refused_before_expanding(tmp_path, layers):
    from .tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "model")
    started = time.monotonic()
    result = cf("train", SAMPLE / "corpus", "--model", model, "--out", tmp_path / "a", "--layers", layers)
    assert time.monotonic() - started < 30
    line = refused(result, "--layers", "out of range")
    assert len(line) < 300
    nothing_under(tmp_path, "a")


# ---------------------------------------------------------------------------
# Tracebacks instead of one clear line


def test_push_to_an_unreachable_hub_is_one_line(tmp_path):
    corpus = corpus_copy(tmp_path)
    result = cf("push", corpus, "--repo", "me/x", "--retry-wait", "0.01",
                env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_test", "HF_HUB_DISABLE_XET": "1",
                     "HF_HOME": str(tmp_path / "hf")})
    refused(result, "failed after")
    assert "retrying" in result.stdout


def test_push_offline_says_so_at_once(tmp_path):
    corpus = corpus_copy(tmp_path)
    result = cf("push", corpus, "--repo", "me/x",
                env={"HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_test", "HF_HOME": str(tmp_path / "hf")})
    refused(result, "offline")
    assert "retrying" not in result.stdout


BAD_OUT_WORDS = {"proc": "virtual file system", "sys": "virtual file system", "below-a-file": "is a file, not a folder",
                 "dangling-link": "dangling symbolic link"}
BAD_OUTS = {
    "proc": lambda tmp: Path("/proc/corpusforge-test/out"),
    "sys": lambda tmp: Path("/sys/corpusforge-test"),
    "below-a-file": lambda tmp: (tmp / "file.txt", (tmp / "file.txt").write_text("x"))[0] / "out",
    "dangling-link": lambda tmp: (tmp / "link", (tmp / "link").symlink_to(tmp / "nowhere"))[0],
}


def _command(kind: str, out: Path, tmp: Path) -> list:
    return {
        "generate": ["generate", "--template", "if_then.en", "--n", "3", "--out", out],
        "export": ["export", SAMPLE / "corpus", "--format", "jsonl", "--out", out],
        "train": ["train", SAMPLE / "corpus", "--model", "/nonexistent", "--out", out],
        "schema": ["schema", "export", "--out", out],
        "templates-new": ["templates", "new", "pk", "--pattern", "if_then", "--out", out],
    }[kind]


@pytest.mark.parametrize("where", sorted(BAD_OUTS))
@pytest.mark.parametrize("kind", ["generate", "export", "train", "schema", "templates-new"])
def test_an_output_that_cannot_be_written_is_one_line(run, tmp_path, kind, where):
    out = BAD_OUTS[where](tmp_path)
    with deadline(LIMIT):
        result = run(*_command(kind, out, tmp_path))
    refused(result, BAD_OUT_WORDS[where], str(out))
    if where == "dangling-link":
        assert not (tmp_path / "nowhere").exists() and not (tmp_path / ".link.partial").exists()


def test_resume_with_a_corrupt_progress_file(run, tmp_path):
    partial = tmp_path / ".c.partial"
    (partial / "data").mkdir(parents=True)
    (partial / "progress.json").write_text("{not json")
    refused(run("generate", "--template", "if_then.en", "--n", "30", "--out", tmp_path / "c", "--resume"),
            "progress file is unreadable")
    (partial / "progress.json").write_text('{"fingerprint": "x", "command": "y", "written": 5, "offsets": '
                                           '{"train": 999}}')
    refused(run("generate", "--template", "if_then.en", "--n", "30", "--out", tmp_path / "c", "--resume"),
            "shorter than its checkpoint")
    assert not (tmp_path / "c").exists()


def test_a_second_run_on_the_same_output_is_told_who_is_writing(tmp_path):
    out = tmp_path / "big"
    args = ["-m", "corpusforge", "generate", "--mix", "paradox_conclusion.en=1,silence.ru=1", "--n", "3000000",
            "--out", str(out)]
    first = subprocess.Popen([sys.executable, *args], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        data = tmp_path / ".big.partial" / "data"
        end = time.monotonic() + LIMIT
        while not (data.is_dir() and any(data.iterdir())) and time.monotonic() < end and first.poll() is None:
            time.sleep(0.05)
        for extra in ([], ["--resume"]):
            line = refused(cf(*args[2:], *extra), "another run is writing", f"pid {first.pid}")
            assert str(tmp_path / ".big.partial") in line
        assert first.poll() is None and data.is_dir()   # the loser touched nothing
    finally:
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=LIMIT)


def test_broken_manifests_and_values(run, tmp_path):
    corpus = corpus_copy(tmp_path)
    (corpus / "manifest.json").write_text("[1, 2, 3]")
    refused(run("export", corpus, "--format", "jsonl", "--out", tmp_path / "e"), "manifest must be a JSON object")
    refused(run("push", corpus, "--repo", "me/x", "--dry-run"), "manifest must be a JSON object")
    (corpus / "manifest.json").write_text('{"format": "corpusforge.corpus/1"}')
    refused(run("export", corpus, "--format", "parquet", "--out", tmp_path / "e"), "manifest", "required")
    nothing_under(tmp_path, "e")


def test_a_seed_past_int64_is_refused_everywhere(run, tmp_path, good_record):
    corpus = corpus_copy(tmp_path)
    rec = dict(good_record, seed=10**38)
    write_jsonl(corpus / "data" / "train.jsonl", [rec])
    assert run("validate", corpus).exit_code == 1
    for command in (["export", corpus, "--format", "parquet", "--out", tmp_path / "e"], ["stats", corpus]):
        refused(run(*command), "$.seed")
    nothing_under(tmp_path, "e")


def test_train_values_out_of_range_name_the_option(run, tmp_path):
    for option, value, words in [("--dropout", "2", "less than 1"), ("--alpha", "nan", "finite"),
                                 ("--alpha", "-1", "greater than 0"), ("--control-weight", "-5", "at least 0"),
                                 ("--warmup", "-1", "at least 0"), ("--early-stopping", "-1", "at least 1"),
                                 ("--lr", "inf", "")]:
        result = run("train", SAMPLE / "corpus", "--out", tmp_path / "a", option, value)
        refused(result, option, words)
    nothing_under(tmp_path, "a")
    help_text = " ".join(run("train", "--help").output.split())
    assert "(0: never)" in help_text and "(0: only when interrupted)" in help_text


def test_schema_export_writes_the_set_or_nothing(run, tmp_path):
    out = tmp_path / "schemas"
    run("schema", "export", "--out", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "record.schema.json").write_text("old", encoding="utf-8")
    before["record.schema.json"] = b"old"
    (out / "run.schema.json").unlink()
    (out / "run.schema.json").mkdir()       # one entry that cannot be replaced by a file
    refused(run("schema", "export", "--out", out), "nothing was changed")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == {k: v for k, v in before.items() if k != "run.schema.json"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------
# The toolkit must agree with itself


def _text_gap(rec: dict, where: str) -> dict:
    rec = json.loads(json.dumps(rec))
    seg = rec["segments"]
    if where == "start":
        seg[0]["start"], seg[0]["text"] = 1, rec["text"][1:seg[0]["end"]]
    elif where == "middle":
        seg[1]["start"] += 1
        seg[1]["text"] = rec["text"][seg[1]["start"]:seg[1]["end"]]
    else:
        seg[-1]["end"] -= 1
        seg[-1]["text"] = rec["text"][seg[-1]["start"]:seg[-1]["end"]]
    return _with_id(rec)


def _with_id(rec: dict) -> dict:
    from corpusforge.records import content_id

    rec["id"] = content_id(rec["pattern"], rec["template"], rec["language"], rec["text"],
                           [(s["role"], s["start"], s["end"]) for s in rec["segments"]],
                           [(t["text"], t["start"], t["end"]) for t in rec["targets"]], rec["slots"])
    return rec


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_segments_must_tile_the_text_for_every_command(run, tmp_path, good_record, where):
    corpus = corpus_copy(tmp_path)
    write_jsonl(corpus / "data" / "train.jsonl", [good_record, _text_gap(good_record, where)])
    result = run("validate", corpus / "data" / "train.jsonl")
    assert result.exit_code == 1 and "tile the text" in result.output
    for command in (["stats", corpus], ["export", corpus, "--format", "jsonl", "--out", tmp_path / "e"]):
        refused(run(*command), "tile the text", ":2:")
    nothing_under(tmp_path, "e")


def test_nan_in_meta_is_refused_by_every_command(run, tmp_path, good_record):
    corpus = corpus_copy(tmp_path)
    line = json.dumps(dict(good_record, meta={"x": 1.0})).replace('"x": 1.0', '"x": NaN').encode()
    write_jsonl(corpus / "data" / "train.jsonl", [line])
    assert "NaN" in run("validate", corpus / "data" / "train.jsonl").output
    refused(run("stats", corpus), "NaN")
    refused(run("export", corpus, "--format", "jsonl", "--out", tmp_path / "e"), "NaN")


def test_export_refuses_overlapping_segments(run, tmp_path, good_record):
    corpus = corpus_copy(tmp_path)
    rec = json.loads(json.dumps(good_record))
    rec["segments"][1]["start"] -= 2
    rec["segments"][1]["text"] = rec["text"][rec["segments"][1]["start"]:rec["segments"][1]["end"]]
    write_jsonl(corpus / "data" / "train.jsonl", [_with_id(rec)])
    refused(run("export", corpus, "--format", "jsonl", "--out", tmp_path / "e"), "overlaps")
    nothing_under(tmp_path, "e")


@pytest.mark.parametrize("args, words", [
    (["--mix", "if_then.en=inf,if_then.ru=1"], "--mix"),
    (["--template", "if_then.en", "--split", "train=nan"], "--split"),
    (["--template", "if_then.en", "--split", "bad name=1"], "--split"),
    (["--template", "if_then.en", "--shard", "0/4", "--n", "3"], "--shard 0/4"),
    (["--template", "if_then.en", "--mix", "if_then.en=1"], "not both"),
    (["--template", "if_then.en", "--n", "0"], "--n"),
])
def test_generate_options_are_checked_at_the_edge(run, tmp_path, args, words):
    refused(run("generate", *args, "--out", tmp_path / "c"), words)
    nothing_under(tmp_path, "c")


def test_lint_refuses_what_generate_would_refuse(run, tmp_path):
    pack = pack_with(tmp_path, GOOD_TEMPLATE)
    (pack / "t2.yaml").write_text(GOOD_TEMPLATE, encoding="utf-8")
    refused(run("templates", "lint", pack), "defined twice")
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "x.yaml").write_text(GOOD_TEMPLATE.replace("name: t.en", "name: if_then.en"), encoding="utf-8")
    refused(run("templates", "lint", shadow), "if_then.en", "built-in")


# ---------------------------------------------------------------------------
# Messages that must not mislead


def test_special_files_are_named_for_what_they_are(run, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    cases = [(tmp_path / "fifo", "FIFO"), (Path("/dev/zero"), "device"), (tmp_path / "loop1", "symbolic link loop"),
             (tmp_path / "missing", "was not found")]
    for path, words in cases:
        for command in ("validate", "stats"):
            with deadline(LIMIT):
                refused(run(command, path), words, str(path))


def test_template_messages_point_at_the_right_thing(run, tmp_path):
    pack = pack_with(tmp_path, GOOD_TEMPLATE.replace("subject: [the river, the mind, a question]",
                                                     "subject:\n    - the river\n    - {value: the mind, weight: -1}"))
    refused(run("templates", "lint", pack / "t.yaml"), "weight", "greater than 0", "t.yaml:8")
    (pack / "patterns.yaml").write_text("patterns:\n  - name: ok_one\n    roles: [a, b]\n  - name: Bad-Name\n"
                                        "    roles: [a]\n", encoding="utf-8")
    refused(run("templates", "lint", pack), "patterns.yaml:4", "Bad-Name")


def test_probe_file_messages(tmp_path):
    from corpusforge.shift.probes import read_probes

    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "x", "targets": [" then"]}\nthis is not json\n', encoding="utf-8")
    with pytest.raises(ProbeError) as info:
        read_probes(bad)
    assert info.value.line == 2 and "not a JSON object" in str(info.value)
    y = tmp_path / "p.yaml"
    y.write_text("- prompt: x\n  targets: [' then']\n- prompt: y\n  targets: [' a']\n  colour: red\n")
    with pytest.raises(ProbeError) as info:
        read_probes(y)
    assert info.value.line == 5 and info.value.field == "colour"


def test_binary_garbage_is_reported_as_bad_utf8(run, tmp_path):
    corpus = corpus_copy(tmp_path)
    (corpus / "data" / "train.jsonl").write_bytes(b'{"id": "\xff\xfe\x00garbage"}\n')
    for command in (["stats", corpus], ["export", corpus, "--format", "jsonl", "--out", tmp_path / "e"]):
        refused(run(*command), "not valid UTF-8")


def test_a_worker_writing_into_its_dead_parents_pipe_ends_without_a_traceback():
    """The race the test below meets about once in fifty runs, made certain: the reading end of a worker's pipe
    is closed (as the kernel closes a killed parent's before signalling the children that asked to die with it)
    and the worker writes. After the pool's start-up it ends by SIGPIPE, printing nothing."""
    code = ("import os, sys\n"
            "from corpusforge.generate.pool import _worker_start\n"
            "_worker_start(None)\n"
            "r, w = os.pipe()\n"
            "os.close(r)\n"
            "os.write(w, b'a block')\n"
            "print('still alive', file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=LIMIT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == -signal.SIGPIPE, done.stderr.decode(errors="replace")
    assert done.stderr == b""


def test_killing_generate_leaves_no_worker_tracebacks(tmp_path):
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "corpusforge", "generate", "--mix",
                                 "paradox_conclusion.en=1,silence.ru=1", "--n", "3000000", "--workers", "2",
                                 "--out", str(tmp_path / "c")], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        data = tmp_path / ".c.partial" / "data"
        end = time.monotonic() + LIMIT
        while not (data.is_dir() and any(data.iterdir())) and time.monotonic() < end:
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=LIMIT)
        end = time.monotonic() + 10
        while time.monotonic() < end:   # the workers die with their parent
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("a worker outlived its killed parent")
    assert b"Traceback" not in log.read_bytes(), log.read_text(errors="replace")
    assert not (tmp_path / "c").exists()


def test_a_dry_run_writes_nothing_outside_its_staging_folder(run, tmp_path):
    corpus = corpus_copy(tmp_path)
    before = {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()}
    result = run("push", corpus, "--repo", "me/x", "--license", "mit", "--dry-run")
    assert result.exit_code == 0, result.output
    assert {p: p.read_bytes() for p in corpus.rglob("*") if p.is_file()} == before
    assert "license: mit" in (tmp_path / "corpus.hub-staging" / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------
# Generated cases: mutated records, mutated templates, option values

HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _mutate(rec: dict, path: list, value) -> dict:
    rec = json.loads(json.dumps(rec))
    node = rec
    for key in path[:-1]:
        node = node[key]
    if value == "<delete>":
        node.pop(path[-1], None) if isinstance(node, dict) else None
    else:
        node[path[-1]] = value
    return rec


RECORD_PATHS = [["id"], ["pattern"], ["template"], ["language"], ["text"], ["segments"], ["targets"], ["slots"],
                ["premise_id"], ["seed"], ["index"], ["split"], ["meta"], ["segments", 0, "start"],
                ["segments", 0, "end"], ["segments", 0, "role"], ["segments", 1, "text"], ["segments", -1, "end"],
                ["targets", 0, "start"], ["targets", 0, "text"], ["slots", "subject"], ["meta", "variant"]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(RECORD_PATHS), value=st.one_of(HOSTILE_VALUES, st.just("<delete>")),
       fix_id=st.booleans())
@example(path=["segments", -1, "end"], value=2**64, fix_id=False)   # CI found it: the id's hash overflowed
@example(path=["targets", 0, "start"], value=2**63, fix_id=True)
def test_mutated_records_get_one_verdict(tmp_path_factory, good_record, path, value, fix_id):
    """validate, and the reader every other command uses, accept and refuse exactly the same records."""
    from corpusforge.validate import iter_records, validate_paths

    rec = _mutate(good_record, path, value)
    if fix_id:
        try:
            rec = _with_id(rec)
        except (KeyError, TypeError, IndexError, AttributeError, ValueError):
            pass
    folder = tmp_path_factory.mktemp("rec")
    try:
        line = json.dumps(rec, ensure_ascii=False, allow_nan=True).encode()
    except (TypeError, ValueError):
        return
    write_jsonl(folder / "r.jsonl", [line])
    ok = validate_paths([folder / "r.jsonl"]).ok
    try:
        list(iter_records([folder / "r.jsonl"]))
        read_ok = True
    except RecordError as e:
        read_ok = False
        assert e.file and e.line == 1
    assert ok == read_ok


TEMPLATE_PATHS = [["name"], ["version"], ["pattern"], ["language"], ["slots"], ["slots", "subject"],
                  ["slots", "subject", 0], ["variants"], ["variants", 0], ["variants", 0, "condition"],
                  ["variants", 0, "consequence"], ["variants", 0, "weight"], ["targets"], ["constraints"]]
HOSTILE_JINJA = st.sampled_from([
    "{{ ''.__class__ }}", "{{ subject.__dict__ }}", "{% include 'x' %}", "{{ range(10**9)|list }}",
    "{{ subject * 10**9 }}", "{% for i in range(99999) %}{{ i }}{% endfor %}", "{{ 1/0 }}", "{{ nope }}",
    "{{ subject.gen }}", "{{ subject|center(10**8) }}", "{% raw %}", "{{", "{{ lipsum(100000) }}",
    "{{ (subject ~ subject) * 60000 }}", "{{ subject|truncate(10**9) }}", "{{ cycler(*range(10000)) }}",
    "{{ '%*d' % (10**9, 1) }}", "{{ subject[0:10**9] }}", "{{ [subject] * 10**6 }}"])


#: changes a careful author might make, so that mutated templates also load (and their records get checked)
PLAUSIBLE_CHANGES = [
    (["name"], "x.en"), (["version"], 2), (["language"], "ru"), (["slots", "subject"], ["the lake", "a bird"]),
    (["slots", "subject", 0], "the lake"), (["variants", 0, "condition"], "If {{ subject }} waits,"),
    (["variants", 0, "consequence"], " then {{ event }}."), (["variants", 0, "weight"], 0.5),
    (["targets"], [" then"]), (["constraints"], [{"distinct": ["subject", "event"]}]),
    (["variants", 0], {"condition": "When {{ subject }} {{ event }},", "consequence": " then all is still."})]
PLAUSIBLE = st.sampled_from(PLAUSIBLE_CHANGES)


def _load_mutated(folder: Path, path: list, value):
    """The good template with one change, written to ``folder``/t.yaml and loaded: a Template, or the TemplateError."""
    import yaml

    from corpusforge.patterns import BUILTIN_PATTERNS
    from corpusforge.templates.spec import load_template

    data = _mutate(yaml.safe_load(GOOD_TEMPLATE), path, value)
    (folder / "t.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with deadline(30):
        try:
            return load_template(folder / "t.yaml", patterns=BUILTIN_PATTERNS)
        except TemplateError as e:
            return e


def _bad_render(records: list[dict]) -> str | None:
    """The two ways a template that loaded once rendered bad records (issue 23; now refused at load, below)."""
    if any(not seg["text"] for rec in records for seg in rec["segments"]) or any(
            len(rec["segments"]) < 2 for rec in records):
        return "a role renders empty"
    if any(" object at 0x" in rec["text"] for rec in records):
        return "an object's repr (with its address) is rendered"
    return None


def test_mutated_templates_are_refused_with_a_line_or_render_valid_records(tmp_path_factory):
    """Loading checks a template completely ("errors surface at load, not mid-run", templates/spec.py): so a
    mutated template is either refused with a TemplateError naming the file and a line, or it loads and then
    every record it renders is a valid record. Each outcome must occur often enough to have been tested."""
    from corpusforge.records import Record, structural_errors
    from corpusforge.templates.sampler import sample

    outcomes: dict[str, int] = {"refused": 0, "loads": 0}

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(change=st.one_of(st.tuples(st.sampled_from(TEMPLATE_PATHS), st.one_of(HOSTILE_VALUES, HOSTILE_JINJA)),
                            PLAUSIBLE))
    def check(change):
        path, value = change
        folder = tmp_path_factory.mktemp("tmpl")
        loaded = _load_mutated(folder, path, value)
        if isinstance(loaded, TemplateError):
            assert loaded.file == str(folder / "t.yaml") and loaded.line and loaded.line >= 1, str(loaded)
            outcomes["refused"] += 1
            return
        records = sample(loaded, 3)
        assert _bad_render(records) is None, (path, value, records)
        for rec in records:
            assert structural_errors(Record.model_validate(rec)) == [], (path, value, rec)
        assert records == sample(loaded, 3)   # deterministic
        outcomes["loads"] += 1

    check()
    # typically about 100 and 20 (hypothesis runs each of the 11 plausible changes once, a few hostile ones load)
    assert outcomes["refused"] >= 50 and outcomes["loads"] >= 8, outcomes


@pytest.mark.parametrize("path, value", PLAUSIBLE_CHANGES)
def test_each_plausible_change_loads(tmp_path, path, value):
    loaded = _load_mutated(tmp_path, path, value)
    assert not isinstance(loaded, TemplateError), str(loaded)


#: each hostile Jinja expression in a role: refused (with these words in the message), or what it renders to
HOSTILE_ROLE_OUTCOMES = {
    "{{ ''.__class__ }}": "names starting with '_' are not allowed", "{{ subject.__dict__ }}": "starting with '_'",
    "{% include 'x' %}": "failed to render: TypeError", "{{ range(10**9)|list }}": "larger than templates may use",
    "{{ subject * 10**9 }}": "refused by the sandbox: repeating", "{{ 1/0 }}": "failed to render: ZeroDivisionError",
    "{% for i in range(99999) %}{{ i }}{% endfor %}": "range of 99,999 items is over the limit",
    "{{ nope }}": "['nope'] that are not defined", "{{ lipsum(100000) }}": "['lipsum'] that are not defined",
    "{{ subject.gen }}": "cannot render with", "{{ subject|center(10**8) }}": "larger than templates may use",
    "{{": "Jinja syntax error", "{{ (subject ~ subject) * 60000 }}": "refused by the sandbox: repeating",
    "{{ subject|truncate(10**9) }}": "larger than templates may use",
    "{{ '%*d' % (10**9, 1) }}": "went past a render limit", "{{ [subject] * 10**6 }}": "refused by the sandbox",
    "{{ subject[0:10**9] }}": None,   # a slice past the end is the whole value: it loads and renders the subject
}


@pytest.mark.parametrize("role", ["condition", "consequence"])
@pytest.mark.parametrize("expression", sorted(HOSTILE_ROLE_OUTCOMES))
def test_each_hostile_expression_in_a_role_is_refused_at_load(tmp_path, role, expression):
    loaded = _load_mutated(tmp_path, ["variants", 0, role], expression)
    words = HOSTILE_ROLE_OUTCOMES[expression]
    if words is None:
        assert not isinstance(loaded, TemplateError), str(loaded)
        return
    assert isinstance(loaded, TemplateError), f"{expression!r} in {role} loaded"
    line = 1 + next(i for i, text in enumerate((tmp_path / "t.yaml").read_text(encoding="utf-8").splitlines())
                    if text.lstrip(" -").startswith(f"{role}:"))
    assert loaded.line == line and words in str(loaded), str(loaded)


def test_a_slot_without_values_is_refused_at_load(tmp_path):
    """Found by the property above: an empty slot list loaded, then generate and lint crashed with an IndexError."""
    loaded = _load_mutated(tmp_path, ["slots", "subject"], [])
    assert isinstance(loaded, TemplateError) and "'subject' has no values" in str(loaded) and loaded.line


@pytest.mark.parametrize("text", ["", "{% raw %}"])
def test_a_role_that_renders_empty_is_refused_at_load(tmp_path, text):
    error = _load_mutated(tmp_path, ["variants", 0, "consequence"], text)
    assert isinstance(error, TemplateError) and "'consequence' renders empty" in str(error) and error.line


def test_a_role_empty_only_for_a_draw_the_load_did_not_try_is_an_error_mid_run_not_a_short_record(tmp_path):
    """The trial render pairs the slots' values index by index ((0, 0), (1, 1), (2, 0) here); a role empty only at
    (0, 1) loads, and the draw that meets it is an error at the role's line, not a record without its role."""
    from corpusforge.templates.sampler import sample

    role = ("{% if subject == 'the river' and event == 'grows quiet' %}{% else %} then it moves.{% endif %}")
    loaded = _load_mutated(tmp_path, ["variants", 0, "consequence"], role)
    assert not isinstance(loaded, TemplateError), loaded
    with pytest.raises(TemplateError) as info:
        sample(loaded, 60)
    assert "'consequence' renders empty for this draw" in str(info.value) and info.value.line


@pytest.mark.parametrize("text", ["{{ cycler(1, 2) }}", "{{ joiner() }}", "{{ range }}", " then {{ subject.upper }}",
                                  " then {{ subject | attr('upper') }}"])
def test_an_object_repr_is_refused_at_load(tmp_path, text):
    """A Python object printed as its repr (a function, Jinja's cycler/joiner, a bound method on the fast path)
    carries a memory address, so the corpus would differ from run to run."""
    error = _load_mutated(tmp_path, ["variants", 0, "consequence"], text)
    assert isinstance(error, TemplateError) and "object is printed, not text" in str(error) and error.line


def test_printed_values_that_are_text_still_load(tmp_path):
    """The object check refuses only what has no text of its own: numbers, lists and dicts print as before."""
    from corpusforge.templates.sampler import sample

    loaded = _load_mutated(tmp_path, ["variants", 0, "consequence"],
                           " then {{ 2 * 3 }} {{ [1, 2] }} {{ {'a': 1} }} {{ subject | length }}.")
    assert not isinstance(loaded, TemplateError), loaded
    assert " then 6 [1, 2] {'a': 1} " in sample(loaded, 1)[0]["text"]


NUMBERS = st.one_of(st.integers(min_value=-(2**40), max_value=2**40), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=8))


@settings(max_examples=200, deadline=None)
@given(values=st.dictionaries(st.sampled_from(["rank", "alpha", "dropout", "lr", "steps", "epochs", "batch_size",
                                               "grad_accum", "max_length", "warmup", "control_weight",
                                               "premise_weight", "control_batch", "eval_every", "early_stopping",
                                               "checkpoint_every", "layers", "loss_on"]), NUMBERS, max_size=4))
@example(values={"steps": 1, "epochs": 1})   # a check across two options (hypothesis found it once)
def test_train_options_are_a_config_or_one_clear_error(values):
    from corpusforge.train.config import load_config

    try:
        cfg = load_config(None, **values)
    except TrainError as e:
        assert str(e).startswith("--") or "unknown key" in str(e)
        return
    assert cfg.rank >= 1 and cfg.lr > 0 and 0 <= cfg.dropout < 1 and cfg.control_weight >= 0


def _wrong_generate_options(n, continuations, workers, mix, splits, shard) -> set[str]:
    """The options GenerateConfig.check must refuse, by the rules its messages state."""
    from corpusforge.patterns import NAME_RE

    wrong = {f"--{name}" for name, v in (("n", n), ("continuations", continuations), ("workers", workers)) if v < 1}
    shares = list(splits.values())
    if any(not NAME_RE.fullmatch(k) for k in splits) or not shares or not all(
            math.isfinite(w) and w >= 0 for w in shares) or sum(shares) <= 0:
        wrong.add("--split")
    if any(not (math.isfinite(w) and w > 0) for w in mix.values()):
        wrong.add("--mix")
    if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]
                                  and (shard[0] + 1) * n // shard[1] > shard[0] * n // shard[1]):
        wrong.add("--shard")
    return wrong


HOSTILE_OPTIONS = st.fixed_dictionaries(dict(
    n=NUMBERS, continuations=NUMBERS, workers=NUMBERS,
    weights=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=3),
    splits=st.dictionaries(st.text(max_size=6), st.floats(allow_nan=True, allow_infinity=True), max_size=3),
    shard=st.one_of(st.none(), st.tuples(st.integers(-3, 5), st.integers(-3, 5)))))
#: options as a careful user gives them, so that the accepting path is taken (and checked) too
PLAUSIBLE_OPTIONS = st.fixed_dictionaries(dict(
    n=st.one_of(st.integers(1, 3), st.integers(1, 10**6)), continuations=st.integers(1, 5), workers=st.integers(1, 8),
    weights=st.lists(st.floats(0.01, 100), min_size=1, max_size=3),
    splits=st.dictionaries(st.sampled_from(["train", "test", "validation", "dev_2"]), st.floats(0, 10),
                           min_size=1, max_size=3),
    shard=st.one_of(st.none(), st.tuples(st.integers(0, 3), st.integers(1, 4)))))
#: a careful user's options with one of them hostile: each rule of check() is met alone
ONE_HOSTILE_OPTION = st.tuples(PLAUSIBLE_OPTIONS, HOSTILE_OPTIONS, st.sampled_from(
    ["n", "continuations", "workers", "weights", "splits", "shard"])).map(lambda t: {**t[0], t[2]: t[1][t[2]]})


def test_generate_options_are_checked_or_refused():
    """Each drawn set of options ends one of three ways, and each must occur: a wrong type is refused by the
    model (only for a field given something that is not an integer); a wrong value is refused by check()
    naming an option that is wrong by its rules; or every option is right by those rules and check() passes."""
    from pydantic import ValidationError

    from corpusforge.generate import GenerateConfig

    outcomes = {"wrong type": 0, "refused": 0, "accepted": 0}

    @settings(max_examples=200, deadline=None)
    @given(options=st.one_of(HOSTILE_OPTIONS, PLAUSIBLE_OPTIONS, ONE_HOSTILE_OPTION))
    @example(options=dict(n=2, continuations=1, workers=1, weights=[1.0], splits={"train": 1.0}, shard=(1, 3)))
    @example(options=dict(n=5, continuations=1, workers=0, weights=[1.0], splits={"train": 1.0}, shard=None))
    def check(options):
        n, continuations, workers, weights, splits, shard = (options[k] for k in (
            "n", "continuations", "workers", "weights", "splits", "shard"))
        names = ["if_then.en", "if_then.ru", "silence.en"][:len(weights)]
        fields = {"n": n, "continuations": continuations, "workers": workers}
        try:
            cfg = GenerateConfig(mix=dict(zip(names, weights)), splits=splits, shard=shard, **fields)
        except ValidationError as e:   # the CLI's own option types refuse these before this point
            failed = {err["loc"][0] for err in e.errors()}
            assert failed and failed <= {k for k, v in fields.items() if not isinstance(v, int)}, e
            outcomes["wrong type"] += 1
            return
        wrong = _wrong_generate_options(cfg.n, cfg.continuations, cfg.workers, cfg.mix, cfg.splits, cfg.shard)
        try:
            cfg.check()
        except GenerateError as e:
            assert any(str(e).startswith(option) for option in wrong), (str(e), wrong)
            outcomes["refused"] += 1
            return
        assert not wrong, f"check() passed {sorted(wrong)}"
        outcomes["accepted"] += 1

    check()
    assert min(outcomes.values()) >= 20, outcomes   # typically about 60, 90 and 50


def test_every_refusal_is_a_corpusforge_error():
    """The errors above are the library's own: a Python user catches CorpusforgeError, never a bare OSError."""
    from corpusforge._io import check_input, check_output

    with pytest.raises(CorpusforgeError):
        check_input("/dev/zero")
    with pytest.raises(CorpusforgeError):
        check_output("/proc/x/y")
