"""The training run: prepare, step until done (checkpointing), write the adapter and run.json.

One model is loaded and wrapped with a peft LoRA; ``step`` holds the loss and
the update, ``checkpoint`` the state a resumed run restores, ``adapter_run``
the run.json it writes. Under ``accelerate launch`` / ``torchrun`` each process
takes every N-th batch and gradients are averaged (DDP); only the main process
writes. The adapter folder is built under ``.NAME.partial/`` (locked while a
run uses it) and renamed into place when complete.
"""

from __future__ import annotations

import math
import random
import shutil
import signal
import sys
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson

from .._atomic import LOCK_FILE, lock_owner, locked_partial, partial_path, replace_dir
from .._io import check_input, check_output
from ..errors import TrainError
from ..lm.device import choose
from .adapter_run import AdapterRun, write_run
from .checkpoint import RunState, load_checkpoint, save_checkpoint
from .config import TrainConfig, load_config, make_config
from .data import Example, collate, epoch_batches
from .fluency import FluencyWatch, neutral_prompts
from .fluency import describe as describe_fluency
from .lora import LoraSettings, parse_layers
from .prepare import Prepared, prepare
from .recipe import StepPlan
from .step import ControlCache, StepInputs, control_base_cache, evaluate, objective_module, padded_entry, run_step

__all__ = ["TrainConfig", "TrainResult", "load_config", "make_config", "train"]


@dataclass
class TrainResult:
    out: Path
    steps: int
    tokens: int
    supervised_tokens: int
    tokens_per_second: float
    final_loss: float
    run: AdapterRun | None = None   # None in the other processes of a distributed run


def lora_settings(cfg: TrainConfig) -> LoraSettings:
    """The LoRA settings of ``cfg``; the layers stay a string until the model's depth is known."""
    if cfg.layers and not cfg.layers.strip().startswith("last"):
        parse_layers(cfg.layers)   # the syntax and the outer bound, before any model is loaded
    return LoraSettings(rank=cfg.rank, alpha=cfg.alpha, dropout=cfg.dropout, targets=cfg.targets,
                        layers=cfg.layers, rslora=cfg.rslora, dora=cfg.dora)


def _check_paths(corpus: Path, out: Path, resume: bool, overwrite: bool, cfg: TrainConfig) -> None:
    check_input(corpus, TrainError, want="folder", what="corpus folder")
    check_output(out, TrainError, overwrite=overwrite, inputs=[corpus, cfg.model, cfg.controls])
    partial = partial_path(out)
    if partial.exists():
        owner = lock_owner(partial)
        if owner is not None:
            raise TrainError(f"another run is writing in {partial} (pid {owner})",
                             hint="wait for it to finish or stop it; two runs cannot share an output")
        if not resume:
            raise TrainError(f"an interrupted run is waiting in {partial}",
                             hint="pass --resume to continue it, or delete that folder to start over")


def _set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


class _Batches:
    """The run's micro-batches by global index (length-grouped epochs) and its control batches."""

    def __init__(self, prep: Prepared, cfg: TrainConfig):
        self.examples, self.controls, self.cfg, self.pad_id = prep.examples, prep.controls, cfg, prep.pad_id
        self.lengths = [len(e) for e in prep.examples]
        self.per_epoch = math.ceil(len(self.examples) / cfg.batch_size)
        self._epoch: tuple[int, list[list[int]]] = (-1, [])
        self.kept: ControlCache | None = None   # the controls' base log-probabilities (and entry inputs), when kept

    def batch_at(self, global_index: int) -> list[Example]:
        epoch, i = divmod(global_index, self.per_epoch)
        if self._epoch[0] != epoch:
            self._epoch = (epoch, epoch_batches(self.lengths, self.cfg.batch_size, self.cfg.seed, epoch))
        return [self.examples[j] for j in self._epoch[1][i]]

    def control_batch(self, index: int) -> tuple:
        """The controls of one step, their base log-probabilities and their inputs to the entry layer when kept
        (else None): (None, None, None) without controls."""
        import torch

        if not self.controls:
            return None, None, None
        n, size = len(self.controls), self.cfg.control_batch
        picked = [(index * size + j) % n for j in range(min(size, n))]
        batch = collate([self.controls[k] for k in picked], self.pad_id, all_positions=True)
        if self.kept is None:
            return batch, None, None
        entry = None if self.kept.entry is None else \
            padded_entry([self.kept.entry[k] for k in picked], batch.input_ids.shape[1])
        return batch, torch.cat([self.kept.base[k] for k in picked]), entry

    def keep_control_base(self, peft_model, head, device, steps: int) -> None:
        """Keep the base's side of the controls the run will take: every control batch is the next
        ``control_batch`` controls in order, one per micro-step, so a run of fewer micro-steps than the controls
        fill takes a prefix of them (a short run does not pass the base over controls it never reaches)."""
        if self.controls:
            used = min(len(self.controls), steps * self.cfg.grad_accum * self.cfg.control_batch)
            self.kept = control_base_cache(peft_model, self.controls[:used], self.pad_id, head,
                                           self.cfg.control_batch, device)


def _peak_memory_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for pkg in ("torch", "transformers", "peft", "accelerate"):
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:  # a missing version is only informative
            found[pkg] = None
    return found


def _adapter_run(corpus: Path, cfg: TrainConfig, prep: Prepared, plan: StepPlan, state: RunState, trainable: int,
                 world: int) -> AdapterRun:
    from .._atomic import sha256_file
    from .._version import __version__
    from .adapter_run import recorded_model

    manifest = corpus / "manifest.json"
    rate = state.tokens / state.seconds if state.seconds else 0.0
    model, model_sha256 = recorded_model(cfg.model)   # a local folder by absolute path and fingerprint
    return AdapterRun(
        corpusforge_version=__version__, model=model, model_sha256=model_sha256, model_source=prep.loaded.source,
        config=cfg, corpus=str(corpus.resolve()),
        corpus_manifest_sha256=sha256_file(manifest) if manifest.is_file() else None,
        versions=_versions(), processes=world, steps=state.step, trainable_parameters=trainable,
        train_records=len(prep.examples), tokens=state.tokens, supervised_tokens=state.supervised,
        non_padding_tokens_per_s=round(rate, 1), seconds=round(state.seconds, 2),
        peak_memory_mb=round(_peak_memory_mb(), 1),
        loss_curve=[(h["step"], h["loss"]) for h in state.history],
        eval_curve=[(h["step"], h["eval_loss"]) for h in state.history if "eval_loss" in h],
        targets_resolved=prep.resolved.labels(), layers_resolved=prep.resolved.layers,
        target_modules=len(prep.resolved.projections), device=prep.loaded.placement.device,
        dtype=prep.loaded.placement.dtype, attn_implementation=prep.loaded.attn_implementation,
        gradient_checkpointing=cfg.gradient_checkpointing, quantized=prep.loaded.quantized,
        steps_rule=plan.rule.to_dict() if plan.rule else None)


def _progress_bar(show: bool, steps: int, done: int):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=steps, initial=done, desc="train", unit="step", file=sys.stderr)


def _out_of_memory(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, MemoryError) or "out of memory" in text or "can't allocate memory" in text


@dataclass
class _Optimisation:
    """The adapted model and what updates it."""

    peft_model: object
    objective: object      # step.Objective, wrapped by accelerate (DDP when distributed)
    optimizer: object
    scheduler: object
    trainable: int         # LoRA parameters


def _optimisation(prep: Prepared, cfg: TrainConfig, steps: int, accelerator) -> _Optimisation:
    import torch
    from peft import get_peft_model
    from transformers import get_linear_schedule_with_warmup

    peft_model = get_peft_model(prep.loaded.model, prep.peft_config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    objective = objective_module()(peft_model, prep.head)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=0.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, min(cfg.warmup, steps), steps)
    objective, optimizer = accelerator.prepare(objective, optimizer)
    return _Optimisation(peft_model, objective, optimizer, scheduler, trainable)


@dataclass
class _Run:
    """One run while it steps: what it updates, where its batches come from, and its state (made once in
    ``train``)."""

    opt: _Optimisation
    accelerator: object
    inputs: StepInputs
    prep: Prepared
    cfg: TrainConfig
    steps: int
    partial: Path          # the folder being written (renamed into place at the end)
    main: bool             # the main process: it writes; the others only step
    say: Callable[[str], None]
    state: RunState = field(default_factory=RunState)
    bar: object = None     # a tqdm bar, or None
    observe: Callable[[dict], None] | None = None
    watch: FluencyWatch = field(init=False)   # the fluency check's continuations, kept across evaluations

    def __post_init__(self):
        self.watch = FluencyWatch(self.opt.peft_model, self.prep.loaded.tokenizer, neutral_prompts())

    @property
    def checkpoints(self) -> Path:
        return self.partial / "checkpoints"

    def checkpoint(self) -> None:
        if self.main:
            save_checkpoint(self.checkpoints, self.accelerator.unwrap_model(self.opt.objective).peft,
                            self.opt.optimizer, self.opt.scheduler, self.state, self.cfg.model_dump(mode="json"))

    def step_until_done(self) -> None:
        """Step until ``steps`` (or early stopping), logging every step and checkpointing when due."""
        cfg, state = self.cfg, self.state
        self.opt.objective.train()
        while state.step < self.steps:
            measured = run_step(self.opt.objective, self.opt.peft_model, self.opt.optimizer, self.opt.scheduler,
                                self.accelerator, self.inputs, state.position)
            state.position += cfg.grad_accum * self.inputs.world
            row = self.record(measured)
            if self.main:
                with open(self.partial / "metrics.jsonl", "ab") as f:
                    f.write(orjson.dumps(row) + b"\n")
            if self.bar:
                looping = {"loops": f"{row['loop_share']:.0%}", "rep4": f"{row['seq_rep_4']:.3f}"} \
                    if "loop_share" in row else {}
                self.bar.set_postfix(loss=f"{row['loss']:.3f}", kl=f"{row['control_kl']:.4f}",
                                     tok_s=f"{row['tokens_per_s']:.0f}", **looping)
                self.bar.update(1)
            if self.observe:
                self.observe(row)
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < self.steps:
                self.checkpoint()
            if cfg.early_stopping and state.stale >= cfg.early_stopping:
                self.say(f"early stopping at step {state.step}: no better validation loss in {state.stale} "
                         "evaluations")
                break

    def record(self, measured: dict) -> dict:
        """Fold one step's measurements into the state (and the validation loss, when due); the metrics row."""
        cfg, state, prep = self.cfg, self.state, self.prep
        state.step += 1
        state.tokens += measured["tokens"]
        state.supervised += measured["supervised_tokens"]
        state.seconds += measured["seconds"]
        row = {"step": state.step, "loss": round(measured["loss"], 5),
               "control_kl": round(measured["control_kl"], 6),
               **({"premise_kl": round(measured["premise_kl"], 6)} if cfg.premise_weight > 0 else {}),
               "lr": measured["lr"], "tokens": measured["tokens"], "supervised_tokens": measured["supervised_tokens"],
               "tokens_per_s": round(measured["tokens"] / measured["seconds"], 1)}
        if cfg.eval_every and prep.held and (state.step % cfg.eval_every == 0 or state.step == self.steps):
            peft_model, objective = self.opt.peft_model, self.opt.objective
            objective.eval()
            row["eval_loss"] = round(evaluate(peft_model, prep.held, prep.pad_id, cfg.batch_size, prep.head), 5)
            row.update(self.watch.evaluate(state.step))
            objective.train()
            if row["eval_loss"] < state.best - 1e-4:
                state.best, state.stale = row["eval_loss"], 0
            else:
                state.stale += 1
        state.history.append(row)
        return row


@contextmanager
def _sigterm_as_ctrl_c():
    """While the steps run, SIGTERM (``kill``, a job scheduler's stop, ``docker stop``) interrupts the run as
    Ctrl-C does: a checkpoint is saved for --resume. The previous handler is put back after. (Signal handlers
    belong to the main thread: from another one, SIGTERM keeps its own handling.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(corpus: str | Path, out: str | Path, cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          echo: Callable[[str], None] = print, progress: bool | None = None,
          observe: Callable[[dict], None] | None = None) -> TrainResult:
    """Fit a LoRA on ``corpus`` and write a peft adapter folder (plus run.json, metrics.jsonl) to ``out``.

    ``observe(row)`` is called with every step's metrics row (raising KeyboardInterrupt from it interrupts
    the run like Ctrl-C: a checkpoint is saved for ``resume``). SIGTERM during the steps does the same.
    """
    from accelerate import Accelerator

    corpus, out = Path(corpus), Path(out)
    _check_paths(corpus, out, resume, overwrite, cfg)
    placement = choose(cfg.device, cfg.dtype)
    accelerator = Accelerator(cpu=placement.device == "cpu")
    main = accelerator.is_main_process
    say = echo if main else (lambda s: None)
    world = accelerator.num_processes
    _set_seed(cfg.seed)
    if world > 1 and placement.device.startswith("cuda"):  # one GPU per process, as accelerate assigned it
        placement = type(placement)(str(accelerator.device), placement.dtype, placement.notes)
    prep = prepare(corpus, cfg, lora_settings(cfg), say, placement, processes=world)
    batches = _Batches(prep, cfg)
    plan = cfg.step_plan(batches.per_epoch, cfg.grad_accum * world, prep.steps_rule)
    if plan.rule:
        say(plan.rule.describe())
    opt = _optimisation(prep, cfg, plan.steps, accelerator)
    batches.keep_control_base(opt.peft_model, prep.head, prep.loaded.placement.device, plan.steps)
    inputs = StepInputs(batch_at=batches.batch_at, control_batch=batches.control_batch, pad_id=prep.pad_id,
                        grad_accum=cfg.grad_accum, control_weight=cfg.control_weight, world=world,
                        rank=accelerator.process_index, head=prep.head, device=prep.loaded.placement.device,
                        premise_weight=cfg.premise_weight, seed=cfg.seed)

    with ExitStack() as stack:
        partial = stack.enter_context(locked_partial(out)) if main else partial_path(out)
        run = _Run(opt, accelerator, inputs, prep, cfg, plan.steps, partial, main, say, observe=observe)
        if resume:
            run.state = load_checkpoint(run.checkpoints, opt.peft_model, opt.optimizer, opt.scheduler,
                                        cfg.model_dump(mode="json"))
            say(f"resuming from step {run.state.step}")
        if main:
            run.checkpoints.mkdir(parents=True, exist_ok=True)
            if not resume:
                (partial / "metrics.jsonl").write_bytes(b"")
        run.bar = _progress_bar(progress if progress is not None else (main and sys.stderr.isatty()), plan.steps,
                                run.state.step)
        say(f"training {opt.trainable:,} LoRA parameters on {len(prep.examples):,} records "
            f"({sum(len(e.supervised) for e in prep.examples):,} supervised tokens), {len(prep.controls)} controls, "
            f"{plan.steps} steps, {world} process(es)")
        try:
            with _sigterm_as_ctrl_c():
                run.step_until_done()
        except KeyboardInterrupt:
            run.checkpoint()
            say(f"interrupted at step {run.state.step}; checkpoint saved in {run.checkpoints}; rerun with --resume "
                "to continue")
            raise
        except BaseException as e:
            if main and not any(run.checkpoints.glob("step-*")):   # nothing to resume from: leave nothing behind
                shutil.rmtree(partial, ignore_errors=True)
            if isinstance(e, (RuntimeError, MemoryError)) and _out_of_memory(e):
                raise TrainError("out of memory", hint="use a smaller --batch-size or --max-length") from None
            raise
        finally:
            if run.bar:
                run.bar.close()
        accelerator.wait_for_everyone()
        result = _finish(out, corpus, run, plan)
    accelerator.wait_for_everyone()
    return result


def _finish(out: Path, corpus: Path, run: _Run, plan: StepPlan) -> TrainResult:
    """Check the adapter's fluency, save it and run.json, and rename the folder into place (main process only)."""
    state, prep, partial, opt = run.state, run.prep, run.partial, run.opt
    rate = state.tokens / state.seconds if state.seconds else 0.0
    result = TrainResult(out, state.step, state.tokens, state.supervised, rate,
                         state.history[-1]["loss"] if state.history else math.nan)
    if run.main:
        peft = run.accelerator.unwrap_model(opt.objective).peft
        check = run.watch.final(state.step)
        run.say(describe_fluency(check))
        peft.save_pretrained(str(partial))
        result.run = _adapter_run(corpus, run.cfg, prep, plan, state, opt.trainable, run.accelerator.num_processes)
        result.run.fluency = check
        write_run(partial, result.run)
        shutil.rmtree(partial / "checkpoints", ignore_errors=True)
        (partial / LOCK_FILE).unlink(missing_ok=True)
        replace_dir(partial, out)
    return result
