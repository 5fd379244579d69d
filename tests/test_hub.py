"""Export, the dataset card, and `corpusforge push` against a real Hub-compatible server on 127.0.0.1.

The server (tests/hubserver.py) is real HTTP; the clients are the real, unpatched
huggingface_hub and datasets, run in a subprocess with HF_ENDPOINT pointing at the
server (huggingface_hub reads it at import). What cannot exist here: the Xet upload
protocol (HF_HUB_DISABLE_XET=1) and the datasets-server parquet export
(datasets.config.USE_PARQUET_EXPORT = False in the loading script).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpusforge.columnar import from_row
from corpusforge.hub.dataset import export_corpus, load_corpus
from corpusforge.hub.dataset_card import BEGIN, END, render_card, split_card
from corpusforge.records import Record
from corpusforge.validate import iter_records

from .conftest import SAMPLE
from .hubserver import HubServer

LOAD = """
import json, sys, datasets
datasets.config.USE_PARQUET_EXPORT = False
datasets.utils.logging.disable_progress_bar()
ds = datasets.load_dataset(sys.argv[1], revision=sys.argv[2] if len(sys.argv) > 2 else None)
out = {split: [dict(r) for r in ds[split]] for split in ds}
feats = {split: str(ds[split].features) for split in ds}
print(json.dumps({"rows": out, "features": feats}, ensure_ascii=False))
"""


def normalised(records) -> list[dict]:
    return [Record.model_validate(r).model_dump() for r in records]


def corpus_rows(corpus: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in sorted((corpus / "data").iterdir()):
        out[f.name.split(".")[0]] = normalised(iter_records([f]))
    return out


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def hub(tmp_path):
    with HubServer() as server:
        env = dict(os.environ, HF_ENDPOINT=server.url, HF_TOKEN=server.state.token, HF_HOME=str(tmp_path / "hf"),
                   HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
        yield server, env


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "corpusforge", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def load_from_hub(env, repo: str, revision: str | None = None) -> dict:
    args = [repo] + ([revision] if revision else [])
    proc = subprocess.run([sys.executable, "-c", LOAD, *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def make_corpus(run, out: Path, n: int, seed: int = 0) -> Path:
    result = run("generate", "--mix", "if_then.en=1,if_then.ru=1,paradox_conclusion.ru=1", "--n", str(n),
                 "--seed", str(seed), "--out", out)
    assert result.exit_code == 0, result.output
    return out


# -- export and the dataset ----------------------------------------------------------------------


def test_load_corpus_has_explicit_features_and_round_trips_unicode(tmp_path):
    ds = load_corpus(SAMPLE / "corpus")
    assert set(ds) == {"train", "validation", "test"}
    feats = ds["train"].features
    assert feats["segments"].feature["role"].dtype == "string"   # a list of structs
    assert feats["targets"].feature["start"].dtype == "int64"
    rows = {split: normalised(from_row(dict(r)) for r in ds[split]) for split in ds}
    assert rows == corpus_rows(SAMPLE / "corpus")
    assert any(r["language"] == "ru" and "то" in r["text"] for r in rows["train"])


def test_jsonl_parquet_dataset_jsonl_loses_nothing(tmp_path):
    pq = export_corpus(SAMPLE / "corpus", tmp_path / "pq", "parquet")
    import datasets

    loaded = datasets.load_dataset(str(pq), cache_dir=str(tmp_path / "cache"))
    back = export_corpus(SAMPLE / "corpus", tmp_path / "jl", "jsonl")
    for split in loaded:
        from_parquet = normalised(from_row(dict(r)) for r in loaded[split])
        assert from_parquet == corpus_rows(SAMPLE / "corpus")[split]
        assert normalised(iter_records([back / "data" / f"{split}.jsonl"])) == from_parquet
    arrow = export_corpus(SAMPLE / "corpus", tmp_path / "arrow", "arrow")
    assert datasets.load_from_disk(str(arrow))["train"].num_rows == 161


def test_export_refuses_to_overwrite(run, tmp_path):
    (tmp_path / "out").mkdir()
    result = run("export", SAMPLE / "corpus", "--out", tmp_path / "out")
    assert result.exit_code == 1 and "already exists" in result.output


# -- the card ---------------------------------------------------------------------------------------


def test_card_metadata_and_body(tmp_path):
    staged = export_corpus(SAMPLE / "corpus", tmp_path / "pq", "parquet")
    text = (staged / "README.md").read_text(encoding="utf-8")
    meta, before, after = split_card(text)
    assert meta["language"] == ["en", "ru"] and meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert {"synthetic", "reasoning", "if_then", "paradox_conclusion"} <= set(meta["tags"])
    assert meta["configs"][0]["data_files"][0] == {"split": "test", "path": "data/test-*"}
    for words in ("## One example per pattern", "| condition |", "**then**", "**движение**", "Regenerate it exactly",
                  "corpusforge generate --mix", "distinct-1", "continuations per premise", "load_dataset(",
                  "definition_movement.ru", "| train | 161 |"):
        assert words in text, words
    assert before == "" and after == ""


def test_user_prose_and_metadata_survive_a_new_card():
    from corpusforge.manifest import read_manifest
    from corpusforge.stats import corpus_stats

    manifest = read_manifest(SAMPLE / "corpus")
    stats = corpus_stats([SAMPLE / "corpus"])
    examples = {r["pattern"]: r for r in iter_records([SAMPLE / "corpus"])}
    first = render_card(manifest, stats, examples, ["train"], repo_id="o/n")
    meta_end = first.index("\n---", 3)
    edited = (first[:meta_end] + "\nannotations_creators:\n- machine-generated" + first[meta_end:])
    edited = edited.replace(BEGIN, "Intro written by a person.\n\n" + BEGIN).replace(
        END, END + "\n\n## Citation\nPlease cite us.")
    second = render_card(manifest, stats, examples, ["train"], repo_id="o/n", existing=edited)
    meta, before, after = split_card(second)
    assert before == "Intro written by a person." and after == "## Citation\nPlease cite us."
    assert meta["annotations_creators"] == ["machine-generated"]
    assert second.count(BEGIN) == 1


# -- push against the server ----------------------------------------------------------------------------


def test_push_then_load_returns_the_same_rows(hub, run, tmp_path):
    server, env = hub
    corpus = make_corpus(run, tmp_path / "c", 120)
    result = cli(env, "push", corpus, "--repo", "tester/reasoning", "--license", "cc-by-4.0")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "pushed: " in result.stdout and "sha256" in result.stdout
    loaded = load_from_hub(env, "tester/reasoning")
    rows = {s: normalised(from_row(r) for r in rs) for s, rs in loaded["rows"].items()}
    assert rows == corpus_rows(corpus)
    assert "'segments': List({'role': Value('string')" in loaded["features"]["train"]
    assert json.loads((corpus / "manifest.json").read_text())["license"] == "cc-by-4.0"
    paths = [p for m, p, _ in server.state.requests]
    assert any("/preupload/" in p for p in paths) and any("/commit/" in p for p in paths)


def test_second_push_updates_data_and_keeps_card_prose(hub, run, tmp_path):
    server, env = hub
    corpus = make_corpus(run, tmp_path / "c", 60)
    assert cli(env, "push", corpus, "--repo", "tester/r").returncode == 0
    # a person edits the card on the Hub
    edit = f"""
import os, sys
from huggingface_hub import HfApi
api = HfApi()
path = api.hf_hub_download("tester/r", "README.md", repo_type="dataset")
text = open(path, encoding="utf-8").read().replace("{END}", "{END}\\n\\n## Notes by a person\\nKeep this.")
api.upload_file(path_or_fileobj=text.encode(), path_in_repo="README.md", repo_id="tester/r", repo_type="dataset")
"""
    proc = subprocess.run([sys.executable, "-c", edit], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bigger = make_corpus(run, tmp_path / "c2", 90, seed=1)
    result = cli(env, "push", bigger, "--repo", "tester/r", "--message", "more records")
    assert result.returncode == 0, result.stderr
    loaded = load_from_hub(env, "tester/r")
    assert {s: normalised(from_row(r) for r in rs) for s, rs in loaded["rows"].items()} == corpus_rows(bigger)
    repo = server.state.repos[("dataset", "tester/r")]
    files = repo.commits[repo.branches["main"]]["files"]
    card = server.state.blobs[files["README.md"].sha256].decode()
    assert "## Notes by a person\nKeep this." in card and "90 records" in card
    assert repo.commits[repo.branches["main"]]["title"] == "more records"


def test_a_server_failure_mid_push_loses_nothing_and_a_rerun_succeeds(hub, run, tmp_path):
    server, env = hub
    corpus = make_corpus(run, tmp_path / "c", 50)
    before = tree_digest(corpus)
    server.state.fail("POST", r"/commit/", status=500, times=100)
    result = cli(env, "push", corpus, "--repo", "tester/f", "--retry-wait", "0.05")
    assert result.returncode == 1
    assert "intact" in result.stderr and "Traceback" not in result.stderr
    staging = tmp_path / "c.hub-staging"
    staged = tree_digest(staging)
    assert tree_digest(corpus) == before and staged  # corpus untouched, staged folder kept
    server.state.failures.clear()
    server.state.fail("POST", r"/commit/", status=503, times=1)   # one transient error: retried
    result = cli(env, "push", corpus, "--repo", "tester/f", "--retry-wait", "0.05")
    assert result.returncode == 0, result.stderr
    assert "retrying" in result.stdout
    assert tree_digest(staging) == staged


def test_a_rejected_token_is_reported_clearly_and_never_shown(hub, run, tmp_path):
    server, env = hub
    corpus = make_corpus(run, tmp_path / "c", 30)
    bad = dict(env, HF_TOKEN="hf_wrong_secret_token_42")
    result = cli(bad, "push", corpus, "--repo", "tester/x")
    assert result.returncode == 1
    assert "refused the token (401)" in result.stderr and "Traceback" not in result.stderr
    assert "hf_wrong_secret_token_42" not in result.stdout + result.stderr


def test_the_token_is_absent_from_everything_written(hub, run, tmp_path):
    server, env = hub
    corpus = make_corpus(run, tmp_path / "c", 30)
    result = cli(env, "push", corpus, "--repo", "tester/t", "--license", "mit")
    assert result.returncode == 0, result.stderr
    token = server.state.token.encode()
    assert token not in (result.stdout + result.stderr).encode()
    for folder in (corpus, tmp_path / "c.hub-staging", tmp_path / "hf"):
        for p in folder.rglob("*"):
            if p.is_file() and p.name != "token":  # HF_HOME/token would be the user's own login, not ours
                assert token not in p.read_bytes(), p
    for blob in server.state.blobs.values():
        assert token not in blob


def test_dry_run_stages_and_checks_but_writes_nothing_remote(hub, run, tmp_path):
    server, env = hub
    corpus = make_corpus(run, tmp_path / "c", 30)
    result = cli(env, "push", corpus, "--repo", "tester/d", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing uploaded" in result.stdout
    assert (tmp_path / "c.hub-staging" / "README.md").is_file()
    assert not any(m == "POST" for m, _, _ in server.state.requests)
    assert ("dataset", "tester/d") not in server.state.repos


def test_push_to_a_branch(hub, run, tmp_path):
    server, env = hub
    corpus = make_corpus(run, tmp_path / "c", 30)
    assert cli(env, "push", corpus, "--repo", "tester/b").returncode == 0
    result = cli(env, "push", corpus, "--repo", "tester/b", "--revision", "v2")
    assert result.returncode == 0, result.stderr
    assert "v2" in server.state.repos[("dataset", "tester/b")].branches
    assert load_from_hub(env, "tester/b", "v2")["rows"]["train"]


@pytest.mark.parametrize("args, words", [
    (["--repo", "noslash"], "OWNER/NAME"),
])
def test_push_bad_input(run, args, words):
    result = run("push", SAMPLE / "corpus", *args, "--dry-run")
    assert result.exit_code == 1 and words in result.output


def test_shards_split_at_the_row_limit_in_one_pass(tmp_path):
    import pyarrow.parquet as pq

    from corpusforge.hub.dataset import write_parquet_shards

    files = write_parquet_shards(SAMPLE / "corpus", tmp_path / "data", rows_per_shard=70)
    names = sorted(f.name for f in files)
    assert names == ["test-00000-of-00001.parquet", "train-00000-of-00003.parquet", "train-00001-of-00003.parquet",
                     "train-00002-of-00003.parquet", "validation-00000-of-00001.parquet"]
    rows = [pq.read_table(tmp_path / "data" / n).num_rows for n in names if n.startswith("train")]
    assert rows == [70, 70, 21]
    assert not list((tmp_path / "data").glob(".*"))
