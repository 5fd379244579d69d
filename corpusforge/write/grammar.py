"""The structure forced by a maintained grammar library: xgrammar (``--engine xgrammar``; under ``auto``, a
role's form).

The clause's or form's word-bounded regex (``Clause.word_regex``, ``Form.word_regex``) is compiled once per
tokenizer and constraint with xgrammar's ``GrammarCompiler``; each row of a batch keeps its own
``GrammarMatcher``, which fills the row's token bitmask every step and accepts the token the row then draws
from its own random stream (``RowSampler``).

The library decides what may come next; we only narrow it, never widen it: no token holding a control
character or an unusual space (``TokenClasses.clean``: the regex cannot name every such character), and when
the token budget is all but spent only the tokens that end the clause (``TokenClasses.end``), as under the
token mask, so that a clause that runs long ends instead of being cut off.

xgrammar is installed with ``pip install --no-deps xgrammar==0.2.8 apache-tvm-ffi`` (the Makefile does it):
its wheel declares triton, which a CPU machine does not need.
"""

from __future__ import annotations

import math

from ..errors import GenerateError
from .constraint import Clause, RowSampler, TokenClasses

INSTALL = "pip install --no-deps xgrammar==0.2.8 apache-tvm-ffi"


def _xgrammar():
    try:
        import xgrammar
    except ImportError:
        raise GenerateError("writing under a grammar (--engine xgrammar, or a role that opens with a slot) needs "
                            "the xgrammar package, which is not installed",
                            hint=f"install it ({INSTALL}), or write under our own token mask: --engine mask") from None
    return xgrammar


class Grammar:
    """One clause compiled for one tokenizer and model head (``vocab_size``: the head may be wider than the
    tokenizer)."""

    def __init__(self, tok, vocab_size: int, clause: Clause, classes: TokenClasses):
        import torch

        xgr = _xgrammar()
        self.xgr, self.clause = xgr, clause
        self.info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab_size)
        self.compiled = xgr.GrammarCompiler(self.info).compile_regex(clause.word_regex)

        def head_wide(tokens):             # a tokenizer's class over the head's width (its extra rows: never)
            wide = torch.zeros(vocab_size, dtype=torch.bool)
            wide[:min(len(tokens), vocab_size)] = tokens[:vocab_size]
            return wide

        # what a step leaves of the grammar's mask: no control character or unusual space; near the budget,
        # only a token that ends the constraint
        self.clean, self.end = head_wide(classes.clean), head_wide(classes.end)

    def rule(self, prompt_width: int, streams: list, eos: int, temperature: float, top_p: float,
             budget: int) -> GrammarRule:
        return GrammarRule(self, prompt_width, streams, eos, temperature, top_p, budget)


class GrammarRule(RowSampler):
    """A batch of clauses, each row under its own ``GrammarMatcher``."""

    def __init__(self, grammar: Grammar, prompt_width: int, streams: list, eos: int, temperature: float,
                 top_p: float, budget: int):
        super().__init__(prompt_width, streams, eos, temperature, top_p, budget)
        xgr = grammar.xgr
        self.grammar = grammar
        self.matchers = [xgr.GrammarMatcher(grammar.compiled) for _ in streams]
        self.bitmask = xgr.allocate_token_bitmask(len(streams), grammar.info.vocab_size)

    def advance(self, row: int, token: int) -> None:
        matcher = self.matchers[row]
        if not matcher.accept_token(token):     # cannot happen: the row drew from the matcher's own mask
            raise RuntimeError(f"the grammar refused token {token} it allowed")
        self.done[row] = matcher.is_completed()     # the last literal matched: a form's inner "," is not its end

    def constrain(self, scores, step: int):
        import torch

        xgr = self.grammar.xgr
        for row, matcher in enumerate(self.matchers):
            if not self.done[row]:
                matcher.fill_next_token_bitmask(self.bitmask, row)
        xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device))
        keep = self.grammar.end if step >= self.budget - 2 else self.grammar.clean   # narrowed, never widened
        scores = scores.masked_fill(~keep.to(scores.device), -math.inf)
        stuck = torch.isinf(scores).all(dim=1).tolist()
        for row, done in enumerate(self.done):
            if done or stuck[row]:              # ended, or nothing may end it in time: the end of the sequence
                self.done[row] = True           # (a clause left unfinished is refused by ``Clause.problem``)
                scores[row] = -math.inf
                scores[row, self.eos] = 0.0
        return scores
