"""The ``corpusforge`` command line: one small file per command.

Each command parses its options, makes one call into the library and prints
the result. Domain errors (``CorpusforgeError``) become a one-line message and
exit code 1; usage errors exit 2. Nothing here is imported by the library.
"""

from __future__ import annotations

import sys

import click

from .._version import __version__


def _not_utf8(arg: str) -> int | None:
    """The position of the first byte of ``arg`` that was not valid UTF-8 (Python keeps such bytes in argv as
    lone surrogates), or None."""
    for i, char in enumerate(arg):
        if "\udc80" <= char <= "\udcff":
            return i
    return None


class _Main(click.Group):
    """The command group, with the checks every command needs before it parses anything."""

    def main(self, *args, **kwargs):
        from .._env import check_endpoint, safe_streams
        from ..errors import CorpusforgeError

        safe_streams()
        try:
            check_endpoint()   # huggingface_hub, imported by most commands, fails on a malformed one
        except CorpusforgeError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        return super().main(*args, **kwargs)

    def parse_args(self, ctx, args):
        for i, arg in enumerate(args):
            at = _not_utf8(arg)
            if at is not None:
                option = args[i - 1] if i and args[i - 1].startswith("-") and "=" not in args[i - 1] else None
                if arg.startswith("--") and 0 < arg.find("=") < at:
                    option = arg.split("=", 1)[0]
                what = f"the value of {option}" if option else f"argument {i + 1}"
                raise click.UsageError(f"{what} is not valid UTF-8 (byte 0x{ord(arg[at]) - 0xDC00:02x} at "
                                       f"{at}); give text in UTF-8", ctx)
        return super().parse_args(ctx, args)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="corpusforge")
def main() -> None:
    """Build corpora of reasoning structures, fit a LoRA on them, and see what shifted."""


def _register() -> None:
    from . import (
        compare_cmd,
        demo_cmd,
        detect_cmd,
        export_cmd,
        generate_cmd,
        merge_cmd,
        models_cmd,
        push_cmd,
        report_cmd,
        schema_cmd,
        stats_cmd,
        templates_cmd,
        train_cmd,
        try_cmd,
        validate_cmd,
    )

    for module in (generate_cmd, templates_cmd, validate_cmd, stats_cmd, export_cmd, push_cmd, train_cmd,
                   try_cmd, report_cmd, compare_cmd, merge_cmd, detect_cmd, schema_cmd, models_cmd, demo_cmd):
        main.add_command(module.command)


_register()
