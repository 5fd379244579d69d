"""The public surface: every command has help, the Python API is pinned, start-up stays light."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

import corpusforge
from corpusforge.cli import main


def all_commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, prefix + (name,))


COMMANDS = [path for path, _ in all_commands(main)]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(run, path):
    result = run(*path, "--help")
    assert result.exit_code == 0
    assert "Usage: " in result.output
    cmd = main
    for part in path:
        cmd = cmd.commands[part]
    assert (cmd.help or "").strip(), f"corpusforge {' '.join(path)} has no help text"


def test_public_api_is_pinned():
    assert sorted(corpusforge.__all__) == sorted([
        "BUILTIN_PATTERNS", "CorpusforgeError", "GenerateConfig", "GenerateError", "HubError", "Pattern",
        "PluginError", "Record", "RecordError", "Segment", "Target", "TemplateError", "TrainError",
        "PushConfig", "ValidationReport", "__version__", "build_record", "content_id", "corpus_stats",
        "export_corpus", "generate", "load_corpus", "load_registry", "push_corpus", "structural_errors",
        "validate_paths",
    ])
    for name in corpusforge.__all__:
        assert hasattr(corpusforge, name)


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from corpusforge.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'peft', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_version(run):
    assert run("--version").output.strip() == f"corpusforge, version {corpusforge.__version__}"


def test_stats_json(run):
    import json

    from .conftest import SAMPLE

    stats = json.loads(run("stats", SAMPLE / "corpus", "--format", "json").output)
    assert stats["records"] == 200
    assert set(stats["by_language"]) == {"en", "ru"}
    assert len(stats["by_pattern"]) >= 3
    assert stats["premises"]["leaked_across_splits"] == 0
    assert 0 < stats["distinct"]["distinct_1"] <= stats["distinct"]["distinct_2"] <= 1


def test_templates_commands(run, tmp_path):
    shown = run("templates", "show", "if_then.ru", "--n", "2")
    assert shown.exit_code == 0 and "[condition|Если" in shown.output and "«" in shown.output
    listed = run("templates", "list")
    assert "paradox_conclusion.en" in listed.output and "built-in" in listed.output
    assert run("templates", "lint", "templates/en/if_then.yaml", "--n", "50").exit_code == 0
    made = run("templates", "new", "mine", "--pattern", "dialectic", "--out", tmp_path)
    assert made.exit_code == 0
    assert run("templates", "lint", tmp_path / "mine").exit_code == 0
    assert run("templates", "lint", tmp_path / "mine", "--strict").exit_code == 1  # tiny space: a warning
    unknown = run("templates", "new", "x", "--pattern", "nope", "--out", tmp_path)
    assert unknown.exit_code == 1 and "unknown pattern" in unknown.output
    assert run("templates", "show", "nope.en").exit_code == 1
