from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from .options import Int, domain_errors, templates_option


@click.group("templates")
def command() -> None:
    """List, show, lint, scaffold and test templates (built-in packs and plugins)."""


@command.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@templates_option
@domain_errors
def list_(fmt: str, template_paths: tuple[str, ...]) -> None:
    """Every known template: name, pattern, language, version, source."""
    from ..templates.registry import load_registry

    rows = [t.describe() for t in load_registry(template_paths).list()]
    if fmt == "json":
        click.echo(orjson.dumps(rows).decode())
        return
    click.echo(f"{'name':<28} {'pattern':<20} {'language':<8} {'version':>7}  source")
    for r in rows:
        click.echo(f"{r['name']:<28} {r['pattern']:<20} {r['language']:<8} {r['version']:>7}  {r['source']}")


def _marked(rec: dict) -> str:
    """The text with roles in [role| ...] and targets in «...»."""
    text, out = rec["text"], []
    starts = {t["start"]: t for t in rec["targets"]}
    ends = {t["end"] for t in rec["targets"]}
    for seg in rec["segments"]:
        out.append(click.style(f"[{seg['role']}|", fg="cyan"))
        for i in range(seg["start"], seg["end"]):
            if i in starts:
                out.append(click.style("«", fg="yellow"))
            out.append(text[i])
            if i + 1 in ends:
                out.append(click.style("»", fg="yellow"))
        out.append(click.style("]", fg="cyan"))
    return "".join(out)


@command.command("show")
@click.argument("name")
@click.option("--n", "n", type=Int(1), default=5, show_default=True, help="Samples to render.")
@click.option("--seed", type=Int(), default=0, show_default=True)
@templates_option
@domain_errors
def show(name: str, n: int, seed: int, template_paths: tuple[str, ...]) -> None:
    """Render a few samples of NAME with their roles and «targets» marked."""
    from ..templates.registry import load_registry, resolve_templates
    from ..templates.sampler import sample

    tmpl = resolve_templates([name], load_registry(template_paths))[0]
    click.echo(f"{tmpl.ref}  pattern {tmpl.pattern.name} ({' → '.join(tmpl.pattern.roles)})  "
               f"language {tmpl.language}  source {tmpl.source}")
    click.echo(f"{tmpl.spec.description}  space size {tmpl.space_size():,}")
    records = sample(tmpl, n, seed=seed)
    for rec in records:
        click.echo(f"  {_marked(rec)}")
    _written_parts(tmpl, records[0] if records else None)


def _written_parts(tmpl, rec: dict | None) -> None:
    """What a model writes of NAME under ``generate --writer``: the words after the last role's marker, and, with
    ``--prompts``, each role of a skeleton (after its opening words, or whole in its form)."""
    from ..write.answer import skeletons
    from ..write.run import premise_of

    gap = click.style("⟨model⟩", fg="green")
    premise = premise_of(0, rec) if rec else None
    click.echo("model-written (generate --writer): " + (
        f"{premise.prompt} {gap}  (one clause, to the sentence's end)" if premise else
        "not possible: the last role carries no target marker to continue from"))
    classic, forms = skeletons(tmpl), skeletons(tmpl, forms=True)
    if not forms:
        click.echo("answering prompts (--prompts): not possible: no variant has a slot in every role, ends each "
                   "with , ; : . ! or ? and holds no {% %} block")
        return
    click.echo(f"answering prompts (--prompts): {len(forms)} of {len(tmpl.variants)} variants"
               + ("" if len(classic) == len(forms) else
                  f" ({len(forms) - len(classic)} only under a grammar — --engine auto or xgrammar, or a server: a "
                  "role that opens with a slot is written whole in its form)"))
    for sk in forms:
        roles = []
        for i, (role, opening, end) in enumerate(sk.roles):
            pieces = sk.forms[i] if sk.forms else None
            body = opening + " " + gap + end if pieces is None else "".join(    # the answer opens with a word
                p if p is not None else gap if i == j == 0 else " " + gap for j, p in enumerate(pieces))
            roles.append(click.style(f"[{role}|", fg="cyan") + body + click.style("]", fg="cyan"))
        click.echo(f"  variant {sk.variant}: " + "".join(roles))


def _report_text(report) -> None:
    click.echo(f"{report.template}: space size {report.space_size:,}")
    for c in report.checks:
        click.echo(f"  {c}")


def _run_checks(targets: tuple[str, ...], template_paths: tuple[str, ...], n: int, fmt: str, strict: bool,
                as_paths: bool) -> None:
    from ..templates.registry import load_at, load_registry, resolve_templates
    from ..templates.testing import check_templates

    registry = load_registry(template_paths)
    templates = []
    for target in targets:
        if as_paths or Path(target).exists():
            templates += load_at(target, registry, roots=template_paths)
        else:
            templates += resolve_templates([target], registry)
    if not templates:
        raise click.UsageError(f"no templates found in {', '.join(targets)}")
    reports = check_templates(templates, registry.patterns, n=n)
    ok = all(r.ok_strict if strict else r.ok for r in reports)
    if fmt == "json":
        click.echo(orjson.dumps([r.to_dict() for r in reports]).decode())
    else:
        for r in reports:
            _report_text(r)
        click.echo(f"{len(reports)} template(s): {'all pass' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


def check_options(func):
    """The options ``lint`` and ``test`` share."""
    for option in reversed([
        click.option("--n", "n", type=Int(1), default=300, show_default=True,
                     help="Samples to render."),
        click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True),
        click.option("--strict", is_flag=True, help="Warnings (small space, silent variants) fail too."),
        templates_option,
    ]):
        func = option(func)
    return domain_errors(func)


@command.command("lint")
@click.argument("paths", nargs=-1, required=True)
@check_options
def lint(paths, n, fmt, strict, template_paths) -> None:
    """Check template files or pack folders: format, samples, records, space size, uniqueness."""
    _run_checks(paths, template_paths, n, fmt, strict, as_paths=True)


@command.command("test")
@click.argument("targets", nargs=-1, required=True)
@check_options
def test(targets, n, fmt, strict, template_paths) -> None:
    """The conformance kit, on installed template NAMEs or PATHs: schema, determinism, sandbox, uniqueness."""
    _run_checks(targets, template_paths, n, fmt, strict, as_paths=False)


@command.command("new")
@click.argument("name")
@click.option("--pattern", "pattern", required=True, help="The pattern the template renders.")
@click.option("--language", default="en", show_default=True)
@click.option("--plugin", is_flag=True,
              help="Scaffold a pip-installable plugin package with an entry point and a test.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="Where to create the NAME folder.")
@domain_errors
def new(name: str, pattern: str, language: str, plugin: bool, out_dir: str) -> None:
    """Scaffold a template pack (or, with --plugin, a plugin package) named NAME."""
    from ..templates.scaffold import scaffold

    root = scaffold(name, pattern, language=language, plugin=plugin, out_dir=out_dir)
    click.echo(f"created {root}")
