"""The house rules, checked on the source: imports run one way along the data's path
(template → record → corpus → hub/train → shift → report → CLI), no import cycle (lazy imports
inside functions included), and no function longer than the limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "corpusforge"
MAX_FUNCTION_LINES = 80

#: Lower layers never import higher ones. A module belongs to the layer of its longest matching prefix.
LAYERS = [
    ("base", ["_version", "errors", "_atomic", "_io", "_yaml", "_timing", "_env", "_config"]),
    ("patterns", ["patterns"]),
    ("records", ["records", "draw", "columnar"]),
    ("templates", ["templates"]),
    ("corpus", ["manifest", "corpus", "corpus_readme", "validate", "stats", "detect", "neardup", "prompts",
                "degeneration"]),
    ("generate", ["generate"]),
    ("hub", ["hub"]),
    ("models", ["lm"]),
    ("write", ["write"]),     # model-written corpora: templates and a model
    ("train", ["train"]),
    ("shift", ["shift"]),
    ("compositions", ["schemas", "demo", "merge"]),
    ("api", [""]),            # corpusforge/__init__.py: the public API gathers everything
    ("cli", ["cli", "__main__"]),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    rest = module.removeprefix("corpusforge").removeprefix(".")
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (rest == prefix or rest.startswith(prefix + ".") or prefix == "") and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    assert best is not None, f"{module} is in no layer; add it to LAYERS"
    return best


def _imports(module: str, path: Path) -> set[str]:
    """Every corpusforge module ``module`` imports, at the top or inside functions."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from . import x` imports the submodule x when there is one
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]
        else:
            continue
        found.update(n for n in names if n == "corpusforge" or n.startswith("corpusforge."))
    return {n if n in MODULES else n.rsplit(".", 1)[0] for n in found} - {module}


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    mine = _layer(module)
    upward = sorted(t for t in GRAPH[module] if _layer(t) > mine)
    assert not upward, (f"{module} (layer {LAYERS[mine][0]}) imports {upward} from a later stage; move the shared "
                        "piece down, or the caller up")


def test_no_import_cycles():
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


#: what the report may read of training: the adapter's run record (its base, corpus and config), nothing else
SHIFT_READS_OF_TRAIN = {"corpusforge.train.adapter_run"}


def test_the_report_does_not_reach_into_the_trainer():
    reached = sorted(f"{m} → {t}" for m in GRAPH if m.startswith("corpusforge.shift")
                     for t in GRAPH[m] if t.startswith("corpusforge.train") and t not in SHIFT_READS_OF_TRAIN)
    assert not reached, f"shift/ imports from train/ beyond the run record: {reached}; move the shared piece down"

def test_no_function_is_too_long():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_rules_can_fail():
    """The checks above see a real upward import and a real cycle when there is one."""
    assert _layer("corpusforge.records") < _layer("corpusforge.templates.spec") < _layer("corpusforge.cli.train_cmd")
    assert "corpusforge.templates.spec" in GRAPH["corpusforge.templates.registry"]
    assert "corpusforge.errors" in GRAPH["corpusforge.train.config"]
