"""Plugins: an installed package (a real pip install), a folder, the environment variable.

The plugin is scaffolded by `corpusforge templates new --plugin`, installed with
pip into a temporary folder, and seen by a fresh corpusforge process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corpusforge.errors import PluginError
from corpusforge.templates.registry import load_registry

from .conftest import ROOT


def cli(*args, env_extra=None, cwd=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "corpusforge", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def installed_plugins(tmp_path_factory):
    """Two plugins pip-installed into a site folder: a good one and one whose entry point raises."""
    work = tmp_path_factory.mktemp("plugins")
    site = work / "site"
    for name in ("riddles", "broken"):
        made = cli("templates", "new", name, "--pattern", "if_then", "--plugin", "--out", work)
        assert made.returncode == 0, made.stderr
    init = work / "broken" / "src" / "corpusforge_broken" / "__init__.py"
    init.write_text("def template_paths():\n    raise RuntimeError('this plugin is broken')\n")
    for name in ("riddles", "broken"):
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(work / name)], capture_output=True, text=True, timeout=300)
        assert pip.returncode == 0, pip.stderr
    return work, site


def test_an_installed_plugin_is_listed_and_a_broken_one_only_warns(installed_plugins):
    work, site = installed_plugins
    result = cli("templates", "list", "--format", "json", env_extra={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["riddles.en"] == {"name": "riddles.en", "pattern": "if_then", "language": "en", "version": 1,
                                  "source": "plugin riddles"}
    assert "if_then.en" in rows  # built-ins still there
    assert "broken" in result.stderr and "this plugin is broken" in result.stderr


def test_an_installed_plugin_generates(installed_plugins, tmp_path):
    work, site = installed_plugins
    env = {"PYTHONPATH": str(site)}
    out = tmp_path / "c"
    result = cli("generate", "--template", "riddles.en", "--n", "5", "--out", out, env_extra=env)
    assert result.returncode == 0, result.stderr
    assert cli("validate", out, env_extra=env).returncode == 0


def test_the_scaffolded_plugin_test_passes_with_the_conformance_kit(installed_plugins):
    work, site = installed_plugins
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(work / "riddles")],
                            capture_output=True, text=True, env=env, cwd=work / "riddles", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def write_pack(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(f"""\
name: {name}
version: 1
pattern: contrast
language: en
slots:
  x: [a wall, a stone, a room, a door]
variants:
  - negation: "Not {{{{ x }}}},"
    affirmation: " but a movement."
targets: [" but"]
""", encoding="utf-8")
    return folder


def test_environment_variable_and_folder(tmp_path, monkeypatch):
    env_pack = write_pack(tmp_path / "env", "from_env.en")
    dir_pack = write_pack(tmp_path / "dir", "from_dir.en")
    monkeypatch.setenv("CORPUSFORGE_TEMPLATES", str(env_pack))
    registry = load_registry([dir_pack])
    assert registry.get("from_env.en").source == "$CORPUSFORGE_TEMPLATES"
    assert registry.get("from_dir.en").source == str(dir_pack)
    assert registry.get("if_then.en").source == "built-in"


def test_a_name_clash_names_both_sources(tmp_path):
    a = write_pack(tmp_path / "a", "same.en")
    b = write_pack(tmp_path / "b", "same.en")
    with pytest.raises(PluginError) as info:
        load_registry([a, b])
    assert str(a / "same.en.yaml") in str(info.value) and str(b / "same.en.yaml") in str(info.value)
    clash = tmp_path / "c"
    clash.mkdir()
    (clash / "if_then.yaml").write_text((ROOT / "templates" / "en" / "if_then.yaml").read_text(encoding="utf-8"),
                                        encoding="utf-8")
    shutil.copytree(ROOT / "templates" / "en" / "lexicon", clash / "lexicon")
    with pytest.raises(PluginError, match="built-in"):
        load_registry([clash])


def test_a_broken_template_in_an_explicit_folder_is_an_error(tmp_path, run):
    pack = tmp_path / "p"
    pack.mkdir()
    (pack / "bad.yaml").write_text("name: bad.en\nversion: 1\npattern: nope\nlanguage: en\nvariants: []\n")
    result = run("templates", "list", "--templates", pack)
    assert result.exit_code == 1
    assert "bad.yaml" in result.output and "Traceback" not in result.output
