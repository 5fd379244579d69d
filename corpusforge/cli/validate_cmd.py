from __future__ import annotations

import sys

import click
import orjson

from .options import InputPath, Int, domain_errors, templates_option


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=InputPath())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per error and a summary; json: one object.")
@click.option("--max-errors", type=Int(0), default=None,
              help="List at most this many errors (the counts stay exact).")
@click.option("--quick", is_flag=True, help="Check a corpus folder's data files against its manifest without "
              "hashing them: each listed file present, its size and record count (JSONL lines, Parquet rows; not "
              "the count of a .jsonl.gz); every record is still checked.")
@templates_option
@domain_errors
def command(paths: tuple[str, ...], fmt: str, max_errors: int | None, quick: bool,
            template_paths: tuple[str, ...]) -> None:
    """Check every record in PATHS (JSONL, .jsonl.gz, Parquet, or corpus folders).

    Reports every invalid record with file, line, field and what to do; a corpus
    folder's data files must also match its manifest.json (every listed file there,
    its record count, size and sha256). Exits 0 when all are valid, 1 when any is not.
    """
    from ..validate import validate_paths

    patterns = None
    if template_paths:  # patterns declared by plugin packs
        from ..templates.registry import load_registry

        patterns = load_registry(template_paths).patterns
    report = validate_paths(paths, patterns=patterns, max_errors=max_errors, quick=quick)
    if fmt == "json":
        click.echo(orjson.dumps(report.to_dict()).decode())
    else:
        for issue in report.errors:
            click.echo(str(issue))
        listed = len(report.errors)
        more = f" (showing {listed})" if listed < report.error_count else ""
        click.echo(f"{report.records} records in {len(report.files)} file(s): {report.valid} valid, "
                   f"{report.invalid} invalid, {report.error_count} error(s){more}")
    sys.exit(0 if report.ok else 1)
