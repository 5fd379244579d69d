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
#: the most characters a word may have under a grammar: past it a model that will not write the literal a form
#: asks for next glues words together instead ("usingMTB23-LLLL…"), and the grammar must stop it
LONGEST_WORD = 20
#: what a clause never holds, as a regex character class's ranges: white space, control and format characters,
#: unusual spaces, private use (the astral planes' unassigned characters are left to ``Clause.problem``)
UNPRINTED = (r"\s\x00-\x1f\x7f-\x9f\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000"
             r"\ue000-\uf8ff\ufeff\ufff0-\uffff")


def unusual(text: str, allowed: str = " ") -> bool:
    """Whether ``text`` holds a control or format character or an unusual space (other than ``allowed``)."""
    return any(unicodedata.category(c)[0] in "CZ" and c not in allowed for c in text)


def word_pattern(stops: str) -> str:
    """A word under a grammar: 1 to ``LONGEST_WORD`` characters that are neither in ``stops`` nor ``UNPRINTED``."""
    return f"[^{UNPRINTED}{stops}]{{1,{LONGEST_WORD}}}"


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

    @property
    def word_regex(self) -> str:
        """The clause with its word bounds, for a grammar library: ``min_words`` to ``max_words`` words, each a
        space and 1 to ``LONGEST_WORD`` characters that are neither a stop, white space, a control or format
        character nor private use (``UNPRINTED``), then the end — inside what ``problem`` accepts, but for rarer
        characters it refuses."""
        return f"( {word_pattern(self.stops)}){{{self.min_words},{self.max_words}}}[{self.end}]"

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
        if unusual(text):
            return "a control character or unusual space"
        words = len([w for w in text.split(" ") if w])
        if words < self.min_words:
            return f"shorter than {self.min_words} words"
        if words > self.max_words:
            return f"longer than {self.max_words} words"
        if not re.fullmatch(self.regex, text):
            return "not a clause"
        return None


@dataclass(frozen=True)
class Form:
    """A role written whole under a grammar (``--engine xgrammar``, or a server's guided decoding): its
    template's literal words where the template has them, the model's words where it has slots. ``pieces``
    alternate between literal text and None (words the model writes: ``min_words`` to ``max_words`` for the
    last, 1 to ``INNER_WORDS`` for the others — a slot holds a phrase, and the grammar can only force the
    literal after it once the phrase is full); the role ends with its last literal's last character. A role
    that opens the record opens with a word; any other opens with a space, as roles join."""

    INNER_WORDS = 6

    pieces: tuple[str | None, ...]
    first: bool = False
    min_words: int = 4
    max_words: int = 24

    @property
    def end(self) -> str:
        return self.pieces[-1][-1]

    @property
    def stops(self) -> str:
        return "".join(dict.fromkeys(_END + self.end))

    @property
    def word_regex(self) -> str:
        word, last = word_pattern(self.stops), max(i for i, p in enumerate(self.pieces) if p is None)
        out = []
        for i, piece in enumerate(self.pieces):
            if piece is not None:
                out.append(re.escape(piece))
                continue
            low, high = (self.min_words, self.max_words) if i == last else (1, min(self.INNER_WORDS, self.max_words))
            if i == 0 and self.first:
                out.append(f"{word}( {word}){{{low - 1},{high - 1}}}")
            else:
                out.append(f"( {word}){{{low},{high}}}")
        return "".join(out)

    regex = word_regex

    def spec(self) -> dict:
        return {"kind": "form", "regex": self.regex, **asdict(self)}

    def problem(self, text: str) -> str | None:
        """Why ``text`` is not the role in this form (a short reason), or None."""
        if not text.strip():
            return "empty"
        if "\n" in text or "\r" in text:
            return "a line break"
        if "\ufffd" in text:
            return "broken characters"
        if unusual(text):
            return "a control character or unusual space"
        if not re.fullmatch(self.word_regex, text):
            return "not the role's form (its words and the template's)"
        return None


class TokenClasses:
    """Each vocabulary token's place in a clause, read once per tokenizer and clause ending: ``inner`` (no line
    break, nothing that ends a sentence or the clause), ``end`` (ends the clause and holds nothing else that
    ends one), ``word`` (opens a new word); ``clean``: no special token, no control character or unusual space,
    though it may be part of a character (the grammar engine lets bytes join into characters; the mask does
    not)."""

    def __init__(self, tok, clause: Clause = Clause()):
        import torch

        stops, ends = clause.stops, clause.end
        size = len(tok)
        special = set(tok.all_special_ids)
        inner, end, word, clean = (torch.zeros(size, dtype=torch.bool) for _ in range(4))
        for i, piece in enumerate(tok.convert_ids_to_tokens(list(range(size)))):
            if i in special or piece is None:
                continue
            text = tok.convert_tokens_to_string([piece])
            if not text or unusual(text, allowed=" \ufffd"):
                continue                   # control characters, line breaks, unusual spaces: never
            clean[i] = True
            if "\ufffd" in text:
                continue                   # a piece of a character: not under the mask
            body_has_end = any(c in stops for c in text[:-1])
            if not any(c in stops for c in text):
                inner[i] = True
            elif text[-1] in ends and not body_has_end and not text.startswith(" "):
                end[i] = True
            word[i] = text.startswith(" ")
        self.inner, self.end, self.word, self.clean = inner, end, word, clean
        self.first, self.inner_or_end = inner & word, inner | end    # the masks of a step, made once


class RowSampler:
    """A logits processor that picks each row's token itself: the row's constraint masks its scores
    (``constrain``, by the subclass), then the row draws from its own random stream (``draw_token``) and the
    processor leaves only that token, so that ``generate``'s greedy step takes it. A row that has ended may
    only end the sequence."""

    def __init__(self, prompt_width: int, streams: list, eos: int, temperature: float, top_p: float, budget: int):
        self.width, self.streams, self.eos = prompt_width, streams, eos
        self.temperature, self.top_p = temperature, top_p
        self.budget = budget               # new tokens in all: the clause must have ended before the last
        self.done = [False] * len(streams)

    def advance(self, row: int, token: int) -> None:
        """The token row ``row`` took last step (the row has not ended before it)."""
        raise NotImplementedError

    def constrain(self, scores, step: int):
        """``scores`` (rows, vocab) with what each row may not take next at -inf."""
        raise NotImplementedError

    def __call__(self, input_ids, scores):
        import torch

        from ..lm.sampling import draw_token

        step = input_ids.shape[1] - self.width
        if step > 0:
            for row, token in enumerate(input_ids[:, -1].tolist()):
                if not self.done[row]:
                    self.advance(row, token)
        masked = self.constrain(scores.float(), step)
        u = torch.tensor([s.random() for s in self.streams], device=scores.device)
        chosen = draw_token(masked, u, self.temperature, self.top_p)
        return torch.full_like(scores, -math.inf).scatter_(1, chosen[:, None], 0.0)


class ClauseRule(RowSampler):
    """The clause as a token mask of our own (``--engine mask``): before ``min_words`` only inner tokens; then
    inner or end tokens; at ``max_words``, or when the token budget is all but spent, only end tokens; after the
    end only the end-of-sequence token. The first token opens a word."""

    def __init__(self, classes: TokenClasses, clause: Clause, prompt_width: int, streams: list, eos: int,
                 temperature: float, top_p: float, budget: int):
        super().__init__(prompt_width, streams, eos, temperature, top_p, budget)
        self.classes, self.clause = classes, clause
        self.eos_only = classes.inner.new_zeros(classes.inner.shape)   # a finished row's mask, made once
        self.eos_only[eos] = True
        self.words = [0] * len(streams)

    def advance(self, row: int, token: int) -> None:
        self.words[row] += bool(self.classes.word[token])
        self.done[row] = bool(self.classes.end[token])

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

    def constrain(self, scores, step: int):
        import torch

        vocab = scores.shape[1]
        mask = torch.zeros((len(self.streams), vocab), dtype=torch.bool)   # (batch, vocab): the head may be
        for row in range(len(self.streams)):                               # wider than the tokenizer
            allowed = self._allowed(row, step)[:vocab]
            mask[row, :len(allowed)] = allowed
        return scores.masked_fill(~mask.to(scores.device), -math.inf)
