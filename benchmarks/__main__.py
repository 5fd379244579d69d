"""`python -m benchmarks [NAME ...]` (or `make bench`): run the benchmarks, write results.md and results.json."""

from __future__ import annotations

import datetime
import importlib
import sys

from .common import machine, write_results

ALL = ["validation", "generation", "training", "report"]


def main(argv: list[str]) -> None:
    names = argv or ALL
    unknown = [n for n in names if n not in ALL]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; available: {ALL}")
    results = {"machine": machine(), "date": datetime.date.today().isoformat(),
               "command": "python -m benchmarks " + " ".join(names), "benchmarks": {}}
    for name in names:
        print(f"running {name} ...", flush=True)
        results["benchmarks"][name] = importlib.import_module(f"benchmarks.{name}").run()
        print("  " + results["benchmarks"][name]["summary"], flush=True)
    write_results(results)
    print("wrote benchmarks/results.md and benchmarks/results.json")


if __name__ == "__main__":
    main(sys.argv[1:])
