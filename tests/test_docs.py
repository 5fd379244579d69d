"""The README is the front door: its commands run, its examples are true, its measured figures are the results
files'. The guides in docs/ hold the rest, and the examples that moved there are held to the same checks."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from corpusforge.records import Record, structural_errors

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
PAGES = {path.name: path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md"))}


def page(name: str) -> str:
    """A docs page by file name; a page the tests expect must exist."""
    assert name in PAGES, f"docs/{name} is gone (the README's guides link it, and a checked example lives there)"
    return PAGES[name]


def code_blocks(lang: str, text: str = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def tour_commands() -> list[list[str]]:
    commands = []
    for block in code_blocks("sh"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("corpusforge "):
                commands.append(shlex.split(line)[1:])
    return commands


def fenced_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block, in order (indented fences too)."""
    blocks, lang, lines = [], None, []
    for line in README.splitlines():
        if line.strip().startswith("```"):
            if lang is None:
                lang, lines = line.strip()[3:], []
            else:
                blocks.append((lang, "\n".join(lines) + "\n"))
                lang = None
        elif lang is not None:
            lines.append(line.strip())
    return blocks


def model_commands() -> list[list[str]]:
    """The README's block of commands that need the model (train, report, try, merge): a plain fenced block."""
    block = next(b for lang, b in fenced_blocks() if not lang and "corpusforge train " in b)
    return [shlex.split(line.split("  #")[0])[1:] for line in block.splitlines() if line.startswith("corpusforge ")]


def parse(args: list[str]):
    """Parse a command line the way the CLI would, without running it: click's own make_context, down to the
    subcommand (a nested group, such as `templates list`, is followed). Raises click's UsageError when an
    option or argument is not what the command takes."""
    import click

    from corpusforge.cli import main

    ctx = main.make_context("corpusforge", list(args))
    command, rest = main, ctx.protected_args + ctx.args
    while isinstance(command, click.Group) and rest:
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
        rest = (ctx.protected_args + ctx.args) if isinstance(command, click.Group) else []
    return ctx


def test_the_two_setup_commands_are_the_makefiles():
    """The README's two commands are Makefile targets, and `make demo` runs the demo command the README names."""
    block = code_blocks("sh")[0]
    targets = [line.split()[1] for line in block.splitlines() if line.startswith("make ")]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert targets == ["demo", "test"]
    for target in targets:
        assert re.search(rf"^{target}:", makefile, flags=re.M), target
    demo = re.search(r"^demo:.*\n\t(.*)", makefile, flags=re.M).group(1)
    assert demo.split()[1:] == ["demo", "--out", "demo-out"] and "corpusforge demo --out DIR" in README
    parse(["demo", "--out", "demo-out"])


def test_the_model_commands_parse(tmp_path, monkeypatch):
    """train, report, try and merge as the README writes them: every option and argument is one the command
    takes (they need a model to run; test_train and test_report run them on a tiny one). The folders the tour
    made before them are made here, empty, for the checks that a path exists."""
    monkeypatch.chdir(tmp_path)
    for folder in ("my-corpus", "my-adapter"):
        (tmp_path / folder).mkdir()
    commands = model_commands()
    assert [c[0] for c in commands] == ["train", "report", "try", "merge"]
    for args in commands:
        ctx = parse(args)
        assert ctx.command.name == args[0]
        assert all(v is not None for k, v in ctx.params.items() if f"--{k.replace('_', '-')}" in args), ctx.params


def test_the_tour_runs_in_order(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    commands = tour_commands()
    assert len(commands) >= 8
    for args in commands:
        result = run(*args)
        assert result.exit_code == 0, f"corpusforge {' '.join(args)}:\n{result.output}"


def test_the_record_example_is_a_valid_record():
    """The README's record, and every record example in docs/, is a valid record."""
    readme = [b for b in code_blocks("json") if '"segments"' in b]
    assert readme, "the README has no ```json record example"
    docs = [(name, b) for name, text in PAGES.items() for b in code_blocks("json", text) if '"segments"' in b]
    for where, block in [("README.md", readme[0]), *docs]:
        rec = Record.model_validate(json.loads(block))
        assert structural_errors(rec) == [], where


def test_the_python_api_example_runs(tmp_path, monkeypatch):
    """The Python API's example (docs/python-api.md, linked from the README's guides) runs as written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-pack").mkdir()
    blocks = [b for b in code_blocks("python", page("python-api.md")) if "import corpusforge as cf" in b]
    assert blocks, "docs/python-api.md has no ```python block with `import corpusforge as cf`"
    exec(compile(blocks[0], "docs/python-api.md", "exec"), {})


@pytest.mark.parametrize("name", ["if_then", "paradox_conclusion", "silence", "fragmentation"])
def test_built_in_pattern_table_matches_the_code(name):
    from corpusforge.patterns import BUILTIN_PATTERNS

    row = next(line for line in README.splitlines() if line.startswith(f"| {name} |"))
    roles = [r.strip(" *") for r in row.split("|")[2].split("(")[0].split("→")]
    assert roles == list(BUILTIN_PATTERNS[name].roles)

