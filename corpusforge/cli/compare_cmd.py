from __future__ import annotations

import click

from ..shift.config import ReportConfig
from .options import Int, config_option, domain_errors


@click.command("compare")
@click.option("--adapter", required=True, type=click.Path(), help="The peft adapter folder (trained on --corpus).")
@click.option("--corpus", type=click.Path(), help="The corpus it was trained on (default: the one its run.json "
              "names): its premises fit the steering vector, its records are the prompt's examples, its held-out "
              "split gives the probes.")
@click.option("--out", required=True, type=click.Path(), help="The folder to write: compare.json, index.html, "
              "vector/.")
@config_option(ReportConfig, "model")
@click.option("--k", type=Int(1, 64), default=3, show_default=True, help="Examples the prompt method gives.")
@click.option("--transfer-prompts", type=Int(1, 200), default=100, show_default=True,
              help="How many of the 200 transfer prompts to continue, evenly spaced (half English, half Russian).")
@config_option(ReportConfig, "device")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@domain_errors
def command(adapter, corpus, out, model, k, transfer_prompts, device, overwrite) -> None:
    """The LoRA beside a steering vector fitted on the same corpus and a k-shot prompt: probes, held-out controls,
    each method's floor (the same edit in a random direction) and transfer to neutral prompts, in one table.

    \b
    Example:
      corpusforge compare --adapter demo-out/adapter --corpus demo-out/corpus --out cmp
    """
    from ..shift.compare import compare
    from ..shift.compare_page import table_lines

    result = compare(adapter, out, corpus=corpus, model=model, k=k, transfer_prompts=transfer_prompts,
                     device=device or "auto", echo=click.echo, overwrite=overwrite)
    for line in table_lines(result):
        click.echo(line)
    click.echo(f"comparison: {out}/index.html")
