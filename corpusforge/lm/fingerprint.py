"""A local model folder's fingerprint: what run.json records of its base model and the writers' cache keys
answers by."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

#: Files up to this size are hashed whole in a fingerprint; larger ones (a model's weights) by their size and their
#: first and last EDGE bytes.
WHOLE_LIMIT = 64 * 2**20
EDGE = 4 * 2**20


def _file_digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= WHOLE_LIMIT:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        else:
            h.update(f.read(EDGE))
            f.seek(size - EDGE)
            h.update(f.read(EDGE))
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def _fingerprint(real: str, stamp: tuple) -> str:
    root = Path(real)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):   # .cache, locks: not the model
            continue
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0{_file_digest(f, size)}\n".encode())
    return h.hexdigest()


def fingerprint(folder: str | Path) -> str:
    """A local model folder's content hash: sha256 over every file's relative name, size and sha256 (hidden files
    left out). A file over 64 MiB — a model's weights — is hashed by its size and its first and last 4 MiB, not
    whole: hashing gigabytes every time an adapter is tried would cost seconds to minutes, while a safetensors
    file's head holds every tensor's name, shape and offset and the first tensors' values, so another model or
    checkpoint (even one of the same shape) still differs."""
    real = os.path.realpath(folder)
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(Path(real).iterdir())
                  if p.is_file())
    return _fingerprint(real, stamp)
