"""Patterns: the reasoning structures a corpus teaches.

A pattern is an ordered list of roles. ``if_then`` is *condition* then
*consequence*; ``paradox_conclusion`` is *thesis*, *antithesis*, *conclusion*.
A record of a pattern is its text cut into segments, one per role, in the
pattern's order. Roles listed as optional may be absent from a record.

The first role is the *premise*; every later role is what follows from it.
Training supervises what follows by default, and records that share a premise
but continue it differently share a ``premise_id``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from .errors import TemplateError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, eq=False)
class Pattern:
    """One reasoning structure: a name and its roles, in order."""

    name: str
    roles: tuple[str, ...]
    optional: frozenset[str] = field(default_factory=frozenset)
    description: str = ""
    source: str = "built-in"

    def __post_init__(self) -> None:
        where = f"pattern {self.name!r} ({self.source})"
        if not NAME_RE.fullmatch(self.name):
            raise TemplateError(f"{where}: the name must match {NAME_RE.pattern}")
        if not self.roles:
            raise TemplateError(f"{where}: needs at least one role")
        bad = [r for r in self.roles if not isinstance(r, str) or not NAME_RE.fullmatch(r)]
        if bad:
            raise TemplateError(f"{where}: role names must match {NAME_RE.pattern}, got {bad}")
        if len(set(self.roles)) != len(self.roles):
            raise TemplateError(f"{where}: a role is listed twice in {list(self.roles)}")
        unknown = sorted(set(self.optional) - set(self.roles))
        if unknown:
            raise TemplateError(f"{where}: optional roles {unknown} are not among its roles {list(self.roles)}")
        if set(self.roles) <= set(self.optional):
            raise TemplateError(f"{where}: at least one role must be required")

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(r for r in self.roles if r not in self.optional)

    @cached_property
    def role_sequences(self) -> frozenset[tuple[str, ...]]:
        """Every valid order of roles in a record: the roles in order, each optional one present or not."""
        seqs = [()]
        for role in self.roles:
            seqs = [s + (role,) for s in seqs] + ([s for s in seqs] if role in self.optional else [])
        return frozenset(seqs)

    def order_of(self, role: str) -> int:
        return self.roles.index(role)

    def to_dict(self) -> dict:
        return {"name": self.name, "roles": list(self.roles), "optional": sorted(self.optional),
                "description": self.description}


def _p(name: str, roles: str, optional: str = "", description: str = "") -> Pattern:
    return Pattern(name, tuple(roles.split()), frozenset(optional.split()), description)


BUILTIN_PATTERNS: dict[str, Pattern] = {p.name: p for p in [
    _p("if_then", "condition consequence",
       description="A condition and what follows from it: if X, then Y."),
    _p("paradox_conclusion", "thesis antithesis conclusion",
       description="Two claims that pull against each other, and the conclusion drawn from holding both."),
    _p("cause_effect", "cause effect",
       description="A cause and the effect it sets moving."),
    _p("counterfactual", "actual supposition outcome", optional="actual",
       description="What is, what would have been otherwise, and what would have followed."),
    _p("analogy", "source target mapping", optional="mapping",
       description="As one thing is, so another is; and what the two share."),
    _p("contrast", "negation affirmation",
       description="Not X, but Y: a claim set apart from what it is not."),
    _p("dialectic", "thesis antithesis synthesis",
       description="A thesis, its antithesis, and a synthesis that keeps both."),
    _p("definition_movement", "term movement",
       description="A definition that names a movement rather than a given: 'Meaning is movement'."),
    _p("metaphor", "subject image elaboration", optional="elaboration",
       description="A subject seen through an image ('a vortex', 'the gravity of meaning')."),
    _p("search", "question exploration finding", optional="finding",
       description="The search mode: a question, attempts that circle it, and what was found, if anything."),
    _p("silence", "approach silence remainder",
       description="The silence mode: an approach, a pause that is kept, and what remains after it."),
    _p("fragmentation", "whole fragments trace", optional="trace",
       description="The fragmentation mode: a whole, broken into pieces, and the trace that holds them."),
]}


def merge_patterns(base: Mapping[str, Pattern], extra: Iterable[Pattern]) -> dict[str, Pattern]:
    """Return ``base`` plus ``extra``; a name defined twice differently is an error naming both sources."""
    merged = dict(base)
    for p in extra:
        old = merged.get(p.name)
        if old is not None and (old.roles, old.optional) != (p.roles, p.optional):
            raise TemplateError(
                f"pattern {p.name!r} is defined twice with different roles: "
                f"{list(old.roles)} in {old.source} and {list(p.roles)} in {p.source}")
        merged.setdefault(p.name, p)
    return merged


def patterns_from_dicts(items: Iterable[Mapping], source: str) -> list[Pattern]:
    """Build patterns from plain dicts (a pack's ``patterns.yaml`` or a corpus manifest)."""
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TemplateError(f"{source}: patterns[{i}] must be a mapping with name and roles")
        missing = [k for k in ("name", "roles") if k not in item]
        if missing:
            raise TemplateError(f"{source}: patterns[{i}] is missing {missing}")
        unknown = sorted(set(item) - {"name", "roles", "optional", "description"})
        if unknown:
            raise TemplateError(f"{source}: patterns[{i}] has unknown keys {unknown}")
        roles, optional = item["roles"], item.get("optional") or []
        if not isinstance(roles, list) or not isinstance(optional, list):
            raise TemplateError(f"{source}: patterns[{i}].roles and .optional must be lists")
        out.append(Pattern(str(item["name"]), tuple(roles), frozenset(optional),
                           str(item.get("description", "")), source))
    return out
