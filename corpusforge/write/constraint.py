"""What a writer may write: one clause, after the marker the template put down, to the first sentence end.

A model-written record keeps its template's roles up to and including the marker that opens the last role
(" then", " and therefore", " то"); the writer supplies the rest of that role: words on one line, opening
with a space, ending at the first sentence end, ``min_words`` to ``max_words`` long. Locally ``ClauseRule``
forces this while the model decodes (a token mask, step by step); from a server the constraint is asked for
and every answer is checked against it again (``Clause.problem``) — an answer that breaks it is refused with
its reason, never cut or patched into shape.

A record written whole, in answer to a prompt (``write.answer``), is written role by role: each role's clause
ends where its template's role ends (``end``: a comma, a semicolon, a colon or a sentence end), and no earlier.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import asdict, dataclass

_END = ".!?"
STOPS = _END + ",;:"      # what may end a role written whole: a sentence end, or a pause before the next role


def cyrillic_share(text: str) -> float:
    """The share of the text's letters that are Cyrillic (0.0 for a text without letters)."""
    letters = [c for c in text if c.isalpha()]
    return sum("\u0400" <= c <= "\u04ff" for c in letters) / len(letters) if letters else 0.0


@dataclass(frozen=True)
class Clause:
    """The constraint on the written part (its fields are part of every cache key)."""

    min_words: int = 4
    max_words: int = 24
    end: str = _END          # the characters that may end it (``STOPS``' pauses for a role before another)

    def __post_init__(self):
        if not self.end or any(c not in STOPS for c in self.end):
            raise ValueError(f"a clause ends with some of {STOPS!r}, not {self.end!r}")

    @property
    def stops(self) -> str:
        """What may not appear before the clause's end: any sentence end, and its own end characters."""
        return "".join(dict.fromkeys(_END + self.end))

    @property
    def regex(self) -> str:
        return f" [^\\n{self.stops}]+[{self.end}]"    # none of STOPS needs escaping inside brackets

    def spec(self) -> dict:
        spec = {"kind": "clause", "regex": self.regex, **asdict(self)}
        if self.end == _END:        # the one-clause constraint's keys, as before (its cached answers stay found)
            del spec["end"]
        return spec

    def problem(self, text: str) -> str | None:
        """Why ``text`` is not such a clause (a short reason, counted in the manifest), or None."""
        if not text.strip():
            return "empty"
        if "\n" in text or "\r" in text:
            return "a line break"
        if not text.startswith(" "):
            return "joined to the marker (no space)"
        if "\ufffd" in text:
            return "broken characters"
        if text[-1] not in self.end:
            return "no sentence end" if self.end == _END else f"does not end with one of {self.end!r}"
        if any(c in self.stops for c in text[:-1]):
            return "more than one sentence" if self.end == _END else "more than one clause"
        if any(unicodedata.category(c)[0] in "CZ" and c != " " for c in text):
            return "a control character or unusual space"
        words = len([w for w in text.split(" ") if w])
        if words < self.min_words:
            return f"shorter than {self.min_words} words"
        if words > self.max_words:
            return f"longer than {self.max_words} words"
        if not re.fullmatch(self.regex, text):
            return "not a clause"
        return None


class TokenClasses:
    """Each vocabulary token's place in a clause, read once per tokenizer and clause ending: ``inner`` (no line
    break, nothing that ends a sentence or the clause), ``end`` (ends the clause and holds nothing else that
    ends one), ``word`` (opens a new word)."""

    def __init__(self, tok, clause: Clause = Clause()):
        import torch

        stops, ends = clause.stops, clause.end
        size = len(tok)
        special = set(tok.all_special_ids)
        inner, end, word = (torch.zeros(size, dtype=torch.bool) for _ in range(3))
        for i, piece in enumerate(tok.convert_ids_to_tokens(list(range(size)))):
            if i in special or piece is None:
                continue
            text = tok.convert_tokens_to_string([piece])
            if not text or "\ufffd" in text or any(unicodedata.category(c)[0] in "CZ" and c != " " for c in text):
                continue                   # pieces of a character, control characters, line breaks: never
            body_has_end = any(c in stops for c in text[:-1])
            if not any(c in stops for c in text):
                inner[i] = True
            elif text[-1] in ends and not body_has_end and not text.startswith(" "):
                end[i] = True
            word[i] = text.startswith(" ")
        self.inner, self.end, self.word = inner, end, word
        self.first, self.inner_or_end = inner & word, inner | end    # the masks of a step, made once


class ClauseRule:
    """A logits processor for a batch of clauses: before ``min_words`` only inner tokens; then inner or end
    tokens; at ``max_words``, or when the token budget is all but spent, only end tokens; after the end only the
    end-of-sequence token. The first token opens a word. Each row then picks its token from its own random
    stream (``draw_token``) and the processor leaves only that token, so that ``generate``'s greedy step takes
    it."""

    def __init__(self, classes: TokenClasses, clause: Clause, prompt_width: int, streams: list, eos: int,
                 temperature: float, top_p: float, budget: int):
        self.classes, self.clause, self.width, self.streams, self.eos = classes, clause, prompt_width, streams, eos
        self.budget = budget               # new tokens in all: the clause must have ended before the last
        self.eos_only = classes.inner.new_zeros(classes.inner.shape)   # a finished row's mask, made once
        self.eos_only[eos] = True
        self.temperature, self.top_p = temperature, top_p
        self.words = [0] * len(streams)
        self.done = [False] * len(streams)

    def _allowed(self, row: int, step: int):

        c = self.classes
        if self.done[row]:
            return self.eos_only
        if step == 0:
            return c.first
        if self.words[row] >= self.clause.max_words or step >= self.budget - 2:
            return c.end
        if self.words[row] < self.clause.min_words:
            return c.inner
        return c.inner_or_end

    def __call__(self, input_ids, scores):
        import torch

        from ..lm.sampling import draw_token

        step = input_ids.shape[1] - self.width
        if step > 0:                       # the token chosen last step: count its word, see whether it ended
            for row, token in enumerate(input_ids[:, -1].tolist()):
                if not self.done[row]:
                    self.words[row] += bool(self.classes.word[token])
                    self.done[row] = bool(self.classes.end[token])
        vocab = scores.shape[1]
        mask = torch.zeros((len(self.streams), vocab), dtype=torch.bool)   # (batch, vocab): the head may be
        for row in range(len(self.streams)):                               # wider than the tokenizer
            allowed = self._allowed(row, step)[:vocab]
            mask[row, :len(allowed)] = allowed
        masked = scores.masked_fill(~mask.to(scores.device), -math.inf)
        u = torch.tensor([s.random() for s in self.streams], device=scores.device)
        chosen = draw_token(masked, u, self.temperature, self.top_p)
        return torch.full_like(scores, -math.inf).scatter_(1, chosen[:, None], 0.0)
