"""The JSON Schema files published under ``schemas/``, generated from the models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ._atomic import make_parent, write_files_atomic
from ._io import check_output, os_error_text
from .errors import CorpusforgeError


def _record() -> dict:
    from .records import record_json_schema

    return record_json_schema()


def _probes() -> dict:
    from .shift.probes import probes_json_schema

    return probes_json_schema()


def _report() -> dict:
    from .shift.report import report_json_schema

    return report_json_schema()


def _manifest() -> dict:
    from .manifest import manifest_json_schema

    return manifest_json_schema()


def _run() -> dict:
    from .train.adapter_run import run_json_schema

    return run_json_schema()


#: file stem → function returning the schema dict
SCHEMAS: dict[str, Callable[[], dict]] = {"record": _record, "manifest": _manifest, "probes": _probes,
                                          "run": _run, "report": _report}


def render_schema(name: str) -> str:
    """The schema as committed: pretty JSON, sorted keys, trailing newline."""
    return json.dumps(SCHEMAS[name](), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_schemas(out_dir: str | Path) -> list[Path]:
    """Write every schema into ``out_dir``, as one set: all files change, or none does."""
    out = Path(out_dir)
    if not out.is_dir():
        check_output(out, CorpusforgeError)
        make_parent(out / "x")
    files = {out / f"{name}.schema.json": render_schema(name) for name in SCHEMAS}
    try:
        write_files_atomic(files)
    except OSError as e:
        raise CorpusforgeError(f"cannot write the schemas into {out}: {os_error_text(e)}",
                               hint="nothing was changed there") from None
    return list(files)
