"""Sampling one token per row from a random number of the row's own: what makes a batched generation's rows
depend on their own random streams alone, not on what shares their batch."""

from __future__ import annotations


def draw_token(scores, u, temperature: float, top_p: float, *, within: int = 64):
    """Per row, the token at ``u`` (uniform in [0, 1)) of ``softmax(scores / temperature)`` cut to the most
    likely tokens whose mass reaches ``top_p`` (at least one): (rows, vocab), (rows,) → (rows,). The cut is
    looked for among the ``within`` most likely tokens, then 16 times as many, and so on up to all: a partial
    sort of a few tokens is cheap and usually enough, a sort of the whole vocabulary is not (the draw is the same
    wherever the cut is found)."""
    import torch

    probs = torch.softmax(scores.float() / temperature, dim=-1)
    vocab = probs.shape[-1]
    while True:
        top, order = probs.topk(min(within, vocab), dim=-1)        # descending
        if within >= vocab or not bool((top.sum(-1) < top_p).any()):
            break
        within *= 16
    kept = torch.where(top.cumsum(-1) - top < top_p, top, 0.0).cumsum(-1)  # a prefix of the ranking
    at = torch.searchsorted(kept, (u * kept[:, -1])[:, None], right=True)
    at = torch.minimum(at, (kept < kept[:, -1:]).sum(-1, keepdim=True))   # never past the last kept token
    return order.gather(-1, at).squeeze(-1)
