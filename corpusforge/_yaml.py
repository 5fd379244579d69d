"""Reading YAML safely: bounded, with line numbers, and only the plain subset.

Templates and packs come from strangers, so YAML is composed into nodes first and
then built into Python objects by hand, with a budget: an alias bomb (``b: [*a, *a,
...]`` nine levels deep, a billion nodes from a few lines) stops at the budget
with a clear error instead of filling the memory. Only plain mappings (string
keys, each once), lists and scalars are read; ``Lines`` records the 1-based line
of every node by its path inside the document, so every error can say where it is.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import CorpusforgeError

#: The most nodes a document may expand to (aliases count each time they are used).
MAX_NODES = 500_000

#: libyaml's parser where PyYAML was built with it (about 10x faster, the same nodes and marks)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def compose_bounded(text: str, source: str, error: type[CorpusforgeError]) -> yaml.Node | None:
    """The document's node graph (None for an empty document); malformed YAML raises ``error`` with its line."""
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise error(f"malformed YAML: {e.problem or e.context}", file=source,
                    line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise error(f"malformed YAML: {e}", file=source) from None
    except RecursionError:
        raise error("the YAML is nested too deeply", file=source) from None


class _Builder:
    """Builds plain Python objects from nodes, counting every node it visits."""

    def __init__(self, source: str, error: type[CorpusforgeError], lines: Lines | None, budget: int):
        self.source, self.error, self.lines, self.left = source, error, lines, budget
        self.scalars = yaml.SafeLoader("")

    def fail(self, message: str, node: yaml.Node):
        raise self.error(message, file=self.source, line=node.start_mark.line + 1)

    def build(self, node: yaml.Node, path: tuple) -> Any:
        self.left -= 1
        if self.left < 0:
            self.fail(f"the YAML expands to more than {MAX_NODES:,} values (aliases used over and over?); "
                      "write the values out or shorten the file", node)
        if self.lines is not None:
            self.lines.set(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail("mapping keys must be plain strings", key_node)
                key = self.scalars.construct_scalar(key_node)
                if key in out:
                    self.fail(f"key {key!r} appears twice", key_node)
                out[key] = self.build(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        try:
            return self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            self.fail(f"cannot read this value: {e}", node)


def construct_plain(node: yaml.Node, source: str, error: type[CorpusforgeError], lines: Lines | None = None,
                    *, budget: int = MAX_NODES) -> Any:
    """Python objects from ``node`` (dicts, lists, scalars); ``lines`` records where each one is."""
    try:
        return _Builder(source, error, lines, budget).build(node, ())
    except RecursionError:
        raise error("the YAML is nested too deeply", file=source) from None
