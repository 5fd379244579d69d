"""The template format (YAML) as a pydantic model, and loading a template file.

A template renders records of one pattern. Its ``slots`` are named lists of
fillers; its ``variants`` give, for each role of the pattern, a Jinja string
over the slots. One variant and one value per slot are drawn per record.
See the README's template guide for the full format.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Mapping, Union

import jinja2
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator

from .._io import decode_utf8, input_problem, read_bytes
from ..errors import TemplateError
from ..patterns import NAME_RE, Pattern
from .render import CompiledString, RenderLimitError, Word, find_unsafe_attributes
from .yamlsrc import MAX_TEMPLATE_BYTES, Lines, load_yaml

TEMPLATE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
MAX_LEXICON_BYTES = 16 * 1024 * 1024   # a lexicon file
MAX_VALUE_CHARS = 10_000               # one slot value
RESERVED_VARIANT_KEYS = {"weight"}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlotValue(_Spec):
    """One filler, with an optional weight and named forms (any other key)."""

    model_config = ConfigDict(extra="allow")
    value: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)

    def forms(self) -> dict[str, str]:
        extra = self.model_extra or {}
        bad = {k: v for k, v in extra.items() if not isinstance(v, str) or not NAME_RE.fullmatch(k)}
        if bad:
            raise ValueError(f"word forms must be name: string pairs, got {bad}")
        return dict(extra)


class LexiconFile(_Spec):
    file: str = Field(description="A text file next to the template: one value per line, # for comments.")


def _kind(tags: dict[type, str]):
    """A discriminator that picks a union's branch by the value's shape, so a bad value is reported against
    the branch the author meant (a weight of -1 as a weight, not as "not a string")."""
    def kind(value: Any) -> str | None:
        if isinstance(value, dict):
            return next((tag for key, tag in tags.items() if isinstance(key, str) and key in value),
                        tags.get(dict))
        return next((tag for key, tag in tags.items() if isinstance(key, type) and isinstance(value, key)), None)

    return Discriminator(kind)


# the tags are capitalised so that error paths leave them out (see template_from_data)
SlotItem = Annotated[Union[Annotated[str, Tag("Str")], Annotated[SlotValue, Tag("Value")]],
                     _kind({str: "Str", dict: "Value"})]


class SlotList(_Spec):
    values: list[SlotItem] = Field(min_length=1)


SlotSpec = Annotated[Union[Annotated[list[SlotItem], Tag("List")], Annotated[LexiconFile, Tag("File")],
                           Annotated[SlotList, Tag("Values")]],
                     _kind({list: "List", "file": "File", "values": "Values"})]


class Constraint(_Spec):
    distinct: list[str] = Field(min_length=2, description="These slots never take the same value in one record.")


class TemplateSpec(_Spec):
    """The YAML template format."""

    name: Annotated[str, Field(pattern=TEMPLATE_NAME_RE.pattern)]
    version: int = Field(ge=1, description="Bump when the output changes.")
    pattern: Annotated[str, Field(pattern=NAME_RE.pattern)]
    language: Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]
    description: str = ""
    slots: dict[str, SlotSpec] = Field(default_factory=dict)
    variants: list[dict[str, Union[str, float]]] = Field(min_length=1)
    targets: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    constraints: list[Constraint] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)

    @field_validator("slots")
    @classmethod
    def _slot_names(cls, slots: dict) -> dict:
        bad = [n for n in slots if not NAME_RE.fullmatch(n)]
        if bad:
            raise ValueError(f"slot names must match {NAME_RE.pattern}: {bad}")
        return slots


@dataclass
class Variant:
    index: int
    weight: float
    roles: list[tuple[str, CompiledString]]
    slots: list[str]                    # slots this variant uses, in declaration order
    premise_slots: list[str]            # used by the first role
    continuation_slots: list[str]       # used only after the first role

    def space(self, sizes: Mapping[str, int]) -> int:
        return math.prod(sizes[s] for s in self.slots)

    def continuation_space(self, sizes: Mapping[str, int]) -> int:
        return math.prod(sizes[s] for s in self.continuation_slots)


@dataclass
class Template:
    """A loaded, checked and compiled template."""

    spec: TemplateSpec
    pattern: Pattern
    path: Path | None
    source: str                         # where it came from: "built-in", a plugin name, a folder
    slot_names: list[str]
    slot_values: dict[str, list[Word]]
    slot_weights: dict[str, list[float] | None]   # None where all weights are equal
    variants: list[Variant]
    sha256: str
    lines: Lines = field(repr=False, default_factory=Lines)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def ref(self) -> str:
        return f"{self.spec.name}@{self.spec.version}"

    @property
    def language(self) -> str:
        return self.spec.language

    @property
    def markers(self) -> list[str]:
        return self.spec.targets

    @property
    def sizes(self) -> dict[str, int]:
        return {s: len(v) for s, v in self.slot_values.items()}

    def space_size(self) -> int:
        """How many distinct (variant, slot values) combinations exist — an upper bound on unique records."""
        sizes = self.sizes
        return sum(v.space(sizes) for v in self.variants)

    def describe(self) -> dict:
        return {"name": self.name, "pattern": self.pattern.name, "language": self.language,
                "version": self.version, "source": self.source}


# ---------------------------------------------------------------------------
# Loading


def _fail(msg: str, path: Path | str, lines: Lines, loc: tuple | list = (), hint: str | None = None):
    raise TemplateError(msg, file=str(path), line=lines.of(loc), hint=hint)


def _read_lexicon(path: Path, root: Path, ref: str, lines: Lines, loc: tuple) -> tuple[list[str], bytes]:
    target = (path.parent / ref).resolve()
    if not target.is_relative_to(root.resolve()):
        _fail(f"lexicon file {ref!r} is outside the pack folder; keep lexicons next to the template",
              path, lines, loc)
    problem = input_problem(target, want="file")
    if problem is not None:
        _fail(f"lexicon file {ref!r} {problem} (looked for {target})", path, lines, loc)
    try:
        raw = read_bytes(target, TemplateError, what="lexicon file", limit=MAX_LEXICON_BYTES)
    except TemplateError as e:
        _fail(f"lexicon file {ref!r}: {e.message}", path, lines, loc)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(f"lexicon file {ref!r} is not valid UTF-8 (byte {e.start})", path, lines, loc)
    values = [ln.strip() for ln in text.splitlines()]
    values = [v for v in values if v and not v.startswith("#")]
    if not values:
        _fail(f"lexicon file {ref!r} has no values", path, lines, loc)
    long = next((i for i, v in enumerate(values) if len(v) > MAX_VALUE_CHARS), None)
    if long is not None:
        _fail(f"lexicon file {ref!r}: value {long + 1} is {len(values[long]):,} characters, over the limit of "
              f"{MAX_VALUE_CHARS:,}", path, lines, loc)
    return values, raw


def _load_slot(name: str, spec, path: Path, root: Path, lines: Lines) -> tuple[list[Word], list[float] | None, bytes]:
    loc = ("slots", name)
    raw = b""
    if isinstance(spec, LexiconFile):
        items, raw = _read_lexicon(path, root, spec.file, lines, loc)
    else:
        items = spec.values if isinstance(spec, SlotList) else spec
    if not items:
        _fail(f"slot {name!r} has no values", path, lines, loc)
    words, weights, seen = [], [], set()
    for i, item in enumerate(items):
        if isinstance(item, SlotValue):
            try:
                forms = item.forms()
            except ValueError as e:
                _fail(str(e), path, lines, loc + (i,))
            word, weight = Word(item.value, forms), item.weight
        else:
            if not item:
                _fail("a slot value is empty", path, lines, loc + (i,))
            word, weight = Word(item), 1.0
        if str(word) in seen:
            _fail(f"value {str(word)!r} is listed twice in slot {name!r}; duplicates only repeat records",
                  path, lines, loc + (i,), hint="give it a weight instead")
        seen.add(str(word))
        words.append(word)
        weights.append(weight)
    uniform = all(w == weights[0] for w in weights)
    return words, None if uniform else weights, raw


def _compile_variant(vi: int, raw_variant: dict, pattern: Pattern, slot_values: dict[str, list[Word]],
                     slot_names: list[str], path: Path, lines: Lines) -> Variant:
    """Check one variant's roles against the pattern and compile its strings."""
    vloc = ("variants", vi)
    weight = raw_variant.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not weight > 0 or weight == math.inf:
        _fail("weight must be a positive finite number", path, lines, vloc + ("weight",))
    role_items = [(k, v) for k, v in raw_variant.items() if k not in RESERVED_VARIANT_KEYS]
    roles = [k for k, _ in role_items]
    unknown = [r for r in roles if r not in pattern.roles]
    if unknown:
        _fail(f"variant {vi + 1} has role(s) {unknown} that {pattern.name} does not have; "
              f"its roles are {list(pattern.roles)}", path, lines, vloc + (unknown[0],))
    missing = [r for r in pattern.required if r not in roles]
    if missing:
        _fail(f"variant {vi + 1} is missing required role(s) {missing} of {pattern.name}", path, lines, vloc)
    if roles != sorted(roles, key=pattern.roles.index):
        _fail(f"variant {vi + 1} lists its roles as {roles}; {pattern.name} orders them "
              f"{list(pattern.roles)}", path, lines, vloc)
    compiled = [(role, _compile_role(role, text, slot_values, slot_names, path, lines, vloc + (role,)))
                for role, text in role_items]
    used = {s for _, cs in compiled for s in cs.slots}
    premise = set(compiled[0][1].slots)
    return Variant(index=vi, weight=float(weight), roles=compiled,
                   slots=[s for s in slot_names if s in used],
                   premise_slots=[s for s in slot_names if s in premise],
                   continuation_slots=[s for s in slot_names if s in used and s not in premise])


def _compile_role(role: str, text, slot_values: dict[str, list[Word]], slot_names: list[str], path: Path,
                  lines: Lines, rloc: tuple) -> CompiledString:
    if not isinstance(text, str):
        _fail(f"role {role!r} must be a string", path, lines, rloc)
    try:
        unsafe = find_unsafe_attributes(text)
        if unsafe:
            _fail(f"role {role!r} reaches for {unsafe[0]!r}: names starting with '_' are not "
                  "allowed in templates (sandbox)", path, lines, rloc)
        cs = CompiledString(text, slot_values)
    except jinja2.TemplateSyntaxError as e:
        _fail(f"Jinja syntax error in role {role!r}: {e.message}", path, lines, rloc)
    undefined = [s for s in cs.slots if s not in slot_values]
    if undefined:
        _fail(f"role {role!r} uses slot(s) {undefined} that are not defined; defined slots: "
              f"{slot_names}", path, lines, rloc)
    cs.where = (str(path), lines.of(rloc))
    return cs


def template_from_data(data: Any, lines: Lines, path: Path, *, patterns: Mapping[str, Pattern],
                       source: str, root: Path | None = None, raw: bytes = b"") -> Template:
    """Check and compile parsed YAML into a ``Template``. Every problem names the file and line."""
    root = root or path.parent
    if not isinstance(data, dict):
        _fail("a template must be a YAML mapping (name, version, pattern, language, slots, variants)", path, lines)
    try:
        spec = TemplateSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        loc = tuple(x for x in first["loc"] if not (isinstance(x, str) and x[:1].isupper() or "[" in str(x)))
        field_name = ".".join(str(x) for x in loc) or "(top level)"
        msg = first["msg"] if first["type"] != "extra_forbidden" else (
            "unknown key; template keys are: " + ", ".join(TemplateSpec.model_fields))
        more = f" (and {err.error_count() - 1} more problem(s))" if err.error_count() > 1 else ""
        raise TemplateError(f"{field_name}: {msg}{more}", file=str(path), line=lines.of(loc)) from None

    pattern = patterns.get(spec.pattern)
    if pattern is None:
        _fail(f"unknown pattern {spec.pattern!r}; known patterns: {', '.join(sorted(patterns))}",
              path, lines, ("pattern",), hint="a new pattern is declared in the pack's patterns.yaml")

    slot_values, slot_weights, digest = {}, {}, hashlib.sha256(raw)
    for name, slot_spec in spec.slots.items():
        words, weights, lex = _load_slot(name, slot_spec, path, root, lines)
        slot_values[name], slot_weights[name] = words, weights
        digest.update(lex)
    slot_names = list(spec.slots)

    for ci, constraint in enumerate(spec.constraints):
        unknown = [s for s in constraint.distinct if s not in slot_values]
        if unknown:
            _fail(f"constraint names unknown slot(s) {unknown}; slots: {slot_names}", path, lines, ("constraints", ci))

    variants = [_compile_variant(vi, variant, pattern, slot_values, slot_names, path, lines)
                for vi, variant in enumerate(spec.variants)]
    tmpl = Template(spec=spec, pattern=pattern, path=path, source=source, slot_names=slot_names,
                    slot_values=slot_values, slot_weights=slot_weights, variants=variants,
                    sha256=digest.hexdigest(), lines=lines)
    _trial_render(tmpl)
    return tmpl


def _trial_render(tmpl: Template) -> None:
    """Render every variant once per slot value (sandboxed) so that errors surface at load, not mid-run.

    Strings on the fast path are skipped: loading them already rendered each of their expressions
    for every slot value through the sandbox."""
    longest = max((len(v) for v in tmpl.slot_values.values()), default=1)
    for variant in tmpl.variants:
        for role, cs in variant.roles:
            if cs.can_render_empty() and _needs_text(tmpl, variant, role):
                _empty_role(tmpl, variant, role)
        # a fast string's output for every slot value was computed through the sandbox already
        slow = [(role, cs) for role, cs in variant.roles if not cs.fast]
        for i in range(longest if slow else 0):
            choice = {s: i % len(tmpl.slot_values[s]) for s in variant.slots}
            for role, cs in slow:
                try:
                    if not cs.render_sandboxed(choice, tmpl.slot_values) and _needs_text(tmpl, variant, role):
                        _empty_role(tmpl, variant, role)
                except jinja2.exceptions.SecurityError as e:
                    _fail(f"role {role!r} was refused by the sandbox: {e}", tmpl.path, tmpl.lines,
                          ("variants", variant.index, role))
                except RenderLimitError as e:
                    _fail(f"role {role!r} went past a render limit: {e}", tmpl.path, tmpl.lines,
                          ("variants", variant.index, role), hint="templates render short texts; simplify it")
                except jinja2.UndefinedError as e:
                    values = {s: str(tmpl.slot_values[s][choice[s]]) for s in cs.slots}
                    _fail(f"role {role!r} cannot render with {values}: {e.message}", tmpl.path, tmpl.lines,
                          ("variants", variant.index, role), hint="every value of a slot needs the forms it uses")
                except Exception as e:  # a template may raise anything Jinja can (e.g. division by zero)
                    _fail(f"role {role!r} failed to render: {type(e).__name__}: {e}", tmpl.path, tmpl.lines,
                          ("variants", variant.index, role))


def _needs_text(tmpl: Template, variant, role: str) -> bool:
    """A variant's first role (the premise) and the pattern's required roles must render text; an optional role
    that renders empty is left out of its record."""
    return role == variant.roles[0][0] or role in tmpl.pattern.required


def _empty_role(tmpl: Template, variant, role: str):
    _fail(f"role {role!r} renders empty, and {tmpl.pattern.name} requires it (a record would lack it)", tmpl.path,
          tmpl.lines, ("variants", variant.index, role), hint="give the role text, or make it optional in the pattern")


def load_template(path: str | Path, *, patterns: Mapping[str, Pattern], source: str = "file",
                  root: Path | None = None) -> Template:
    """Load, check and compile one template file."""
    path = Path(path)
    raw = read_bytes(path, TemplateError, what="template", limit=MAX_TEMPLATE_BYTES)
    data, lines = load_yaml(path, decode_utf8(raw, path, TemplateError))
    return template_from_data(data, lines, path, patterns=patterns, source=source, root=root, raw=raw)
