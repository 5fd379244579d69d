"""Loading a causal LM and its tokenizer: an embedded name, a local folder, or a Hub id — on a device, in a dtype.

The attention implementation is chosen per model: SDPA where the model supports
it, eager otherwise (Gemma2 and BLOOM, for instance, refuse SDPA). A 4-bit base
(QLoRA) needs bitsandbytes and a CUDA GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ModelError
from .device import Placement
from .embedded import DEFAULT_MODEL, EMBEDDED, embedded_model_folder

__all__ = ["DEFAULT_MODEL", "LoadedModel", "load_model", "quiet_transformers", "resolve_model"]


def resolve_model(spec: str, echo: Callable[[str], None] = lambda s: None) -> str:
    """A local folder (or, for a Hub id, the id itself) that ``from_pretrained`` can load."""
    if spec in EMBEDDED:
        return str(embedded_model_folder(spec, echo))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError("not a Hugging Face model folder (no config.json)", file=str(path))
        return str(path)
    looks_like_hub_id = spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not path.exists()
    if looks_like_hub_id:
        from .._env import check_hub_environment

        check_hub_environment(ModelError)   # before transformers goes to the network with a bad setting
        return spec
    raise ModelError(f"model {spec!r} not found: not an embedded model ({', '.join(EMBEDDED)}), not a folder, "
                     "not a Hub id (OWNER/NAME)")


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    spec: str                       # what the user asked for
    source: str                     # the folder or Hub id loaded
    placement: Placement = field(default_factory=lambda: Placement("cpu", "float32"))
    attn_implementation: str = "sdpa"
    quantized: str | None = None    # "4bit" for a QLoRA base


def quiet_transformers() -> None:
    """transformers' per-load progress bars and deprecation chatter are noise in a CLI."""
    import warnings

    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")   # peft on GPT-2's Conv1D: set for it


def _four_bit(placement: Placement):
    """The quantization config of a 4-bit (NF4) base, or a clear error where one cannot run."""
    if not placement.device.startswith("cuda"):
        raise ModelError("a 4-bit base (--load-in-4bit) needs a CUDA GPU", hint="drop --load-in-4bit on this machine")
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise ModelError("a 4-bit base needs the bitsandbytes package",
                         hint="pip install 'corpusforge[gpu]'") from None
    compute = placement.torch_dtype if placement.dtype != "float32" else None
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def _from_pretrained(source: str, placement: Placement, attn: str | None, trust_remote_code: bool, quant):
    """The model, with SDPA attention where the model supports it and eager where it does not."""
    from transformers import AutoModelForCausalLM

    kwargs = dict(dtype=placement.torch_dtype, trust_remote_code=trust_remote_code)
    if quant is not None:
        kwargs.update(quantization_config=quant, device_map={"": placement.device})
    for choice in ([attn] if attn else ["sdpa", "eager"]):
        try:
            return AutoModelForCausalLM.from_pretrained(source, attn_implementation=choice, **kwargs), choice
        except ValueError as e:
            if attn is None and choice == "sdpa" and "scaled_dot_product_attention" in str(e):
                continue  # this architecture has no SDPA path: eager it is
            raise
    raise AssertionError("unreachable")


def load_model(spec: str = DEFAULT_MODEL, *, placement: Placement | None = None, attn_implementation: str | None = None,
               trust_remote_code: bool = False, load_in_4bit: bool = False,
               echo: Callable[[str], None] = lambda s: None) -> LoadedModel:
    """Load a causal LM and its tokenizer on ``placement`` (default: fp32 on the CPU), in eval mode."""
    from transformers import AutoTokenizer

    quiet_transformers()
    placement = placement or Placement("cpu", "float32")
    source = resolve_model(spec, echo)
    quant = _four_bit(placement) if load_in_4bit else None
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model, attn = _from_pretrained(source, placement, attn_implementation, trust_remote_code, quant)
    except OSError as e:
        if source == spec and "/" in spec:
            raise ModelError(f"cannot load {spec!r} from the Hugging Face Hub: {str(e).splitlines()[0]}",
                             hint="without the Hub, pass a local folder or the embedded default smollm2-135m") \
                from None
        raise ModelError(f"cannot load the model: {str(e).splitlines()[0]}", file=source) from None
    except ValueError as e:
        if "trust_remote_code" in str(e):
            raise ModelError(f"{spec!r} needs custom code from its repository",
                             hint="pass --trust-remote-code if you trust it") from None
        raise ModelError(f"cannot load the model: {str(e).splitlines()[0]}", file=source) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if quant is None and placement.device != "cpu":
        model.to(placement.device)
    model.eval()
    return LoadedModel(model, tokenizer, spec, source, placement, attn, "4bit" if quant else None)
