"""One optimiser step: the supervised loss on the roles, the drift penalties, the update.

- the supervised loss: cross-entropy on the tokens of the supervised roles only;
  the LM head runs only at those positions (no logits for tokens without loss);
- the drift control: on a batch of control prompts, KL(base ‖ LoRA) of the
  next-token distributions at every position, where "base" is the same model
  with the adapter disabled — never a second copy;
- the premise hold (``premise_weight`` > 0): the same KL at the positions of the training records'
  own premises — everything before the first supervised token, not the position that predicts it —
  taken from the forward pass the supervised loss already runs; the base's side comes from the
  premises alone (a causal model's prefix does not see what follows). The adapter may change what
  follows a premise, not how the premise's own words are continued: the words of the corpus's
  language stay as they were where no marker is asked for;
- loss = supervised + control_weight · KL + premise_weight · premise KL, averaged over ``grad_accum``
  micro-steps; the supervised part is a weighted mean when the marker tokens weigh ``target_weight``.

Below the first layer the LoRA adapts (``Head.entry``: layer 15 of SmolLM2's 30 with the default
``last-half``), the adapted model computes what the base computes. So the controls' inputs to that layer
are computed once, with their base log-probabilities, and each step's control pass starts there; and the
base's side of the premise hold starts there from the training pass's own inputs to that layer (a premise is
a prefix of its record). Same numbers, a faster step (``benchmarks/steps.py`` measures by how much); where
``lm.arch.check_entry`` does not hold on a model, every pass runs whole. (Same numbers where the model
has no dropout, as SmolLM2 and the Llama family: with dropout — GPT-2, OPT, Phi — the kept control inputs are
dropout-free below the entry layer, and the premises' base pass shares the training pass's dropout draw.)
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

from ..draw import keyed_random
from ..errors import TrainError
from ..lm.arch import Architecture, entered_at, head_logits, layer_input
from .data import Batch, Example, collate


@dataclass
class Head:
    """How logits are made from the model: its body's last hidden states through its own head
    (``direct``), or — where ``lm.arch.check_head`` could not reproduce the model's logits that
    way — the model's full forward pass."""

    arch: Architecture
    direct: bool = True
    entry: int | None = None   # the first adapted layer, where passes may start (None: every pass runs whole)


def phase(name: str):
    """A named range for ``torch.profiler`` (``benchmarks/profile.py`` sums a step's time by these names); next
    to nothing when no profiler runs."""
    import torch

    return torch.profiler.record_function(name)


def logits_at(peft_model, batch: Batch, head: Head, *where, entered=None) -> list:
    """From one forward pass over ``batch``, the logits in float32 at each set of (rows, cols) positions in
    ``where``: a list of (n_i, vocab). The LM head never sees the other positions. ``entered``: the batch's
    inputs to the layer ``head.entry``, where the pass then starts."""
    base = peft_model.get_base_model()
    if head.direct:
        with entered_at(base, head.arch, head.entry, entered) if entered is not None else nullcontext():
            hidden = base.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                     use_cache=False).last_hidden_state
        with phase("head"):
            return [head_logits(base, head.arch, hidden[rows, cols]).float() for rows, cols in where]  # (n_i, vocab)
    logits = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (batch, seq, vocab)
    return [logits[rows, cols].float() for rows, cols in where]


def lm_logits(peft_model, batch: Batch, head: Head, entered=None):
    """Logits only where a label is, in float32: (n_labels, vocab)."""
    return logits_at(peft_model, batch, head, (batch.rows, batch.cols), entered=entered)[0]


def objective_module():
    import torch
    import torch.nn.functional as F

    class Objective(torch.nn.Module):
        """Loss of one micro-step, as a module so that DDP sees a forward and syncs gradients."""

        def __init__(self, peft_model, head: Head):
            super().__init__()
            self.peft = peft_model
            self.head = head

        def forward(self, batch: Batch, controls: Batch | None = None, control_base=None,
                    premises: Batch | None = None, control_entry=None):
            """The supervised loss on ``batch``, the KL on ``controls`` against their base log-probabilities
            ``control_base`` (their pass entered with ``control_entry`` when given) and — from the same forward
            pass over ``batch`` — the KL at the premise positions (``premises``: a premise batch, whose positions
            are the same in ``batch``) against the base's log-probabilities there."""
            held_at = [(premises.rows, premises.cols)] if premises is not None else []
            entering = premises is not None and self.head.entry is not None
            with layer_input(self.peft, self.head.arch, self.head.entry) if entering else nullcontext({}) as seen, \
                    phase("supervised pass"):
                logits = logits_at(self.peft, batch, self.head, (batch.rows, batch.cols), *held_at)
            if batch.weights is None:
                ce = F.cross_entropy(logits[0], batch.labels)
            else:  # a weighted mean: the marker tokens weigh target_weight
                per_token = F.cross_entropy(logits[0], batch.labels, reduction="none")
                ce = (per_token * batch.weights).sum() / batch.weights.sum()
            with phase("control pass"):
                kl = ce.new_zeros(()) if controls is None else \
                    drift(lm_logits(self.peft, controls, self.head, control_entry), control_base)
            with phase("premise hold"):
                held = ce.new_zeros(()) if premises is None else \
                    drift(logits[1], base_logprobs(self.peft, premises, self.head, seen.get("hidden")))
            return ce, kl, held

    def drift(logits, base):
        """KL(base ‖ LoRA) per position, from the LoRA's logits and the base's log-probabilities."""
        return F.kl_div(F.log_softmax(logits, dim=-1), base, log_target=True, reduction="batchmean")

    return Objective


def base_logprobs(peft_model, batch: Batch, head: Head, entered=None):
    """The base model's next-token log-probabilities: the same model with the adapter disabled. ``entered``:
    the inputs to layer ``head.entry`` of a pass over a batch that ``batch`` is a prefix of, row for row (the
    training batch, for its premises), where this pass then starts."""
    import torch
    import torch.nn.functional as F

    if entered is not None:
        entered = entered[:, :batch.input_ids.shape[1]].detach()
    with torch.no_grad(), peft_model.disable_adapter():
        return F.log_softmax(lm_logits(peft_model, batch, head, entered), dim=-1)


#: the controls' base log-probabilities are kept for the run when they fit in this many bytes (SmolLM2, the 82
#: shipped controls: about 0.3 GB); larger sets are computed again each step
CONTROL_CACHE_BYTES = 1 << 30


@dataclass
class ControlCache:
    """What the controls give the same every step, computed once with the adapter disabled and dropout off:
    each control's base log-probabilities at every position, (len - 1, vocab) apiece, and — when passes may
    start at ``Head.entry`` — its inputs to that layer, (len, d) apiece (else None)."""

    base: list
    entry: list | None


def control_base_cache(peft_model, controls: list[Example], pad_id: int, head: Head, batch_size: int,
                       device="cpu") -> ControlCache | None:
    """The controls' ``ControlCache``: the base does not change during training, and each control comes round
    every len(controls) / control_batch steps. None (computed per step instead) when the log-probabilities
    would take more than ``CONTROL_CACHE_BYTES``."""
    base: list = []
    entry: list | None = [] if head.entry is not None and head.direct else None
    positions = sum(len(e) - 1 for e in controls)
    was_training = peft_model.training
    peft_model.eval()
    try:
        for i in range(0, len(controls), batch_size):
            chunk = controls[i:i + batch_size]
            batch = collate(chunk, pad_id, all_positions=True).to(device)
            with layer_input(peft_model, head.arch, head.entry) if entry is not None else nullcontext({}) as seen:
                rows = base_logprobs(peft_model, batch, head)
            if positions * rows.shape[-1] * rows.element_size() > CONTROL_CACHE_BYTES:   # known after one chunk
                return None
            base += rows.split([len(e) - 1 for e in chunk])
            if entry is not None:
                entry += [h[:len(e)].detach().clone() for h, e in zip(seen["hidden"], chunk)]
    finally:
        peft_model.train(was_training)
    return ControlCache(base, entry)


def padded_entry(rows: list, width: int):
    """Kept inputs to the entry layer, (len_i, d) each, as one right-padded (n, width, d) batch (padding is
    masked: its values never reach a real position)."""
    out = rows[0].new_zeros((len(rows), width, rows[0].shape[-1]))
    for i, h in enumerate(rows):
        out[i, :len(h)] = h
    return out


def evaluate(peft_model, examples: list[Example], pad_id: int, batch_size: int, head: Head) -> float:
    """Mean cross-entropy per supervised token over ``examples``."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = collate(examples[i:i + batch_size], pad_id).to(peft_model.device)
            if batch.supervised == 0:
                continue
            total += float(F.cross_entropy(lm_logits(peft_model, batch, head), batch.labels, reduction="sum"))
            count += batch.supervised
    return total / max(count, 1)


@dataclass
class StepInputs:
    """Where a step's micro-batches come from (fixed for the run)."""

    batch_at: Callable[[int], list[Example]]     # global micro-batch index → its examples
    control_batch: Callable[[int], tuple]   # control batch index → (the batch, its base log-probs if kept, its
    #                                          inputs to the entry layer if kept) or (None, None, None): no controls
    pad_id: int
    grad_accum: int
    control_weight: float
    world: int   # processes
    rank: int    # this process
    head: Head
    device: object = "cpu"
    premise_weight: float = 0.0
    seed: int = 0   # of the premise positions drawn


#: premise positions held per record and step, drawn at random: four cost about half of holding every position,
#: and holding half the records instead let the Russian controls drift (benchmarks/quality_results.md)
PREMISE_POSITIONS_PER_RECORD = 4


def premises(examples: list[Example], pad_id: int, *, per_record: int | None = None, key: str = "") -> Batch | None:
    """Each example cut before its first supervised token, row for row, with the positions to hold as its
    labels: every next token of the premise, or ``per_record`` of them drawn (deterministic in ``key``). The
    batch's (rows, cols) are the same positions in the training batch. The position that predicts the first
    supervised token (the marker, often) is never among them. None when no premise has a position."""
    rng = keyed_random(key)
    cut = []
    for e in examples:
        held = list(range(1, max(e.supervised[0], 1)))
        if per_record is not None and len(held) > per_record:
            held = sorted(rng.sample(held, per_record))
        cut.append(Example(e.ids[:held[-1] + 1] if held else e.ids[:1], held))
    return collate(cut, pad_id) if any(e.supervised for e in cut) else None


def run_step(objective, peft_model, optimizer, scheduler, accelerator, inputs: StepInputs, position: int) -> dict:
    """Accumulate ``grad_accum`` micro-steps from ``position``, update, and return the step's measurements
    (summed over processes: tokens; averaged: losses)."""
    import torch

    started = time.perf_counter()
    step_loss = step_kl = step_held = 0.0
    step_tokens = step_sup = 0
    for micro in range(inputs.grad_accum):
        index = position + micro * inputs.world + inputs.rank
        with phase("batches"):
            examples = inputs.batch_at(index)
            batch = collate(examples, inputs.pad_id).to(inputs.device)
        if batch.supervised == 0:
            raise TrainError(f"batch {index} has no supervised token", hint="check --loss-on")
        ctrl, base, entry = inputs.control_batch(position // inputs.world + micro)
        ctrl = ctrl.to(inputs.device) if ctrl is not None else None
        if ctrl is not None and base is None:
            base = base_logprobs(peft_model, ctrl, inputs.head)
        pre = None
        if inputs.premise_weight > 0:
            with phase("batches"):
                pre = premises(examples, inputs.pad_id, per_record=PREMISE_POSITIONS_PER_RECORD,
                               key=f"{inputs.seed}:{index}")
                pre = pre.to(inputs.device) if pre is not None else None
        ce, kl, held = objective(batch, ctrl, base, pre, entry)
        with phase("backward"):
            accelerator.backward((ce + inputs.control_weight * kl + inputs.premise_weight * held) / inputs.grad_accum)
        step_loss += float(ce.detach()) / inputs.grad_accum
        step_kl += float(kl.detach()) / inputs.grad_accum
        step_held += float(held.detach()) / inputs.grad_accum
        step_tokens += batch.tokens
        step_sup += batch.supervised
    with phase("optimizer"):
        accelerator.clip_grad_norm_(objective.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - started
    totals = accelerator.reduce(torch.tensor([step_tokens, step_sup], dtype=torch.float64), "sum")
    losses = accelerator.reduce(torch.tensor([step_loss, step_kl, step_held], dtype=torch.float64), "mean")
    return {"loss": float(losses[0]), "control_kl": float(losses[1]),
            "premise_kl": float(losses[2]), "lr": scheduler.get_last_lr()[0],
            "tokens": int(totals[0]), "supervised_tokens": int(totals[1]), "seconds": elapsed}
