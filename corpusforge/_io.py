"""Reading input files and preparing output paths, with one clear line for every way they can go wrong.

Every command reads and writes through here, so a FIFO, a directory where a file
belongs, a dangling link, a symlink loop, bad UTF-8, a read-only or virtual file
system, or an output below a file is reported the same way everywhere: which
path, what is wrong with it, what to do.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import CorpusforgeError, already_exists

#: Files corpusforge reads whole (templates, lexicons, probes, configs) are small; anything
#: bigger is almost certainly the wrong file. Streams (corpus data) are not read through here.
MAX_SMALL_FILE = 64 * 1024 * 1024
VIRTUAL_FILESYSTEMS = ("/proc", "/sys", "/dev")


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def os_error_text(error: OSError) -> str:
    """An OSError as one line: the path and what went wrong, without Python's decoration."""
    reason = {errno.EROFS: "the file system is read-only", errno.ENOSPC: "no space left on the device",
              errno.ELOOP: "a symbolic link loop", errno.ENOTDIR: "a part of the path is a file, not a folder",
              errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}.get(
        error.errno, error.strerror or str(error))
    where = error.filename if error.filename is not None else ""
    return f"{where}: {reason}" if where else reason


def input_problem(path: str | Path, *, want: str = "file") -> str | None:
    """Why ``path`` cannot be read as a ``want`` ("file", "folder" or "any"), or None when it can."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "is a dangling symbolic link" if os.path.islink(path) else "was not found"
    except OSError as e:
        return f"cannot be read: {os_error_text(OSError(e.errno, e.strerror))}"
    kind = _kind(st.st_mode)
    if want == "file" and kind is not None:
        return f"is {kind}, not a regular file"
    if want == "folder" and not stat.S_ISDIR(st.st_mode):
        return f"is {kind or 'a file'}, not a folder"
    if want == "any" and kind not in (None, "a directory"):
        return f"is {kind}, not a file or folder"
    if not os.access(path, os.R_OK):
        return "cannot be read: permission denied"
    return None


def check_input(path: str | Path, error: type[CorpusforgeError] = CorpusforgeError, *, want: str = "file",
                what: str = "file") -> Path:
    """``path`` if it can be read as ``want``; otherwise ``error`` naming it and the reason."""
    problem = input_problem(path, want=want)
    if problem is not None:
        raise error(f"{what} {problem}", file=str(path))
    return Path(path)


def read_bytes(path: str | Path, error: type[CorpusforgeError] = CorpusforgeError, *, what: str = "file",
               limit: int = MAX_SMALL_FILE) -> bytes:
    """The whole of a small regular file (checked first: a FIFO would block forever)."""
    path = check_input(path, error, what=what)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"cannot read the {what}: {os_error_text(e)}", file=str(path)) from None
    if len(data) > limit:
        raise error(f"the {what} is larger than {limit // 2**20} MiB; is it the right file?", file=str(path))
    return data


def decode_utf8(data: bytes, path: str | Path, error: type[CorpusforgeError] = CorpusforgeError) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise error(f"not valid UTF-8 (byte {e.start}); save the file as UTF-8", file=str(path), line=line) from None


def read_text(path: str | Path, error: type[CorpusforgeError] = CorpusforgeError, *, what: str = "file",
              limit: int = MAX_SMALL_FILE) -> str:
    """The whole of a small UTF-8 text file (a BOM is dropped)."""
    return decode_utf8(read_bytes(path, error, what=what, limit=limit), path, error).removeprefix("\ufeff")


def text_lines(text: str) -> list[str]:
    """The lines of a JSONL or one-item-a-line file: split at "\\n" only (a "\\r" before it is dropped).

    ``str.splitlines`` also splits at U+2028, U+2029, U+0085, form feeds and more, which JSON strings may
    hold raw: it would cut one record in two."""
    return [line.removesuffix("\r") for line in text.split("\n")]


#: JSON nested deeper than this is not a config anyone wrote (and would exhaust the parser's recursion).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """How deeply ``data`` (JSON) nests arrays and objects, counted without parsing it (brackets in strings
    do not count)."""
    depth = deepest = 0
    for byte in _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads_json(data: bytes, path: str | Path, error: type[CorpusforgeError] = CorpusforgeError, *,
               what: str = "file", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a small JSON file's bytes, nesting at most ``max_depth`` deep; any problem raises ``error``
    naming the file."""
    if json_depth(data) > max_depth:
        raise error(f"{what} nests arrays or objects more than {max_depth} deep; it is not a file corpusforge "
                    "wrote", file=str(path))
    text = decode_utf8(data, path, error)
    try:
        return json.loads(text)
    except ValueError as e:
        raise error(f"{what} is not valid JSON: {e}", file=str(path)) from None


def read_plain_yaml(path: str | Path, error: type[CorpusforgeError], text: str | None = None) -> Any:
    """Parse a small YAML file (no line map); any problem raises ``error`` with the file and line."""
    from ._yaml import compose_bounded, construct_plain

    text = read_text(path, error, what="YAML file") if text is None else text
    node = compose_bounded(text, str(path), error)
    return None if node is None else construct_plain(node, str(path), error)


# ---------------------------------------------------------------------------
# Outputs


def _existing_ancestor(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if os.path.lexists(parent):
            return parent
    return Path("/")


def output_problem(out: str | Path, *, overwrite: bool, folder: bool = True) -> str | None:
    """Why ``out`` cannot be written (created, or replaced with ``overwrite``), or None when it can."""
    out = Path(os.path.abspath(out))
    if os.path.islink(out) and not os.path.exists(out):
        return "is a dangling symbolic link; remove it or choose another --out"
    if os.path.lexists(out):
        try:
            mode = os.stat(out).st_mode
        except OSError as e:
            return os_error_text(OSError(e.errno, e.strerror))
        if not overwrite:
            return "already exists (pass --overwrite to replace it, or choose another --out)"
        if folder and not stat.S_ISDIR(mode):
            return f"exists and is {_kind(mode) or 'a file'}, not a folder; remove it or choose another --out"
        if not folder and not stat.S_ISREG(mode):
            return f"exists and is {_kind(mode)}; remove it or choose another --out"
    if str(out).startswith(tuple(v + "/" for v in VIRTUAL_FILESYSTEMS)) or str(out) in VIRTUAL_FILESYSTEMS:
        return "is on a virtual file system (/proc, /sys, /dev); choose another --out"
    base = _existing_ancestor(out.parent)
    if os.path.islink(base) and not os.path.exists(base):
        return f"cannot be created: {base} is a dangling symbolic link"
    if not os.path.isdir(base):
        return f"cannot be created: {base} is a file, not a folder"
    try:
        if os.statvfs(base).f_flag & os.ST_RDONLY:
            return f"cannot be created: {base} is on a read-only file system"
    except OSError:
        pass
    if not os.access(base, os.W_OK | os.X_OK):
        return f"cannot be created: no permission to write in {base}"
    return None


def _real(path: str | Path) -> Path:
    """``path`` absolute with every symbolic link resolved (a loop or a missing tail is left as it is)."""
    return Path(os.path.realpath(os.path.abspath(path)))


def input_overlap(out: str | Path, inputs: Iterable[str | Path | None]) -> str | None:
    """How ``out`` overlaps one of ``inputs`` (the same folder, inside it, or holding it), or None.

    Paths are compared with symbolic links resolved; an input that is not a local path (a Hub id, an
    embedded model's name) or None is skipped.
    """
    real_out = _real(out)
    for given in inputs:
        if given is None or str(given) == "" or not os.path.lexists(given):
            continue
        real_in = _real(given)
        if real_out == real_in:
            return f"is the input {given}"
        if real_in in real_out.parents:
            return f"is inside the input {given}"
        if real_out in real_in.parents:
            return f"holds the input {given}"
    return None


def check_output(out: str | Path, error: type[CorpusforgeError] = CorpusforgeError, *, overwrite: bool = False,
                 folder: bool = True, inputs: Iterable[str | Path | None] = (), option: str = "--out") -> Path:
    """``out`` as a Path if it can be written; otherwise ``error`` naming it and what to do.

    The one rule every command with an output follows: an output is never one of the command's ``inputs``
    (nor inside one, nor holding one) — with or without ``--overwrite``; an existing output is replaced
    only with ``overwrite``; and it must be a place that can be written.
    """
    overlap = input_overlap(out, inputs)
    if overlap is not None:
        raise error(f"{option} {out} {overlap}: an output never replaces, holds or sits inside an input",
                    hint=f"choose another {option}; --overwrite never reaches an input")
    if os.path.exists(out) and not overwrite:
        raise already_exists(out, error)
    problem = output_problem(out, overwrite=overwrite, folder=folder)
    if problem is not None:
        raise error(f"{out} {problem}")
    return Path(out)
