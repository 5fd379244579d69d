"""Model-written corpora (``generate --writer``): the clause constraint, the checks every answer goes through,
the cache, the diversity gates; a server writer against a loopback completions server; the local writer on a
tiny random-weight model and on the real embedded model."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from corpusforge.cli import main
from corpusforge.errors import GenerateError
from corpusforge.neardup import NearDuplicates, jaccard, near_duplicate_share, shingles
from corpusforge.write import WriteConfig, write_corpus
from corpusforge.write.constraint import Clause
from corpusforge.write.run import other_script, premise_of

from .completions_server import CompletionsServer, Script
from .tiny import make_tiny_model

EN = ("river stone light harbour winter garden lantern silence ladder window signal echo mirror meadow thunder "
      "compass feather anchor candle bridge orchard valley shadow morning").split()
RU = "река камень свет гавань зима сад фонарь тишина лестница окно сигнал эхо зеркало луг гром компас".split()


def clause_for(prompt: str, words: int = 6) -> str:
    """A different well-formed clause for every prompt, in the prompt's script."""
    pool = RU if any("\u0400" <= c <= "\u04ff" for c in prompt) else EN
    digest = hashlib.blake2b(prompt.encode(), digest_size=32).digest()
    return " " + " ".join(pool[b % len(pool)] for b in digest[:words]) + "."


@pytest.fixture
def server():
    servers = []

    def start(answer=lambda prompt, body: clause_for(prompt), **kw) -> tuple[CompletionsServer, Script]:
        script = Script(answer, **kw)
        servers.append(CompletionsServer(script))
        return servers[-1], script

    yield start
    for s in servers:
        s.stop()


def config(url: str, tmp_path: Path, **kw) -> WriteConfig:
    base = {"writer": f"openai:{url}#scripted-model", "mix": {"if_then.en": 1, "paradox_conclusion.en": 1,
                                                              "if_then.ru": 1},
            "n": 30, "seed": 3, "cache": str(tmp_path / "cache"), "concurrency": 4, "batch_size": 16}
    return WriteConfig(**{**base, **kw})


# ---------------------------------------------------------------------------
# The constraint and the checks, alone


@pytest.mark.parametrize("text, reason", [
    (" the river keeps its course.", None),
    (" the river keeps its course", "no sentence end"),
    ("the river keeps its course.", "joined to the marker (no space)"),
    (" the river. It keeps its course.", "more than one sentence"),
    (" the river keeps\nits course.", "a line break"),
    (" it ends.", "shorter than 4 words"),
    (" " + "word " * 30 + "end.", "longer than 24 words"),
    (" the river keeps its \ufffd course.", "broken characters"),
    ("   ", "empty"),
])
def test_a_clause_is_one_sentence_on_one_line_within_its_length(text, reason):
    assert Clause(4, 24).problem(text) == reason


def test_an_answer_in_another_script_than_its_premise_is_told_apart():
    assert other_script("Если мысль замерзает, то", " река уходит в море.") is False
    assert other_script("Если мысль замерзает, то", " the river was here.") is True
    assert other_script("If the river freezes, then", " the river was here.") is False
    assert other_script("If the river freezes, then", " река уходит в море, river.") is True


def test_near_duplicates_are_confirmed_by_their_jaccard_similarity():
    a = "if the river freezes then the boats stay in the harbour until spring"
    b = "if the river freezes then the boats stay in the harbour until spring comes"    # 10 of 11 shingles
    c = "the lantern swings in the wind and the whole street listens to it"
    assert jaccard(shingles(a), shingles(b)) >= 0.8 > jaccard(shingles(a), shingles(c))
    index = NearDuplicates()
    assert [index.seen(t) for t in (a, c, b, "a ladder leans on the orchard wall", c + " again")] == \
        [False, False, True, False, True]
    assert near_duplicate_share([a, b, c]) == pytest.approx(1 / 3)
    assert near_duplicate_share([f"{w} stands alone in the {w} field" for w in EN]) == 0.0


def test_the_writer_continues_after_the_marker_that_opens_the_last_role():
    from corpusforge.templates.registry import load_registry
    from corpusforge.templates.sampler import sample

    record = sample(load_registry().get("paradox_conclusion.en"), 1, seed=5)[0]
    premise = premise_of(0, record)
    assert premise.prompt.endswith("therefore") and record["text"].startswith(premise.prompt)
    assert [role for role, _ in premise.given] == ["thesis", "antithesis", "conclusion"]


# ---------------------------------------------------------------------------
# A server writer, on loopback


def test_a_server_writes_a_corpus_that_validates_and_realises_its_patterns(server, tmp_path):
    srv, script = server(token="s3cret-token")
    os.environ["CORPUSFORGE_API_KEY"] = "s3cret-token"
    try:
        result = write_corpus(config(srv.url, tmp_path), tmp_path / "c")
    finally:
        del os.environ["CORPUSFORGE_API_KEY"]
    assert result.records == 30 and result.tally.asked == len(script.requests) >= 30
    records = [json.loads(line) for f in sorted((tmp_path / "c" / "data").iterdir()) for line in f.open()]
    assert {r["pattern"] for r in records} == {"if_then", "paradox_conclusion"}
    assert {r["language"] for r in records} == {"en", "ru"}
    for r in records:
        assert r["meta"] == {"writer": "scripted-model", "written": r["segments"][-1]["role"]}
        assert r["text"] == _prompt_of(r) + clause_for(_prompt_of(r))      # the premise, then the answer
    runner = CliRunner()
    assert runner.invoke(main, ["validate", str(tmp_path / "c")]).exit_code == 0
    detected = runner.invoke(main, ["detect", str(tmp_path / "c" / "data" / "train.jsonl"), "--format", "json"])
    rows = json.loads(detected.output)["texts"]
    assert rows and all(r["patterns"] for r in rows)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["writer"]["identity"] == {"kind": "openai", "model": "scripted-model"}
    assert manifest["writer"]["asked"] == len(script.requests) and manifest["writer"]["refused"] == {}
    assert all(h.get("Authorization") == "Bearer s3cret-token" for h in script.headers)
    written = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(b"s3cret" in blob for blob in written)          # the token is sent, never written
    assert script.requests[0]["stop"] == ["\n"] and "guided_regex" in script.requests[0]


def _prompt_of(record: dict) -> str:
    target = [t for t in record["targets"] if t["start"] >= record["segments"][-1]["start"]][0]
    return record["text"][:target["end"]]


def test_a_second_run_is_byte_identical_from_the_cache_without_asking(server, tmp_path):
    srv, script = server()
    first = write_corpus(config(srv.url, tmp_path), tmp_path / "a")
    asked = len(script.requests)
    second = write_corpus(config(srv.url, tmp_path), tmp_path / "b")
    assert len(script.requests) == asked and second.tally.asked == 0 and second.tally.cached >= 30
    for name in ("data/train.jsonl", "data/validation.jsonl", "data/test.jsonl"):
        a, b = tmp_path / "a" / name, tmp_path / "b" / name
        assert a.exists() == b.exists() and (not a.exists() or a.read_bytes() == b.read_bytes())
    assert first.records == second.records
    srv.stop()                                                       # offline: the cache alone
    third = write_corpus(config(srv.url, tmp_path, offline=True), tmp_path / "d")
    assert (tmp_path / "d" / "data" / "train.jsonl").read_bytes() == (tmp_path / "a" / "data" / "train.jsonl"
                                                                        ).read_bytes() and third.tally.asked == 0


def test_a_run_killed_midway_resumes_without_asking_again_what_it_has(server, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    srv, script = server(lambda prompt, body: time.sleep(0.05) or clause_for(prompt))
    args = ["generate", "--writer", f"openai:{srv.url}#scripted-model", "--template", "if_then.en", "--n", "60",
            "--seed", "3", "--cache", str(tmp_path / "cache"), "--batch-size", "8", "--concurrency", "2"]
    run = subprocess.Popen([sys.executable, "-m", "corpusforge", *args, "--out", str(tmp_path / "killed")],
                           env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(list((tmp_path / "cache").rglob("*.json"))) < 16 and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    cached = len(list((tmp_path / "cache").rglob("*.json")))
    assert 16 <= cached < 60 and not (tmp_path / "killed").exists()
    before = len(script.requests)
    resumed = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "resumed")])
    assert resumed.exit_code == 0, resumed.output
    assert f"{cached} from the cache" in resumed.output
    asked_again = len(script.requests) - before
    assert asked_again == int(resumed.output.split(" asked")[0].rsplit(" ", 1)[1]) and asked_again < 60
    fresh = [str(tmp_path / "fresh") if a == str(tmp_path / "cache") else a for a in args]   # a run never killed
    whole = CliRunner().invoke(main, [*fresh, "--out", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl"):
        a, b = tmp_path / "resumed" / "data" / name, tmp_path / "whole" / "data" / name
        assert a.exists() == b.exists() and (not a.exists() or a.read_bytes() == b.read_bytes())


def test_offline_without_the_answers_says_what_is_missing_and_writes_nothing(server, tmp_path):
    srv, _ = server()
    result = CliRunner().invoke(main, ["generate", "--writer", f"openai:{srv.url}#scripted-model", "--template",
                                       "if_then.en", "--n", "5", "--cache", str(tmp_path / "empty"), "--offline",
                                       "--out", str(tmp_path / "c")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--offline: the cache lacks 18 of the answers asked for" in result.output
    assert not (tmp_path / "c").exists()


def test_answers_without_the_structure_are_refused_and_counted_never_repaired(server, tmp_path):
    def answer(prompt: str, body: dict) -> str:
        n = int(hashlib.blake2b(prompt.encode(), digest_size=2).hexdigest(), 16) % 4
        return ["Sure! Here is a continuation.\nThen the river stops.", " the river stops. Then it flows.",
                " it rains", clause_for(prompt)][n]

    srv, script = server(answer)
    result = write_corpus(config(srv.url, tmp_path, n=10, mix={"if_then.en": 1}), tmp_path / "c")
    refused = result.manifest.writer["refused"]
    assert {"a line break", "more than one sentence", "no sentence end"} <= set(refused)
    t = result.tally                                        # every answer is judged: refused or structured
    assert t.judged == t.asked + t.cached == sum(refused.values()) + t.structured   # (no duplicates here)
    assert result.records <= t.structured
    texts = [json.loads(line)["text"] for f in (tmp_path / "c" / "data").iterdir() for line in f.open()]
    assert all("\n" not in t and t.count(".") == 1 for t in texts)


def test_a_server_that_never_gives_the_structure_fails_with_the_reasons(server, tmp_path):
    srv, _ = server(lambda prompt, body: "I cannot help with that.")
    with pytest.raises(GenerateError, match=r"only 0 of 5 records could be written.*joined to the marker"):
        write_corpus(config(srv.url, tmp_path, n=5, mix={"if_then.en": 1}), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_diversity_bounds_refuse_to_finish_and_say_by_how_much(server, tmp_path):
    def answer(prompt: str, body: dict) -> str:          # one answer for every other prompt
        odd = hashlib.blake2b(prompt.encode(), digest_size=1).digest()[0] % 2
        return " the river keeps its course tonight." if odd else clause_for(prompt)

    srv, _ = server(answer)
    with pytest.raises(GenerateError, match=r"near-duplicates, above --max-near-dup 10.0% by \d"):
        write_corpus(config(srv.url, tmp_path, n=8, mix={"if_then.en": 1}, max_near_dup=0.1), tmp_path / "c")
    stuck, _ = server(lambda prompt, body: " the river keeps its course tonight.")   # one answer for all
    with pytest.raises(GenerateError, match=r"only 1 of 4 records could be written .* near-duplicate"):
        write_corpus(config(stuck.url, tmp_path, n=4, mix={"if_then.en": 1}, cache=str(tmp_path / "c3")),
                     tmp_path / "c")
    srv2, _ = server()
    with pytest.raises(GenerateError, match=r"distinct-2 is 0\.\d+, below --min-distinct-2 0.990 by 0\.\d+"):
        write_corpus(config(srv2.url, tmp_path, n=20, min_distinct_2=0.99, cache=str(tmp_path / "c2")),
                     tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_server_failures_are_retried_then_one_clear_error(server, tmp_path, monkeypatch):
    from corpusforge.write.writers import ServerWriter

    monkeypatch.setattr(ServerWriter, "BACKOFF", 0.01)   # the retries as a run makes them, without the waits
    srv, script = server(fail_next=[503, 500])                       # two failures, then answers
    assert write_corpus(config(srv.url, tmp_path, n=3, mix={"if_then.en": 1}), tmp_path / "c").records == 3
    srv2, _ = server(fail_next=[404])
    runner = CliRunner()
    args = ["generate", "--template", "if_then.en", "--n", "3", "--cache", str(tmp_path / "k")]
    result = runner.invoke(main, [*args, "--writer", f"openai:{srv2.url}", "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and "HTTP 404" in result.output and "Traceback" not in result.output
    closed = runner.invoke(main, [*args, "--writer", "openai:http://127.0.0.1:9#m", "--out", str(tmp_path / "e")])
    assert closed.exit_code == 1 and "cannot reach the writer's server" in closed.output
    assert "Traceback" not in closed.output and not (tmp_path / "e").exists()


def test_a_damaged_cache_entry_is_one_clear_error(server, tmp_path):
    srv, _ = server()
    write_corpus(config(srv.url, tmp_path, n=3, mix={"if_then.en": 1}), tmp_path / "c")
    entry = next((tmp_path / "cache").rglob("*.json"))
    entry.write_text("{not json")
    result = CliRunner().invoke(main, ["generate", "--writer", f"openai:{srv.url}#scripted-model", "--template",
                                       "if_then.en", "--n", "3", "--seed", "3", "--cache", str(tmp_path / "cache"),
                                       "--out", str(tmp_path / "d")])
    assert result.exit_code == 1 and "a cache entry is damaged" in result.output and str(entry) in result.output
    assert not (tmp_path / "d").exists()


def test_writer_options_and_template_options_do_not_mix():
    runner = CliRunner()
    only_writer = runner.invoke(main, ["generate", "--template", "if_then.en", "--offline", "--out", "x"])
    assert only_writer.exit_code == 2 and "--offline applies only to a model-written corpus" in only_writer.output
    only_templates = runner.invoke(main, ["generate", "--writer", "embedded", "--template", "if_then.en",
                                          "--workers", "2", "--out", "x"])
    assert only_templates.exit_code == 2 and "--workers does not apply" in only_templates.output
    bad = runner.invoke(main, ["generate", "--writer", "gpt", "--template", "if_then.en", "--out", "x"])
    assert bad.exit_code == 1 and "is not a writer" in bad.output


# ---------------------------------------------------------------------------
# A local writer: the clause is forced while decoding


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.mark.parametrize("engine", ["mask", "xgrammar"])
def test_a_random_weight_model_writes_only_clauses_and_each_row_alone_decides_its_words(tiny, engine):
    """Random weights spread their mass over the whole vocabulary: only the constraint keeps the shape. Our mask
    allows whole characters alone, so every answer passes the check; xgrammar lets bytes join into characters,
    so a row may reach the token budget inside a character (it ends there, and the check refuses it) or hold a
    character the check refuses that the grammar's ranges do not name (random weights reach the astral planes'
    unassigned ones). Without the grammar no answer of random weights would have its shape."""
    import re

    from corpusforge.lm.fingerprint import fingerprint
    from corpusforge.write.writers import Ask, LocalWriter, Sampling

    clause = Clause(3, 8)
    writer = LocalWriter(str(tiny), Sampling(0.9, 0.95, 40), clause, batch_size=8, engine=engine)
    asks = [Ask(p, f"k{i}") for i, p in enumerate(["If the river freezes, then", "If ever a door opens, then",
                                                   "Если мысль замерзает, то"] * 3)]
    answers = writer.write(asks)
    if engine == "mask":
        assert all(a is not None and clause.problem(a) is None for a in answers), answers
    else:
        shaped = [a is not None and bool(re.fullmatch(clause.word_regex, a)) for a in answers]
        assert sum(shaped) >= 6, answers
        assert all(clause.problem(a) is not None for a, ok in zip(answers, shaped) if not ok)
        assert {clause.problem(a) for a, ok in zip(answers, shaped) if ok} <= {None, "a control character or "
                                                                                    "unusual space"}
    assert len(set(answers)) > 3                                    # each key its own stream
    assert writer.write([asks[4]]) == [answers[4]]                  # alone, or beside others: the same words
    assert writer.identity["model_fingerprint"] == fingerprint(tiny) and writer.identity["kind"] == "local"


@pytest.mark.parametrize("engine", ["mask", "xgrammar"])
def test_the_decode_loop_writes_what_generate_writes(tiny, engine):
    """writers.decode drops the rows that have ended from its forward passes; every row's tokens are still
    generate's own, token for token (the rule sees every row, as generate shows them), for rows that end early,
    late, or not at all within the budget."""
    import torch

    from corpusforge.lm.generation import padded
    from corpusforge.lm.tokens import text_ids
    from corpusforge.write.writers import Ask, LocalWriter, Sampling, decode, framed

    writer = LocalWriter(str(tiny), Sampling(0.9, 0.95, 24), Clause(2, 6), batch_size=8, engine=engine)
    tok, model = writer.lm.tokenizer, writer.lm.model
    asks = [Ask(p, f"d{i}") for i, p in enumerate(["If the river freezes, then", "If it rains,",
                                                   "Если мысль замерзает, то", "If ever a door opens at night, "
                                                   "then"] * 2)]
    ids = [text_ids(tok, framed(a, tok)) for a in asks]
    pad = tok.pad_token_id
    rows, mask = padded(model, ids, pad, left=True)
    width = rows.shape[1]
    with torch.no_grad():
        ours = decode(model, rows, mask, writer.rule(Clause(2, 6), width, asks), 24, pad, tok.eos_token_id)
        theirs = model.generate(input_ids=rows, attention_mask=mask, pad_token_id=pad, do_sample=False,
                                max_new_tokens=24, logits_processor=[writer.rule(Clause(2, 6), width, asks)])
    theirs = theirs[:, width:]
    ended = [tok.eos_token_id in r for r in ours.tolist()]
    assert any(ended) and len({r.index(tok.eos_token_id) for r in ours.tolist() if tok.eos_token_id in r}) > 1
    assert ours.shape == theirs.shape and torch.equal(ours, theirs)


@pytest.mark.slow
def test_the_embedded_model_writes_a_corpus_every_record_of_which_validates_and_is_detected(tmp_path):
    runner = CliRunner()
    args = ["generate", "--writer", "embedded", "--mix", "if_then.en=1,paradox_conclusion.en=1,if_then.ru=1",
            "--n", "12", "--seed", "1", "--cache", str(tmp_path / "cache"), "--batch-size", "16"]
    first = runner.invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    assert runner.invoke(main, ["validate", str(tmp_path / "a")]).exit_code == 0
    for f in (tmp_path / "a" / "data").iterdir():
        rows = json.loads(runner.invoke(main, ["detect", str(f), "--format", "json"]).output)["texts"]
        assert all(r["patterns"] for r in rows)
    second = runner.invoke(main, [*args, "--out", str(tmp_path / "b"), "--offline"])
    assert second.exit_code == 0 and "0 asked" in second.output
    assert (tmp_path / "a" / "data" / "train.jsonl").read_bytes() == (tmp_path / "b" / "data" / "train.jsonl"
                                                                       ).read_bytes()


@pytest.mark.slow
def test_a_real_openai_compatible_server_that_ignores_the_constraint_gives_the_same_contract(tmp_path):
    """llm-katan (a real OpenAI-compatible FastAPI server) serving the embedded model's folder on loopback: it
    only chats and ignores stop sequences and limits, so most answers come back as prose and are refused."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from corpusforge.lm.embedded import embedded_model_folder

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    katan = Path(sys.executable).with_name("llm-katan")
    server = subprocess.Popen([str(katan), "--model", str(embedded_model_folder()), "--served-model-name", "smol",
                               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--no-quantize",
                               "--max-tokens", "48", "--stats-file", str(tmp_path / "stats.json"),
                               "--log-level", "WARNING"], env=dict(os.environ, HF_HUB_OFFLINE="1"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        os.environ["CORPUSFORGE_API_KEY"] = "any-key"
        try:
            result = write_corpus(WriteConfig(writer=f"openai-chat:http://127.0.0.1:{port}#smol",
                                              mix={"if_then.en": 1}, n=1, seed=0, max_new_tokens=48,
                                              cache=str(tmp_path / "cache"), batch_size=4), tmp_path / "c")
        finally:
            del os.environ["CORPUSFORGE_API_KEY"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert result.records == 1      # one record: each answer is a request to a CPU server, and most are refused
    assert CliRunner().invoke(main, ["validate", str(tmp_path / "c")]).exit_code == 0
    writer = json.loads((tmp_path / "c" / "manifest.json").read_text())["writer"]
    assert writer["identity"] == {"kind": "openai-chat", "model": "smol"}
    t = result.tally
    assert t.judged == writer["asked"] == t.asked and sum(writer["refused"].values()) <= t.judged - 1


def test_an_engine_is_for_a_local_writer_only():
    """A server forces the clause with its own guided decoding: --engine beside it is refused before any request
    (the address is never reached)."""
    result = CliRunner().invoke(main, ["generate", "--writer", "openai:http://127.0.0.1:9#m", "--template",
                                       "if_then.en", "--engine", "mask", "--n", "2", "--out", "never"])
    assert result.exit_code == 1 and "--engine mask is for a local writer" in result.output, result.output
    assert "Traceback" not in result.output and not Path("never").exists()


def test_asks_under_different_constraints_that_sort_alike_are_each_answered(tiny):
    """Two roles' forms ending alike (contrast.en's and contrast.ru's first roles) in one call: each ask gets its
    own answer. (The writer once took a batch's rows from a window of the sorted asks and skipped the others in
    it: a third of such answers came back as nothing.)"""
    from corpusforge.write.constraint import Form
    from corpusforge.write.writers import Ask, LocalWriter, Sampling

    forms = [Form((None, " is not", None, ","), True, 1, 4), Form((None, " — не", None, ","), True, 1, 4)]
    writer = LocalWriter(str(tiny), Sampling(0.9, 0.95, 40), Clause(1, 4), batch_size=8)
    asks = [Ask("", f"f{i}", forms[i % 2], "Tell me about the sea.") for i in range(10)]
    answers = writer.write(asks)
    assert all(a is not None for a in answers), answers
