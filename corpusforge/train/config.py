"""``TrainConfig``: everything a training run depends on, checked where it is made.

The same keys come from Python (``TrainConfig(epochs=2)``), from a YAML file
(``--config train.yaml``) and from command-line flags; ``load_config`` merges a
file with overrides (the overrides win, and setting ``steps`` or ``epochs``
clears the other one). Each field's description is the CLI's help text.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._config import config_error
from .._io import read_plain_yaml
from ..errors import TrainError
from ..lm.device import DEVICE_HELP, DTYPE_HELP
from ..lm.embedded import DEFAULT_MODEL
from ..records import INT64_MAX, INT64_MIN
from .recipe import StepPlan, StepsRule


class TrainConfig(BaseModel):
    """A training run. The defaults are the recipe measured on the embedded model, English and Russian alike
    (README, "The default recipe"; benchmarks/quality.py)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(DEFAULT_MODEL, description="Embedded name (smollm2-135m), a local folder, or a Hub id.")
    rank: int = Field(8, ge=1, le=4096, description="LoRA rank r.")
    alpha: float = Field(16.0, gt=0, allow_inf_nan=False, description="LoRA alpha (the update is scaled by alpha/r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout, in [0, 1).")
    targets: str = Field("attention+mlp", description="attention (the attention block's projections: q, k, v and "
                                                      "output, separate or fused) | mlp (the rest of each layer's) | "
                                                      "attention+mlp | module names (q,v,gate; c_attn; mlp.c_proj).")
    layers: str | None = Field("last-half", description="Layers to adapt: 20-29, 0,5,7, last:10, last-half or all.")
    rslora: bool = Field(False, description="Rank-stabilised LoRA scaling (alpha/sqrt(r)).")
    dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA).")
    lr: float = Field(2e-3, gt=0, le=1, allow_inf_nan=False, description="Learning rate.")
    steps: int | None = Field(None, ge=1, le=10_000_000,
                              description="Optimiser steps (default: chosen from the corpus, max(40, "
                                          "12·(tokens of the longest marker + 1)) at batch 8, unless epochs is "
                                          "given).")
    epochs: float | None = Field(None, gt=0, le=100_000, allow_inf_nan=False,
                                 description="Passes over the training split, instead of steps.")
    batch_size: int = Field(8, ge=1, le=65_536, description="Records per micro-step per process.")
    grad_accum: int = Field(1, ge=1, le=65_536, description="Micro-steps per optimiser step.")
    max_length: int = Field(128, ge=2, le=1_048_576, description="Tokens per record (longer ones are cut).")
    warmup: int = Field(4, ge=0, le=INT64_MAX, description="Linear warm-up steps, then linear decay.")
    seed: int = Field(0, ge=INT64_MIN, le=INT64_MAX,
                      description="Seed of the adapter's initialisation and the batch order.")
    loss_on: list[str] | None = Field(None, description="Roles with loss, e.g. consequence,conclusion "
                                                        "(default: every role after the first).")
    controls: str | None = Field(None, description="Control prompts (text, one per line, or JSONL); "
                                                   "default: the set shipped with corpusforge.")
    use_controls: bool = Field(True, description="Penalise drift on the control prompts (KL).")
    control_weight: float = Field(20.0, ge=0, allow_inf_nan=False, description="Weight of the control KL.")
    premise_weight: float = Field(2.0, ge=0, allow_inf_nan=False,
                                  description="Weight of the KL at the training records' own premise positions "
                                              "(before the supervised roles; 0: off).")
    control_batch: int = Field(8, ge=1, le=65_536, description="Control prompts per step.")
    target_weight: float = Field(30.0, gt=0, le=1000, allow_inf_nan=False,
                                 description="Loss weight of the marker tokens (the records' targets); the other "
                                             "supervised tokens weigh 1.")
    eval_every: int = Field(20, ge=0, le=INT64_MAX, description="Validation loss every N steps (0: never).")
    early_stopping: int | None = Field(None, ge=1, le=INT64_MAX,
                                       description="Stop after N evaluations without improvement (default: never).")
    checkpoint_every: int = Field(20, ge=0, le=INT64_MAX,
                                  description="Checkpoint every N steps (0: only when interrupted).")
    trust_remote_code: bool = Field(False, description="Allow a model's own code from its repository.")
    format: Literal["text", "chat", "answer"] = Field(
        "text", description="text: records as plain text; chat: the premise as the user's turn, what follows as the "
                            "assistant's, through the model's chat template; answer: records written in answer to "
                            "prompts (generate --prompts), each after its prompt, every role and the end of text "
                            "supervised.")
    end_of_text: bool = Field(False, description="text and chat: supervise an end-of-text token after each record, "
                                                 "so that the model learns where a structure stops (answer: "
                                                 "always).")
    system: str | None = Field(None, description="chat: a system turn (default: the template's own, if any).")
    device: str = Field("auto", description=DEVICE_HELP)
    dtype: str = Field("auto", description=DTYPE_HELP)
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass: less "
                                                            "memory, about a third more time.")
    load_in_4bit: bool = Field(False, description="A 4-bit (NF4) base for QLoRA; needs a CUDA GPU and "
                                                  "pip install 'corpusforge[gpu]'.")

    @field_validator("loss_on", mode="before")
    @classmethod
    def _roles_from_text(cls, value: Any) -> Any:
        roles = [r.strip() for r in value.split(",") if r.strip()] if isinstance(value, str) else value
        if isinstance(roles, list) and not roles:   # not "the default": a blank value is a mistake, not a choice
            raise ValueError("names no role (e.g. consequence,conclusion; leave it out for every role after "
                             "the first)")
        return roles

    @field_validator("layers")
    @classmethod
    def _layers_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.replace(",", " ").strip():   # it used to mean every layer
            raise ValueError("is empty; give 20-29, 0,5,7, last:10, last-half or all")
        return value

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> TrainConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("--steps and --epochs: give one, not both")
        return self

    def step_plan(self, batches_per_epoch: int, micro_per_step: int, rule: StepsRule) -> StepPlan:
        """The run's optimiser steps: ``steps``, or ``epochs`` passes, or the recipe's ``rule`` for the corpus."""
        if self.steps is not None:
            return StepPlan(self.steps)
        if self.epochs is not None:
            return StepPlan(max(1, math.ceil(self.epochs * batches_per_epoch / micro_per_step)))
        return StepPlan(rule.steps, rule)


def make_config(values: dict[str, Any], *, file: str | None = None) -> TrainConfig:
    """``TrainConfig(**values)``; a bad value is a ``TrainError`` naming the option and the value."""
    try:
        return TrainConfig(**values)
    except ValidationError as e:
        raise config_error(e, TrainConfig, TrainError, file) from None


def config_from_file(path: str | Path) -> dict[str, Any]:
    """The mapping of a ``--config`` YAML file (checked against TrainConfig's keys)."""
    data = read_plain_yaml(path, TrainError) or {}
    if not isinstance(data, dict):
        raise TrainError("a training config is a YAML mapping of option: value", file=str(path))
    unknown = sorted(set(data) - set(TrainConfig.model_fields))
    if unknown:
        raise TrainError(f"unknown key(s) {unknown}; known: {', '.join(TrainConfig.model_fields)}", file=str(path))
    return data


def load_config(file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A config file's values with ``overrides`` on top (None values are ignored).

    An override of ``epochs`` drops the file's ``steps`` and vice versa, so ``--epochs 2`` with a file that
    sets steps trains two epochs.
    """
    values = config_from_file(file) if file else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    for one, other in (("epochs", "steps"), ("steps", "epochs")):
        if one in given and other not in given:
            values.pop(other, None)
    values.update(given)
    return make_config(values, file=str(file) if file else None)
