"""Records written whole, in answer to prompts: the template gives the grammar, the model the words.

A template's *skeleton* is one of its variants whose every role opens with literal words: ``if_then.en``'s
``"If {{ subject }} {{ event }},"`` / ``" then {{ outcome }}."`` gives ``"If" … ","`` and ``" then" … "."``.
Record ``i`` draws its template (by the mix's weights), a skeleton and a prompt of the template's language from
the prompt pool (each language's prompts in an order drawn from the seed, each once before any repeats). The
writer then answers the prompt role by role: each role is its opening words and a clause the model writes
after them (``Clause`` with the role's own end — a comma, a semicolon, a sentence end), seeing the prompt as
the user's turn and the roles written before as its answer so far.

Each clause is checked again (its constraint, the prompt's script); the record must meet the record contract
and the pattern's detector, and be neither a duplicate nor a near-duplicate of one kept before — otherwise it
is refused and counted by reason, never repaired. The record keeps its prompt (``meta.prompt``), which
``train --format answer`` turns into the context its answer is trained after; its split is drawn from the
prompt, so a prompt never lands in two splits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..draw import cumulative, pick, premise_id, split_bounds, split_of, uniforms
from ..errors import GenerateError
from ..records import build_record
from .cache import WriteCache, answers_for, cache_key
from .constraint import _END, STOPS, Clause, Form, cyrillic_share
from .writers import Ask

#: the manifest's description of what the writer wrote
MODE = ("whole records answering prompts: each role's opening words from a template variant, the model's "
        "clause after them up to the role's own end")


@dataclass(frozen=True)
class Skeleton:
    """A template variant read as a grammar: each role's opening words and the character that ends it, and for
    a role that opens with a slot, its form (the template's literal words and the slots the model fills)."""

    template: object               # templates.spec.Template
    variant: int
    roles: tuple[tuple[str, str, str], ...]   # (role, opening words, end); no opening words for a role in a form
    forms: tuple[tuple[str | None, ...] | None, ...] = ()   # per role: its pieces (Form.pieces), or None


_SLOT = re.compile(r"(\{\{.*?\}\})")


def form_pieces(source: str) -> tuple[str | None, ...]:
    """A role's source as ``Form.pieces``: its literal text, and None for each run of slots (slots joined by
    white space are one run); a literal's trailing space goes with the words after it."""
    pieces: list[str | None] = []
    for i, part in enumerate(_SLOT.split(source)):
        if i % 2:                                             # a slot
            if pieces and pieces[-1] is not None and not pieces[-1].strip():
                pieces.pop()                                  # white space between two slots: one run
            if pieces and pieces[-1] is not None:
                pieces[-1] = pieces[-1].rstrip(" ")
                if not pieces[-1]:
                    pieces.pop()
            if not pieces or pieces[-1] is not None:
                pieces.append(None)
        elif part:
            pieces.append(part)
    return tuple(pieces)


def skeletons(template, forms: bool = False) -> list[Skeleton]:
    """The template's variants usable as skeletons: every role has a slot and no control block, and ends with a
    pause or a sentence end (the last with a sentence end); every role opens with literal words (a cue) before
    its first slot — or, with ``forms`` (a grammar engine), a role that opens with a slot is written whole in
    its form."""
    out = []
    for variant in template.variants:
        roles, shapes = [], []
        for role, compiled in variant.roles:
            source = compiled.source.rstrip()
            opening = source.split("{{", 1)[0].rstrip()
            if "{%" in source or "{#" in source or "{{" not in source or "\n" in source or source[-1] not in STOPS:
                break
            if any(c.isalpha() for c in opening):
                roles.append((role, opening, source[-1]))
                shapes.append(None)
            elif forms:
                roles.append((role, "", source[-1]))
                shapes.append(form_pieces(source))
            else:
                break
        else:
            if roles and roles[-1][2] in _END:
                out.append(Skeleton(template, variant.index, tuple(roles),
                                    tuple(shapes) if any(shapes) else ()))
    return out


def check_templates(templates, forms: bool = False) -> list[list[Skeleton]]:
    """Each template's skeletons; a template without one cannot answer prompts (an error that says why)."""
    found = [skeletons(t, forms) for t in templates]
    for ref, those in zip((t.ref for t in templates), found):
        if not those:
            how = ("has a slot in every role, ends each with , ; : . ! or ? and holds no {% %} block" if forms else
                   "opens every role with literal words before its first slot and ends each with , ; : . ! or ?")
            raise GenerateError(f"template {ref} cannot write answers to prompts: none of its variants {how}",
                                hint="choose templates such as if_then or paradox_conclusion, or drop --prompts"
                                     + ("" if forms else "; --engine xgrammar writes roles that open with a slot"))
    return found


@dataclass
class Draft:
    """A record being written: its draws, and the roles written so far."""

    index: int
    skeleton: Skeleton
    prompt: str
    parts: list[tuple[str, str]] = field(default_factory=list)    # (role, opening + clause)

    def next_ask(self, clause: Clause, identity: dict, sampling: dict, seed: int) -> Ask:
        at = len(self.parts)
        role, opening, end = self.skeleton.roles[at]
        text = "".join(t for _, t in self.parts) + opening
        pieces = self.skeleton.forms[at] if self.skeleton.forms else None
        own = Clause(clause.min_words, clause.max_words, end) if pieces is None else \
            Form(pieces, at == 0, clause.min_words, clause.max_words)
        key = cache_key(identity, f"{self.prompt}\n{text}", own.spec(), sampling, f"{seed}:{self.index}:{role}")
        return Ask(text, key, own, self.prompt)


class Prompts:
    """The pool's prompts of each language, in an order drawn from the seed; each language's next prompt."""

    def __init__(self, pool: Sequence[dict], seed: int):
        self.by_language: dict[str, list[str]] = {}
        for p in pool:
            self.by_language.setdefault(p["language"], []).append(p["prompt"])
        for lang, prompts in self.by_language.items():
            keys = uniforms(len(prompts), "prompt-order", seed, lang)[:len(prompts)]
            self.by_language[lang] = [p for _, p in sorted(zip(keys, prompts))]

    def check(self, languages: set[str], source: str) -> None:
        missing = sorted(languages - set(self.by_language))
        if missing:
            raise GenerateError(f"the prompt pool {source} has no prompt in {', '.join(missing)}, the language of "
                                "a template in the mix", hint="add prompts in that language, or drop the template")

    def take(self, language: str, used: dict[str, int]) -> str:
        prompts = self.by_language[language]
        prompt = prompts[used.get(language, 0) % len(prompts)]
        used[language] = used.get(language, 0) + 1
        return prompt


class Drafter:
    """Draws record ``i``'s template, skeleton and prompt (in index order: the prompts are taken in turn)."""

    def __init__(self, found: list[list[Skeleton]], weights: list[float], prompts: Prompts, seed: int,
                 splits: dict):
        self.found, self.prompts, self.seed = found, prompts, seed     # found: each template's skeletons
        self.cum = cumulative(weights)
        self.split_names, self.bounds = list(splits), split_bounds(splits)
        self.used: dict[str, int] = {}

    def draft(self, index: int) -> Draft:
        u_template, u_variant = uniforms(2, "answer", self.seed, index)[:2]
        those = self.found[pick(u_template, len(self.found), self.cum)]
        skeleton = those[pick(u_variant, len(those))]
        return Draft(index, skeleton, self.prompts.take(skeleton.template.language, self.used))

    def split(self, prompt: str) -> str:
        return split_of(premise_id(prompt), self.split_names, self.bounds)


def clause_problem(draft: Draft, ask: Ask, answer: str | None) -> str | None:
    """Why a role's written clause is refused, or None."""
    if answer is None:
        return "no answer"
    reason = ask.clause.problem(answer)
    if reason is None and (cyrillic_share(answer) >= 0.5) != (cyrillic_share(draft.prompt) >= 0.5):
        reason = "another script than the prompt's"
    return reason


def finish(draft: Draft, drafter: Drafter, judge, tally) -> dict | None:
    """The written record, or None (refused and counted)."""
    t = draft.skeleton.template
    rec = build_record(pattern=t.pattern.name, template=t.ref, language=t.language, parts=draft.parts,
                       markers=t.markers, slots={}, seed=drafter.seed, index=draft.index,
                       premise_id=premise_id(draft.prompt), split=drafter.split(draft.prompt),
                       meta={"writer": judge.identity["model"], "written": "all", "prompt": draft.prompt})
    reason = judge.unsound(rec)
    if reason is not None:
        tally.refused[reason] += 1
        return None
    return judge.admit(rec, "".join(text for _, text in draft.parts), tally)


def write_drafts(drafts: list[Draft], writer, cache: WriteCache, cfg, clause: Clause, identity: dict,
                 tally) -> list[Draft]:
    """Every draft written role by role (one writer call per role for all of them); the drafts whose every
    clause passed."""
    sampling = asdict(cfg.sampling())
    alive = list(drafts)
    while alive:
        pending = [d for d in alive if len(d.parts) < len(d.skeleton.roles)]
        if not pending:
            break
        asks = [d.next_ask(clause, identity, sampling, cfg.seed) for d in pending]
        answers = answers_for(asks, [d.index for d in pending], writer, cache, cfg.offline, tally)
        for draft, ask, answer in zip(pending, asks, answers):
            tally.judged += 1
            reason = clause_problem(draft, ask, answer)
            if reason is None:
                role, opening, _ = draft.skeleton.roles[len(draft.parts)]
                draft.parts.append((role, opening + answer))
            else:
                tally.refused[reason] += 1
                alive.remove(draft)
    return alive


def answered(drafter: Drafter, judge, writer, cache: WriteCache, cfg, clause: Clause, tally):
    """The chunk function of ``run.collect`` for records answering prompts: drafts ``start`` … ``start + count``,
    written, then judged whole."""
    def chunk(start: int, count: int) -> list[dict]:
        drafts = [drafter.draft(i) for i in range(start, start + count)]
        written = write_drafts(drafts, writer, cache, cfg, clause, judge.identity, tally)
        return [rec for rec in (finish(d, drafter, judge, tally) for d in written) if rec is not None]

    return chunk
