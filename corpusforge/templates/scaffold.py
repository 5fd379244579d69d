"""``templates new``: a starting point that already passes the conformance kit."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .._atomic import atomic_dir
from .._io import check_output
from ..errors import TemplateError
from ..patterns import BUILTIN_PATTERNS

_PLUGIN_PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.21"]
build-backend = "hatchling.build"

[project]
name = "corpusforge-{name}"
version = "0.1.0"
description = "corpusforge template pack: {name}"
requires-python = ">=3.10"
dependencies = ["corpusforge"]

[project.entry-points."corpusforge.templates"]
{name} = "{module}:template_paths"

[tool.hatch.build.targets.wheel]
packages = ["src/{module}"]
"""

_PLUGIN_INIT = '''\
"""corpusforge template pack {name!r}: the entry point returns the pack folder."""

from pathlib import Path


def template_paths() -> list[Path]:
    return [Path(__file__).parent / "templates"]
'''

_PLUGIN_TEST = '''\
"""The corpusforge conformance kit over every template of this pack."""

from pathlib import Path

import pytest

from corpusforge.templates.testing import assert_valid_template

PACK = Path(__file__).resolve().parents[1] / "src" / "{module}" / "templates"


@pytest.mark.parametrize("path", sorted(p for p in PACK.glob("*.yaml") if p.name != "patterns.yaml"),
                         ids=lambda p: p.stem)
def test_template_conforms(path):
    assert_valid_template(path, templates=[PACK])
'''


_WRITTEN = """\
# A model can write this template's words (corpusforge generate --writer SPEC ...):
#   - one clause after the last role's target marker, to the end of the sentence;
#   - with --prompts, whole records answering prompts, role by role: a role that opens with literal words
#     (the second variant) is written after them; one that opens with a slot (the first) is written whole in
#     its form under a grammar (--engine xgrammar, or a server): the template's words kept, its slots the
#     model's. Every role must end with , ; : . ! or ? for that.
# corpusforge templates show NAME marks what a model writes (⟨model⟩).
"""


def _template_yaml(name: str, pattern: str, roles: list[str], language: str) -> str:
    variants = [{role: ("{{ subject|cap }} " if i == 0 else " ") + f"{role} of {{{{ subject }}}} {{{{ detail }}}}."
                 for i, role in enumerate(roles)},
                {role: ("Here " if i == 0 else " ") + f"{role}: {{{{ subject }}}} {{{{ detail }}}}."
                 for i, role in enumerate(roles)}]
    doc = {
        "name": f"{name}.{language}", "version": 1, "pattern": pattern, "language": language,
        "description": f"Records of {pattern}. Replace the slots and variants with your own.",
        "slots": {"subject": ["the river", "the question", "the silence"],
                  "detail": ["moves", "waits", "turns"]},
        "variants": variants,
        "targets": [" " + roles[-1]],
    }
    return _WRITTEN + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def scaffold(name: str, pattern: str, *, language: str = "en", plugin: bool = False, out_dir: str | Path = ".",
             roles: list[str] | None = None) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise TemplateError(f"pack name {name!r} must be lower case letters, digits and _")
    root = check_output(Path(out_dir) / name, TemplateError)
    known = BUILTIN_PATTERNS.get(pattern)
    if known is None and not roles:
        raise TemplateError(f"unknown pattern {pattern!r}; built-in patterns: {', '.join(sorted(BUILTIN_PATTERNS))}",
                            hint="to declare a new pattern, edit the pack's patterns.yaml after scaffolding "
                                 "from a built-in one")
    roles = list(known.roles) if known else roles
    with atomic_dir(root) as tmp:
        _write_pack(tmp, name, pattern, roles, language, plugin, new_pattern=known is None)
    return root


def _write_pack(root: Path, name: str, pattern: str, roles: list[str], language: str, plugin: bool,
                new_pattern: bool) -> None:
    module = f"corpusforge_{name}"
    pack = root / "src" / module / "templates" if plugin else root
    pack.mkdir(parents=True, exist_ok=True)
    (pack / f"{name}.{language}.yaml").write_text(_template_yaml(name, pattern, roles, language), encoding="utf-8")
    if new_pattern:
        (pack / "patterns.yaml").write_text(yaml.safe_dump(
            {"patterns": [{"name": pattern, "roles": roles, "optional": [], "description": ""}]}), encoding="utf-8")
    if plugin:
        (root / "pyproject.toml").write_text(_PLUGIN_PYPROJECT.format(name=name, module=module), encoding="utf-8")
        (root / "src" / module / "__init__.py").write_text(_PLUGIN_INIT.format(name=name), encoding="utf-8")
        (root / "tests").mkdir()
        (root / "tests" / "test_templates.py").write_text(_PLUGIN_TEST.format(module=module), encoding="utf-8")
        (root / "README.md").write_text(
            f"# corpusforge-{name}\n\nA corpusforge template pack. `pip install -e .`, then "
            f"`corpusforge templates list` shows `{name}.{language}`; `pytest` runs the conformance kit.\n",
            encoding="utf-8")
