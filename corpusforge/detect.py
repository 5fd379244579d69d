"""``corpusforge detect``: which reasoning patterns texts realise, by the patterns' own templates' cues
(see ``templates.detect``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson

from ._io import read_text, text_lines
from .errors import TemplateError
from .templates.detect import Detector
from .templates.registry import load_registry


def _texts(path: Path):
    for number, line in enumerate(text_lines(read_text(path, TemplateError, what="text file")), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                item = orjson.loads(line)
                if isinstance(item, dict) and isinstance(item.get("text"), str):
                    line = item["text"]
            except orjson.JSONDecodeError:
                pass
        yield number, line


def detect_files(files: Sequence[str | Path], *, templates: Sequence[str | Path] = (),
                 patterns: list[str] | None = None) -> dict:
    """Per text (one a line): the patterns it realises; and how many texts realise each pattern."""
    registry = load_registry(templates)
    chosen = [t for t in registry.list() if patterns is None or t.pattern.name in patterns]
    if patterns:
        unknown = sorted(set(patterns) - {t.pattern.name for t in registry.list()})
        if unknown:
            raise TemplateError(f"no template renders pattern(s) {unknown}; known: "
                                f"{', '.join(sorted({t.pattern.name for t in registry.list()}))}")
    detector = Detector(chosen)
    rows = [{"file": str(f), "line": n, "patterns": detector.patterns_in(text)}
            for f in files for n, text in _texts(Path(f))]
    by_pattern = {p: sum(p in r["patterns"] for r in rows) for p in detector.patterns}
    undetectable = sorted({t.pattern.name for t in chosen} - set(detector.patterns))
    return {"count": len(rows), "texts": rows, "by_pattern": by_pattern, "undetectable": undetectable}
