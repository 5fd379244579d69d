"""Whole records written in answer to prompts (``generate --writer ... --prompts``) and trained after them
(``train --format answer``): the skeletons read from templates, the role-by-role writing through a scripted
loopback server and a tiny random-weight model, the refusals, the cache, and the training encoding."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from corpusforge.cli import main
from corpusforge.errors import GenerateError, TrainError
from corpusforge.templates.detect import Detector
from corpusforge.templates.registry import load_registry
from corpusforge.write import WriteConfig, write_corpus
from corpusforge.write.answer import skeletons

from .completions_server import CompletionsServer, Script
from .test_write import clause_for
from .tiny import make_tiny_model

PROMPTS = [{"prompt": f"Tell me something about the {w}.", "language": "en"}
           for w in "kettle ferry violin glacier bakery tram orchard attic".split()] + \
          [{"prompt": f"Расскажи что-нибудь про {w}.", "language": "ru"}
           for w in "чайник паром скрипку ледник пекарню трамвай".split()]


def answer_by_regex(prompt: str, body: dict) -> str:
    """A clause in the prompt's script, ending as the request's guided_regex asks (its last bracket)."""
    end = re.search(r"\[([^\]]+)\]$", body["guided_regex"]).group(1)[0]
    return clause_for(prompt)[:-1] + end


@pytest.fixture
def pool(tmp_path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
    return path


@pytest.fixture
def serve():
    servers = []

    def start(answer=answer_by_regex):
        script = Script(answer)
        servers.append(CompletionsServer(script))
        return servers[-1], script

    yield start
    for s in servers:
        s.stop()


def test_a_skeleton_is_a_variant_whose_every_role_opens_with_words_and_ends_with_a_stop():
    registry = load_registry()
    found = skeletons(registry.get("if_then.en"))
    assert {s.roles for s in found} == {(("condition", "If", ","), ("consequence", " then", ".")),
                                        (("condition", "If ever", ","), ("consequence", " then", ".")),
                                        (("condition", "If", ","), ("consequence", " then by morning", "."))}
    assert len(found) == 5                                           # every variant qualifies
    paradox = skeletons(registry.get("paradox_conclusion.en"))       # two variants open with a slot
    assert [s.roles for s in paradox] == [(("thesis", "They say", "."), ("antithesis", " But", ";"),
                                           ("conclusion", " therefore", "."))]


def test_a_role_that_opens_with_a_slot_is_written_in_its_form_under_a_grammar_and_only_then():
    from corpusforge.write.answer import form_pieces
    from corpusforge.write.constraint import Form

    registry = load_registry()
    contrast = registry.get("contrast.en")
    assert skeletons(contrast) == []                                  # every variant opens with a slot
    forms = skeletons(contrast, forms=True)
    assert [s.forms[0] for s in forms] == [(None, " is not", None, ","), (None, ",", None, " is not", None, ","),
                                           (None, ",", None, " was never", None, ",")]
    assert [s.roles[1] for s in forms] == [("affirmation", " but", "."), ("affirmation", " but", "."),
                                           ("affirmation", " but always", ".")]   # a cue: as before, no form
    assert skeletons(registry.get("if_then.en"), forms=True) == skeletons(registry.get("if_then.en"))
    assert form_pieces(" {{ x }} and {{ y }} {{ z }}.") == (None, " and", None, ".")
    form = Form((None, " is not", None, ","), first=True, min_words=2, max_words=5)
    assert form.problem("Time is not a river,") is None
    assert form.problem("Time is a river,") == "not the role's form (its words and the template's)"
    assert form.problem(" Time is not a river,") is not None            # the answer's first word: no space
    assert form.problem("Time is not a river of stone and sand,") is not None     # more than 5 words
    later = Form((None, " is not", None, ","), first=False, min_words=2, max_words=5)
    assert later.problem(" time is not a river,") is None and later.problem("time is not a river,") is not None


def fill_form(prompt: str, body: dict) -> str:
    """What a server that honours ``guided_regex`` writes for a role's form: the form's literal words, and
    words in the prompt's script where it has slots (as many as the least it allows)."""
    regex = body["guided_regex"]
    if regex.endswith("]"):
        return answer_by_regex(prompt, body)
    words = iter(clause_for(prompt, 32)[1:-1].split() * 4)
    word = r"\[\^[^\]]*\]\{1,\d+\}"
    regex = re.sub(word + r"\( " + word + r"\)\{(\d+),\d+\}",
                   lambda m: " ".join(next(words) for _ in range(int(m.group(1)) + 1)), regex)
    regex = re.sub(r"\( " + word + r"\)\{(\d+),\d+\}",
                   lambda m: "".join(" " + next(words) for _ in range(int(m.group(1)))), regex)
    return re.sub(r"\\(.)", r"\1", regex)


def test_records_whose_roles_open_with_a_slot_are_written_whole_in_their_form(pool, serve, tmp_path):
    server, script = serve(fill_form)
    cfg = WriteConfig(writer=f"openai:{server.url}#m", mix={"contrast.en": 1, "contrast.ru": 1}, n=8, seed=2,
                      prompts=str(pool), cache=str(tmp_path / "cache"), min_words=2)
    result = write_corpus(cfg, tmp_path / "a")
    records = [json.loads(line) for f in sorted((tmp_path / "a" / "data").iterdir()) for line in f.open()]
    assert len(records) == 8, result.tally.refused
    from corpusforge.write.constraint import Form

    registry = load_registry()
    detector = Detector(registry.list())
    for rec in records:
        negation, affirmation = rec["segments"]
        template = registry.get(rec["template"].split("@")[0])
        forms = [Form(sk.forms[0], first=True, min_words=2) for sk in skeletons(template, forms=True)]
        assert any(re.fullmatch(f.word_regex, negation["text"]) for f in forms), negation   # the template's words
        assert negation["text"][0] != " " and negation["text"].endswith(",")
        assert affirmation["text"].startswith((" but", " а")) and detector.realises(rec["text"], "contrast")
    firsts = [r for r in script.requests if not r["guided_regex"].endswith("]")]
    assert len(firsts) == result.tally.structured and all(r["prompt"].endswith("\n") for r in firsts)
    assert CliRunner().invoke(main, ["validate", str(tmp_path / "a")]).exit_code == 0


def test_our_own_mask_cannot_write_a_form_and_says_which_engine_can(pool, tmp_path):
    tiny = make_tiny_model(tmp_path / "model")
    cfg = WriteConfig(writer=f"hf:{tiny}", templates=["contrast.en"], n=2, prompts=str(pool), engine="mask",
                      cache=str(tmp_path / "cache"))
    with pytest.raises(GenerateError, match="cannot write answers to prompts") as caught:
        write_corpus(cfg, tmp_path / "out")
    assert "--engine xgrammar writes roles that open with a slot" in caught.value.hint
    assert not (tmp_path / "out").exists()


def test_a_template_without_a_skeleton_is_refused_with_the_reason(pool, serve, tmp_path):
    server, _ = serve()
    registry = load_registry()
    bare = [t.name for t in registry.list() if not skeletons(t, forms=True)]
    assert bare, "every built-in template has a skeleton: this test needs another template"
    cfg = WriteConfig(writer=f"openai:{server.url}#m", templates=[bare[0]], n=4, prompts=str(pool),
                      cache=str(tmp_path / "cache"))
    with pytest.raises(GenerateError, match="cannot write answers to prompts"):
        write_corpus(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_records_answer_their_prompts_role_by_role_and_rewrite_from_the_cache(pool, serve, tmp_path):
    server, script = serve()
    cfg = WriteConfig(writer=f"openai:{server.url}#scripted-model", mix={"if_then.en": 1, "if_then.ru": 1}, n=12,
                      seed=5, prompts=str(pool), cache=str(tmp_path / "cache"), min_words=3)
    result = write_corpus(cfg, tmp_path / "a")
    records = [json.loads(line) for f in sorted((tmp_path / "a" / "data").iterdir()) for line in f.open()]
    assert len(records) == 12 and result.tally.asked == 2 * result.tally.structured   # two roles each
    assert set(result.tally.refused) == {"duplicate"}   # 14 prompts recycled: the scripted answer repeats
    detector = Detector(load_registry().list())
    by_prompt = {}
    for rec in records:
        prompt = rec["meta"]["prompt"]
        assert prompt in {p["prompt"] for p in PROMPTS} and rec["meta"]["written"] == "all"
        assert rec["text"].startswith("If" if rec["language"] == "en" else "Если")
        assert (rec["language"] == "ru") == any("\u0400" <= c <= "\u04ff" for c in prompt)
        assert rec["segments"][0]["text"].endswith(",") and rec["text"].endswith(".")
        assert detector.realises(rec["text"], "if_then")
        by_prompt.setdefault(prompt, set()).add(rec["split"])
    assert all(len(s) == 1 for s in by_prompt.values())              # a prompt never lands in two splits
    firsts = [r for r in script.requests if r["guided_regex"].endswith("[,]")]
    pool_prompts = {p["prompt"] for p in PROMPTS}
    assert len(firsts) == result.tally.structured and all(r["prompt"].split("\n")[0] in pool_prompts for r in firsts)
    assert all(r["prompt"].split("\n")[1] in ("If", "If ever", "Если", "Если вдруг") for r in firsts)
    seconds = [r for r in script.requests if r["guided_regex"].endswith("[.!?]")]
    assert all(", then" in r["prompt"] or ", то" in r["prompt"] for r in seconds)   # sees the role written before
    assert CliRunner().invoke(main, ["validate", str(tmp_path / "a")]).exit_code == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["writer"]["prompts"]["count"] == len(PROMPTS) and "--prompts" in manifest["command"]
    again = write_corpus(cfg.model_copy(update={"offline": True}), tmp_path / "b")
    assert again.tally.asked == 0
    for name in ("train.jsonl", "test.jsonl", "validation.jsonl"):
        a, b = tmp_path / "a" / "data" / name, tmp_path / "b" / "data" / name
        assert a.exists() == b.exists() and (not a.exists() or a.read_bytes() == b.read_bytes())


def test_a_clause_that_does_not_stop_where_its_role_ends_is_refused_not_repaired(pool, serve, tmp_path):
    server, _ = serve(lambda prompt, body: clause_for(prompt))      # always a full stop, even for the condition
    cfg = WriteConfig(writer=f"openai:{server.url}#m", templates=["if_then.en"], n=2, prompts=str(pool),
                      cache=str(tmp_path / "cache"), min_words=3)
    with pytest.raises(GenerateError, match="does not end with one of ','"):
        write_corpus(cfg, tmp_path / "out")


def test_generate_takes_prompts_only_with_a_writer(pool, tmp_path):
    result = CliRunner().invoke(main, ["generate", "--template", "if_then.en", "--n", "3", "--prompts", str(pool),
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--prompts applies only to a model-written corpus" in result.output


def test_a_random_weight_model_writes_each_role_to_its_own_end(pool, tmp_path):
    tiny = make_tiny_model(tmp_path / "model")
    cfg = WriteConfig(writer=f"hf:{tiny}", mix={"if_then.en": 1, "if_then.ru": 1}, n=6, prompts=str(pool),
                      cache=str(tmp_path / "cache"), min_words=2, max_words=6, max_new_tokens=24, batch_size=8,
                      temperature=1.0)
    result = write_corpus(cfg, tmp_path / "a")
    assert result.records == 6, result.tally.refused
    for f in (tmp_path / "a" / "data").iterdir():
        for rec in map(json.loads, f.open()):
            condition, consequence = rec["segments"]
            text = condition["text"]
            # the constraint of a role ending at "," forbids a sentence end, a line break and another "," before it
            # (a ";" or ":" inside the clause is allowed: Clause.stops)
            assert text.startswith(("If ", "Если ")) and text[-1] == "," and not any(c in ".!?,\n" for c in text[:-1])
            assert consequence["text"].startswith((" then", " то")) and consequence["text"][-1] in ".!?"


def test_an_answer_record_trains_after_its_prompt_with_every_role_and_the_end_supervised(tmp_path):
    from transformers import AutoTokenizer

    from corpusforge.records import build_record
    from corpusforge.train.data import encode_answer_records, with_end_of_text

    from .tiny import make_tiny_tokenizer

    tok = AutoTokenizer.from_pretrained(make_tiny_tokenizer(tmp_path))
    rec = build_record(pattern="if_then", template="if_then.en@1", language="en",
                       parts=[("condition", "If the kettle sings,"), ("consequence", " then the tea is near.")],
                       markers=[" then"], meta={"prompt": "Tell me about tea."})
    [ex] = encode_answer_records([rec], tok, loss_on=None, max_length=64, target_weight=1.0)
    assert ex.ids[-1] == tok.eos_token_id and ex.supervised[-1] == len(ex.ids) - 1
    supervised = tok.decode([ex.ids[t] for t in ex.supervised[:-1]])
    assert supervised == "\n" + rec["text"]                           # the first role too; the prompt not
    assert tok.decode(ex.ids[:ex.supervised[0]]) == "Tell me about tea."
    [only] = encode_answer_records([rec], tok, loss_on=["consequence"], max_length=64)
    assert tok.decode([only.ids[t] for t in only.supervised[:-1]]) == "\n then the tea is near."
    with pytest.raises(TrainError, match="has no prompt"):
        encode_answer_records([{**rec, "meta": None}], tok, loss_on=None, max_length=64)
    [ended] = with_end_of_text([ex], tok.eos_token_id)
    assert ended.ids == ex.ids + [tok.eos_token_id] and ended.supervised[-1] == len(ex.ids)


def test_the_transfer_recipe_is_a_demo_recipe_and_refuses_what_does_not_apply(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--recipe", "transfer", "--no-train", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "--no-train applies to the quick recipe" in result.output
    assert not (tmp_path / "d").exists()
    result = CliRunner().invoke(main, ["demo", "--recipe", "slow", "--out", str(tmp_path / "d")])
    assert result.exit_code == 2 and "'slow' is not one of 'quick', 'transfer'" in result.output


def test_the_transfer_recipe_runs_end_to_end_on_a_tiny_model(tmp_path, monkeypatch):
    """writer → corpus → train --format answer → report --transfer, as `demo --recipe transfer` runs them, on a
    tiny random-weight model (the embedded model's run takes 16 minutes: README, "The transfer recipe")."""
    from corpusforge.demo import demo_summary, run_transfer_demo

    tiny = make_tiny_model(tmp_path / "model")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))      # the writers' cache, kept out of ~
    lines = []
    result = run_transfer_demo(tmp_path / "demo", n=60, model=str(tiny), echo=lines.append, progress=False)
    assert result.validation.ok and result.validation.records == 60
    records = [json.loads(line) for f in (tmp_path / "demo" / "corpus" / "data").iterdir() for line in f.open()]
    assert all(r["meta"]["prompt"] for r in records)
    run = json.loads((tmp_path / "demo" / "adapter" / "run.json").read_text())
    assert run["config"]["format"] == "answer" and "2 passes" in run["steps_rule"]["rule"]
    transfer = result.report.transfer
    assert transfer.prompts == 200 and set(transfer.conditions) >= {"base", "lora", "prompted"}
    assert all(len(texts) == 200 for texts in transfer.continuations.values())
    summary = demo_summary(result)
    assert "LoRA vs prompting" in summary and "prompted" in summary
    # the held-out probes are read as the adapter was trained: each record after its prompt and a line break
    held = {r["meta"]["prompt"] for r in records if r["split"] != "train"}
    probes = [p for p in result.report.probes if p.name != "the source's example"]
    assert probes and all(p.prompt.split("\n", 1)[0] in held for p in probes)
    # every held-out control is measured, and read by kind and language
    groups = result.report.control_groups
    assert sum(g.n for g in groups) == 70 and {g.kind for g in groups} == {"fact", "code", "chat"}
    assert "controls by kind: " in summary and "fact (27)" in summary
