"""The shift report, end to end: ``build_report`` measures (``build``), ``write_report`` writes JSON, figures and
one self-contained HTML page (``page``); the report.json contract is ``report_model.ShiftReport``."""

from __future__ import annotations

from .build import build_report
from .page import summary_table, write_report
from .report_model import ShiftReport, report_json_schema

__all__ = ["ShiftReport", "build_report", "report_json_schema", "summary_table", "write_report"]
