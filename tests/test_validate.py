"""`corpusforge validate`: every error, with file, line, field and a message; never a traceback."""

from __future__ import annotations

import gzip
import json

import pytest

from corpusforge.validate import validate_paths

from .conftest import SAMPLE, write_jsonl


def test_sample_corpus_is_valid(run):
    result = run("validate", SAMPLE / "corpus")
    assert result.exit_code == 0, result.output
    assert "200 records in 3 file(s): 200 valid, 0 invalid" in result.output


def test_invalid_sample_reports_every_problem_at_its_line(run):
    result = run("validate", SAMPLE / "invalid.jsonl", "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert (report["records"], report["valid"], report["invalid"]) == (10, 1, 9)
    by_line = {}
    for e in report["errors"]:
        by_line.setdefault(e["line"], []).append((e["path"], e["message"]))
    assert set(by_line) == {3, 4, 5, 6, 7, 8, 9, 10, 11}  # line 1 valid, line 2 blank
    assert by_line[3][0][1].startswith("invalid JSON")
    assert "not a JSON object" in by_line[4][0][1]
    assert by_line[5][0][0] == "$.index"
    assert by_line[6] == [("$.text", "required field is missing")]
    assert by_line[7][0][0] == "$.colour" and "unknown field" in by_line[7][0][1]
    assert any("out of order" in m for _, m in by_line[8])
    assert any(p == "$.pattern" for p, _ in by_line[9])
    assert {p for p, _ in by_line[10]} >= {"$.segments[0].text", "$.id"}
    assert "UTF-8" in by_line[11][0][1]


def test_text_output_lists_errors_and_a_summary(run):
    result = run("validate", SAMPLE / "invalid.jsonl")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"{SAMPLE / 'invalid.jsonl'}:3: $: invalid JSON")
    assert lines[-1] == "10 records in 1 file(s): 1 valid, 9 invalid, 20 error(s)"  # 2 are gaps the tiling rule finds
    assert "Traceback" not in result.output


def test_max_errors_caps_the_list_not_the_counts(run):
    report = json.loads(run("validate", SAMPLE / "invalid.jsonl", "--format", "json", "--max-errors", "2").output)
    assert len(report["errors"]) == 2
    assert report["invalid"] == 9


def test_bom_crlf_and_blank_lines_are_accepted(tmp_path, good_record):
    line = json.dumps(good_record, ensure_ascii=False).encode()
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + line + b"\r\n\r\n" + line + b"\r\n   \r\n")
    report = validate_paths([path])
    assert (report.records, report.valid, report.ok) == (2, 2, True)


def test_line_numbers_are_physical_lines(tmp_path, good_record):
    path = write_jsonl(tmp_path / "x.jsonl", [good_record, b"", b"", b"{oops"])
    report = validate_paths([path])
    assert [e.line for e in report.errors] == [4]


@pytest.mark.parametrize("content, words", [
    (b"", "file is empty"),
    (b"\n\n", "file is blank"),
    (b"{\"id\": \"abc\", \"pattern\"", "the file may be truncated"),
    (b"\xff\xfe\n", "not valid UTF-8"),
    (b"x" * (10 * 1024 * 1024), "longer than 8 MiB"),
    (b"\"just a string\"\n", "not a JSON object"),
])
def test_bad_files_get_one_clear_error(tmp_path, content, words):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    report = validate_paths([path])
    assert not report.ok
    assert any(words in e.message for e in report.errors), [e.message for e in report.errors]


def test_truncated_last_record_in_a_good_file(tmp_path, good_record):
    line = json.dumps(good_record).encode()
    path = tmp_path / "t.jsonl"
    path.write_bytes(line + b"\n" + line[: len(line) // 2])
    report = validate_paths([path])
    assert (report.valid, report.invalid) == (1, 1)
    assert report.errors[0].line == 2 and "truncated" in report.errors[0].message


def test_gzip_and_parquet(tmp_path, good_record, run):
    gz = tmp_path / "c.jsonl.gz"
    with gzip.open(gz, "wb") as f:
        f.write(json.dumps(good_record).encode() + b"\n" + b"[1]\n")
    report = validate_paths([gz])
    assert (report.valid, report.invalid) == (1, 1)
    result = run("generate", "--template", "if_then.en", "--n", "50", "--format", "parquet", "--out", tmp_path / "pq")
    assert result.exit_code == 0, result.output
    assert run("validate", tmp_path / "pq").exit_code == 0


def test_corrupt_gzip_is_an_error_not_a_crash(tmp_path):
    path = tmp_path / "broken.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    report = validate_paths([path])
    assert not report.ok and "cannot read" in report.errors[0].message


def test_missing_path_is_a_usage_error(run, tmp_path):
    result = CliRunnerNoCatch().invoke_validate(tmp_path / "nope.jsonl")
    assert result.exit_code == 2
    assert "nope.jsonl was not found" in result.output


class CliRunnerNoCatch:
    def invoke_validate(self, path):
        from click.testing import CliRunner

        from corpusforge.cli import main

        return CliRunner().invoke(main, ["validate", str(path)])


def test_plugin_patterns_travel_in_the_manifest(tmp_path, run):
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "patterns.yaml").write_text(
        "patterns:\n  - name: riddle_turn\n    roles: [setup, turn, insight]\n", encoding="utf-8")
    (pack / "riddle.yaml").write_text("""\
name: riddle.en
version: 1
pattern: riddle_turn
language: en
slots:
  x: [a door, a key, a map, a bell, a lamp]
variants:
  - setup: "What opens {{ x }}?"
    turn: " Not a hand,"
    insight: " but a question."
targets: [" but"]
""", encoding="utf-8")
    out = tmp_path / "corpus"
    assert run("generate", "--template", "riddle.en", "--templates", pack, "--n", "5", "--out", out).exit_code == 0
    assert run("validate", out).exit_code == 0                     # the manifest declares riddle_turn
    data = out / "data" / "train.jsonl"
    assert run("validate", data).exit_code == 1                    # a bare file does not
    assert run("validate", data, "--templates", pack).exit_code == 0


def test_records_before_a_corrupt_gzip_tail_are_still_counted(tmp_path, good_record):
    import gzip as gz

    whole = gz.compress((json.dumps(good_record) + "\n").encode() * 12000)  # over one 4 MiB read
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])     # the stream ends mid-way
    report = validate_paths([path])
    assert not report.ok and report.file_errors == 1 and "cannot read" in report.errors[-1].message
    assert report.valid == report.records > 0


def test_nested_schema_errors_name_the_field(tmp_path, good_record):
    bad = [dict(good_record, segments=[1]), dict(good_record, slots={"a": 1}),
           dict(good_record, targets=[{"text": " then"}])]
    report = validate_paths([write_jsonl(tmp_path / "nested.jsonl", bad)])
    found = [(e.line, e.path, e.message) for e in report.errors]
    assert (1, "$.segments[0]", "Input should be an object (got 1)") in found
    assert (2, "$.slots.a", "Input should be a valid string (got 1)") in found
    assert (3, "$.targets[0].start", "required field is missing") in found
    assert report.invalid == 3


def test_parquet_rows_get_the_same_checks_as_lines(tmp_path, good_record):
    import pyarrow.parquet as pq

    from corpusforge.columnar import table

    rows = [good_record, dict(good_record, id="0" * 32), dict(good_record, language="english")]
    pq.write_table(table(rows), tmp_path / "rows.parquet")
    report = validate_paths([tmp_path / "rows.parquet"])
    assert (report.records, report.valid, report.invalid) == (3, 1, 2)
    assert {(e.line, e.path) for e in report.errors} == {(2, "$.id"), (3, "$.language")}
