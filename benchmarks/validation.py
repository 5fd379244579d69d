"""Validation: corpusforge's streaming validator vs the plain jsonschema Draft202012Validator, one core.

Both read the same JSONL file line by line: the baseline does ``json.loads`` and
``Draft202012Validator.is_valid`` against the committed ``schemas/record.schema.json``;
corpusforge runs ``validate_paths`` (pydantic model + structural checks). One
record in fifty is broken at the schema level (wrong type, missing or unknown
field), and the per-line verdicts of both must agree.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from .common import WORK, Timer, run_child

PEAK = """
import sys
from corpusforge.validate import validate_paths
validate_paths([sys.argv[1]])
"""

N = 100_000


def make_file(path: Path, n: int) -> None:
    from corpusforge.generate import GenerateConfig, generate

    corpus = WORK / "validation-corpus"
    if not corpus.exists():
        generate(GenerateConfig(mix={"if_then.en": 1, "paradox_conclusion.en": 1, "silence.ru": 1, "contrast.ru": 1},
                                n=n, seed=11, splits={"train": 1.0}, overwrite=True), corpus)
    rng = random.Random(0)
    breakers = [lambda r: r.update(index="7"), lambda r: r.pop("text"), lambda r: r.update(colour="blue"),
                lambda r: r["segments"][0].update(start=-1), lambda r: r.update(id="not-a-hash")]
    with open(corpus / "data" / "train.jsonl", encoding="utf-8") as src, open(path, "w", encoding="utf-8") as out:
        for i, line in enumerate(src):
            if i % 50 == 49:
                rec = json.loads(line)
                rng.choice(breakers)(rec)
                line = json.dumps(rec, ensure_ascii=False) + "\n"
            out.write(line)


def run() -> dict:
    import jsonschema

    from corpusforge.validate import validate_paths

    WORK.mkdir(exist_ok=True)
    path = WORK / "validation.jsonl"
    make_file(path, N)

    with Timer() as ours:
        report = validate_paths([path])
    ours_invalid = {e.line for e in report.errors}

    schema = json.loads((Path(__file__).resolve().parent.parent / "schemas" / "record.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    base_invalid = set()
    with Timer() as base:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not validator.is_valid(json.loads(line)):
                    base_invalid.add(number)

    agree = ours_invalid == base_invalid
    _, peak, _ = run_child(PEAK, str(path))  # memory stays flat: the file is streamed
    ours_rate, base_rate = report.records / ours.seconds, report.records / base.seconds
    ratio = ours_rate / base_rate
    return {
        "summary": (f"corpusforge validate: {ours_rate:,.0f} records/s; jsonschema: {base_rate:,.0f} records/s; "
                    f"ratio {ratio:.1f}x (goal: >= 100,000 records/s and >= 25x). Verdicts agree on all "
                    f"{report.records:,} records: {agree} ({len(ours_invalid):,} invalid). Peak RSS {peak:,.0f} MiB."),
        "table": {"records": f"{report.records:,}", "corpusforge records/s": f"{ours_rate:,.0f}",
                  "jsonschema records/s": f"{base_rate:,.0f}", "ratio": f"{ratio:.1f}x",
                  "verdicts agree": str(agree), "peak RSS (streaming)": f"{peak:,.0f} MiB"},
        "ratio": ratio, "records_per_s": ours_rate, "baseline_records_per_s": base_rate, "verdicts_agree": agree,
        "peak_rss_mib": peak,
    }
