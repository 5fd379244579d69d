"""Generation: deterministic across workers and shards, deduplicated, split by premise, atomic, resumable."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from corpusforge.errors import GenerateError
from corpusforge.generate import GenerateConfig, generate, keep, pool
from corpusforge.stats import corpus_stats
from corpusforge.validate import validate_paths

MIX = {"if_then.en": 1.0, "paradox_conclusion.en": 1.0, "if_then.ru": 1.0}


def data_bytes(corpus: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted((corpus / "data").iterdir())}


def texts(corpus: Path) -> list[str]:
    return [json.loads(line)["text"] for f in sorted((corpus / "data").iterdir())
            for line in f.read_text(encoding="utf-8").splitlines()]


def test_output_is_valid_and_described_by_its_manifest(tmp_path):
    out = tmp_path / "c"
    result = generate(GenerateConfig(mix=MIX, n=300, seed=1), out)
    assert result.records == 300
    report = validate_paths([out])
    assert report.ok and report.records == 300
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["records"] == 300
    assert sum(manifest["counts"]["by_template"].values()) == 300
    for f in manifest["files"]:
        assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert {t["name"] for t in manifest["templates"]} == set(MIX)
    assert manifest["command"].startswith("corpusforge generate --mix ")
    import jsonschema

    from .conftest import ROOT

    schema = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(manifest)  # the published contract holds for real output
    assert (out / "README.md").read_text().startswith("# corpusforge corpus")
    assert not list(tmp_path.glob(".*partial"))


def test_same_bytes_whatever_the_number_of_workers(tmp_path):
    one = generate(GenerateConfig(mix=MIX, n=2500, seed=5, workers=1), tmp_path / "w1").path
    two = generate(GenerateConfig(mix=MIX, n=2500, seed=5, workers=2), tmp_path / "w2").path
    assert data_bytes(one) == data_bytes(two)


def test_shards_concatenate_to_the_whole(tmp_path):
    whole = data_bytes(generate(GenerateConfig(mix=MIX, n=1000, seed=2), tmp_path / "whole").path)
    joined: dict[str, bytes] = {}
    for i in range(3):
        part = generate(GenerateConfig(mix=MIX, n=1000, seed=2, shard=(i, 3)), tmp_path / f"s{i}").path
        for name, data in data_bytes(part).items():
            joined[name] = joined.get(name, b"") + data
    assert joined == whole


def test_seeds_do_not_share_streams(tmp_path):
    a = set(texts(generate(GenerateConfig(templates=["if_then.en"], n=1000, seed=1), tmp_path / "a").path))
    b = set(texts(generate(GenerateConfig(templates=["if_then.en"], n=1000, seed=2), tmp_path / "b").path))
    # seed+index streams would share 999 of 1000; independent draws from a 180,000 space share a handful
    assert len(a & b) < 30


def test_premises_never_cross_splits_and_continuations_share_them(tmp_path):
    out = generate(GenerateConfig(templates=["if_then.en"], n=600, seed=3, continuations=3), tmp_path / "c").path
    assert validate_paths([out]).ok
    stats = corpus_stats([out])
    assert stats["premises"]["leaked_across_splits"] == 0
    assert stats["premises"]["continuations_per_premise"]["max"] == 3
    assert stats["premises"]["count"] == 200
    groups: dict[str, set] = {}
    for f in (out / "data").iterdir():
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            groups.setdefault(rec["premise_id"], set()).add(rec["text"])
    assert all(len(v) == 3 for v in groups.values())  # three different continuations each


def test_dedup_keeps_drawing_then_stops_with_the_space_size(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "tiny.yaml").write_text("""\
name: tiny.en
version: 1
pattern: if_then
language: en
slots:
  x: [a, b, c, d]
variants:
  - condition: "If {{ x }},"
    consequence: " then go."
""")
    out = generate(GenerateConfig(templates=["tiny.en"], n=4, template_paths=[str(pack)]), tmp_path / "ok").path
    assert len(set(texts(out))) == 4
    with pytest.raises(GenerateError) as info:
        generate(GenerateConfig(templates=["tiny.en"], n=5, template_paths=[str(pack)]), tmp_path / "too-many")
    assert "tiny.en: 4" in str(info.value)
    assert not (tmp_path / "too-many").exists() and not (tmp_path / ".too-many.partial").exists()


def test_existing_output_is_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "c"
    generate(GenerateConfig(templates=["if_then.en"], n=10), out)
    before = data_bytes(out)
    with pytest.raises(GenerateError, match="already exists"):
        generate(GenerateConfig(templates=["if_then.en"], n=20), out)
    assert data_bytes(out) == before
    generate(GenerateConfig(templates=["if_then.en"], n=20, overwrite=True), out)
    assert validate_paths([out]).records == 20


def test_a_crash_leaves_nothing_under_the_final_name_and_resume_finishes_it(tmp_path):
    expected = data_bytes(generate(GenerateConfig(mix=MIX, n=2600, seed=9), tmp_path / "reference").path)
    def crash(written):
        if written > 1700:  # after the second block of 1,000 draws is written, before its checkpoint
            raise KeyboardInterrupt

    out = tmp_path / "c"
    with pytest.raises(KeyboardInterrupt):
        generate(GenerateConfig(mix=MIX, n=2600, seed=9, checkpoint_every=500), out, observe=crash)
    assert not out.exists()
    assert (tmp_path / ".c.partial" / "progress.json").is_file()
    with pytest.raises(GenerateError, match="--resume"):
        generate(GenerateConfig(mix=MIX, n=2600, seed=9), out)
    with pytest.raises(GenerateError, match="different options"):
        generate(GenerateConfig(mix=MIX, n=2600, seed=10, resume=True), out)
    generate(GenerateConfig(mix=MIX, n=2600, seed=9, resume=True, checkpoint_every=500), out)
    assert data_bytes(out) == expected
    manifest = json.loads((out / "manifest.json").read_text())  # hashed across the interruption
    assert all(hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"] for f in manifest["files"])
    assert not (tmp_path / ".c.partial").exists()


def test_parquet_output_holds_the_same_records(tmp_path):
    from corpusforge.validate import iter_records

    jl = generate(GenerateConfig(mix=MIX, n=300, seed=4), tmp_path / "j").path
    pq = generate(GenerateConfig(mix=MIX, n=300, seed=4, format="parquet"), tmp_path / "p").path
    assert list(iter_records([jl])) == list(iter_records([pq]))


@pytest.mark.parametrize("args, words", [
    (["--n", "10", "--out", "X"], "give --template"),
    (["--template", "if_then.en", "--mix", "a=1", "--out", "X"], "not both"),
    (["--template", "nope.en", "--out", "X"], "unknown template 'nope.en'"),
    (["--template", "if_then.en", "--shard", "3/3", "--out", "X"], "0 <= i < N"),
    (["--template", "if_then.en", "--split", "train", "--out", "X"], "NAME=WEIGHT"),
    (["--template", "if_then.en", "--split", "train=-1", "--out", "X"], "non-negative"),
])
def test_cli_bad_options(run, tmp_path, args, words):
    args = [str(tmp_path / "out") if a == "X" else a for a in args]
    result = run("generate", *args)
    assert result.exit_code in (1, 2)
    assert words in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_cli_generate_prints_a_summary(run, tmp_path):
    result = run("generate", "--template", "silence.ru", "--n", "40", "--seed", "3", "--out", tmp_path / "c")
    assert result.exit_code == 0
    assert result.output.startswith("wrote 40 records to ")
    assert validate_paths([tmp_path / "c"]).ok


@pytest.mark.parametrize("as_lines, k", [(True, 1), (True, 2), (False, 1)])
def test_whole_block_fast_path_decides_like_one_at_a_time(as_lines, k):
    """keep decides most blocks whole, with set operations; it must match the candidate-by-candidate loop."""
    pool.worker_init(list(MIX), [], [1.0] * 3, 5, k, {"train": 0.8, "test": 0.2}, as_lines)
    blocks = [pool.draw_block(start, start + 50) for start in range(0, 200, 50)]
    blocks.append(pool.draw_block(180, 230))  # units 180-199 again: some duplicates, cut out of the output
    blocks.append(blocks[1])  # all duplicates
    fast, each = (keep.Tally(lo=0, hi=10**6, write_from=0, splits=2, templates=3) for _ in range(2))
    all_kept = []
    for block in blocks:
        before = fast.kept
        got, expected = keep.keep(block, fast), keep.keep_each(block, each)
        if as_lines:  # the fast path hands over a split's lines as one blob
            got, expected = ([b"".join(items) for items in out] for out in (got, expected))
        assert got == expected
        all_kept.append(fast.kept - before == len(block.keys))
        assert (fast.kept, fast.idle, fast.split_counts, fast.template_counts) == \
               (each.kept, each.idle, each.split_counts, each.template_counts)
    assert any(all_kept[:4]) and not all_kept[4] and not all_kept[5]
    assert fast.seen == each.seen and fast.seen_premises == each.seen_premises


def test_ctrl_c_with_workers_stops_promptly_and_leaves_a_resumable_run(tmp_path):
    """A real SIGINT to the whole process group, as a terminal sends it, while two workers draw."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "big"
    cmd = [sys.executable, "-m", "corpusforge", "generate", "--mix", "paradox_conclusion.en=1,silence.ru=1",
           "--n", "400000", "--workers", "2", "--out", str(out)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    data = tmp_path / ".big.partial" / "data"
    deadline = time.monotonic() + 60
    while not (data.is_dir() and any(data.iterdir())) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "--resume" in err.decode() and "Traceback" not in err.decode()
    assert not out.exists() and data.is_dir()
    with pytest.raises(ProcessLookupError):  # no worker outlived the run
        os.killpg(proc.pid, 0)
    done = generate(GenerateConfig(mix={"paradox_conclusion.en": 1, "silence.ru": 1}, n=400000, workers=2,
                                   resume=True), out)
    assert done.records == 400000 and not data.exists()


def test_workers_draw_no_blocks_past_what_the_run_needs(tmp_path):
    small = generate(GenerateConfig(mix=MIX, n=50, workers=2), tmp_path / "small")
    assert small.units_drawn == 1000  # block 0 only, not the four blocks a full window would hold
    bigger = generate(GenerateConfig(mix=MIX, n=2500, workers=2), tmp_path / "bigger")
    assert bigger.units_drawn == 3000  # blocks 0, 1000 and 2000
