"""The GPU check: train the embedded model on CUDA in bf16, write a report there, print what was measured.

Run it on a machine with a CUDA GPU (`bash benchmarks/gpu_check.sh`); it exits non-zero when anything fails,
and with code 2 when there is no GPU at all. What it checks that the CPU test suite cannot:
- the trainer on CUDA in bf16 (device and dtype choice, batches moved to the GPU, LoRA kept in float32);
- gradient checkpointing on a GPU;
- the report on CUDA (every measurement's tensors on the model's device);
- passes entered at the first adapted layer (training's controls and premises, the report's repeated batches)
  ending as the full pass does on CUDA in bf16, and training as whole passes do;
- a 4-bit (QLoRA) base, when bitsandbytes is installed (`pip install 'corpusforge[gpu]'`).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path


def _check(condition: bool, what: str) -> None:
    print(("ok    " if condition else "FAIL  ") + what, flush=True)
    if not condition:
        raise SystemExit(1)


def _train(corpus: Path, out: Path, device: str = "cuda", **kw):
    import torch

    from corpusforge.train.loop import TrainConfig, train

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = train(corpus, out, TrainConfig(device=device, **kw), overwrite=True, echo=print, progress=False)
    return result, time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0


def _check_entry(corpus: Path, work: Path, device: str = "cuda") -> None:
    """Passes entered at the first adapted layer: the same last hidden states as the full pass on ``device``,
    and 10 training steps that end where 10 steps of whole passes end (bf16: within 2 %)."""
    import torch

    import corpusforge.train.prepare as prepare
    from corpusforge.lm.arch import check_entry, describe
    from corpusforge.lm.device import choose
    from corpusforge.lm.load import load_model

    lm = load_model("smollm2-135m", placement=choose(device, "auto"))
    ids = torch.tensor([lm.tokenizer("Смысл — это движение, а не данность.").input_ids], device=device)
    _check(check_entry(lm.model, describe(lm.model), 15, ids), "a pass entered at layer 15 ends as the full pass")
    entered, _, _ = _train(corpus, work / "adapter-entered", device, steps=10)
    real = prepare._entry_layer
    prepare._entry_layer = lambda *a: None
    try:
        whole, _, _ = _train(corpus, work / "adapter-whole", device, steps=10)
    finally:
        prepare._entry_layer = real
    _check(abs(entered.final_loss - whole.final_loss) <= 0.02 * abs(whole.final_loss) + 1e-3,
           f"entered passes train as whole passes do (final loss {entered.final_loss:.4f} vs {whole.final_loss:.4f})")


def main() -> None:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device here: the GPU check runs on a machine with a CUDA GPU (and a CUDA build of torch)")
        raise SystemExit(2)
    from corpusforge.generate import GenerateConfig, generate
    from corpusforge.shift.report import build_report, summary_table, write_report

    work = Path(tempfile.mkdtemp(prefix="corpusforge-gpu-"))
    print(f"GPU: {torch.cuda.get_device_name(0)}, bf16 supported: {torch.cuda.is_bf16_supported()}; work: {work}")
    corpus = work / "corpus"
    generate(GenerateConfig(mix={"if_then.en": 1, "paradox_conclusion.en": 1, "definition_movement.ru": 1}, n=3000,
                            seed=0, progress=False), corpus)
    result, wall, peak = _train(corpus, work / "adapter")
    run = result.run
    print(f"train: {run.steps} steps, {run.non_padding_tokens_per_s:,.0f} tokens/s, {wall:.0f} s wall, "
          f"peak GPU memory {peak:,.0f} MiB, {run.device} {run.dtype}")
    _check(run.device.startswith("cuda"), "trained on CUDA")
    _check(run.dtype == ("bfloat16" if torch.cuda.is_bf16_supported() else "float32"), "dtype auto chose " + run.dtype)
    _check(math.isfinite(result.final_loss), f"finite final loss ({result.final_loss:.4f})")
    started = time.perf_counter()
    report = build_report(work / "adapter", corpus=corpus, device="cuda", echo=lambda s: None)
    write_report(report, work / "report", overwrite=True)
    print(summary_table(report))
    h = report.headline
    _check(report.device.startswith("cuda"), f"report on CUDA in {time.perf_counter() - started:.0f} s")
    _check(h.mean_p_after > h.mean_p_before, "the targets moved up")
    _check_entry(corpus, work)
    ckpt, _, ckpt_peak = _train(corpus, work / "adapter-gc", steps=10, gradient_checkpointing=True)
    print(f"gradient checkpointing: peak GPU memory {ckpt_peak:,.0f} MiB (without: {peak:,.0f} MiB)")
    _check(ckpt.run.gradient_checkpointing and math.isfinite(ckpt.final_loss), "gradient checkpointing trains")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        print("skip  4-bit base: bitsandbytes is not installed (pip install 'corpusforge[gpu]')")
    else:
        q, _, q_peak = _train(corpus, work / "adapter-4bit", steps=10, load_in_4bit=True)
        print(f"4-bit base: peak GPU memory {q_peak:,.0f} MiB")
        _check(q.run.quantized == "4bit" and math.isfinite(q.final_loss), "QLoRA (4-bit base) trains")
    print(json.dumps({"tokens_per_s": run.non_padding_tokens_per_s, "peak_gpu_mib": round(peak),
                      "headline": {k: h[k] for k in ("mean_p_before", "mean_p_after", "mean_control_kl",
                                                     "top1_kept_share")}}))


if __name__ == "__main__":
    sys.exit(main())
