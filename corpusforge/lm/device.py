"""Where a model runs and in what precision: ``--device auto|cpu|cuda|mps``, ``--dtype auto|float32|bfloat16|float16``

``auto`` picks the accelerator when there is one (CUDA, then Apple's MPS), else the
CPU; the dtype ``auto`` is bfloat16 on a CUDA GPU that supports it and float32
everywhere else: on a CPU without bf16 units bf16 is much slower, and on one with
them (AMX) a bf16 training step of the embedded model gained little — attention's
backward pass and the casts eat the gain (the training guide, "Your own model, your
GPU") — so float32 stays the CPU default. The choice is a pure function of what the machine offers, so its GPU
branches are tested on a CPU by describing a GPU machine to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ModelError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: the help of every command's --device and --dtype (train, report, try, merge, generate's writer)
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps (auto: the accelerator when there is one)."
DTYPE_HELP = "auto | float32 | bfloat16 | float16 (auto: bfloat16 on a GPU that supports it, float32 elsewhere)."


@dataclass(frozen=True)
class Machine:
    """What the machine offers (read with ``Machine.here()``; tests describe others)."""

    cuda: bool = False
    cuda_bf16: bool = False
    cuda_count: int = 0
    mps: bool = False

    @classmethod
    def here(cls) -> Machine:
        import torch

        cuda = torch.cuda.is_available()
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        return cls(cuda=cuda, cuda_bf16=cuda and torch.cuda.is_bf16_supported(),
                   cuda_count=torch.cuda.device_count() if cuda else 0, mps=mps)


@dataclass(frozen=True)
class Placement:
    device: str                  # "cpu", "cuda", "cuda:1", "mps"
    dtype: str                   # "float32", "bfloat16", "float16"
    notes: tuple[str, ...] = field(default=())   # how "auto" decided, and warnings worth printing

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)


def choose(device: str = "auto", dtype: str = "auto", machine: Machine | None = None) -> Placement:
    """The device and dtype for ``device`` / ``dtype`` on ``machine``; a request it cannot meet is a ModelError."""
    machine = machine or Machine.here()
    kind = device.split(":")[0]
    if kind not in DEVICES or (":" in device and kind != "cuda"):
        raise ModelError(f"--device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")
    if dtype not in DTYPES:
        raise ModelError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    notes = []
    if kind == "auto":
        device = "cuda" if machine.cuda else "mps" if machine.mps else "cpu"
        notes.append(f"device auto: {device}")
    elif kind == "cuda" and not machine.cuda:
        raise ModelError("--device cuda: no CUDA device is visible here",
                         hint="install a CUDA build of torch on a GPU machine, or use --device cpu")
    elif kind == "cuda" and ":" in device and int(device.split(":")[1] or 0) >= machine.cuda_count:
        raise ModelError(f"--device {device}: this machine has {machine.cuda_count} CUDA device(s)")
    elif kind == "mps" and not machine.mps:
        raise ModelError("--device mps: Apple's MPS backend is not available here", hint="use --device cpu")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") and machine.cuda_bf16 else "float32"
        notes.append(f"dtype auto: {dtype}")
    elif dtype == "bfloat16" and device.startswith("cuda") and not machine.cuda_bf16:
        raise ModelError("--dtype bfloat16: this GPU does not support bf16", hint="use --dtype float16 or float32")
    elif dtype == "bfloat16" and device == "cpu":
        notes.append("bf16 on a CPU is several times slower than float32 without bf16 units, and little faster "
                     "with them (AMX)")
    elif dtype == "float16" and device == "cpu":
        raise ModelError("--dtype float16 is not supported on the CPU", hint="use float32 (or bfloat16)")
    return Placement(device, dtype, tuple(notes))
