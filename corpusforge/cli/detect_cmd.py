from __future__ import annotations

import click
import orjson

from .options import InputPath, domain_errors, templates_option


@click.command("detect")
@click.argument("files", nargs=-1, required=True, type=InputPath("file"))
@click.option("--pattern", "patterns", multiple=True, help="Only these patterns (repeatable; default: every one).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@templates_option
@domain_errors
def command(files, patterns, fmt, template_paths) -> None:
    """Which reasoning patterns each text realises, with cues read from the patterns' own templates.

    Each non-blank line of FILES is one text (a JSONL line's "text" field is used when there is one), so a
    corpus data file, a file of model outputs or plain prose all work.

    \b
    Examples:
      corpusforge detect outputs.txt
      corpusforge detect my-corpus/data/train.jsonl --pattern if_then --format json
    """
    from ..detect import detect_files

    result = detect_files(files, templates=template_paths, patterns=list(patterns) or None)
    if fmt == "json":
        click.echo(orjson.dumps(result).decode())
        return
    for row in result["texts"]:
        found = ", ".join(row["patterns"]) or "—"
        click.echo(f"{row['file']}:{row['line']}: {found}")
    total = result["count"]
    counts = ", ".join(f"{p} {n}/{total}" for p, n in result["by_pattern"].items())
    click.echo(f"{total} text(s); realised: {counts or 'none'}"
               + (f"; not detectable from their templates: {', '.join(result['undetectable'])}"
                  if result["undetectable"] else ""))
