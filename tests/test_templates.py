"""Templates: the format, the sandbox, and every bad-input case stops with file and line."""

from __future__ import annotations

import textwrap

import pytest

from corpusforge.errors import TemplateError
from corpusforge.patterns import BUILTIN_PATTERNS
from corpusforge.templates.render import capfirst, with_article
from corpusforge.templates.sampler import sample as sample_records
from corpusforge.templates.spec import load_template

GOOD = """\
name: t.en
version: 1
pattern: if_then
language: en
slots:
  subject: [the river, the mind, a question]
  event: [freezes, grows quiet]
variants:
  - condition: "If {{ subject }} {{ event }},"
    consequence: " then it moves."
targets: [" then"]
"""


def load(tmp_path, text: str, name: str = "t.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_template(path, patterns=BUILTIN_PATTERNS)


def error_of(tmp_path, text: str) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        load(tmp_path, text)
    return info.value


def test_a_good_template_loads_and_renders(tmp_path):
    tmpl = load(tmp_path, GOOD)
    assert tmpl.ref == "t.en@1" and tmpl.space_size() == 6
    rec = sample_records(tmpl, 1)[0]
    assert rec["text"].startswith("If ") and rec["targets"][0]["text"] == " then"


@pytest.mark.parametrize("change, line, words", [
    # an attribute escape through the sandbox
    (("it moves.", "{{ ''.__class__.__mro__ }}"), 10, "not allowed in templates"),
    (("it moves.", "{{ subject.__class__ }}"), 10, "not allowed in templates"),
    # a missing slot
    (("it moves.", "{{ outcome }}"), 10, "not defined"),
    # an unknown pattern
    (("pattern: if_then", "pattern: if_when"), 3, "unknown pattern 'if_when'"),
    # variant roles that do not match the pattern
    (("consequence:", "conclusion:"), 10, "does not have"),
    # malformed YAML
    (("slots:", "slots: [unclosed"), 6, "malformed YAML"),
    # Jinja syntax
    (("it moves.", "{{ subject "), 10, "Jinja syntax error"),
    # unknown key
    (("targets:", "tragets:"), 11, "unknown key"),
    # wrong type
    (("version: 1", "version: one"), 2, "version"),
])
def test_bad_templates_name_file_and_line(tmp_path, change, line, words):
    err = error_of(tmp_path, GOOD.replace(*change))
    assert err.file.endswith("t.yaml")
    assert err.line == line, str(err)
    assert words in str(err)


def test_role_order_and_missing_roles(tmp_path):
    swapped = GOOD.replace('''  - condition: "If {{ subject }} {{ event }},"
    consequence: " then it moves."''', '''  - consequence: " then it moves."
    condition: "If {{ subject }} {{ event }},"''')
    assert "orders them" in str(error_of(tmp_path, swapped))
    missing = GOOD.replace('''    consequence: " then it moves."\n''', "")
    assert "missing required role" in str(error_of(tmp_path, missing))


def test_sandbox_refuses_at_render_time_too(tmp_path):
    # not caught by the static check (no literal underscore name), refused by the sandbox
    err = error_of(tmp_path, GOOD.replace("it moves.", "{{ (subject|attr('__cl' ~ 'ass')) }}"))
    assert "sandbox" in str(err) or "refused" in str(err)


def test_missing_word_form_is_caught_at_load(tmp_path):
    text = GOOD.replace("subject: [the river, the mind, a question]",
                        "subject: [{value: river, gen: of the river}, {value: mind}]")
    text = text.replace("it moves.", "it is the flow {{ subject.gen }}.")
    err = error_of(tmp_path, text)
    assert "forms" in str(err) and err.line == 10


def test_lexicon_files_and_escapes(tmp_path):
    (tmp_path / "lex").mkdir()
    (tmp_path / "lex" / "subjects.txt").write_text("# comment\nthe river\n\nthe mind\n", encoding="utf-8")
    tmpl = load(tmp_path, GOOD.replace("subject: [the river, the mind, a question]",
                                       "subject: {file: lex/subjects.txt}"))
    assert [str(w) for w in tmpl.slot_values["subject"]] == ["the river", "the mind"]
    outside = GOOD.replace("subject: [the river, the mind, a question]", "subject: {file: ../../etc/passwd}")
    assert "outside the pack" in str(error_of(tmp_path, outside))
    missing = GOOD.replace("subject: [the river, the mind, a question]", "subject: {file: nope.txt}")
    assert "not found" in str(error_of(tmp_path, missing))


def test_duplicate_slot_values_and_weights(tmp_path):
    dup = GOOD.replace("[the river, the mind, a question]", "[the river, the river]")
    assert "listed twice" in str(error_of(tmp_path, dup))
    weighted = GOOD.replace("[the river, the mind, a question]",
                            "[{value: the river, weight: 50}, the mind]")
    tmpl = load(tmp_path, weighted)
    subjects = [r["slots"]["subject"] for r in sample_records(tmpl, 400)]
    assert subjects.count("the river") > 300  # 50:1 weights


def test_constraints_keep_slots_distinct(tmp_path):
    text = """\
    name: c.en
    version: 1
    pattern: contrast
    language: en
    slots:
      a: [one, two, three]
      b: [one, two, three]
    constraints:
      - distinct: [a, b]
    variants:
      - negation: "Not {{ a }},"
        affirmation: " but {{ b }}."
    """
    tmpl = load(tmp_path, text)
    assert all(r["slots"]["a"] != r["slots"]["b"] for r in sample_records(tmpl, 200))


def test_filters():
    assert with_article("idea") == "an idea" and with_article("question") == "a question"
    assert with_article("hour") == "an hour" and with_article("unit") == "a unit"
    assert capfirst("река течёт") == "Река течёт" and capfirst("the River") == "The River"


def test_non_fast_templates_render_through_the_sandbox(tmp_path):
    text = GOOD.replace("it moves.", "{% if event == 'freezes' %}it stops{% else %}it moves{% endif %}.")
    tmpl = load(tmp_path, text)
    variant = tmpl.variants[0]
    assert not variant.roles[1][1].fast and variant.roles[0][1].fast
    texts = {r["text"] for r in sample_records(tmpl, 100)}
    assert any("it stops" in t for t in texts) and any("it moves" in t for t in texts)


def test_empty_and_non_mapping_files(tmp_path):
    assert "empty" in str(error_of(tmp_path, ""))
    assert "must be a YAML mapping" in str(error_of(tmp_path, "- a\n- b\n"))


@pytest.mark.parametrize("condition", [
    "If {{ subject }} {{ event }}, 100% of it",          # a literal % beside two slots
    "%s: {{ subject | cap }}",                            # a literal %s beside one slot
    "{{ subject }} {{ event }} {{ subject|a }} {{ event|cap }}",  # four expressions: the generic path
    "Always so,",                                         # no slot at all
])
def test_fast_path_renders_exactly_what_the_sandbox_renders(tmp_path, condition):
    tmpl = load(tmp_path, GOOD.replace("If {{ subject }} {{ event }},", condition.replace('"', '\\"')))
    cs = tmpl.variants[0].roles[0][1]
    assert cs.fast
    for subject in range(3):
        for event in range(2):
            choice = {"subject": subject, "event": event}
            assert cs.render(choice, tmpl.slot_values) == cs.render_sandboxed(choice, tmpl.slot_values)


def test_show_and_the_scaffold_mark_what_a_model_writes(tmp_path):
    """`templates show` says which parts a writer fills — after the last marker, and per skeleton with
    --prompts — and a scaffolded template has both kinds of skeleton: one after opening words, one in a form."""
    from click.testing import CliRunner

    from corpusforge.cli import main

    runner = CliRunner()
    shown = runner.invoke(main, ["templates", "show", "if_then.en", "--n", "1"], color=False)
    assert shown.exit_code == 0, shown.output
    assert "model-written (generate --writer): If " in shown.output and ", then ⟨model⟩" in shown.output
    assert "answering prompts (--prompts): 5 of 5 variants\n" in shown.output
    assert "[condition|If ever ⟨model⟩,][consequence| then ⟨model⟩.]" in shown.output
    contrast = runner.invoke(main, ["templates", "show", "contrast.en", "--n", "1"], color=False).output
    assert "3 of 3 variants (3 only under a grammar — --engine auto or xgrammar" in contrast
    assert "[negation|⟨model⟩ is not ⟨model⟩,][affirmation| but ⟨model⟩.]" in contrast
    metaphor = runner.invoke(main, ["templates", "show", "metaphor.en", "--n", "1"], color=False).output
    assert "model-written (generate --writer): not possible" in metaphor
    assert "answering prompts (--prompts): not possible" in metaphor

    made = runner.invoke(main, ["templates", "new", "mine", "--pattern", "if_then", "--out", str(tmp_path)])
    assert made.exit_code == 0, made.output
    path = tmp_path / "mine" / "mine.en.yaml"
    assert path.read_text().startswith("# A model can write this template's words")
    scaffolded = runner.invoke(main, ["templates", "show", str(path), "--n", "1"], color=False).output
    assert "2 of 2 variants (1 only under a grammar" in scaffolded, scaffolded
    assert "[condition|Here condition: ⟨model⟩.][consequence| consequence: ⟨model⟩.]" in scaffolded
    assert runner.invoke(main, ["templates", "test", str(path)]).exit_code == 0
