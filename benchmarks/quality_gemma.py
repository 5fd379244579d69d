"""Quality of the default recipe on the second embedded model, Gemma 3 270M (issue 26): ``benchmarks.quality`` with
``--model gemma3-270m`` — the same corpus, probes and held-out controls as the SmolLM2 row. Needs ``make gemma``."""

from __future__ import annotations

from .quality import run as quality_run


def run() -> dict:
    return quality_run("gemma3-270m")
