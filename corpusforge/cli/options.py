"""Option parsers shared by several commands."""

from __future__ import annotations

import click

templates_option = click.option(
    "--templates", "template_paths", multiple=True, type=click.Path(exists=True),
    help="A template pack folder or file to use besides the installed ones (repeatable).")


def parse_weights(value: str | None, what: str) -> dict[str, float]:
    """``a=0.9,b=0.1`` → {"a": 0.9, "b": 0.1}; a clear usage error otherwise."""
    if not value:
        return {}
    out: dict[str, float] = {}
    for part in value.split(","):
        name, sep, weight = part.strip().partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=WEIGHT pairs separated by commas, got {part!r}",
                                     param_hint=what)
        try:
            out[name.strip()] = float(weight)
        except ValueError:
            raise click.BadParameter(f"weight of {name!r} is not a number: {weight!r}", param_hint=what) from None
    return out


def parse_shard(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    i, sep, n = value.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise click.BadParameter(f"expected i/N with 0 <= i < N (e.g. 0/4), got {value!r}", param_hint="--shard")
    return shard
