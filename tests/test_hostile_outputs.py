"""Hostile input, round two (issue 28): data loss and provenance.

- One rule for outputs: never an input (nor inside one, nor holding one, links resolved), never an existing
  folder without --overwrite, and a dry run writes nothing but its own staging folder.
- run.json records the model and the corpus by absolute path and content hash, checked on use.
- A corpus's manifest is verified on read: every listed file there, its record count, size and sha256.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpusforge.errors import CorpusforgeError

from .conftest import SAMPLE
from .test_hostile import cf, corpus_copy, nothing_under, refused


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (links not followed) with its bytes: what must survive a refused command."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from .tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def adapter(tiny, tmp_path_factory) -> Path:
    """A two-step adapter on the tiny model, trained on a copy of the sample corpus (both stay in place)."""
    from corpusforge.train.config import make_config
    from corpusforge.train.loop import train

    root = tmp_path_factory.mktemp("trained")
    corpus = root / "corpus"
    shutil.copytree(SAMPLE / "corpus", corpus)
    cfg = make_config(dict(model=str(tiny), steps=2, batch_size=4, eval_every=0, checkpoint_every=0,
                           use_controls=False))
    train(corpus, root / "adapter", cfg, echo=lambda s: None)
    return root / "adapter"


# ---------------------------------------------------------------------------
# Outputs: never an input, never an existing folder without --overwrite


def test_a_dry_run_push_never_replaces_an_existing_staging_folder(run, tmp_path):
    corpus = corpus_copy(tmp_path)
    mine = tmp_path / "DIR"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me")
    refused(run("push", corpus, "--repo", "me/x", "--dry-run", "--staging", mine), "--staging", "already exists",
            "--overwrite")
    assert tree(mine) == {"precious.txt": b"keep me"}
    assert not (tmp_path / ".DIR.partial").exists()
    # with --overwrite it is replaced; a folder push made itself is replaced on the next push without it
    assert run("push", corpus, "--repo", "me/x", "--dry-run", "--staging", mine, "--overwrite").exit_code == 0
    assert (mine / "README.md").is_file() and not (mine / "precious.txt").exists()
    assert run("push", corpus, "--repo", "me/x", "--dry-run", "--staging", mine).exit_code == 0


@pytest.mark.parametrize("where", ["itself", "inside", "holding", "link"])
def test_push_staging_is_never_the_corpus(run, tmp_path, where):
    corpus = corpus_copy(tmp_path)
    before = tree(corpus)
    if where == "link":
        (tmp_path / "alias").symlink_to(corpus)
    staging = {"itself": corpus, "inside": corpus / "data" / "stage", "holding": tmp_path,
               "link": tmp_path / "alias"}[where]
    for extra in ([], ["--overwrite"]):
        refused(run("push", corpus, "--repo", "me/x", "--dry-run", "--staging", staging, *extra), "--staging",
                "input", "--overwrite never reaches an input")
    assert tree(corpus) == before


def test_export_onto_its_corpus_is_refused(run, tmp_path):
    corpus = corpus_copy(tmp_path)
    before = tree(corpus)
    for out in (corpus, corpus / "data", corpus / "sub", tmp_path):
        refused(run("export", corpus, "--format", "jsonl", "--out", out, "--overwrite"), "--out", "input")
    assert tree(corpus) == before
    assert not list(tmp_path.glob(".*partial"))


def test_generate_onto_its_template_pack_is_refused(run, tmp_path):
    from .test_hostile import GOOD_TEMPLATE, pack_with

    pack = pack_with(tmp_path, GOOD_TEMPLATE)
    before = tree(pack)
    for out in (pack, pack / "inside"):
        refused(run("generate", "--template", "t.en", "--templates", pack, "--n", "3", "--out", out, "--overwrite"),
                "--out", "input", str(pack))
    # a pack found through CORPUSFORGE_TEMPLATES is an input too
    refused(cf("generate", "--template", "t.en", "--n", "3", "--out", pack, "--overwrite",
               env={"CORPUSFORGE_TEMPLATES": str(pack)}), "--out", "input")
    assert tree(pack) == before


def test_merge_onto_its_adapter_is_refused(run, tmp_path, adapter, tiny):
    before = tree(adapter)
    refused(run("merge", "--adapter", adapter, "--out", adapter, "--overwrite"), "--out", "is the input")
    refused(run("merge", "--adapter", adapter, "--model", tiny, "--out", tiny, "--overwrite"), "--out", "input")
    assert tree(adapter) == before


def test_train_and_report_onto_an_input_are_refused(run, tmp_path, adapter, tiny):
    corpus = corpus_copy(tmp_path)
    before = tree(corpus)
    refused(run("train", corpus, "--model", tiny, "--out", corpus, "--overwrite", "--steps", "1"), "--out", "input")
    refused(run("train", corpus, "--model", tiny, "--out", tiny / "a", "--steps", "1"), "--out", "inside the input")
    refused(run("report", "--adapter", adapter, "--model", tiny, "--out", adapter, "--overwrite"), "--out", "input")
    refused(run("report", "--adapter", adapter, "--model", tiny, "--corpus", corpus, "--out", corpus / "r"),
            "--out", "inside the input")
    assert tree(corpus) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.sampled_from(["in", "sub", "..", ".", "other", "link"]), min_size=0, max_size=4),
       overwrite=st.booleans())
def test_no_output_path_ever_reaches_an_input(tmp_path_factory, parts, overwrite):
    """Whatever path an output is spelled as (relative steps, links), it is refused exactly when it resolves to
    the input, a folder inside it or a folder holding it; and then nothing is touched."""
    from corpusforge._io import check_output

    root = tmp_path_factory.mktemp("o")
    (root / "in" / "sub").mkdir(parents=True)
    (root / "in" / "sub" / "f.txt").write_text("x")
    (root / "other").mkdir()
    (root / "link").symlink_to(root / "in")
    (root / "in" / "link").symlink_to(root / "in" / "sub")
    out = root.joinpath(*parts) if parts else root
    real_in, real_out = (root / "in").resolve(), Path(os.path.realpath(out))
    overlaps = real_out == real_in or real_in in real_out.parents or real_out in real_in.parents
    try:
        check_output(out, overwrite=overwrite, inputs=[root / "in"])
    except CorpusforgeError as e:
        assert overlaps or "already exists" in str(e) or "exists and is" in str(e), str(e)
        if overlaps:
            assert "input" in str(e)
    else:
        assert not overlaps
    assert (root / "in" / "sub" / "f.txt").read_text() == "x"


def test_export_to_an_existing_folder_needs_overwrite(run, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    refused(run("export", SAMPLE / "corpus", "--format", "jsonl", "--out", out), "already exists", "--overwrite")
    assert tree(out) == {"keep.txt": b"mine"}
    nothing_under(tmp_path, "x")


# ---------------------------------------------------------------------------
# Manifests verified on read: a deleted, cut, changed, dangling or looping data file is an error naming it


def _break(corpus: Path, how: str) -> Path:
    """Damage the corpus's train split in one way; the damaged file."""
    train = corpus / "data" / "train.jsonl"
    lines = train.read_bytes().splitlines(keepends=True)
    if how == "deleted":
        train.unlink()
    elif how == "truncated":       # cut at a line boundary: every record left is valid
        train.write_bytes(b"".join(lines[:100]))
    elif how == "record-dropped":  # same count of lines elsewhere would still differ in size and hash
        train.write_bytes(b"".join(lines[1:]))
    elif how == "swapped":         # same records, same size, other order: only the sha256 tells
        train.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))
    elif how == "dangling":
        train.unlink()
        train.symlink_to(corpus / "nowhere.jsonl")
    elif how == "loop":
        train.unlink()
        (corpus / "data" / "loop.lnk").symlink_to(train)
        train.symlink_to(corpus / "data" / "loop.lnk")
    elif how == "stray":
        (corpus / "data" / "extra.jsonl").write_bytes(lines[0])
        return corpus / "data" / "extra.jsonl"
    return train


DAMAGE = {"deleted": "was not found", "truncated": "100 records, manifest.json says 161",
          "record-dropped": "160 records", "swapped": "sha256", "dangling": "dangling symbolic link",
          "loop": "symbolic link loop", "stray": "not listed in manifest.json"}


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_a_damaged_split_is_refused_by_validate_and_export(run, tmp_path, how):
    corpus = corpus_copy(tmp_path)
    bad = _break(corpus, how)
    result = run("validate", corpus)
    assert result.exit_code == 1 and DAMAGE[how] in result.output and str(bad) in result.output, result.output
    line = refused(run("export", corpus, "--format", "jsonl", "--out", tmp_path / "e"), DAMAGE[how])
    assert str(bad) in line
    nothing_under(tmp_path, "e")
    refused(run("export", corpus, "--format", "parquet", "--out", tmp_path / "e"), DAMAGE[how])
    nothing_under(tmp_path, "e")


@pytest.mark.parametrize("how", ["truncated", "deleted", "swapped"])
def test_push_and_train_check_the_manifest_too(run, tmp_path, tiny, how):
    corpus = corpus_copy(tmp_path)
    _break(corpus, how)
    refused(run("push", corpus, "--repo", "me/x", "--dry-run", "--staging", tmp_path / "s"), DAMAGE[how])
    refused(run("train", corpus, "--model", tiny, "--out", tmp_path / "a", "--steps", "1"), DAMAGE[how])
    nothing_under(tmp_path, "a")


def test_validate_quick_checks_counts_and_sizes_without_hashing(run, tmp_path):
    corpus = corpus_copy(tmp_path)
    assert run("validate", "--quick", corpus).exit_code == 0
    _break(corpus, "swapped")
    assert run("validate", "--quick", corpus).exit_code == 0    # same count and size: only a hash would tell
    assert "sha256" in run("validate", corpus).output
    _break(corpus, "truncated")
    result = run("validate", "--quick", corpus)
    assert result.exit_code == 1 and "records, manifest.json says 161" in result.output
    assert "sha256" not in result.output
    assert "without hashing" in " ".join(run("validate", "--help").output.split())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=123243), flip=st.booleans())
def test_any_change_to_a_split_is_caught(tmp_path_factory, cut, flip):
    """Cut a split anywhere or change one byte: reading the corpus for validate (and so push and train) fails."""
    from corpusforge.validate import validate_paths

    corpus = tmp_path_factory.mktemp("c") / "corpus"
    shutil.copytree(SAMPLE / "corpus", corpus)
    train = corpus / "data" / "train.jsonl"
    data = bytearray(train.read_bytes())
    if flip:
        data[cut] = ord("x") if data[cut] != ord("x") else ord("y")
    else:
        del data[cut:]
    train.write_bytes(bytes(data))
    try:
        assert not validate_paths([corpus]).ok
    except CorpusforgeError:
        pass


# ---------------------------------------------------------------------------
# run.json: the model and the corpus by absolute path and content hash, checked on use


def _run_json(adapter: Path) -> dict:
    import json

    return json.loads((adapter / "run.json").read_text(encoding="utf-8"))


def _copy_adapter(adapter: Path, to: Path, **changes) -> Path:
    import json

    shutil.copytree(adapter, to)
    data = _run_json(to)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    (to / "run.json").write_text(json.dumps(data), encoding="utf-8")
    return to


def test_run_json_records_model_and_corpus_by_absolute_path_and_hash(adapter, tiny):
    from corpusforge.train.adapter_run import fingerprint

    data = _run_json(adapter)
    assert data["model"] == str(tiny.resolve()) and data["model_sha256"] == fingerprint(tiny)
    assert Path(data["corpus"]).is_absolute() and data["corpus_manifest_sha256"]


def test_try_from_another_folder_uses_the_recorded_model_not_a_namesake(adapter, tiny, tmp_path):
    """train --model model (relative) then try from elsewhere: the model at run.json's absolute path is used, a
    folder of the same name here is not; the same model by its absolute path or a copy is accepted."""
    from corpusforge.shift.trial import try_adapter

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "model").mkdir(parents=True)
    (elsewhere / "model" / "config.json").write_text("{}")
    result = cf("try", "--adapter", adapter, "If the river", "--max-new-tokens", "1", "--format", "json",
                cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-2000:]
    copy = tmp_path / "copy"
    shutil.copytree(tiny, copy)
    for model in (str(tiny.resolve()), str(copy)):
        assert try_adapter(adapter, ["If"], model=model)
    refused(cf("try", "--adapter", adapter, "--model", elsewhere / "model", "If"), "trained on", "--model")


def test_a_changed_or_moved_model_is_refused_naming_run_json(run, adapter, tiny, tmp_path):
    from .tiny import make_tiny_model

    other = make_tiny_model(tmp_path / "other", seed=1)     # same shape, other weights
    changed = _copy_adapter(adapter, tmp_path / "changed", model=str(other.resolve()))
    for command in (["try", "--adapter", changed, "If"],
                    ["merge", "--adapter", changed, "--out", tmp_path / "m"],
                    ["report", "--adapter", changed, "--model", other, "--out", tmp_path / "r"]):
        refused(run(*command), "has changed since the adapter was trained", "run.json", "model_sha256")
    moved = _copy_adapter(adapter, tmp_path / "moved", model=str(tmp_path / "gone"))
    refused(run("try", "--adapter", moved, "If"), "no longer there", "run.json", "--model")
    nothing_under(tmp_path, "m")
    nothing_under(tmp_path, "r")


def test_a_changed_corpus_is_refused_when_run_json_names_it(run, adapter, tiny, tmp_path):
    corpus = Path(_run_json(adapter)["corpus"])
    manifest = corpus / "manifest.json"
    before = manifest.read_bytes()
    try:
        manifest.write_bytes(before.replace(b'"seed": 7', b'"seed": 8'))
        refused(run("merge", "--adapter", adapter, "--out", tmp_path / "m"), "corpus", "has changed",
                "corpus_manifest_sha256")
    finally:
        manifest.write_bytes(before)
    nothing_under(tmp_path, "m")


def test_an_older_run_json_without_a_hash_is_read_with_a_clear_rule(adapter, tiny, tmp_path):
    """No model_sha256 (an older corpusforge): a model named by a relative path that exists here is refused
    unless --model is given; an absolute path is used as before."""
    from corpusforge.errors import ReportError
    from corpusforge.shift.trial import try_adapter

    old = _copy_adapter(adapter, tmp_path / "old", model="model", model_sha256=None)
    (tmp_path / "model").symlink_to(tiny)
    result = cf("try", "--adapter", old, "If", cwd=tmp_path)
    refused(result, "relative path 'model'", "no fingerprint", "--model")
    assert try_adapter(old, ["If"], model=str(tiny))
    absolute = _copy_adapter(adapter, tmp_path / "old-abs", model=str(tiny), model_sha256=None)
    assert try_adapter(absolute, ["If"])
    with pytest.raises(ReportError, match="trained on"):
        try_adapter(absolute, ["If"], model=str(tmp_path / "old"))
