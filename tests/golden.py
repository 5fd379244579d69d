"""Golden snapshots of every built-in template (seed 0, indexes 0-5).

A template's output may change only with a version bump. After bumping,
refresh the snapshots with:  python -m tests.golden
"""

from __future__ import annotations

import json
from pathlib import Path

from corpusforge.templates.registry import load_registry
from corpusforge.templates.sampler import sample as sample_records

GOLDEN = Path(__file__).parent / "golden"
INDEXES = 6


def snapshot(tmpl) -> dict:
    recs = sample_records(tmpl, INDEXES, seed=0)
    return {"template": tmpl.name, "version": tmpl.version,
            "records": [{"text": r["text"], "segments": [[s["role"], s["start"], s["end"]] for s in r["segments"]],
                         "targets": [[t["text"], t["start"], t["end"]] for t in r["targets"]], "id": r["id"]}
                        for r in recs]}


def builtin_templates():
    return [t for t in load_registry(include_installed=True).list() if t.source == "built-in"]


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for tmpl in builtin_templates():
        path = GOLDEN / f"{tmpl.name}.json"
        path.write_text(json.dumps(snapshot(tmpl), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
