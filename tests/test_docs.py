"""The README is the front door: its commands run, its examples are true."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from corpusforge.records import Record, structural_errors

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def tour_commands() -> list[list[str]]:
    commands = []
    for block in code_blocks("sh"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("corpusforge "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_shows_the_two_setup_commands():
    assert "make demo" in README and "make test" in README


def test_the_tour_runs_in_order(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = tour_commands()
    assert len(commands) >= 8
    for args in commands:
        result = run(*args)
        assert result.exit_code == 0, f"corpusforge {' '.join(args)}:\n{result.output}"


def test_the_record_example_is_a_valid_record():
    block = next(b for b in code_blocks("json") if '"segments"' in b)
    rec = Record.model_validate(json.loads(block))
    assert structural_errors(rec) == []


def test_the_python_api_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-pack").mkdir()
    code = next(b for b in code_blocks("python") if "import corpusforge as cf" in b)
    exec(compile(code, "README.md", "exec"), {})


@pytest.mark.parametrize("name", ["if_then", "paradox_conclusion", "silence", "fragmentation"])
def test_built_in_pattern_table_matches_the_code(name):
    from corpusforge.patterns import BUILTIN_PATTERNS

    row = next(line for line in README.splitlines() if line.startswith(f"| {name} |"))
    roles = [r.strip(" *") for r in row.split("|")[2].split("(")[0].split("→")]
    assert roles == list(BUILTIN_PATTERNS[name].roles)
