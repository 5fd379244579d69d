"""Before the first step: the corpus's records as token ids with their loss positions, the controls,
and the model with its LoRA settings checked against it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..validate import iter_records, require_valid
from ..errors import TrainError
from .config import TrainConfig
from .data import DEFAULT_CONTROLS, Example, check_loss_roles, encode_prompts, encode_records, read_prompts
from .lora import LoraSettings, peft_config
from .models import LoadedModel, load_model

HELD_OUT_FOR_EVAL = 512   # validation records encoded for the eval loss


@dataclass
class Prepared:
    """Everything the loop needs that does not change from step to step."""

    loaded: LoadedModel
    lora: LoraSettings       # resolved against the model (layers as a list)
    peft_config: object      # peft.LoraConfig
    examples: list[Example]  # training records with at least one supervised token
    held: list[Example]      # held-out records for the eval loss
    controls: list[Example]  # control prompts for the KL penalty

    @property
    def pad_id(self) -> int:
        return self.loaded.tokenizer.pad_token_id


def split_records(corpus: Path) -> tuple[list[dict], list[dict]]:
    """The training records and the held-out ones (validation, else any other split); the corpus must be valid."""
    require_valid([corpus], TrainError)  # all problems summed up before a model is loaded
    train, held = [], []
    for rec in iter_records([corpus]):
        (train if rec.get("split") in (None, "train") else held).append(rec)
    if not train:
        raise TrainError("the corpus has no training records (split 'train')", file=str(corpus))
    return train, [r for r in held if r.get("split") == "validation"] or held


def _controls(cfg: TrainConfig, tokenizer) -> list[Example]:
    if not cfg.use_controls:
        return []
    prompts = read_prompts(cfg.controls or DEFAULT_CONTROLS)
    return [e for e in encode_prompts(prompts, tokenizer, cfg.max_length) if len(e) >= 2]


def prepare(corpus: Path, cfg: TrainConfig, lora: LoraSettings, echo: Callable[[str], None]) -> Prepared:
    """Read and check the corpus, load the model, check the LoRA settings against it, encode everything."""
    train_records, held_records = split_records(corpus)
    check_loss_roles(train_records, cfg.loss_on)
    loaded = load_model(cfg.model, trust_remote_code=cfg.trust_remote_code, echo=echo)
    tok = loaded.tokenizer
    pconf = peft_config(lora, loaded.model)
    examples = [e for e in encode_records(train_records, tok, loss_on=cfg.loss_on, max_length=cfg.max_length)
                if e.supervised]
    if not examples:
        raise TrainError("no training record has a supervised token: the roles with loss are empty after "
                         "tokenisation", hint="check --loss-on and --max-length")
    held = [e for e in encode_records(held_records[:HELD_OUT_FOR_EVAL], tok, loss_on=cfg.loss_on,
                                      max_length=cfg.max_length) if e.supervised]
    return Prepared(loaded, lora, pconf, examples, held, _controls(cfg, tok))
