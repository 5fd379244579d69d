"""Template → records: drawing the units of a corpus, deterministically.

A *unit* is one premise and its continuations (one record, unless
``continuations`` > 1). Unit ``i`` is a pure function of (seed, templates,
weights, i): its template, variant and slot values are read from
``blake2b(seed, template name, version, i, ...)`` (see ``corpusforge.draw``),
so any process, shard or worker draws the same unit. ``Drawer`` is that
function, with everything a draw needs looked up once; ``sample`` gives the
first ``n`` raw draws of one template (what ``templates show`` and the
conformance kit render).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

from ..draw import cumulative, key64, normalise, pick, premise_id, split_bounds, split_of, uniforms, uniforms_from
from ..errors import GenerateError, TemplateError
from ..records import build_record
from .spec import Template

MAX_REDRAWS = 64            # per constraint or continuation
PREMISE_MEMORY = 1 << 16    # premise texts whose id and split a Drawer remembers


class Candidate(NamedTuple):
    """One drawn record and what keeping it needs: its dedup key and split."""

    key: int        # 64-bit key of the normalised text (exact dedup)
    split: int      # index into the run's split names
    record: dict


class Unit(NamedTuple):
    """Unit ``index`` of a run: its candidates (a premise and its continuations)."""

    premise_key: int | None   # 64-bit key of the premise id; None when continuations == 1
    template: int             # index of the unit's template in the run's list
    candidates: list[Candidate]


# the draw loop makes a million of these: build them without NamedTuple's keyword handling
_candidate = Candidate._make
_unit = Unit._make


def _check_required(tmpl: Template, roles: list, texts: list[str]) -> None:
    """A draw the load's trial render did not see rendered the premise or a required role empty: a record
    without it would be invalid, so it is an error at that role's line, never a record left short."""
    for index, ((role, cs), text) in enumerate(zip(roles, texts)):
        if not text and (index == 0 or role in tmpl.pattern.required):
            raise TemplateError(f"role {role!r} renders empty for this draw, and {tmpl.pattern.name} requires it",
                                file=cs.where[0], line=cs.where[1], hint="give the role text for every slot value")


def sample(template: Template, n: int, seed: int = 0) -> list[dict]:
    """The first ``n`` raw draws of ``template`` (no dedup), as records."""
    drawer = Drawer([template], [1.0], seed, 1, {"train": 1.0})
    return [drawer.unit(i).candidates[0].record for i in range(n)]


@dataclass
class _Prepared:
    """A template with everything a draw needs looked up once (the draw loop runs a million times)."""

    tmpl: Template
    variant_cum: list[float] | None
    slot_cum: dict[str, list[float] | None]
    variants: list  # eligible variants (enough continuation space)
    key_prefix: str  # "seed␟name␟version␟": the fixed part of every draw key of this template
    # derived from the above in __post_init__:
    pattern: str = field(init=False)
    ref: str = field(init=False)
    language: str = field(init=False)
    markers: tuple = field(init=False)
    plain: dict = field(init=False)     # slot → its values as plain strings
    picks: dict = field(init=False)     # slot → (number of values, cumulative weights)
    distinct: tuple = field(init=False)  # constraints: groups of slots whose values differ

    def __post_init__(self) -> None:
        tmpl = self.tmpl
        self.pattern, self.ref, self.language, self.markers = (tmpl.pattern.name, tmpl.ref, tmpl.language,
                                                               tuple(tmpl.markers))
        self.plain = {s: [w.plain for w in ws] for s, ws in tmpl.slot_values.items()}
        self.picks = {s: (len(ws), self.slot_cum[s]) for s, ws in tmpl.slot_values.items()}
        self.distinct = tuple(tuple(c.distinct) for c in tmpl.spec.constraints)


class Drawer:
    """Turns a unit index into its candidate records. Deterministic: what it remembers between units
    (the mix digest of eight units, premise ids) are caches of pure functions."""

    def __init__(self, templates: Sequence[Template], weights: Sequence[float], seed: int,
                 continuations: int, splits: dict[str, float]):
        self.seed = seed
        self.k = continuations
        self.mix_cum = cumulative(weights) if len(templates) > 1 else None
        self.split_names, self.split_bounds = list(splits), split_bounds(splits)
        self.prepared = [self._prepare(t) for t in templates]
        self._mix_block: tuple[int, list[int]] = (-1, [])
        self._premises: dict[str, tuple[str, str, int]] = {}

    def _prepare(self, tmpl: Template) -> _Prepared:
        sizes = tmpl.sizes
        eligible = [v for v in tmpl.variants if self.k == 1 or v.continuation_space(sizes) >= self.k]
        if not eligible:
            raise GenerateError(
                f"template {tmpl.name!r} cannot give {self.k} different continuations per premise: no variant "
                f"has {self.k} or more combinations of the slots used only after the premise",
                hint="lower --continuations, or add slot values used in the later roles")
        weights = [v.weight for v in eligible]
        return _Prepared(tmpl, None if len(set(weights)) == 1 else cumulative(weights),
                         {s: cumulative(w) for s, w in tmpl.slot_weights.items()}, eligible,
                         f"{self.seed}\x1f{tmpl.name}\x1f{tmpl.version}\x1f")

    def _premise(self, text: str) -> tuple[str, str, int]:
        """The premise id and split (name, index) of a premise text, remembered: templates repeat
        their premises often."""
        found = self._premises.get(text)
        if found is None:
            if len(self._premises) >= PREMISE_MEMORY:
                self._premises.clear()
            pid = premise_id(text)
            split = split_of(pid, self.split_names, self.split_bounds)
            found = self._premises[text] = (pid, split, self.split_names.index(split))
        return found

    def _mix_draw(self, index: int) -> int:
        """The draw that picks unit ``index``'s template: one digest serves 8 consecutive units."""
        block = index >> 3
        if self._mix_block[0] != block:
            self._mix_block = (block, uniforms(8, self.seed, "mix", block))
        return self._mix_block[1][index & 7]

    @staticmethod
    def _satisfies(prep: _Prepared, choice: dict) -> bool:
        plain = prep.plain
        for group in prep.distinct:
            picked = [plain[s][choice[s]] for s in group if s in choice]
            if len(set(picked)) != len(picked):
                return False
        return True

    def _draw(self, prep: _Prepared, index: int, tag: str, base: tuple | None = None):
        """Draw a variant and its slot values (``base``: keep that variant and premise, redraw the rest)."""
        picks = prep.picks
        count = 1 + len(picks)
        for attempt in range(MAX_REDRAWS):
            # = uniforms(n, seed, name, version, index, tag, attempt)
            draws = uniforms_from(count, f"{prep.key_prefix}{index}\x1f{tag}\x1f{attempt}")
            if base is None:
                variant = prep.variants[pick(draws[0], len(prep.variants), prep.variant_cum)]
                choice: dict = {}
                slots = variant.slots
            else:
                variant, choice = base[0], dict(base[1])
                slots = variant.continuation_slots
            for s, x in zip(slots, draws[1:]):
                n, cum = picks[s]
                choice[s] = (x * n) >> 64 if cum is None else pick(x, n, cum)  # pick(), inlined
            if not prep.distinct or self._satisfies(prep, choice):
                return variant, choice
        raise GenerateError(f"template {prep.tmpl.name!r}: no draw satisfied its constraints after {MAX_REDRAWS} "
                            f"tries (unit {index})", hint="loosen the constraints or add slot values")

    def unit(self, index: int) -> Unit:
        """Unit ``index``: a premise and its continuations, as candidate records."""
        t_index = 0
        if self.mix_cum is not None:
            t_index = pick(self._mix_draw(index), len(self.prepared), self.mix_cum)
        prep = self.prepared[t_index]
        tmpl = prep.tmpl
        variant, choice = self._draw(prep, index, "u")
        values = tmpl.slot_values
        roles = variant.roles
        premise_role, premise_cs = roles[0]
        premise_text = premise_cs.render(choice, values)
        pid, split, split_index = self._premise(premise_text)
        plain = prep.plain
        out, seen_rest = [], set()
        for j in range(self.k):
            if j > 0:
                for attempt in range(MAX_REDRAWS):
                    _, choice = self._draw(prep, index, f"c{j}.{attempt}", (variant, choice))
                    rest = [cs.render(choice, values) for _, cs in roles[1:]]
                    if tuple(rest) not in seen_rest:
                        break
                else:
                    continue  # this premise has fewer distinct continuations than asked; keep what it has
            else:
                rest = [cs.render(choice, values) for _, cs in roles[1:]]
            if self.k > 1:
                seen_rest.add(tuple(rest))
            if not premise_text or not all(rest):
                _check_required(prep.tmpl, roles, [premise_text, *rest])
            parts = [(premise_role, premise_text)]
            parts += [(role, text) for (role, _), text in zip(roles[1:], rest) if text]
            meta = {"variant": variant.index} if self.k == 1 else {"variant": variant.index, "continuation": j}
            rec = build_record(
                pattern=prep.pattern, template=prep.ref, language=prep.language, parts=parts,
                markers=prep.markers, slots={s: plain[s][choice[s]] for s in variant.slots},
                seed=self.seed, index=index, premise_id=pid, split=split, meta=meta)
            out.append(_candidate((key64(normalise(rec["text"])), split_index, rec)))
        return _unit((key64(pid) if self.k > 1 else None, t_index, out))
