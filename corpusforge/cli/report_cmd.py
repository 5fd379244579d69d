from __future__ import annotations

import click

from ..shift.config import ReportConfig
from .options import Int, config_option, domain_errors


def _report_options(func):
    """One option per ReportConfig field a user sets from the command line (help from the field)."""
    options = [
        config_option(ReportConfig, "model"),
        config_option(ReportConfig, "probes", type=click.Path()),
        config_option(ReportConfig, "controls", type=click.Path()),
        config_option(ReportConfig, "corpus", type=click.Path()),
        config_option(ReportConfig, "max_probes", type=Int(1, 100_000)),
        config_option(ReportConfig, "max_controls", type=Int(1, 100_000)),
        config_option(ReportConfig, "device"),
        config_option(ReportConfig, "dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"])),
        config_option(ReportConfig, "chat", "--chat/--text"),
        config_option(ReportConfig, "transfer", "--transfer/--no-transfer"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.command("report")
@click.option("--adapter", required=True, type=click.Path(), help="The peft adapter folder.")
@click.option("--out", required=True, type=click.Path(), help="The report folder to write.")
@_report_options
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@domain_errors
def command(adapter, out, overwrite, **flags) -> None:
    """Measure how the adapter moved the targeted tokens, and what else moved; write JSON, figures and HTML."""
    from .._io import check_output
    from ..errors import ReportError
    from ..shift.config import make_report_config
    from ..shift.report import build_report, summary_table, write_report

    cfg = make_report_config(**{k: v for k, v in flags.items() if v is not None})
    inputs = [adapter, cfg.model, cfg.probes, cfg.controls, cfg.corpus]
    check_output(out, ReportError, overwrite=overwrite, inputs=inputs)   # before a minute of measuring, not after
    report = build_report(adapter, cfg, echo=click.echo)
    path = write_report(report, out, overwrite=overwrite, inputs=inputs)
    click.echo(summary_table(report))
    click.echo(f"report: {path / 'index.html'}")
