"""Before the first step: the corpus's records as token ids with their loss positions, the controls,
and the model with its LoRA settings checked against it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from ..errors import TrainError
from ..lm.arch import check_entry, check_head
from ..lm.device import Placement, choose
from ..lm.load import LoadedModel, load_model
from ..lm.tokens import text_ids
from ..prompts import DEFAULT_CONTROLS, prompt_language, read_prompts
from ..validate import iter_records, require_valid
from .config import TrainConfig
from .data import (
    Example,
    check_loss_roles,
    encode_answer_records,
    encode_chat_prompts,
    encode_chat_records,
    encode_prompts,
    encode_records,
    with_end_of_text,
)
from .lora import LoraSettings, Resolved, describe_plan, resolve
from .recipe import StepsRule, steps_from_corpus
from .step import Head

HELD_OUT_FOR_EVAL = 512   # validation records encoded for the eval loss


@dataclass
class Prepared:
    """Everything the loop needs that does not change from step to step."""

    loaded: LoadedModel
    lora: LoraSettings       # as given
    resolved: Resolved       # what it means on this model: layers, projections, the peft LoraConfig
    head: Head               # how logits are made (the head checked against the model's own), and where passes
    #                          may start
    examples: list[Example]  # training records with at least one supervised token
    held: list[Example]      # held-out records for the eval loss
    controls: list[Example]  # control prompts for the KL penalty
    steps_rule: StepsRule    # the steps the recipe's rule gives this corpus (TrainConfig.step_plan takes it or not)

    @property
    def pad_id(self) -> int:
        return self.loaded.tokenizer.pad_token_id

    @property
    def peft_config(self):
        return self.resolved.config


def split_records(corpus: Path) -> tuple[list[dict], list[dict]]:
    """The training records and the held-out ones (validation, else any other split); the corpus must be valid."""
    require_valid([corpus], TrainError)  # all problems summed up before a model is loaded
    train, held = [], []
    for rec in iter_records([corpus]):
        (train if rec.get("split") in (None, "train") else held).append(rec)
    if not train:
        raise TrainError("the corpus has no training records (split 'train')", file=str(corpus))
    return train, [r for r in held if r.get("split") == "validation"] or held


def _controls(cfg: TrainConfig, tokenizer, corpus_languages: set[str], echo) -> list[Example]:
    if not cfg.use_controls:
        return []
    prompts = read_prompts(cfg.controls or DEFAULT_CONTROLS, TrainError, what="controls file")
    missing = sorted(corpus_languages - {prompt_language(p) for p in prompts})
    if missing:
        echo(f"warning: the corpus has records in {', '.join(missing)} but no control prompt is: drift in "
             f"{'that language' if len(missing) == 1 else 'those languages'} is not held back (add controls "
             "with --controls FILE)")
    encoded = encode_prompts(prompts, tokenizer, cfg.max_length)
    if cfg.format == "chat":   # each prompt in chat form beside its plain form: where chat training moves most
        chat = encode_chat_prompts(prompts, tokenizer, cfg.max_length, cfg.system)
        encoded = [e for pair in zip(encoded, chat) for e in pair]
    return [e for e in encoded if len(e) >= 2]


def load_for_training(cfg: TrainConfig, lora: LoraSettings, echo: Callable[[str], None],
                      placement: Placement | None = None) -> tuple[LoadedModel, Resolved, Head]:
    """The model on its device, the LoRA settings resolved against it, and how its logits are made."""
    import torch

    placement = placement or choose(cfg.device, cfg.dtype)
    for note in placement.notes:
        echo(note)
    loaded = load_model(cfg.model, placement=placement, trust_remote_code=cfg.trust_remote_code,
                        load_in_4bit=cfg.load_in_4bit, echo=echo)
    resolved = resolve(lora, loaded.model)
    probe = torch.tensor([text_ids(loaded.tokenizer, "If it rains, then") or [0]],
                         device=placement.device)
    head_ok, _ = check_head(loaded.model, resolved.arch, probe)
    if not head_ok:
        echo(f"note: {resolved.arch.model_type}'s output head could not be reproduced from its last hidden state; "
             "the loss uses the model's full forward pass instead (correct, a little slower)")
    entry = _entry_layer(cfg, loaded.model, resolved, probe) if head_ok else None
    if cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        loaded.model = prepare_model_for_kbit_training(loaded.model, use_gradient_checkpointing=False)
    if cfg.gradient_checkpointing:
        if hasattr(loaded.model, "activation_checkpointing_enable"):   # the newer name in transformers 5
            loaded.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            loaded.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        loaded.model.enable_input_require_grads()
    return loaded, resolved, Head(resolved.arch, head_ok, entry)


def _entry_layer(cfg: TrainConfig, model, resolved: Resolved, probe) -> int | None:
    """The first layer the LoRA adapts, where the controls' and premises' passes may start (``step``), when
    that is above the first layer and a pass entered there checks out on this model; else None. Not with
    4-bit weights or gradient checkpointing, which change how the layers are called."""
    first = min((p.layer for p in resolved.projections), default=0)
    if first == 0 or cfg.load_in_4bit or cfg.gradient_checkpointing:
        return None
    return first if check_entry(model, resolved.arch, first, probe) else None


def _encoder(cfg: TrainConfig, tok) -> Callable[[list[dict]], list[Example]]:
    """How records become examples in ``cfg.format``, with the end of text supervised when asked."""
    options = {"loss_on": cfg.loss_on, "max_length": cfg.max_length, "target_weight": cfg.target_weight}
    if cfg.format == "answer":
        return partial(encode_answer_records, tokenizer=tok, **options)
    if cfg.format == "chat":            # through the model's chat template
        encode = partial(encode_chat_records, tokenizer=tok, system=cfg.system, **options)
    else:
        encode = partial(encode_records, tokenizer=tok, **options)
    if not cfg.end_of_text:
        return encode
    return lambda records: with_end_of_text(encode(records), tok.eos_token_id)


def prepare(corpus: Path, cfg: TrainConfig, lora: LoraSettings, echo: Callable[[str], None],
            placement: Placement | None = None, processes: int = 1) -> Prepared:
    """Read and check the corpus, load the model, check the LoRA settings against it, encode everything."""
    train_records, held_records = split_records(corpus)
    check_loss_roles(train_records, cfg.loss_on)
    loaded, resolved, head = load_for_training(cfg, lora, echo, placement)
    tok = loaded.tokenizer
    encode = _encoder(cfg, tok)
    examples = [e for e in encode(train_records) if e.supervised]
    if not examples:
        raise TrainError("no training record has a supervised token: the roles with loss are empty after "
                         "tokenisation", hint="check --loss-on and --max-length")
    held = [e for e in encode(held_records[:HELD_OUT_FOR_EVAL]) if e.supervised]
    rule = steps_from_corpus(train_records, tok, cfg.batch_size * cfg.grad_accum * processes,
                             answers=cfg.format == "answer")
    controls = _controls(cfg, tok, {r["language"] for r in train_records}, echo)
    return Prepared(loaded, lora, resolved, head, examples, held, controls, rule)


def plan(cfg: TrainConfig, lora: LoraSettings, echo: Callable[[str], None] = lambda s: None) -> str:
    """What a run with ``cfg`` would adapt, layer by layer, and how many parameters — without training."""
    placement = choose(cfg.device, cfg.dtype)
    loaded = load_model(cfg.model, placement=placement, trust_remote_code=cfg.trust_remote_code, echo=echo)
    resolved = resolve(lora, loaded.model)
    head = f"{cfg.model} on {placement.device} in {placement.dtype}, {loaded.attn_implementation} attention; " \
           f"--targets {cfg.targets} --layers {cfg.layers or 'all'}"
    return head + "\n" + describe_plan(resolved, cfg.rank)
