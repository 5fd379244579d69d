"""Reading template YAML with line numbers, so every error can say where it is.

``load_yaml`` returns the data and a ``Lines`` object that maps a path inside
the data (``("variants", 2, "consequence")``) to its 1-based line in the file.
Only the safe, plain subset is read, with a bound on how far aliases may expand
(see ``corpusforge._yaml``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._io import read_text
from .._yaml import Lines, compose_bounded, construct_plain
from ..errors import TemplateError

#: A template (or patterns.yaml) larger than this is not a template.
MAX_TEMPLATE_BYTES = 4 * 1024 * 1024

__all__ = ["Lines", "load_yaml"]


def load_yaml(path: str | Path, text: str | None = None) -> tuple[Any, Lines]:
    """Parse a YAML file (or ``text`` said to come from it) with line numbers."""
    source = str(path)
    if text is None:
        text = read_text(path, TemplateError, what="YAML file", limit=MAX_TEMPLATE_BYTES)
    node = compose_bounded(text, source, TemplateError)
    if node is None:
        raise TemplateError("the file is empty", file=source)
    lines = Lines()
    return construct_plain(node, source, TemplateError, lines), lines
