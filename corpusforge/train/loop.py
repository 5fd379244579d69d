"""The training loop: supervised roles, drift control on controls, checkpoints, resume, DDP.

One model is loaded and wrapped with a peft LoRA. Each step:
- the supervised loss: cross-entropy on the tokens of the supervised roles only;
  the LM head runs only at those positions (no logits for tokens without loss);
- the drift control: on a batch of control prompts, KL(base ‖ LoRA) of the
  next-token distributions at every position, where "base" is the same model
  with the adapter disabled — never a second copy;
- loss = supervised + control_weight · KL.
Checkpoints hold adapter, optimizer, scheduler, RNG state, step and data
position; ``resume`` continues to the same final adapter as an uninterrupted run.
Under ``accelerate launch`` / ``torchrun`` each process takes every N-th batch
and gradients are averaged (DDP); only the main process writes.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import orjson

from .. import __version__
from .._atomic import replace_dir, write_atomic
from ..corpus import iter_records, read_manifest
from ..errors import TrainError
from .data import (
    DEFAULT_CONTROLS,
    Batch,
    Example,
    check_loss_roles,
    collate,
    encode_prompts,
    encode_records,
    epoch_batches,
    read_prompts,
)
from .lora import LoraSettings, parse_layers, parse_targets, peft_config
from .models import DEFAULT_MODEL, load_model


@dataclass
class TrainConfig:
    """Everything a run depends on (``--config train.yaml`` holds the same keys; flags win)."""

    # The defaults are the recipe measured on the embedded model (README, "Training"): about a minute on
    # 2 CPU cores moves " then" / " therefore" to p > 0.5 on held-out prompts, held-out control KL < 0.01.
    model: str = DEFAULT_MODEL              # embedded name, local folder or Hub id
    rank: int = 8                           # LoRA rank r
    alpha: float = 16.0                     # LoRA alpha (scale alpha / r)
    dropout: float = 0.0                    # LoRA dropout
    targets: str = "attention+mlp"          # preset (attention, attention+mlp, mlp) or module names
    layers: str | None = "last-half"        # "20-29", "last:10", "last-half", or "all"
    rslora: bool = False                    # rank-stabilised scaling (alpha / sqrt(r))
    dora: bool = False                      # weight-decomposed LoRA
    lr: float = 8e-4
    steps: int | None = 50                  # optimiser steps (wins over epochs)
    epochs: float | None = None
    batch_size: int = 8                     # examples per process per micro-step
    grad_accum: int = 1
    max_length: int = 128                   # tokens per record (longer ones are cut)
    warmup: int = 4                         # linear warm-up steps, then linear decay
    seed: int = 0
    loss_on: list[str] | None = None        # roles with loss; None: every role after the first
    controls: str | None = None             # prompts file; None: the set shipped with corpusforge
    use_controls: bool = True
    control_weight: float = 100.0
    control_batch: int = 8
    eval_every: int = 20                    # validation loss every N steps (0: never)
    early_stopping: int | None = None       # stop after N evaluations without improvement
    checkpoint_every: int = 20              # 0: only on interrupt
    trust_remote_code: bool = False

    def lora(self) -> LoraSettings:
        layers = self.layers if self.layers is None or self.layers.startswith("last") else parse_layers(self.layers)
        return LoraSettings(rank=self.rank, alpha=self.alpha, dropout=self.dropout,
                            targets=parse_targets(self.targets), layers=layers,
                            rslora=self.rslora, dora=self.dora)

    def check(self) -> None:
        for name in ("rank", "batch_size", "grad_accum", "max_length", "control_batch"):
            if getattr(self, name) < 1:
                raise TrainError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.steps is None and self.epochs is None:
            raise TrainError("give --steps or --epochs")
        if self.steps is not None and self.steps < 1:
            raise TrainError(f"--steps must be at least 1, got {self.steps}")
        if self.epochs is not None and self.epochs <= 0:
            raise TrainError(f"--epochs must be positive, got {self.epochs}")
        if not self.lr > 0:
            raise TrainError(f"--lr must be positive, got {self.lr}")


def config_from_file(path: str | Path) -> dict:
    from ..templates.yamlsrc import read_plain_yaml

    data = read_plain_yaml(path, TrainError) or {}
    if not isinstance(data, dict):
        raise TrainError("a training config is a YAML mapping of option: value", file=str(path))
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise TrainError(f"unknown key(s) {unknown}; known: {', '.join(sorted(known))}", file=str(path))
    return data


@dataclass
class TrainResult:
    out: Path
    steps: int
    tokens: int
    supervised_tokens: int
    tokens_per_second: float
    final_loss: float
    run: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Pieces


def _set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def lm_logits(peft_model, batch: Batch):
    """Logits only where a label is: (n_labels, vocab). The LM head never sees positions without loss."""
    base = peft_model.get_base_model()
    hidden = base.get_decoder()(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
    return base.get_output_embeddings()(hidden[batch.rows, batch.cols])  # (batch, seq, h) → (n, h) → (n, vocab)


def _objective_module():
    import torch
    import torch.nn.functional as F

    class Objective(torch.nn.Module):
        """Loss of one micro-step, as a module so that DDP sees a forward and syncs gradients."""

        def __init__(self, peft_model):
            super().__init__()
            self.peft = peft_model

        def forward(self, batch: Batch, controls: Batch | None = None, base_logprobs=None):
            ce = F.cross_entropy(lm_logits(self.peft, batch), batch.labels)
            if controls is None:
                return ce, ce.new_zeros(())
            logprobs = F.log_softmax(lm_logits(self.peft, controls), dim=-1)      # (n, vocab)
            kl = F.kl_div(logprobs, base_logprobs, log_target=True, reduction="batchmean")  # KL(base ‖ LoRA)
            return ce, kl

    return Objective


def base_logprobs(peft_model, batch: Batch):
    """The base model's next-token log-probabilities: the same model with the adapter disabled."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad(), peft_model.disable_adapter():
        return F.log_softmax(lm_logits(peft_model, batch), dim=-1)


def evaluate(peft_model, examples: list[Example], pad_id: int, batch_size: int) -> float:
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = collate(examples[i:i + batch_size], pad_id)
            if batch.supervised == 0:
                continue
            total += float(F.cross_entropy(lm_logits(peft_model, batch), batch.labels, reduction="sum"))
            count += batch.supervised
    return total / max(count, 1)


def _split_records(corpus: Path) -> tuple[list[dict], list[dict]]:
    from ..validate import validate_paths

    report = validate_paths([corpus])
    if not report.ok:
        first = "; ".join(str(e) for e in report.errors[:3])
        raise TrainError(f"the corpus has {report.invalid} invalid record(s), e.g. {first}",
                         hint=f"run `corpusforge validate {corpus}`")
    train, held = [], []
    for rec in iter_records([corpus]):
        (train if rec.get("split") in (None, "train") else held).append(rec)
    if not train:
        raise TrainError("the corpus has no training records (split 'train')", file=str(corpus))
    return train, [r for r in held if r.get("split") == "validation"] or held


def _peak_memory_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rng_state() -> dict:
    import torch

    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])


# ---------------------------------------------------------------------------
# The run


def train(corpus: str | Path, out: str | Path, cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          echo: Callable[[str], None] = print, progress: bool | None = None) -> TrainResult:
    """Fit a LoRA on ``corpus`` and write a peft adapter folder (plus run.json, metrics.jsonl) to ``out``."""
    import torch
    from accelerate import Accelerator
    from peft import get_peft_model, set_peft_model_state_dict
    from transformers import get_linear_schedule_with_warmup

    cfg.check()
    corpus, out = Path(corpus), Path(out)
    if not corpus.is_dir():
        raise TrainError("corpus folder not found", file=str(corpus))
    if out.exists() and not overwrite:
        raise TrainError(f"{out} already exists", hint="pass --overwrite to replace it, or choose another --out")
    partial = out.parent / f".{out.name}.partial"
    if partial.exists() and not resume:
        raise TrainError(f"an interrupted run is waiting in {partial}",
                         hint="pass --resume to continue it, or delete that folder to start over")

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    main = accelerator.is_main_process
    say = echo if main else (lambda s: None)
    world, rank = accelerator.num_processes, accelerator.process_index

    train_records, held_records = _split_records(corpus)
    check_loss_roles(train_records, cfg.loss_on)
    lora = cfg.lora()
    _set_seed(cfg.seed)
    loaded = load_model(cfg.model, trust_remote_code=cfg.trust_remote_code, echo=say)
    model, tok = loaded.model, loaded.tokenizer
    pconf = peft_config(lora, model)
    pad_id = tok.pad_token_id

    examples = encode_records(train_records, tok, loss_on=cfg.loss_on, max_length=cfg.max_length)
    examples = [e for e in examples if e.supervised]
    if not examples:
        raise TrainError("no training record has a supervised token: the roles with loss are empty after "
                         "tokenisation", hint="check --loss-on and --max-length")
    held = [e for e in encode_records(held_records[:512], tok, loss_on=cfg.loss_on, max_length=cfg.max_length)
            if e.supervised]
    controls: list[Example] = []
    if cfg.use_controls:
        prompts = read_prompts(cfg.controls or DEFAULT_CONTROLS)
        controls = [e for e in encode_prompts(prompts, tok, cfg.max_length) if len(e) >= 2]

    per_epoch = math.ceil(len(examples) / cfg.batch_size)
    micro_per_step = cfg.grad_accum * world
    steps = cfg.steps if cfg.steps is not None else max(1, math.ceil(cfg.epochs * per_epoch / micro_per_step))
    lengths = [len(e) for e in examples]

    peft_model = get_peft_model(model, pconf)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    objective = _objective_module()(peft_model)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, min(cfg.warmup, steps), steps)
    objective, optimizer = accelerator.prepare(objective, optimizer)

    step, position, history, best, stale = 0, 0, [], math.inf, 0
    tokens_seen = supervised_seen = 0
    seconds = 0.0
    ckpt_dir = partial / "checkpoints"
    if resume:
        latest = sorted(ckpt_dir.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if ckpt_dir.is_dir() else []
        if not latest:
            raise TrainError(f"nothing to resume: no checkpoint in {ckpt_dir}")
        state = torch.load(latest[-1] / "state.pt", weights_only=False)
        if state["config"] != asdict(cfg):
            raise TrainError("--resume was given with a different configuration than the interrupted run",
                             hint=f"its configuration is in {latest[-1] / 'state.pt'}")
        from safetensors.torch import load_file

        set_peft_model_state_dict(peft_model, load_file(str(latest[-1] / "adapter_model.safetensors")))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step, position, history = state["step"], state["position"], state["history"]
        best, stale = state["best"], state["stale"]
        tokens_seen, supervised_seen, seconds = state["tokens"], state["supervised"], state["seconds"]
        say(f"resuming from step {step}")
    if main:
        (partial / "checkpoints").mkdir(parents=True, exist_ok=True)
        metrics_path = partial / "metrics.jsonl"
        if not resume:
            metrics_path.write_bytes(b"")

    def save_checkpoint() -> None:
        if not main:
            return
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        target = ckpt_dir / f"step-{step}"
        tmp = ckpt_dir / f".step-{step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(peft_model).items()},
                  str(tmp / "adapter_model.safetensors"))
        torch.save({"config": asdict(cfg), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": _rng_state(), "step": step, "position": position, "history": history, "best": best,
                    "stale": stale, "tokens": tokens_seen, "supervised": supervised_seen, "seconds": seconds},
                   tmp / "state.pt")
        replace_dir(tmp, target)
        for old in ckpt_dir.glob("step-*"):
            if old != target:
                shutil.rmtree(old, ignore_errors=True)

    epoch_cache: dict[int, list[list[int]]] = {}

    def batch_at(global_index: int) -> list[Example]:
        epoch, i = divmod(global_index, per_epoch)
        if epoch not in epoch_cache:
            epoch_cache.clear()
            epoch_cache[epoch] = epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch)
        return [examples[j] for j in epoch_cache[epoch][i]]

    def control_batch(index: int) -> Batch | None:
        if not controls:
            return None
        n = len(controls)
        picked = [controls[(index * cfg.control_batch + j) % n] for j in range(min(cfg.control_batch, n))]
        return collate(picked, pad_id, all_positions=True)

    show = progress if progress is not None else (main and sys.stderr.isatty())
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=step, desc="train", unit="step", file=sys.stderr)
    supervised_total = sum(len(e.supervised) for e in examples)
    say(f"training {trainable:,} LoRA parameters on {len(examples):,} records ({supervised_total:,} supervised "
        f"tokens), {len(controls)} controls, {steps} steps, {world} process(es)")
    objective.train()
    try:
        while step < steps:
            started = time.perf_counter()
            step_loss = step_kl = 0.0
            step_tokens = step_sup = 0
            for micro in range(cfg.grad_accum):
                index = position + micro * world + rank
                batch = collate(batch_at(index), pad_id)
                if batch.supervised == 0:
                    raise TrainError(f"batch {index} has no supervised token", hint="check --loss-on")
                ctrl = control_batch(position // world + micro)
                base = base_logprobs(peft_model, ctrl) if ctrl is not None else None
                ce, kl = objective(batch, ctrl, base)
                loss = ce + cfg.control_weight * kl
                accelerator.backward(loss / cfg.grad_accum)
                step_loss += float(ce.detach()) / cfg.grad_accum
                step_kl += float(kl.detach()) / cfg.grad_accum
                step_tokens += batch.tokens
                step_sup += batch.supervised
            accelerator.clip_grad_norm_(objective.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            position += micro_per_step
            step += 1
            elapsed = time.perf_counter() - started
            totals = accelerator.reduce(torch.tensor([step_tokens, step_sup], dtype=torch.float64), "sum")
            losses = accelerator.reduce(torch.tensor([step_loss, step_kl], dtype=torch.float64), "mean")
            step_loss, step_kl = float(losses[0]), float(losses[1])
            tokens_seen += int(totals[0])
            supervised_seen += int(totals[1])
            seconds += elapsed
            row = {"step": step, "loss": round(step_loss, 5), "control_kl": round(step_kl, 6),
                   "lr": scheduler.get_last_lr()[0], "tokens": int(totals[0]), "supervised_tokens": int(totals[1]),
                   "tokens_per_s": round(float(totals[0]) / elapsed, 1)}
            if cfg.eval_every and held and (step % cfg.eval_every == 0 or step == steps):
                objective.eval()
                row["eval_loss"] = round(evaluate(peft_model, held, pad_id, cfg.batch_size), 5)
                objective.train()
                if row["eval_loss"] < best - 1e-4:
                    best, stale = row["eval_loss"], 0
                else:
                    stale += 1
            history.append(row)
            if main:
                with open(partial / "metrics.jsonl", "ab") as f:
                    f.write(orjson.dumps(row) + b"\n")
            if bar:
                bar.set_postfix(loss=f"{step_loss:.3f}", kl=f"{step_kl:.4f}", tok_s=f"{row['tokens_per_s']:.0f}")
                bar.update(1)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps:
                save_checkpoint()
            if cfg.early_stopping and stale >= cfg.early_stopping:
                say(f"early stopping at step {step}: no better validation loss in {stale} evaluations")
                break
    except KeyboardInterrupt:
        save_checkpoint()
        say(f"interrupted at step {step}; checkpoint saved in {ckpt_dir}; rerun with --resume to continue")
        raise
    except RuntimeError as e:
        if "out of memory" in str(e).lower() or "can't allocate memory" in str(e).lower():
            raise TrainError("out of memory", hint="use a smaller --batch-size or --max-length") from None
        raise
    except MemoryError:
        raise TrainError("out of memory", hint="use a smaller --batch-size or --max-length") from None
    finally:
        if bar:
            bar.close()

    accelerator.wait_for_everyone()
    rate = tokens_seen / seconds if seconds else 0.0
    result = TrainResult(out, step, tokens_seen, supervised_seen, rate, history[-1]["loss"] if history else math.nan)
    if main:
        unwrapped = accelerator.unwrap_model(objective).peft
        unwrapped.save_pretrained(str(partial))
        manifest = read_manifest(corpus) or {}
        import hashlib

        from importlib.metadata import PackageNotFoundError, version

        versions = {}
        for pkg in ("torch", "transformers", "peft", "accelerate"):
            try:
                versions[pkg] = version(pkg)
            except PackageNotFoundError:  # a missing version is only informative
                versions[pkg] = None
        run = {
            "format": "corpusforge.adapter/1", "corpusforge_version": __version__, "model": cfg.model,
            "model_source": loaded.source, "config": asdict(cfg),
            "corpus": str(corpus), "corpus_manifest_sha256": hashlib.sha256(
                orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)).hexdigest() if manifest else None,
            "versions": versions, "processes": world, "steps": step, "trainable_parameters": trainable,
            "train_records": len(examples), "tokens": tokens_seen, "supervised_tokens": supervised_seen,
            "non_padding_tokens_per_s": round(rate, 1), "seconds": round(seconds, 2),
            "peak_memory_mb": round(_peak_memory_mb(), 1),
            "loss_curve": [[h["step"], h["loss"]] for h in history],
            "eval_curve": [[h["step"], h["eval_loss"]] for h in history if "eval_loss" in h],
            "targets_resolved": lora.targets, "layers_resolved": lora.layers,
        }
        write_atomic(partial / "run.json", json.dumps(run, indent=1, ensure_ascii=False) + "\n")
        shutil.rmtree(partial / "checkpoints", ignore_errors=True)
        replace_dir(partial, out)
        result.run = run
    accelerator.wait_for_everyone()
    return result
