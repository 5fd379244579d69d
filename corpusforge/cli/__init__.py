"""The ``corpusforge`` command line: one small file per command.

Each command parses its options, makes one call into the library and prints
the result. Domain errors (``CorpusforgeError``) become a one-line message and
exit code 1; usage errors exit 2. Nothing here is imported by the library.
"""

from __future__ import annotations

import click

from .._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="corpusforge")
def main() -> None:
    """Build corpora of reasoning structures, fit a LoRA on them, and see what shifted."""


def _register() -> None:
    from . import (
        demo_cmd,
        detect_cmd,
        export_cmd,
        generate_cmd,
        merge_cmd,
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
                   try_cmd, report_cmd, merge_cmd, detect_cmd, schema_cmd, demo_cmd):
        main.add_command(module.command)


_register()
