"""``corpusforge merge``: an adapter folded into its base, as a plain transformers model folder — honestly.

The merged model is measured against the unmerged one (the base with the adapter
on) on the probes and the held-out controls: KL(merged ‖ unmerged) of the next
token at every prompt. Above ``tolerance`` (max over prompts) the merge is refused
and nothing is written; otherwise the folder holds safetensors weights, the
tokenizer, and a README naming the base, the adapter, the corpus and the KL.
Merging is for deployment: the report measures the unmerged adapter (its scale
can be turned), never a merged model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ._atomic import atomic_dir, write_atomic
from ._io import check_output, os_error_text
from .errors import ReportError
from .lm.adapter import nonfinite_error, nonfinite_tensors
from .lm.device import choose
from .shift import passes
from .shift.build import choose_inputs, load_with_adapter
from .shift.config import make_report_config

TOLERANCE = 0.01   # nats, the largest KL(merged ‖ unmerged) over the prompts


@dataclass
class MergeResult:
    out: Path
    mean_kl: float
    max_kl: float
    prompts: int
    dtype: str


def _next_logprobs(model, tok, prompts: list[str]) -> list:
    return passes.last_logprobs(model, [passes.encode(tok, p) for p in prompts])


def _card(base: str, adapter: Path, run, result: MergeResult) -> str:
    corpus = run.corpus if run else "unknown"
    return "\n".join([
        "---", "library_name: transformers", f"base_model: {base}", "tags: [corpusforge, lora, merged]", "---", "",
        f"# {adapter.name} merged into {base}", "",
        f"A LoRA adapter trained by corpusforge, merged into its base model ({result.dtype}).", "",
        f"- base model: `{base}`", f"- adapter: `{adapter}`", f"- corpus: `{corpus}`",
        f"- fidelity: KL(merged ‖ unmerged) of the next token over {result.prompts} prompts (probes and held-out "
        f"controls): mean {result.mean_kl:.2e}, max {result.max_kl:.2e} nats", "",
        "Load it with `AutoModelForCausalLM.from_pretrained(this_folder)`. The unmerged adapter is what "
        "`corpusforge report` measures; this folder is for serving it.", ""])


def merge_adapter(adapter: str | Path, out: str | Path, *, model: str | None = None, dtype: str = "float32",
                  tolerance: float = TOLERANCE, probes_file=None, corpus=None, overwrite: bool = False,
                  echo: Callable[[str], None] = print) -> MergeResult:
    """Merge ``adapter`` into its base and write the model to ``out`` if it matches the unmerged adapter."""
    from .train.adapter_run import check_base, read_run

    adapter = Path(adapter)
    out = check_output(out, ReportError, overwrite=overwrite, inputs=[adapter, model, probes_file, corpus])
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ReportError(f"--tolerance must be a non-negative number, got {tolerance}")
    run = read_run(adapter, ReportError) if adapter.is_dir() else None
    base = check_base(run, model, adapter, ReportError)
    if base is None:
        raise ReportError("the adapter has no run.json naming its base model", hint="pass --model")
    inputs = choose_inputs(adapter, make_report_config(model=base, probes=probes_file, corpus=corpus))
    peft_model, tok = load_with_adapter(base, inputs, echo, choose("cpu", "float32"))
    prompts = [p.prompt for p in inputs.probes] + [c["prompt"] for c in inputs.controls]
    unmerged = _next_logprobs(peft_model, tok, prompts)
    echo(f"merging into {base} ({dtype}) and comparing on {len(prompts)} prompts")
    merged = peft_model.merge_and_unload()
    if dtype != "float32":
        merged = merged.to(choose("cpu", dtype).torch_dtype) if dtype != "float16" else merged.half()
    kls = [passes.kl(m, u) for m, u in zip(_next_logprobs(merged, tok, prompts), unmerged)]
    result = MergeResult(out, sum(kls) / len(kls), max(kls), len(prompts), dtype)
    if not all(math.isfinite(k) for k in kls):   # NaN > tolerance is false: a NaN model would pass
        raise ReportError(f"the merged model ({dtype}) gives NaN or infinite probabilities where the adapter does "
                          "not; nothing was written", file=str(adapter),
                          hint="merge in float32; if that fails too, the adapter's weights are too large")
    if result.max_kl > tolerance:
        raise ReportError(f"the merged model is not the adapter: KL(merged ‖ unmerged) reaches {result.max_kl:.2e} "
                          f"nats (tolerance {tolerance:g}); nothing was written",
                          hint="merge in float32, or raise --tolerance if this is acceptable")
    bad = nonfinite_tensors(merged.state_dict().items())
    if bad:
        raise nonfinite_error(f"the merged weights ({dtype})", bad, ReportError, adapter,
                              "nothing was written; merge in float32, or train the adapter again")
    try:
        with atomic_dir(out) as tmp:   # on any failure the partial folder is removed: nothing under out
            merged.save_pretrained(str(tmp), safe_serialization=True)
            tok.save_pretrained(str(tmp))
            write_atomic(tmp / "README.md", _card(base, adapter, run, result))
    except Exception as e:
        raise _write_error(e, out) from None
    return result


def _write_error(e: Exception, out: Path) -> Exception:
    """A failed write of the merged folder as one line (safetensors reports a full disk as its own error)."""
    from safetensors import SafetensorError

    if isinstance(e, OSError):
        reason = os_error_text(OSError(e.errno, e.strerror))
    elif isinstance(e, SafetensorError):
        reason = "no space left on the device" if "os error 28" in str(e) else str(e).splitlines()[0]
    else:
        return e
    return ReportError(f"cannot write the merged model: {reason}; nothing was written", file=str(out),
                       hint="free some space or choose another --out")
