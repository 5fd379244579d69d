"""Writing files so that a crash never leaves half a file under its final name."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CorpusforgeError

LOCK_FILE = ".lock"


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


def write_files_atomic(files: dict[Path, bytes | str]) -> None:
    """Write a set of files so that either all of them change or none does.

    Every file is first written beside its target under a temporary name; only
    when all are written are they renamed into place, and if a rename fails the
    ones already replaced are put back (from copies of the old files).
    """
    staged: list[tuple[Path, Path]] = []       # (temporary, target)
    replaced: list[tuple[Path, Path | None]] = []  # (target, copy of its old content or None if it was new)
    try:
        for path, data in files.items():
            path = Path(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            staged.append((Path(tmp), path))
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for tmp, path in staged:
            backup = None
            if os.path.lexists(path):
                backup = path.parent / f".{path.name}.old"
                shutil.copy2(path, backup)
            try:
                os.replace(tmp, path)
            except BaseException:
                if backup is not None:
                    backup.unlink(missing_ok=True)
                raise
            replaced.append((path, backup))
    except BaseException:
        for path, backup in reversed(replaced):
            if backup is not None:
                os.replace(backup, path)
            else:
                path.unlink(missing_ok=True)
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for _, backup in replaced:
        if backup is not None:
            backup.unlink(missing_ok=True)


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


def partial_path(final: str | Path) -> Path:
    """Where the folder ``final`` is built before it is renamed into place: ``.NAME.partial`` beside it."""
    final = Path(final)
    return final.parent / f".{final.name}.partial"


def lock_owner(folder: Path) -> int | None:
    """The pid of a live process holding ``folder``'s lock, or None when nobody holds it."""
    import fcntl

    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except OSError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)


def _lock(folder: Path) -> int:
    """Take ``folder``'s lock (a flock on ``.lock`` inside it, holding our pid), or say who has it."""
    import fcntl

    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise CorpusforgeError(f"another run is writing in {folder} (pid {text or '?'})",
                               hint="wait for it to finish or stop it; two runs cannot share an output") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _unlock(folder: Path, fd: int) -> None:
    try:
        os.unlink(folder / LOCK_FILE)
    except FileNotFoundError:
        pass
    os.close(fd)


def make_parent(final: Path) -> None:
    """Create ``final``'s parent folders; a failure is one clear line, not an OSError."""
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        from ._io import os_error_text

        raise CorpusforgeError(f"cannot create the folder for {final}: {os_error_text(e)}") from None


@contextmanager
def locked_partial(final: str | Path) -> Iterator[Path]:
    """The partial folder of ``final``, created if needed and locked against a second run while in use."""
    final = Path(final)
    make_parent(final)
    tmp = partial_path(final)
    try:
        tmp.mkdir(exist_ok=True)
    except OSError as e:
        from ._io import os_error_text

        raise CorpusforgeError(f"cannot create {tmp}: {os_error_text(e)}") from None
    fd = _lock(tmp)  # before anything can go wrong below: a second run must never clean up the first's folder
    try:
        yield tmp
    finally:
        if tmp.is_dir():
            _unlock(tmp, fd)
        else:
            os.close(fd)


@contextmanager
def atomic_dir(final: str | Path, *, keep_partial: Callable[[BaseException], bool] | None = None) -> Iterator[Path]:
    """Build a directory under a temporary name beside ``final``; rename it into place on success.

    The temporary directory is locked while in use (a second run writing to the
    same ``final`` stops with a clear message). On failure it is removed, unless
    ``keep_partial(error)`` says to leave it for a resumed run to finish. An
    existing ``final`` is replaced only once the new one is complete.
    """
    final = Path(final)
    with locked_partial(final) as tmp:
        try:
            yield tmp
        except BaseException as error:
            if keep_partial is None or not keep_partial(error):
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / LOCK_FILE).unlink(missing_ok=True)
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
