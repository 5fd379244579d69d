"""Loading a peft LoRA adapter folder — checked first, so that a damaged one is one clear line, not a traceback.

peft trusts the folder it is given: an ``adapter_config.json`` that is ``[]`` or
holds a string where a number belongs fails deep inside it, an empty or
truncated weights file fails in safetensors' Rust code, and a missing weights
file sends it to the Hugging Face Hub to look for one. ``check_adapter`` reads
the folder before peft sees it — the config parses, is an object and its fields
have the right types; the weights file exists, is not empty, its safetensors
header parses and every tensor fits the file — and names the file at fault and
what to do. ``load_adapter`` is the one way corpusforge puts an adapter on a
model.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from .._io import check_input, loads_json, os_error_text, read_bytes
from ..errors import CorpusforgeError, ReportError

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"
LEGACY_WEIGHTS = "adapter_model.bin"
DAMAGED = "the adapter folder is damaged: train it again, or copy it again from where it came"
MAX_HEADER = 100 * 2**20        # safetensors' own limit on the header

#: bytes per element of each safetensors dtype
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2, "F16": 2,
                "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(x) for x in v)


#: the fields peft reads from a LoRA config, each with its test and the type it names
_FIELDS: dict[str, tuple[Any, str]] = {
    "peft_type": (lambda v: isinstance(v, str), "a string"),
    "base_model_name_or_path": (lambda v: v is None or isinstance(v, str), "a string"),
    "task_type": (lambda v: v is None or isinstance(v, str), "a string"),
    "r": (lambda v: _is_int(v) and v >= 1, "a whole number of at least 1"),
    "lora_alpha": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "lora_dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "target_modules": (lambda v: v is None or isinstance(v, str) or _str_list(v), "a string or a list of strings"),
    "target_parameters": (lambda v: v is None or _str_list(v), "a list of strings"),
    "exclude_modules": (lambda v: v is None or isinstance(v, str) or _str_list(v), "a string or a list of strings"),
    "modules_to_save": (lambda v: v is None or _str_list(v), "a list of strings"),
    "layers_to_transform": (lambda v: v is None or (_is_int(v) and v >= 0) or _int_list(v),
                            "a whole number or a list of them"),
    "layers_pattern": (lambda v: v is None or isinstance(v, str) or _str_list(v), "a string or a list of strings"),
    "rank_pattern": (lambda v: isinstance(v, dict) and all(_is_int(x) and x >= 1 for x in v.values()),
                     "an object of whole numbers"),
    "alpha_pattern": (lambda v: isinstance(v, dict) and all(_is_number(x) for x in v.values()),
                      "an object of numbers"),
    "fan_in_fan_out": (lambda v: isinstance(v, bool), "true or false"),
    "use_rslora": (lambda v: isinstance(v, bool), "true or false"),
    "use_dora": (lambda v: isinstance(v, bool), "true or false"),
    "inference_mode": (lambda v: isinstance(v, bool), "true or false"),
    "bias": (lambda v: v in ("none", "all", "lora_only"), '"none", "all" or "lora_only"'),
    "init_lora_weights": (lambda v: isinstance(v, (bool, str)), "true, false or a method's name"),
}


def check_config(path: Path, error: type[CorpusforgeError]) -> dict:
    """adapter_config.json as a dict, once it parses, is an object and its known fields have peft's types."""
    data = loads_json(read_bytes(path, error, what=CONFIG), path, error, what=CONFIG)
    if not isinstance(data, dict):
        raise error(f"{CONFIG} must be a JSON object, not {type(data).__name__ if data is not None else 'null'}",
                    file=str(path), hint=DAMAGED)
    if "peft_type" not in data:
        raise error(f"{CONFIG} names no peft_type; it is not a peft adapter's config", file=str(path), hint=DAMAGED)
    for name, (ok, kind) in _FIELDS.items():
        if name in data and not ok(data[name]):
            raise error(f"must be {kind}, got {json.dumps(data[name])[:60]}", file=str(path), field=name,
                        hint=DAMAGED)
    if data["peft_type"] != "LORA":
        raise error(f"a {data['peft_type']} adapter; corpusforge works with LoRA adapters", file=str(path),
                    field="peft_type")
    return data


def check_weights(path: Path, error: type[CorpusforgeError]) -> None:
    """The safetensors file is whole: a header that parses, and every tensor inside the file, the data filled."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
            raw = f.read(n) if n is not None and n <= min(size - 8, MAX_HEADER) else None
    except OSError as e:
        raise error(f"cannot read the adapter's weights: {os_error_text(e)}", file=str(path)) from None
    if size == 0:
        raise error("the adapter's weights file is empty (0 bytes)", file=str(path), hint=DAMAGED)
    if raw is None:
        raise error(f"not a safetensors file, or truncated: its header does not fit its {size:,} bytes",
                    file=str(path), hint=DAMAGED)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise error("the safetensors header is not a JSON object", file=str(path), hint=DAMAGED)
    data_size, end = size - 8 - n, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            shape, (begin, stop) = info["shape"], info["data_offsets"]
            width = _DTYPE_BYTES[info["dtype"]]
            ok = _int_list(shape) and min(shape, default=0) >= 0 and _is_int(begin) and _is_int(stop)
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise error(f"the safetensors header's entry for tensor {name!r} is malformed", file=str(path),
                        hint=DAMAGED)
        if not 0 <= begin <= stop or stop - begin != math.prod(shape) * width:
            raise error(f"tensor {name!r} has {stop - begin:,} bytes for a shape {shape} of {info['dtype']}",
                        file=str(path), hint=DAMAGED)
        end = max(end, stop)
    if end > data_size:
        raise error(f"truncated: its tensors need {end:,} bytes after the header, the file holds {data_size:,}",
                    file=str(path), hint=DAMAGED)
    if end < data_size:
        raise error(f"{data_size - end:,} bytes after the last tensor; it is not one whole safetensors file",
                    file=str(path), hint=DAMAGED)


def check_adapter(folder: str | Path, error: type[CorpusforgeError] = ReportError) -> dict:
    """Check a peft adapter folder before peft reads it; returns its adapter_config.json.

    Every problem raises ``error`` naming the file at fault and what to do — never a traceback from peft or
    safetensors, and never a trip to the Hub for a weights file that is missing here.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise error("adapter folder not found", file=str(folder))
    if not (folder / CONFIG).exists():
        raise error(f"not a peft adapter folder (no {CONFIG})", file=str(folder))
    config = check_config(folder / CONFIG, error)
    weights = folder / WEIGHTS
    if weights.exists() or not (folder / LEGACY_WEIGHTS).is_file():
        if not weights.exists():
            raise error(f"the adapter's weights file {WEIGHTS} is missing", file=str(folder), hint=DAMAGED)
        check_weights(check_input(weights, error, what="the adapter's weights file"), error)
    elif (folder / LEGACY_WEIGHTS).stat().st_size == 0:
        raise error("the adapter's weights file is empty (0 bytes)", file=str(folder / LEGACY_WEIGHTS), hint=DAMAGED)
    return config


def nonfinite_tensors(named_tensors) -> list[str]:
    """The names of the tensors that hold a NaN or an infinity."""
    import torch

    return [name for name, t in named_tensors if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def nonfinite_error(what: str, names: list[str], error: type[CorpusforgeError], file: str | Path,
                    hint: str) -> CorpusforgeError:
    more = f" and {len(names) - 1} more" if len(names) > 1 else ""
    return error(f"{what} hold NaN or infinity ({names[0]}{more})", file=str(file), hint=hint)


def load_adapter(model, folder: str | Path, model_spec: str, error: type[CorpusforgeError] = ReportError):
    """``model`` with the checked adapter in ``folder`` on it (a peft model, in eval mode); an adapter whose
    weights are not finite (a diverged run, a damaged file) is refused here, before any number is shown."""
    from peft import PeftModel

    check_adapter(folder, error)
    try:
        peft_model = PeftModel.from_pretrained(model, str(folder))
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise error(f"the adapter does not fit {model_spec}: {reason}", file=str(folder)) from None
    bad = nonfinite_tensors((n, p) for n, p in peft_model.named_parameters() if "lora_" in n)
    if bad:
        raise nonfinite_error("the adapter's weights", bad, error, Path(folder) / WEIGHTS,
                              "its training diverged or the file is damaged: train it again, with a lower --lr")
    peft_model.eval()
    return peft_model
