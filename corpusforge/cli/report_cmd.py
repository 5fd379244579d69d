from __future__ import annotations

import click

from .options import domain_errors


@click.command("report")
@click.option("--model", default="smollm2-135m", show_default=True, help="The adapter's base model.")
@click.option("--adapter", required=True, type=click.Path(), help="The peft adapter folder.")
@click.option("--out", required=True, type=click.Path(), help="The report folder to write.")
@click.option("--probes", "probes_file", type=click.Path(), help="Probe file (JSONL or YAML); default: from --corpus.")
@click.option("--controls", "controls_file", type=click.Path(), help="Control prompts; default: the shipped set.")
@click.option("--corpus", type=click.Path(), help="Derive probes from this corpus's held-out split.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N | mps.")
@click.option("--dtype", default="auto", show_default=True,
              type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
              help="auto: bfloat16 on a GPU that supports it, float32 elsewhere.")
@click.option("--chat/--text", "chat", default=None, help="Probes in chat form (the model's chat template) or as plain "
              "text; default: as the adapter was trained (an adapter trained with --format answer: each held-out "
              "record after its prompt and a line break).")
@click.option("--transfer", is_flag=True, help="Also continue 200 neutral prompts (English and Russian) with the base, "
              "the LoRA and the base prompted with 3 of the corpus's records, and count the patterns realised "
              "(needs --corpus; a few minutes on a CPU).")
@domain_errors
def command(model, adapter, out, probes_file, controls_file, corpus, overwrite, device, dtype, chat,
            transfer) -> None:
    """Measure how the adapter moved the targeted tokens, and what else moved; write JSON, figures and HTML."""
    from .._io import check_output
    from ..errors import ReportError
    from ..shift.report import build_report, summary_table, write_report

    inputs = [adapter, model, probes_file, controls_file, corpus]
    check_output(out, ReportError, overwrite=overwrite, inputs=inputs)   # before a minute of measuring, not after
    report = build_report(model, adapter, probes_file=probes_file, controls_file=controls_file, corpus=corpus,
                          device=device, dtype=dtype, chat=chat, transfer=transfer, echo=click.echo)
    path = write_report(report, out, overwrite=overwrite, inputs=inputs)
    click.echo(summary_table(report))
    click.echo(f"report: {path / 'index.html'}")
