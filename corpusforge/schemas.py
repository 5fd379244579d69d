"""The JSON Schema files published under ``schemas/``, generated from the models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ._atomic import write_atomic


def _record() -> dict:
    from .records import record_json_schema

    return record_json_schema()


def _probes() -> dict:
    from .shift.probes import probes_json_schema

    return probes_json_schema()


def _report() -> dict:
    from .shift.report import report_json_schema

    return report_json_schema()


#: file stem → function returning the schema dict
SCHEMAS: dict[str, Callable[[], dict]] = {"record": _record, "probes": _probes, "report": _report}


def render_schema(name: str) -> str:
    """The schema as committed: pretty JSON, sorted keys, trailing newline."""
    return json.dumps(SCHEMAS[name](), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(out_dir: str | Path) -> list[Path]:
    written = []
    for name in SCHEMAS:
        path = Path(out_dir) / f"{name}.schema.json"
        write_atomic(path, render_schema(name))
        written.append(path)
    return written
