from __future__ import annotations

import click

from .options import InputPath, Int, completion_roles, domain_errors


@click.command("push")
@click.argument("corpus", type=InputPath("folder"))
@click.option("--repo", "repo_id", required=True, metavar="OWNER/NAME", help="The dataset repository on the Hub.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--revision", help="Branch to push to (created if missing); default main.")
@click.option("--message", help="Commit message.")
@click.option("--license", "license_", help="License id for the card (e.g. cc-by-4.0); recorded in the corpus "
              "manifest once the push succeeds.")
@click.option("--pretty-name", help="Title of the dataset card.")
@click.option("--staging", type=click.Path(file_okay=False), help="Staging folder (default: CORPUS.hub-staging).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --staging folder that an earlier push did not "
              "make (one it made is replaced anyway); never the corpus.")
@click.option("--dry-run", is_flag=True, help="Stage, check and print the plan; upload nothing. Nothing is written "
              "but the staging folder.")
@click.option("--retries", type=Int(1), default=4, show_default=True,
              help="Attempts per request on transient errors (5xx, 429, connection).")
@click.option("--retry-wait", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds before the first retry; doubled after each.")
@click.option("--format", "fmt", type=click.Choice(["records", "prompt-completion", "messages"]), default="records",
              show_default=True, help="records: the corpus as it is; or a trainer's shape (TRL's prompt-completion "
                                      "or messages).")
@click.option("--system", help="messages: a system turn to put first.")
@click.option("--completion-from", help="The role(s) the completion starts at (default: every role after the first).")
@domain_errors
def command(corpus, repo_id, private, revision, message, license_, pretty_name, staging, overwrite, dry_run, retries,
            retry_wait, fmt, system, completion_from) -> None:
    """Push CORPUS to the Hugging Face Hub as a dataset with a real dataset card.

    The token comes from HF_TOKEN or your Hugging Face login. The exact
    repository layout is staged and checked locally first.
    """
    from ..hub.push import PushConfig, push_corpus
    from ..hub.shapes import ShapeOptions

    roles = completion_roles(corpus, completion_from)
    if fmt == "records" and (system or roles):
        raise click.UsageError("--system and --completion-from go with --format prompt-completion or messages")
    shape = ShapeOptions(fmt, system, roles) if fmt != "records" else None

    push_corpus(corpus, PushConfig(repo_id=repo_id, private=private, revision=revision, message=message,
                                   dry_run=dry_run, license=license_, pretty_name=pretty_name, staging=staging,
                                   overwrite=overwrite, retries=retries, retry_wait=retry_wait, shape=shape),
                echo=click.echo)
