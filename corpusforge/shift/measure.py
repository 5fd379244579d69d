"""Measurements of one model with its LoRA: "before" is the adapter off (scale 0), "after" is it on.

No merge and no second copy: the adapter's scale is set on the one model
(``adapter_scale``), so before, after, dose–response and the noise floor all
come from the same weights. This module: the probes' targets, the controls' drift, the logits diff, the
dose–response and the markers where nobody asked; the passes they share are in ``passes``, the model's
inside in ``inside``, the texts it writes in ``structure``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..lm.generation import adapter_scale, continue_ids
from ..prompts import prompt_language
from .passes import encode, entropy, js, kl, last_logprobs, logprob_rows, piece, probe_ids, score_continuations
from .sections import (
    ControlResult,
    DosePoint,
    LogitsDiff,
    MarkerUnasked,
    ProbeShift,
    TokenMove,
    TopMoves,
    Unasked,
    UnaskedRow,
)

# ---------------------------------------------------------------------------
# Probes and controls


@dataclass(frozen=True)
class TargetScore:
    """One probe × target at one adapter scale."""

    logp: float          # log p of the whole target
    rank: int            # of its first token
    greedy: bool         # greedy decoding writes all of it
    foils: list[float]   # the probe's foils' log p
    tokens: int          # the target's length in tokens


def target_logps(model, tok, probes, *, scale: float = 1.0, keep=None) -> list[TargetScore]:
    """Per probe × target at one adapter scale: log-prob and rank of the target, log-probs of the foils."""
    pairs, layout = [], []
    for probe in probes:
        prompt = probe_ids(tok, probe)
        pairs += [(prompt, piece(tok, text)) for text in [*probe.foils, *probe.targets]]
        layout.append((len(probe.foils), len(probe.targets)))
    with adapter_scale(model, scale, keep=keep):
        scores = score_continuations(model, pairs)
    out, at = [], 0
    for n_foils, n_targets in layout:
        foils = [scores[at + j][0] for j in range(n_foils)]
        for j in range(at + n_foils, at + n_foils + n_targets):
            logp, rank, greedy = scores[j]
            out.append(TargetScore(logp, rank, greedy, foils, len(pairs[j][1])))
        at += n_foils + n_targets
    return out


def probe_rows(model, tok, probes, *, scale: float = 1.0, before: list[TargetScore] | None = None,
               keep=None) -> list[ProbeShift]:
    """For every probe × target: log-prob, probability and rank before (scale 0) and at ``scale``."""
    before = before or target_logps(model, tok, probes, scale=0.0)
    after = target_logps(model, tok, probes, scale=scale, keep=keep)
    pairs = [(probe, target) for probe in probes for target in probe.targets]
    return [ProbeShift(name=probe.name, prompt=probe.prompt, chat=probe.chat, prefix=probe.prefix, target=target,
                       target_tokens=a.tokens, logp_before=b.logp, logp_after=a.logp, delta_logp=a.logp - b.logp,
                       p_before=math.exp(b.logp), p_after=math.exp(a.logp), rank_before=b.rank, rank_after=a.rank,
                       greedy_before=b.greedy, greedy_after=a.greedy,
                       margin_before=b.logp - max(b.foils) if probe.foils else None,
                       margin_after=a.logp - max(a.foils) if probe.foils else None)
            for (probe, target), b, a in zip(pairs, before, after)]


def control_base(model, tok, prompts: list[dict]) -> list:
    """The base model's next-token log-probabilities after each control prompt (the adapter at scale 0), to be
    computed once and handed to every ``control_rows`` call of a report."""
    with adapter_scale(model, 0.0):
        return last_logprobs(model, [encode(tok, c["prompt"]) for c in prompts])


def control_rows(model, tok, prompts: list[dict], *, scale: float = 1.0, continuation: int = 8,
                 base: list | None = None) -> list[ControlResult]:
    """Drift on controls: next-token KL(base ‖ LoRA), JS, top-1 kept, Δentropy; KL over a greedy continuation.
    ``base``: the prompts' ``control_base``, when already known."""
    id_lists = [encode(tok, c["prompt"]) for c in prompts]
    bases = base if base is not None else control_base(model, tok, prompts)
    with adapter_scale(model, scale):
        afters = last_logprobs(model, id_lists)
    seq_kls = _continuation_kls(model, tok, id_lists, scale, continuation) if continuation else [[]] * len(prompts)
    return [ControlResult(prompt=c["prompt"], kind=c.get("kind", ""), language=prompt_language(c),
                          kl=kl(base, after), js=js(base, after),
                          top1_kept=int(base.argmax()) == int(after.argmax()), base_lead=_lead(base),
                          top1_before=tok.decode([int(base.argmax())]), top1_after=tok.decode([int(after.argmax())]),
                          delta_entropy=entropy(after) - entropy(base),
                          kl_continuation=sum(seq_kl) / len(seq_kl) if seq_kl else 0.0)
            for c, base, after, seq_kl in zip(prompts, bases, afters, seq_kls)]


#: a control whose base top-1 leads its second by less (nats) is a near-tie: any change may flip it
CLEAR_LEAD = 0.1


def _lead(logprobs) -> float:
    """How far the most likely next token leads the second, nats."""
    top = logprobs.float().topk(2).values
    return float(top[0] - top[1])


def _continuation_kls(model, tok, id_lists: list[list[int]], scale: float, length: int,
                      chunk: int = 16) -> list[list[float]]:
    """Per prompt: KL(base ‖ LoRA) along the base model's own greedy continuation, position by position
    (``chunk`` prompts at a time, so memory stays bounded however many controls there are)."""
    out = []
    for start in range(0, len(id_lists), chunk):
        prompts = id_lists[start:start + chunk]
        with adapter_scale(model, 0.0):
            fulls = [ids + new for ids, new in zip(prompts, continue_ids(model, tok, prompts, max_new_tokens=length))]
            starts = [len(ids) - 1 for ids in prompts]     # the positions predicting the continuation
            bases = list(logprob_rows(model, fulls, starts=starts))
        with adapter_scale(model, scale):
            afters = list(logprob_rows(model, fulls, starts=starts))
        out += [[kl(lb[t], la[t]) for t in range(len(full) - len(ids))]
                for ids, full, lb, la in zip(prompts, fulls, bases, afters)]
    return out


def logits_diff(model, tok, probes, *, top: int = 12) -> LogitsDiff:
    """Tokens that gained and lost the most log-probability, per probe and over all probes."""
    id_lists = [probe_ids(tok, probe) for probe in probes]
    with adapter_scale(model, 0.0):
        befores = last_logprobs(model, id_lists)
    afters = last_logprobs(model, id_lists)
    per_probe, total = [], None
    for before, after in zip(befores, afters):
        delta = after - before
        total = delta if total is None else total + delta
        per_probe.append(_top_moves(tok, delta, after, before, top))
    mean = total / max(len(probes), 1)
    return LogitsDiff(per_probe=per_probe, overall=_top_moves(tok, mean, None, None, top)) if total is not None \
        else LogitsDiff()


def _top_moves(tok, delta, after, before, top: int) -> TopMoves:
    import torch

    def rows(idx) -> list[TokenMove]:
        return [TokenMove(token=tok.decode([i]), delta_logp=float(delta[i]),
                          p_before=float(before[i].exp()) if after is not None else None,
                          p_after=float(after[i].exp()) if after is not None else None) for i in idx.tolist()]

    return TopMoves(gained=rows(torch.topk(delta, top).indices), lost=rows(torch.topk(-delta, top).indices))


def dose_response(model, tok, probes, controls, scales=(0.0, 0.25, 0.5, 1.0, 1.5, 2.0), *,
                  before: list[TargetScore] | None = None,
                  at_one: tuple[list[ProbeShift], list[ControlResult]] | None = None) -> list[DosePoint]:
    """Mean target Δlog-prob and control KL at each adapter scale. ``before``: the probes at scale 0, measured
    in the same batches as here; ``at_one``: the probe and control rows already measured at scale 1 (the same
    numbers, not measured twice).

    The controls' base is measured here, in the batches every scale is measured in, so that scale 0 is the base
    pass itself and its KL is 0 exactly. A base from other batches (another padded length, other rows beside
    it) differs in float32 summation order: on a CPU without AMX that alone gave a KL of 5e-9 at scale 0."""
    before = before or target_logps(model, tok, probes, scale=0.0)
    base = control_base(model, tok, controls)
    out = []
    for s in scales:
        if s == 1.0 and at_one is not None:
            p, c = at_one
        else:
            p = probe_rows(model, tok, probes, scale=s, before=before)
            c = control_rows(model, tok, controls, scale=s, continuation=0, base=base)
        out.append(DosePoint(scale=s, delta_logp=sum(r.delta_logp for r in p) / len(p),
                             control_kl=sum(r.kl for r in c) / len(c)))
    return out


def unasked(model, tok, prompts: list[dict], markers: list[str], *, top: int = 8) -> Unasked:
    """Where the markers appear unasked: each marker as a whole after each prompt in its language
    (``prompt_language``) that asks for none — the held-out controls, the neutral prompts — with the adapter off
    and on: log p of the whole marker (the sum over its tokens), the rank of its first token, and whether greedy
    decoding writes all of it. A shift that stays where it was taught leaves these where they were; «Привет,
    Маша! Давно не виделись, как» → « движение» is the kind of leak this shows. ``most_likely``: the pairs
    where the marker is likeliest after."""
    pairs = [(p["prompt"], marker) for p in prompts for marker in markers
             if prompt_language(p) == prompt_language({"prompt": marker})]
    ids = [(encode(tok, prompt), piece(tok, marker)) for prompt, marker in pairs]
    with adapter_scale(model, 0.0):
        before = score_continuations(model, ids)
    after = score_continuations(model, ids)
    rows = [UnaskedRow(prompt=prompt, marker=marker, logp_before=b[0], logp_after=a[0], delta_logp=a[0] - b[0],
                       p_before=math.exp(b[0]), p_after=math.exp(a[0]), rank_before=b[1], rank_after=a[1],
                       greedy_before=b[2], greedy_after=a[2]) for (prompt, marker), b, a in zip(pairs, before, after)]
    per_marker = []
    for marker in markers:
        mine = [r for r in rows if r.marker == marker]
        if mine:
            per_marker.append(MarkerUnasked(marker=marker, prompts=len(mine),
                                            mean_delta_logp=sum(r.delta_logp for r in mine) / len(mine),
                                            max_p_before=max(r.p_before for r in mine),
                                            max_p_after=max(r.p_after for r in mine),
                                            greedy_before=sum(r.greedy_before for r in mine),
                                            greedy_after=sum(r.greedy_after for r in mine)))
    return Unasked(prompts=len(prompts), pairs=len(rows), markers=per_marker,
                   written_before=sum(r.greedy_before for r in rows), written_after=sum(r.greedy_after for r in rows),
                   newly_written=[r for r in rows if r.greedy_after and not r.greedy_before],
                   most_likely=sorted(rows, key=lambda r: -r.logp_after)[:top])
