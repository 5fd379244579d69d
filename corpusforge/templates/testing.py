"""The template author's contract, runnable: lint and the conformance kit.

``check_template`` renders samples of a template and checks what every
template must satisfy: records that pass the record schema and structural
checks, determinism (same seed, same bytes; different seed, different draws),
the sandbox, agreement of the fast path with the sandboxed renderer,
uniqueness, and markers. Plugin authors call ``assert_valid_template`` from
their own tests; ``corpusforge templates test`` runs the same checks, and the
corpusforge suite runs them over every built-in template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from pydantic import ValidationError

from ..patterns import Pattern
from ..records import Record, structural_errors
from .registry import load_at, load_registry, resolve_templates
from .render import ENV
from .sampler import sample
from .spec import Template

UNIQUE_SHARE = 0.95
UNIQUE_SAMPLE = 10_000


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # a warning does not fail the kit

    def __str__(self) -> str:
        mark = "ok  " if self.ok else ("warn" if self.warning else "FAIL")
        return f"[{mark}] {self.name}: {self.detail}"


@dataclass
class TemplateReport:
    template: str
    space_size: int
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok or c.warning for c in self.checks)

    @property
    def ok_strict(self) -> bool:
        """Warnings count as failures too."""
        return all(c.ok and not c.warning for c in self.checks)

    def to_dict(self) -> dict:
        return {"template": self.template, "space_size": self.space_size, "ok": self.ok,
                "checks": [c.__dict__ for c in self.checks]}


def _schema_check(records: list[dict], patterns) -> Check:
    bad = []
    for rec in records:
        try:
            problems = structural_errors(Record.model_validate(rec), patterns)
        except ValidationError as e:
            problems = [(str(x["loc"]), x["msg"]) for x in e.errors(include_url=False)]
        if problems:
            bad.append(f"index {rec['index']}: {problems[0][0]}: {problems[0][1]}")
    return Check("schema", not bad, f"{len(records)} records valid" if not bad
                 else f"{len(bad)} invalid, first: {bad[0]}")


def _determinism_check(tmpl: Template, n: int) -> Check:
    a, b = sample(tmpl, n, seed=0), sample(tmpl, n, seed=0)
    if a != b:
        return Check("determinism", False, "the same seed gave different records")
    if tmpl.space_size() > 1:
        other = sample(tmpl, n, seed=1)
        if [r["text"] for r in other] == [r["text"] for r in a]:
            return Check("determinism", False, "seeds 0 and 1 gave the same records")
    return Check("determinism", True, f"seed 0 twice: identical {n} records; seed 1: different draws")


def _sandbox_check(tmpl: Template, records: list[dict]) -> Check:
    """The fast path and the sandboxed renderer agree, and the sandbox refuses an escape."""
    try:
        ENV.from_string("{{ ''.__class__.__mro__ }}").render()
        return Check("sandbox", False, "the environment allowed an attribute escape")
    except jinja2.exceptions.SecurityError:
        pass
    fast = sandboxed = 0
    values = tmpl.slot_values
    for rec in records:
        variant = tmpl.variants[rec["meta"]["variant"]]
        choice = {s: [str(v) for v in values[s]].index(rec["slots"][s]) for s in variant.slots}
        for role, cs in variant.roles:
            if cs.fast:
                fast += 1
                if cs.render(choice, values) != cs.render_sandboxed(choice, values):
                    return Check("sandbox", False, f"fast path and sandbox differ on role {role!r} of variant "
                                                   f"{variant.index + 1} at index {rec['index']}")
            else:
                sandboxed += 1
    return Check("sandbox", True, f"escape refused; {fast} role renders on the fast path matched the sandbox, "
                                  f"{sandboxed} rendered in the sandbox")


def _uniqueness_check(tmpl: Template, n: int) -> Check:
    space = tmpl.space_size()
    texts = [r["text"] for r in sample(tmpl, n)]
    share = len(set(texts)) / len(texts)
    detail = f"{share:.1%} unique texts in {n:,} draws; space size {space:,}"
    if share >= UNIQUE_SHARE:
        return Check("uniqueness", True, detail)
    return Check("uniqueness", False, detail + f" (below {UNIQUE_SHARE:.0%}: add slot values or variants, or "
                                               "expect fewer unique records)", warning=True)


def _marker_check(tmpl: Template, records: list[dict]) -> Check:
    if not tmpl.markers:
        return Check("markers", False, "the template declares no target markers", warning=True)
    hit = sum(1 for r in records if r["targets"])
    per_variant = {v.index: 0 for v in tmpl.variants}
    for r in records:
        if r["targets"]:
            per_variant[r["meta"]["variant"]] += 1
    silent = [i + 1 for i, c in per_variant.items() if c == 0]
    detail = f"{hit}/{len(records)} records carry a marker ({', '.join(repr(m) for m in tmpl.markers)})"
    if hit == 0:
        return Check("markers", False, detail, warning=False)
    if silent:
        return Check("markers", True, detail + f"; variants {silent} never do", warning=True)
    return Check("markers", True, detail)


def check_template(tmpl: Template, patterns: dict[str, Pattern], *, n: int = 300,
                   unique_sample: int = UNIQUE_SAMPLE) -> TemplateReport:
    """Run the conformance checks on one loaded template."""
    records = sample(tmpl, n)
    report = TemplateReport(tmpl.ref, tmpl.space_size())
    report.checks = [_schema_check(records, patterns), _determinism_check(tmpl, min(n, 50)),
                     _sandbox_check(tmpl, records), _uniqueness_check(tmpl, unique_sample),
                     _marker_check(tmpl, records)]
    return report


def check_templates(templates: list[Template], patterns: dict[str, Pattern], *, n: int = 300) -> list[TemplateReport]:
    """``check_template`` on each, with ``patterns`` plus each template's own pattern."""
    return [check_template(t, {**patterns, t.pattern.name: t.pattern}, n=n) for t in templates]


def assert_valid_template(name_or_path: str | Path, *, templates: list[str | Path] = (), n: int = 300,
                          strict: bool = False) -> None:
    """For plugin authors' tests: raise AssertionError listing the checks (``strict``: warnings fail too).

    ``name_or_path`` is an installed template's name or a template file; a file
    is loaded directly (so a pack that is also installed does not clash with
    itself), with the patterns of ``templates`` folders and of its own pack.
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        registry = load_registry()
        tmpl = load_at(path, registry, roots=templates)[0]
    else:
        registry = load_registry(templates)
        tmpl = resolve_templates([str(name_or_path)], registry)[0]
    patterns = {**registry.patterns, tmpl.pattern.name: tmpl.pattern}
    report = check_template(tmpl, patterns, n=n)
    if not (report.ok_strict if strict else report.ok):
        raise AssertionError("\n".join(str(c) for c in report.checks))
