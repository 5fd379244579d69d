"""What the commands share: turning errors into one clear line, and option parsers."""

from __future__ import annotations

import functools
import os
import select
import sys

import click

from .._io import input_problem, os_error_text
from ..errors import CorpusforgeError
from ..records import INT64_MAX, INT64_MIN

#: the exit code when stdout's reader leaves (``corpusforge stats c | head -1``): a shell's for a process that
#: SIGPIPE ended, as ``seq 1000000 | head -1`` gives; quiet, but never a success for a run cut short
READER_LEFT = 141


def stdout_reader_left() -> bool:
    """stdout is a pipe whose reading end is closed (poll reports an error on it)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):   # no real file descriptor (a test's runner), or no poll
        return False


def leave_quietly() -> None:
    """Exit without a word: the rest of the output goes to /dev/null, so no flush at exit fails either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass
    sys.exit(READER_LEFT)


def domain_errors(func):
    """Turn corpusforge's own errors into clean CLI errors (no traceback, exit 1); a reader of stdout that leaves
    ends the command quietly (exit ``READER_LEFT``)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            result = func(*args, **kwargs)
            sys.stdout.flush()   # a reader that left is found here, not in the flush at exit
            return result
        except CorpusforgeError as e:
            raise click.ClickException(str(e)) from None
        except BrokenPipeError as e:
            if stdout_reader_left():
                leave_quietly()
            raise click.ClickException(os_error_text(e)) from None   # another pipe: a worker's, a download's
        except OSError as e:  # what no check caught: a full disk, a file vanishing mid-run — one line still
            raise click.ClickException(os_error_text(e)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


class InputPath(click.ParamType):
    """A path that must be readable as a file, a folder or either — a FIFO, a device, a dangling link or a
    symlink loop is named as what it is (usage error, exit 2)."""

    name = "path"

    def __init__(self, want: str = "any"):
        self.want = want

    def convert(self, value, param, ctx):
        problem = input_problem(value, want=self.want)
        if problem is not None:
            self.fail(f"{value} {problem}", param, ctx)
        return value


class Int(click.IntRange):
    """Every integer option's type: a whole number within ``min``..``max``, never past the 64-bit range that
    seeds, counts and indexes are stored in (``--n 10**20`` or ``--seed 2**70`` is a usage error, not an
    overflow deep inside torch or Arrow)."""

    name = "integer"

    def __init__(self, min: int | None = None, max: int | None = None):
        super().__init__(INT64_MIN if min is None else min, INT64_MAX if max is None else max)
        self.shown = (min, max)

    def convert(self, value, param, ctx):
        number = click.INT.convert(value, param, ctx)
        if not INT64_MIN <= number <= INT64_MAX:
            self.fail(f"{value} is past the 64-bit integer range ({INT64_MIN} to {INT64_MAX})", param, ctx)
        return super().convert(number, param, ctx)

    def _describe_range(self) -> str:
        low, high = self.shown
        if low is not None and high is not None:
            return f"{low}<=x<={high}"
        return f"x>={low}" if low is not None else (f"x<={high}" if high is not None else "a 64-bit integer")


templates_option = click.option(
    "--templates", "template_paths", multiple=True, type=InputPath(),
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
        name = name.strip()
        if name in out:   # keeping the last weight would drop the first without a word
            raise click.BadParameter(f"{name!r} is given twice; give each name once", param_hint=what)
        try:
            out[name] = float(weight)
        except ValueError:
            raise click.BadParameter(f"weight of {name!r} is not a number: {weight!r}", param_hint=what) from None
    return out


def not_blank(ctx, param, value):
    """A click callback: an option given as '' (or only spaces and commas) is a usage error, not "the default"
    (``--layers ''`` would otherwise mean every layer, ``--loss-on ''`` every role after the first)."""
    if value is not None and not value.replace(",", " ").strip():
        raise click.BadParameter(f"{value!r} is empty; leave the option out for its default", ctx, param)
    return value


def completion_roles(corpus: str, value: str | None) -> list[str] | None:
    """``--completion-from consequence,conclusion`` → ["consequence", "conclusion"], each a later role of one of
    CORPUS's patterns (an unknown or a first role is a usage error, not an empty export); None when not given."""
    from ..errors import HubError
    from ..hub.shapes import check_completion_from, corpus_pattern_list

    if value is None:
        return None
    roles = [r.strip() for r in value.split(",") if r.strip()]
    try:
        check_completion_from(roles, corpus_pattern_list(corpus))
    except HubError as e:
        raise click.UsageError(str(e)) from None
    return roles


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


def _shown_default(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={_shown_default(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_option(model, field: str, *decls: str, **kw):
    """A click option for ``model``'s ``field``: the help is the field's description (and its default), so
    the defaults are written once, in the config. The option's own default is None: "not given"."""
    info = model.model_fields[field]
    help_text = (info.description or "").removeprefix("(*) ")
    default = info.get_default(call_default_factory=True)
    if not info.is_required() and default is not None and default is not False and "default" not in help_text:
        help_text += f" [default: {_shown_default(default)}]"
    kw.setdefault("default", None)
    return click.option(*(decls or (f"--{field.replace('_', '-')}",)), field, help=help_text, **kw)
