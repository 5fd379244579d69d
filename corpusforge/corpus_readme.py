"""The README.md written into every corpus folder (the Hub's dataset card is ``hub/dataset_card.py``)."""

from __future__ import annotations

from .manifest import Manifest


def corpus_readme(manifest: Manifest) -> str:
    counts = manifest.counts
    lines = [
        "# corpusforge corpus", "",
        "A corpus of reasoning structures: each record is a pattern's roles in order, with the marker words",
        "the corpus is meant to strengthen marked as targets. There is no single right answer per record.", "",
        f"- records: {counts.records:,}",
        f"- splits: {', '.join(f'{k} {v:,}' for k, v in counts.by_split.items())}",
        f"- patterns: {', '.join(f'{k} {v:,}' for k, v in counts.by_pattern.items())}",
        f"- seed: {manifest.seed}; continuations per premise: {manifest.continuations}", "",
        "## Templates", "",
        "| template | version | pattern | language | sha256 |", "|---|---|---|---|---|",
    ]
    lines += [f"| {t.name} | {t.version} | {t.pattern} | {t.language} | `{t.sha256[:16]}` |"
              for t in manifest.templates]
    lines += ["", "## Regenerate", "", "```", manifest.command, "```", "",
              f"Seed policy: {manifest.seed_policy}.", ""]
    return "\n".join(lines)
