"""Checkpoints: where a run stands (``RunState``), saved with the adapter, optimizer, scheduler and RNG state,
so that ``--resume`` continues to the same final adapter as an uninterrupted run."""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._atomic import replace_dir
from ..errors import TrainError


@dataclass
class RunState:
    """Where the run stands between steps."""

    step: int = 0
    position: int = 0                 # global micro-batch index of the next step
    history: list[dict] = field(default_factory=list)   # one metrics row per step
    best: float = math.inf            # best validation loss so far
    stale: int = 0                    # evaluations since it improved
    tokens: int = 0                   # non-padding tokens, all processes
    supervised: int = 0
    seconds: float = 0.0              # time spent in steps


def _rng_state() -> dict:
    import torch

    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(folder: Path, peft_model, optimizer, scheduler, state: RunState, config: dict) -> Path:
    """Write ``folder/step-N`` (atomically) and remove older checkpoints."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    target = folder / f"step-{state.step}"
    tmp = folder / f".step-{state.step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(peft_model).items()},
              str(tmp / "adapter_model.safetensors"))
    torch.save({"config": config, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": _rng_state(), "run": asdict(state)}, tmp / "state.pt")
    replace_dir(tmp, target)
    for old in folder.glob("step-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(folder: Path, peft_model, optimizer, scheduler, config: dict) -> RunState:
    """Restore the latest checkpoint in ``folder`` into the model, optimizer, scheduler and RNGs."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    latest = sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if folder.is_dir() else []
    if not latest:
        raise TrainError(f"nothing to resume: no checkpoint in {folder}")
    try:
        saved = torch.load(latest[-1] / "state.pt", weights_only=False)
        if saved["config"] != config:
            raise TrainError("--resume was given with a different configuration than the interrupted run",
                             hint=f"its configuration is in {latest[-1] / 'state.pt'}")
        set_peft_model_state_dict(peft_model, load_file(str(latest[-1] / "adapter_model.safetensors")))
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        return RunState(**saved["run"])
    except TrainError:
        raise
    except Exception as e:  # a truncated or foreign checkpoint fails in torch, safetensors or here
        raise TrainError(f"the checkpoint cannot be read: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
                         file=str(latest[-1]), hint="delete the partial folder to start over") from None
