from __future__ import annotations

import json

import click

from .options import domain_errors


@click.command("models")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@domain_errors
def command(fmt: str) -> None:
    """The embedded models (--model NAME anywhere a model is taken): what each is, its licence, whether it is
    installed here and converted into the cache."""
    from ..lm.embedded import DEFAULT_MODEL, embedded_models

    rows = [{"name": s.model.name, "default": s.model.name == DEFAULT_MODEL, "description": s.model.description,
             "licence": s.model.licence, "installed": s.installed,
             "converted": str(s.converted) if s.converted else None, "install": s.model.install}
            for s in embedded_models()]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    for r in rows:
        state = ("converted: " + r["converted"]) if r["converted"] else \
            "installed; converted on first use" if r["installed"] else f"not installed: {r['install']}"
        click.echo(f"{r['name']}{' (default)' if r['default'] else ''}\n  {r['description']}\n"
                   f"  licence: {r['licence']}\n  {state}")
