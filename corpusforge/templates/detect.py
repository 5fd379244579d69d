"""Finding a reasoning pattern in any text, with cues read from the pattern's own templates.

Each variant of a template writes literal words around its slots; the first literal
words of each role are that role's *cue* ("If" … "then"; "and yet" … "therefore";
"Если" … "то"). A text *realises* a pattern when, for some variant of one of its
templates, the cues of the variant's roles appear in role order (whole words, case
ignored) and at least one of them carries one of the template's target markers. Roles
made only of slots (``{{ subject|cap }} {{ claim }}``) have no cue and are not
required. ``corpusforge detect FILE`` runs the same detector over any text.

The cues are found one after another, each searched from where the previous one ended: time
linear in the text. (The single regex ``cue1.*?cue2.*?cue3`` it replaces says the same on every
text, but backtracks over every occurrence of the first cue when a later one is missing: a
140 KB line took 15 s, a 1 MB line over a minute.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import nodes

from .render import ENV
from .spec import Template

_LETTER = re.compile(r"\w", re.UNICODE)


@lru_cache(maxsize=4096)
def cue_re(cue: str) -> re.Pattern:
    """One cue as a whole word (or words), case ignored."""
    return re.compile(r"(?<!\w)" + re.escape(cue) + r"(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class CueSequence:
    """One variant's cues, in role order."""

    pattern: str
    template: str
    cues: tuple[str, ...]
    markers: tuple[str, ...]      # the template's target markers, stripped and case-folded

    def found_in(self, text: str) -> bool:
        """The cues appear in ``text`` in order, none overlapping the one before. Each is searched from
        the end of the previous one's first match: the earliest match leaves the most room for the rest,
        so this finds a sequence whenever there is one, in time linear in the text."""
        at = 0
        for cue in self.cues:
            found = cue_re(cue).search(text, at)   # the look-behind still sees the character before ``at``
            if found is None:
                return False
            at = found.end()
        return True


def _words(text: str) -> str:
    return " ".join(re.findall(r"[\w'’-]+", text, re.UNICODE)).casefold()


def _cue(source: str, markers: tuple[str, ...]) -> str | None:
    """A role's cue: a target marker its literal words hold, else its first literal words
    (" and yet {{ x }}" → "and yet"); None for a role made only of slots."""
    literal = []
    for stmt in ENV.parse(source).body:
        if not isinstance(stmt, nodes.Output):
            return None
        literal += [n.data for n in stmt.nodes if isinstance(n, nodes.TemplateData)]
    for piece in literal:
        words = _words(piece)
        for marker in markers:
            if re.search(r"(?<!\w)" + re.escape(marker) + r"(?!\w)", words):
                return marker
    return next((_words(p) for p in literal if _LETTER.search(p) and _words(p)), None)


def cue_sequences(template: Template) -> list[CueSequence]:
    """The cue sequence of every variant that carries a marker and says enough to be told apart from ordinary
    text: two cues or more, or one of two words or more (a lone "so" is everywhere)."""
    markers = tuple(_words(m) for m in template.markers if _words(m))
    out = []
    for variant in template.variants:
        cues = tuple(c for c in (_cue(cs.source, markers) for _, cs in variant.roles) if c)
        if not any(c == m or m in c.split() or c.startswith(m) for c in cues for m in markers):
            continue
        if len(cues) >= 2 or (cues and len(cues[0].split()) >= 2):
            out.append(CueSequence(template.pattern.name, template.ref, cues, markers))
    return out


class Detector:
    """Which patterns a text realises, from the cue sequences of ``templates``."""

    def __init__(self, templates: list[Template]):
        self.sequences = [s for t in templates for s in cue_sequences(t)]
        self.patterns = sorted({s.pattern for s in self.sequences})

    def patterns_in(self, text: str) -> list[str]:
        found: set[str] = set()
        for s in self.sequences:
            if s.pattern not in found and s.found_in(text):
                found.add(s.pattern)
        return sorted(found)

    def realises(self, text: str, pattern: str) -> bool:
        return any(s.found_in(text) for s in self.sequences if s.pattern == pattern)
