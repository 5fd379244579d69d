"""The whole job in one call, as far as it is built: generate → validate → stats.

Each step is one plain function of the library; the demo is their composition.
(Training a LoRA and the shift report join this pipeline as they are built.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .generate import GenerateConfig, generate
from .stats import corpus_stats
from .validate import ValidationReport, validate_paths

DEMO_MIX = {"if_then.en": 1.0, "paradox_conclusion.en": 1.0}


@dataclass
class DemoResult:
    corpus: Path
    validation: ValidationReport
    stats: dict


def run_demo(out: str | Path, *, n: int = 2000, seed: int = 0, echo=print) -> DemoResult:
    out = Path(out)
    corpus = out / "corpus"
    echo(f"[1/3] generating {n:,} records from {', '.join(DEMO_MIX)} into {corpus}")
    generate(GenerateConfig(mix=DEMO_MIX, n=n, seed=seed, overwrite=True), corpus)
    echo("[2/3] validating")
    report = validate_paths([corpus])
    echo(f"      {report.records:,} records: {report.valid:,} valid, {report.invalid:,} invalid")
    echo("[3/3] statistics")
    stats = corpus_stats([corpus])
    return DemoResult(corpus, report, stats)
