"""A pydantic validation error as the one clear line a command-line user acts on: the option, what it must be,
and what was given. Shared by every config model (``TrainConfig``, ``ReportConfig``), whose fields are the
command's options."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from .errors import CorpusforgeError

_BOUNDS = {"greater_than_equal": ("ge", "must be at least {}"), "greater_than": ("gt", "must be greater than {}"),
           "less_than_equal": ("le", "must be at most {}"), "less_than": ("lt", "must be less than {}")}


def config_error(err: ValidationError, model: type[BaseModel], error: type[CorpusforgeError],
                 file: str | None = None) -> CorpusforgeError:
    """The first problem of ``err`` as an ``error``: ``--option must be …, got …`` (a check across fields names
    its options itself; an unknown key lists the known ones)."""
    first = err.errors(include_url=False)[0]
    name = ".".join(str(x) for x in first["loc"])
    option = f"--{name.replace('_', '-')} " if name else ""
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    kind, ctx = first["type"], first.get("ctx") or {}
    if kind == "extra_forbidden":
        return error(f"unknown key(s) ['{name}']; known: {', '.join(model.model_fields)}", file=file)
    if kind in _BOUNDS:
        key, text = _BOUNDS[kind]
        message = text.format(ctx.get(key))
    elif kind == "finite_number":
        message = "must be a finite number"
    else:
        message = first["msg"].removeprefix("Value error, ")
    return error(f"{option}{message}, got {shown}", file=file)
