"""Reading YAML with line numbers, so every error can say where it is.

``load_yaml`` returns the data and a ``Lines`` object that maps a path inside
the data (``("variants", 2, "consequence")``) to its 1-based line in the file.
Only the safe YAML subset is read: plain mappings, lists and scalars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import CorpusforgeError, TemplateError


class Lines:
    """1-based line numbers of every node, by its path inside the document."""

    def __init__(self) -> None:
        self._lines: dict[tuple, int] = {}

    def set(self, path: tuple, line: int) -> None:
        self._lines[path] = line

    def of(self, path: tuple | list) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get((), None)


def _construct(node: yaml.Node, path: tuple, lines: Lines, source: str) -> Any:
    lines.set(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise TemplateError("mapping keys must be plain strings", file=source,
                                    line=key_node.start_mark.line + 1)
            key = yaml.SafeLoader.construct_scalar(yaml.SafeLoader(""), key_node)
            if key in out:
                raise TemplateError(f"key {key!r} appears twice", file=source, line=key_node.start_mark.line + 1)
            out[key] = _construct(value_node, path + (key,), lines, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), lines, source) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as e:
        raise TemplateError(f"cannot read this value: {e}", file=source, line=node.start_mark.line + 1) from None


#: libyaml's parser where PyYAML was built with it (about 10x faster, the same nodes and marks)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path, text: str | None = None) -> tuple[Any, Lines]:
    """Parse a YAML file (or ``text`` said to come from it) with line numbers."""
    source = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise TemplateError(f"not valid UTF-8 (byte {e.start}); save the file as UTF-8", file=source) from None
        except OSError as e:
            raise TemplateError(f"cannot read the file: {e.strerror}", file=source) from None
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise TemplateError(f"malformed YAML: {e.problem or e.context}", file=source, line=line) from None
    except yaml.YAMLError as e:
        raise TemplateError(f"malformed YAML: {e}", file=source) from None
    lines = Lines()
    if node is None:
        raise TemplateError("the file is empty", file=source)
    return _construct(node, (), lines, source), lines


def read_plain_yaml(path: str | Path, error: type[CorpusforgeError], text: str | None = None) -> Any:
    """Parse a YAML file (no line map); a missing file or malformed YAML raises ``error`` with file and line."""
    try:
        text = Path(path).read_text(encoding="utf-8") if text is None else text
    except FileNotFoundError:
        raise error("file not found", file=str(path)) from None
    except UnicodeDecodeError as e:
        raise error(f"not valid UTF-8 (byte {e.start})", file=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise error(f"malformed YAML: {getattr(e, 'problem', e)}", file=str(path),
                    line=mark.line + 1 if mark else None) from None
