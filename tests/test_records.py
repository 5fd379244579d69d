"""The record contract: the model, the structural checks, the committed JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from corpusforge.patterns import BUILTIN_PATTERNS
from corpusforge.records import (
    RECORD_DICT_VALIDATOR,
    Record,
    build_record,
    content_id,
    find_targets,
    is_sound,
    structural_errors,
)
from corpusforge.schemas import render_schema

from .conftest import ROOT, SAMPLE


def make(parts, markers=(" then",), pattern="if_then"):
    return build_record(pattern=pattern, template="t.en@1", language="en", parts=parts, markers=markers,
                        slots={"a": "b"}, seed=3, index=7)


def test_built_record_is_valid_and_offsets_are_characters():
    rec = make([("condition", "Если река замерзает,"), ("consequence", " то путь становится движением.")],
               markers=[" то"])
    model = Record.model_validate(rec)
    assert structural_errors(model) == []
    seg = rec["segments"][1]
    assert rec["text"][seg["start"]:seg["end"]] == " то путь становится движением."
    assert rec["targets"] == [{"text": " то", "start": 20, "end": 23}]


def test_id_is_a_content_hash_that_ignores_provenance():
    rec = make([("condition", "If it rains,"), ("consequence", " then it pours.")])
    moved = dict(rec, split="test", seed=99, index=1)
    assert Record.model_validate(moved).id == rec["id"]
    assert structural_errors(Record.model_validate(moved)) == []
    edited = dict(rec, slots={"a": "c"})
    problems = structural_errors(Record.model_validate(edited))
    assert [p for p, _ in problems] == ["$.id"]
    assert "expected" in problems[0][1]


def test_markers_match_whole_words_only():
    assert find_targets("If so, then thenceforth then.", [" then"]) == [
        {"text": " then", "start": 6, "end": 11}, {"text": " then", "start": 23, "end": 28}]
    assert find_targets("Это не вещь, а автор", [" а"]) == [{"text": " а", "start": 12, "end": 14}]


@pytest.mark.parametrize("mutate, path, words", [
    (lambda r: r["segments"].reverse(), "$.segments[1].role", "out of order"),
    (lambda r: r["segments"].pop(), "$.segments", "missing"),
    (lambda r: r["segments"][0].update(role="premise"), "$.segments[0].role", "not a role of if_then"),
    (lambda r: r["segments"][1].update(start=2), "$.segments[1].start", "overlaps"),
    (lambda r: r["segments"][1].update(end=999), "$.segments[1]", "inside the text"),
    (lambda r: r["segments"][0].update(text="If it snows,"), "$.segments[0].text", "does not match"),
    (lambda r: r["targets"][0].update(text=" than"), "$.targets[0].text", "does not match"),
    (lambda r: r.update(pattern="nonesuch"), "$.pattern", "unknown pattern"),
])
def test_structural_checks_name_the_field(mutate, path, words):
    rec = make([("condition", "If it rains,"), ("consequence", " then it pours.")])
    mutate(rec)
    problems = structural_errors(Record.model_validate(rec))
    assert any(p == path and words in m for p, m in problems), problems
    assert not is_sound(rec, BUILTIN_PATTERNS)  # the fast path agrees


def _thorough(line: bytes) -> bool:
    try:
        return structural_errors(Record.model_validate_json(line)) == []
    except ValidationError:
        return False


def _fast(line: bytes) -> bool:
    try:
        return is_sound(RECORD_DICT_VALIDATOR.validate_json(line), BUILTIN_PATTERNS)
    except ValidationError:
        return False


def test_the_fast_path_accepts_exactly_what_the_contract_accepts():
    """Validation's fast path (a dict validator derived from Record's schema, then is_sound) must accept
    and reject the same lines as Record + structural_errors: the sample corpus, the invalid sample, and
    edge cases — among them the checks the fast validator leaves to is_sound (id, pattern and role names)."""
    lines = (SAMPLE / "corpus" / "data" / "train.jsonl").read_bytes().splitlines()
    lines += (SAMPLE / "invalid.jsonl").read_bytes().splitlines()
    good = json.loads(lines[0])
    seg0 = good["segments"][0]
    for bad in (dict(good, index="5"), dict(good, index=-1), dict(good, seed=1.5), dict(good, colour="blue"),
                dict(good, id="XYZ"), dict(good, id=good["id"].upper()), dict(good, id="0" * 32),
                dict(good, pattern=good["pattern"].title()), dict(good, pattern=good["pattern"] + "\n"),
                dict(good, segments=[dict(seg0, role=seg0["role"].upper())] + good["segments"][1:]),
                dict(good, language="english"), dict(good, template="t.en"),
                dict(good, split="Train"), dict(good, segments=[]), dict(good, slots={"a": 1}),
                dict(good, targets=[{"text": "", "start": 0, "end": 0}]), dict(good, meta=[1]),
                dict(good, segments=[dict(seg0, extra=1)]), dict(good, premise_id=None),
                {k: v for k, v in good.items() if k not in ("split", "meta", "premise_id")}):
        lines.append(json.dumps(bad, ensure_ascii=False).encode())
    verdicts = [(_thorough(line), _fast(line)) for line in lines]
    assert [i for i, (thorough, fast) in enumerate(verdicts) if thorough != fast] == []
    assert {thorough for thorough, _ in verdicts} == {True, False}  # both kinds were exercised


def test_fast_path_passes_every_sound_sample_record():
    for line in (SAMPLE / "corpus" / "data" / "train.jsonl").read_bytes().splitlines():
        assert is_sound(RECORD_DICT_VALIDATOR.validate_json(line), BUILTIN_PATTERNS)


def test_schema_file_matches_the_model():
    committed = (ROOT / "schemas" / "record.schema.json").read_text(encoding="utf-8")
    assert committed == render_schema("record"), "run `corpusforge schema export` and commit schemas/"


def test_committed_schema_is_draft_2020_12_and_agrees_with_the_model(good_record):
    schema = json.loads((ROOT / "schemas" / "record.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(good_record)
    for bad in (dict(good_record, index="5"), dict(good_record, colour="blue"),
                {k: v for k, v in good_record.items() if k != "text"}, dict(good_record, id="xyz")):
        assert not validator.is_valid(bad)
        with pytest.raises(ValidationError):
            Record.model_validate(bad)


def test_content_id_is_stable():
    # pinned: changing the id recipe invalidates every published corpus
    assert content_id("if_then", "t.en@1", "en", "If a, then b.", [("condition", 0, 5), ("consequence", 5, 13)],
                      [(" then", 5, 10)], {"x": "a"}) == "a214e60040830821bbbc36828ea2065b"
