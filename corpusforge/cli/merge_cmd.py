from __future__ import annotations

import click

from .options import InputPath, domain_errors


@click.command("merge")
@click.option("--adapter", required=True, type=InputPath("folder"), help="The peft adapter folder.")
@click.option("--out", required=True, type=click.Path(), help="The merged model folder to write.")
@click.option("--model", help="The base model (default: the one in the adapter's run.json).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True,
              help="The merged weights' dtype.")
@click.option("--tolerance", type=float, default=0.01, show_default=True,
              help="Largest KL(merged ‖ unmerged) in nats, over the probes and controls, that is accepted.")
@click.option("--probes", "probes_file", type=InputPath("file"), help="Probe file; default: from the corpus.")
@click.option("--corpus", type=click.Path(), help="Derive probes from this corpus (default: the adapter's).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@domain_errors
def command(adapter, out, model, dtype, tolerance, probes_file, corpus, overwrite) -> None:
    """Merge an adapter into its base model and write a plain transformers model folder, if it still matches.

    The merged model is compared with the unmerged adapter on the probes and held-out controls; above
    --tolerance nothing is written.

    \b
    Examples:
      corpusforge merge --adapter my-adapter --out my-merged-model
      corpusforge merge --adapter my-adapter --out m16 --dtype bfloat16 --tolerance 0.05
    """
    from ..merge import merge_adapter

    result = merge_adapter(adapter, out, model=model, dtype=dtype, tolerance=tolerance, probes_file=probes_file,
                           corpus=corpus, overwrite=overwrite, echo=click.echo)
    click.echo(f"wrote {result.out}: KL(merged ‖ unmerged) over {result.prompts} prompts: mean {result.mean_kl:.2e}, "
               f"max {result.max_kl:.2e} nats ({result.dtype})")
