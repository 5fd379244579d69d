from __future__ import annotations

import click

from .options import domain_errors


@click.group("schema")
def command() -> None:
    """The published JSON Schemas (Draft 2020-12) of corpusforge's file formats."""


@command.command("export")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="schemas", show_default=True,
              help="Folder to write the schema files into.")
@domain_errors
def export(out_dir: str) -> None:
    """Write every schema, generated from the models, into OUT."""
    from ..schemas import export_schemas

    for path in export_schemas(out_dir):
        click.echo(str(path))


@command.command("show")
@click.argument("name", type=click.Choice(["record", "manifest", "probes", "run", "report"]))
def show(name: str) -> None:
    """Print one schema."""
    from ..schemas import render_schema

    click.echo(render_schema(name), nl=False)
