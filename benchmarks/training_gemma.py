"""Training throughput on Gemma 3 270M (issue 26): ``benchmarks.training`` on the second embedded model — its
262,144-word head is where the two trainers differ most (TRL computes it at every position). Needs ``make gemma``."""

from __future__ import annotations

from .training import run as training_run


def run() -> dict:
    return training_run("gemma3-270m")
