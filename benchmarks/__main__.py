"""`python -m benchmarks [NAME ...]` (or `make bench`): run the benchmarks, write results.md and results.json."""

from __future__ import annotations

import datetime
import importlib
import json
import sys

from .common import HERE, machine, write_results

ALL = ["validation", "generation", "writing", "training", "training_gemma", "steps", "profile", "matmul", "report",
       "quality", "quality_gemma", "chat", "compare"]


def main(argv: list[str]) -> None:
    names = argv or ALL
    unknown = [n for n in names if n not in ALL]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; available: {ALL}")
    previous = HERE / "results.json"
    kept = json.loads(previous.read_text())["benchmarks"] if previous.is_file() else {}
    today = datetime.date.today().isoformat()
    results = {"machine": machine(), "date": today, "command": "python -m benchmarks " + " ".join(names),
               "benchmarks": {k: v for k, v in kept.items() if k in ALL}}
    for name in names:  # a partial run replaces only the benchmarks it ran
        print(f"running {name} ...", flush=True)
        results["benchmarks"][name] = dict(importlib.import_module(f"benchmarks.{name}").run(), date=today,
                                           machine=machine())
        print("  " + results["benchmarks"][name]["summary"], flush=True)
    write_results(results)
    print("wrote benchmarks/results.md and benchmarks/results.json")


if __name__ == "__main__":
    main(sys.argv[1:])
