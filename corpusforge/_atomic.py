"""Writing files so that a crash never leaves half a file under its final name."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a corpus file is meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_dir(tmp: Path, final: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final``; an existing ``final`` is set aside first, then removed."""
    if final.exists():
        old = final.parent / f".{final.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextmanager
def atomic_dir(final: str | Path, *, keep_partial: Callable[[BaseException], bool] | None = None) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``final``; rename it into place on success.

    On failure the temporary directory is removed, unless ``keep_partial(error)``
    says to leave it for a resumed run to finish. An existing ``final`` is
    replaced only once the new one is complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.partial"
    tmp.mkdir(exist_ok=True)
    try:
        yield tmp
    except BaseException as error:
        if keep_partial is None or not keep_partial(error):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, final)


def sha256_stream(f) -> "hashlib._Hash":
    """A sha256 object fed with the rest of the open binary file ``f``, read in chunks (``f`` ends at its end)."""
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 22), b""):
        h.update(chunk)
    return h


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return sha256_stream(f).hexdigest()
