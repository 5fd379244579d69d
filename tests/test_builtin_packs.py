"""Every built-in template passes the conformance kit strictly, and its output is pinned by a golden snapshot."""

from __future__ import annotations

import json

import pytest

from corpusforge.templates.registry import load_registry
from corpusforge.templates.testing import check_template

from .golden import GOLDEN, builtin_templates, snapshot

REGISTRY = load_registry()
BUILTIN = builtin_templates()
NAMES = [t.name for t in BUILTIN]

SOURCE_PATTERNS = {"if_then", "paradox_conclusion", "cause_effect", "counterfactual", "analogy", "contrast",
                   "dialectic", "definition_movement", "metaphor", "search", "silence", "fragmentation"}


def test_every_source_pattern_has_an_english_template():
    english = {t.pattern.name for t in BUILTIN if t.language == "en"}
    assert english >= SOURCE_PATTERNS


def test_russian_covers_if_then_paradox_and_four_more():
    russian = {t.pattern.name for t in BUILTIN if t.language == "ru"}
    assert {"if_then", "paradox_conclusion"} <= russian and len(russian) >= 6


@pytest.mark.parametrize("name", NAMES)
def test_conformance_kit_strict(name):
    report = check_template(REGISTRY.get(name), REGISTRY.patterns, n=200)
    assert report.ok_strict, "\n".join(str(c) for c in report.checks)
    assert report.space_size >= 100_000


@pytest.mark.parametrize("name", NAMES)
def test_golden_snapshot(name):
    tmpl = REGISTRY.get(name)
    path = GOLDEN / f"{name}.json"
    assert path.is_file(), f"no golden snapshot for {name}: run `python -m tests.golden`"
    golden = json.loads(path.read_text(encoding="utf-8"))
    current = snapshot(tmpl)
    if golden["version"] == tmpl.version:
        assert current == golden, (f"{name}@{tmpl.version} renders differently from its golden snapshot: bump its "
                                   "version when the output changes, then run `python -m tests.golden`")
    else:
        pytest.fail(f"{name} is now version {tmpl.version} (snapshot: {golden['version']}): "
                    "run `python -m tests.golden` and commit tests/golden/")
