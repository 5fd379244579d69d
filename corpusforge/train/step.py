"""One optimiser step: the supervised loss on the roles, the drift penalty on controls, the update.

- the supervised loss: cross-entropy on the tokens of the supervised roles only;
  the LM head runs only at those positions (no logits for tokens without loss);
- the drift control: on a batch of control prompts, KL(base ‖ LoRA) of the
  next-token distributions at every position, where "base" is the same model
  with the adapter disabled — never a second copy;
- loss = supervised + control_weight · KL, averaged over ``grad_accum`` micro-steps; the supervised part is
  a weighted mean when the marker tokens weigh ``target_weight``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from ..errors import TrainError
from ..lm.arch import Architecture, head_logits
from .data import Batch, Example, collate


@dataclass
class Head:
    """How logits are made from the model: its body's last hidden states through its own head
    (``direct``), or — where ``lm.arch.check_head`` could not reproduce the model's logits that
    way — the model's full forward pass."""

    arch: Architecture
    direct: bool = True


def lm_logits(peft_model, batch: Batch, head: Head):
    """Logits only where a label is, in float32: (n_labels, vocab). The LM head never sees positions without loss."""
    base = peft_model.get_base_model()
    if head.direct:
        hidden = base.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        return head_logits(base, head.arch, hidden[batch.rows, batch.cols]).float()  # (b, s, h) → (n, h) → (n, v)
    logits = base(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (batch, seq, vocab)
    return logits[batch.rows, batch.cols].float()


def objective_module():
    import torch
    import torch.nn.functional as F

    class Objective(torch.nn.Module):
        """Loss of one micro-step, as a module so that DDP sees a forward and syncs gradients."""

        def __init__(self, peft_model, head: Head):
            super().__init__()
            self.peft = peft_model
            self.head = head

        def forward(self, batch: Batch, controls: Batch | None = None, base_logprobs=None):
            if batch.weights is None:
                ce = F.cross_entropy(lm_logits(self.peft, batch, self.head), batch.labels)
            else:  # a weighted mean: the marker tokens weigh target_weight
                per_token = F.cross_entropy(lm_logits(self.peft, batch, self.head), batch.labels, reduction="none")
                ce = (per_token * batch.weights).sum() / batch.weights.sum()
            if controls is None:
                return ce, ce.new_zeros(())
            logprobs = F.log_softmax(lm_logits(self.peft, controls, self.head), dim=-1)      # (n, vocab)
            kl = F.kl_div(logprobs, base_logprobs, log_target=True, reduction="batchmean")  # KL(base ‖ LoRA)
            return ce, kl

    return Objective


def base_logprobs(peft_model, batch: Batch, head: Head):
    """The base model's next-token log-probabilities: the same model with the adapter disabled."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad(), peft_model.disable_adapter():
        return F.log_softmax(lm_logits(peft_model, batch, head), dim=-1)


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
    control_batch: Callable[[int], Batch | None]  # control batch index → the batch (None: no controls)
    pad_id: int
    grad_accum: int
    control_weight: float
    world: int   # processes
    rank: int    # this process
    head: Head
    device: object = "cpu"


def run_step(objective, peft_model, optimizer, scheduler, accelerator, inputs: StepInputs, position: int) -> dict:
    """Accumulate ``grad_accum`` micro-steps from ``position``, update, and return the step's measurements
    (summed over processes: tokens; averaged: losses)."""
    import torch

    started = time.perf_counter()
    step_loss = step_kl = 0.0
    step_tokens = step_sup = 0
    for micro in range(inputs.grad_accum):
        index = position + micro * inputs.world + inputs.rank
        batch = collate(inputs.batch_at(index), inputs.pad_id).to(inputs.device)
        if batch.supervised == 0:
            raise TrainError(f"batch {index} has no supervised token", hint="check --loss-on")
        ctrl = inputs.control_batch(position // inputs.world + micro)
        ctrl = ctrl.to(inputs.device) if ctrl is not None else None
        base = base_logprobs(peft_model, ctrl, inputs.head) if ctrl is not None else None
        ce, kl = objective(batch, ctrl, base)
        accelerator.backward((ce + inputs.control_weight * kl) / inputs.grad_accum)
        step_loss += float(ce.detach()) / inputs.grad_accum
        step_kl += float(kl.detach()) / inputs.grad_accum
        step_tokens += batch.tokens
        step_sup += batch.supervised
    accelerator.clip_grad_norm_(objective.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - started
    totals = accelerator.reduce(torch.tensor([step_tokens, step_sup], dtype=torch.float64), "sum")
    losses = accelerator.reduce(torch.tensor([step_loss, step_kl], dtype=torch.float64), "mean")
    return {"loss": float(losses[0]), "control_kl": float(losses[1]), "lr": scheduler.get_last_lr()[0],
            "tokens": int(totals[0]), "supervised_tokens": int(totals[1]), "seconds": elapsed}
