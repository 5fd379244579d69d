"""Where templates come from: built-in packs, plugins, folders — one registry for all.

Sources, in order:
1. entry points in the group ``corpusforge.templates`` (the built-in packs are
   one of them, declared in corpusforge's own pyproject), each a callable that
   returns paths of template files or pack folders;
2. the ``CORPUSFORGE_TEMPLATES`` environment variable (paths separated by ``os.pathsep``);
3. folders passed with ``--templates DIR`` (``extra_paths``).

A pack is a folder of ``*.yaml`` templates (searched recursively) and
optionally ``patterns.yaml`` files declaring new patterns. Two templates with
the same name are an error naming both sources. A plugin that fails to load
is skipped with a warning that names it; the rest still work.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import PluginError, TemplateError
from ..patterns import BUILTIN_PATTERNS, Pattern, merge_patterns, patterns_from_dicts
from .spec import Template, load_template
from .yamlsrc import load_yaml

ENTRY_POINT_GROUP = "corpusforge.templates"
ENV_VAR = "CORPUSFORGE_TEMPLATES"
PATTERNS_FILE = "patterns.yaml"


class PluginWarning(UserWarning):
    """A plugin or pack that could not be loaded and was skipped."""


def builtin_pack_paths() -> list[Path]:
    """The built-in packs (``templates/`` in the repository, ``corpusforge/_packs`` in the wheel)."""
    here = Path(__file__).resolve().parent.parent
    shipped = here / "_packs"
    return [shipped if shipped.is_dir() else here.parent / "templates"]


@dataclass
class Registry:
    """Every known template and pattern, with where each came from."""

    templates: dict[str, Template] = field(default_factory=dict)
    patterns: dict[str, Pattern] = field(default_factory=lambda: dict(BUILTIN_PATTERNS))
    problems: list[str] = field(default_factory=list)

    def get(self, name: str) -> Template:
        try:
            return self.templates[name]
        except KeyError:
            known = ", ".join(sorted(self.templates)) or "(none)"
            raise TemplateError(f"unknown template {name!r}; known templates: {known}",
                                hint="`corpusforge templates list` shows them with their sources") from None

    def add(self, tmpl: Template) -> None:
        old = self.templates.get(tmpl.name)
        if old is not None and old.path and tmpl.path and old.path.resolve() == tmpl.path.resolve():
            return  # the same file reached twice (an editable install also passed with --templates)
        if old is not None:
            raise PluginError(f"template {tmpl.name!r} is defined twice: in {old.path} ({old.source}) "
                              f"and in {tmpl.path} ({tmpl.source}); rename one of them")
        self.templates[tmpl.name] = tmpl

    def list(self) -> list[Template]:
        return [self.templates[n] for n in sorted(self.templates)]


def template_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.name != PATTERNS_FILE
                  and p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def pack_patterns(root: Path) -> list[Pattern]:
    """Patterns declared by ``patterns.yaml`` files of a pack."""
    if root.is_file():
        root = root.parent
        files = [root / PATTERNS_FILE] if (root / PATTERNS_FILE).is_file() else []
    else:
        files = sorted(root.rglob(PATTERNS_FILE))
    found = []
    for f in files:
        data, lines = load_yaml(f)
        if not isinstance(data, dict) or not isinstance(data.get("patterns"), list):
            raise TemplateError("patterns.yaml must hold `patterns:` followed by a list", file=str(f),
                                line=lines.of(()))
        for i, item in enumerate(data["patterns"]):
            try:
                found.extend(patterns_from_dicts([item], str(f)))
            except TemplateError as e:
                message = e.message.replace(f" ({f})", "").replace("patterns[0]", f"patterns[{i}]")
                raise TemplateError(message, file=str(f), line=lines.of(("patterns", i))) from None
    return found


def _entry_point_sources() -> list[tuple[str, list[Path]]]:
    """(source name, paths) from every entry point; a broken plugin is skipped with a warning."""
    sources = []
    eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name != "builtin", ep.name))
    names = {ep.name for ep in eps}
    if "builtin" not in names:  # running from a source tree that was never installed
        sources.append(("built-in", builtin_pack_paths()))
    for ep in eps:
        label = "built-in" if ep.name == "builtin" and ep.value.startswith("corpusforge.") else f"plugin {ep.name}"
        try:
            result = ep.load()()
            paths = [Path(p) for p in ([result] if isinstance(result, (str, os.PathLike)) else result)]
        except Exception as e:  # a plugin may fail in any way; it must not break the rest
            warnings.warn(f"template plugin {ep.name!r} ({ep.value}) failed to load and was skipped: "
                          f"{type(e).__name__}: {e}", PluginWarning, stacklevel=2)
            continue
        sources.append((label, paths))
    return sources


def _env_sources() -> list[tuple[str, list[Path]]]:
    raw = os.environ.get(ENV_VAR, "")
    return [(f"${ENV_VAR}", [Path(p)]) for p in raw.split(os.pathsep) if p.strip()]


def load_registry(extra_paths: Sequence[str | Path] = (), *, include_installed: bool = True) -> Registry:
    """Build the registry from every source. ``extra_paths`` are ``--templates`` folders or files.

    A path given explicitly (``--templates``) that is broken is an error; an
    installed plugin that is broken is a warning.
    """
    sources: list[tuple[str, list[Path], bool]] = []
    if include_installed:
        sources += [(label, paths, False) for label, paths in _entry_point_sources()]
        sources += [(label, paths, True) for label, paths in _env_sources()]
    sources += [(str(p), [Path(p)], True) for p in extra_paths]

    registry = Registry()
    loaded: list[tuple[str, Path, bool]] = []
    for label, paths, strict in sources:
        for path in paths:
            if not path.exists():
                msg = f"template path {path} from {label} does not exist"
                if strict:
                    raise TemplateError(msg)
                warnings.warn(msg, PluginWarning, stacklevel=2)
                continue
            try:
                registry.patterns = merge_patterns(registry.patterns, pack_patterns(path))
            except TemplateError as e:
                if strict or label == "built-in":
                    raise
                warnings.warn(f"{label}: {e}; skipped", PluginWarning, stacklevel=2)
                continue
            loaded.append((label, path, strict))
    for label, path, strict in loaded:
        root = path if path.is_dir() else path.parent
        for f in template_files(path):
            try:
                tmpl = load_template(f, patterns=registry.patterns, source=label, root=root)
            except TemplateError as e:
                if strict or label == "built-in":
                    raise
                warnings.warn(f"{label}: {e}; skipped", PluginWarning, stacklevel=2)
                continue
            registry.add(tmpl)
    return registry


def load_at(path: str | Path, registry: Registry, roots: Sequence[str | Path] = ()) -> list[Template]:
    """Load the template file, or every template of the pack folder, at ``path`` — directly, not through the
    registry — with the registry's patterns and the pack's own.

    The pack's root (where lexicons must stay) is ``path`` for a folder; for a file, the first of ``roots``
    that holds it, else its folder. Two templates of the same name in the pack, or one that takes the
    name of a different template the registry has (a built-in, say), are an error naming both files.
    """
    path = Path(path)
    if not path.exists():
        raise TemplateError("template file or pack folder was not found", file=str(path))
    resolved = [Path(r).resolve() for r in roots if Path(r).is_dir()]
    pack = path if path.is_dir() else next((r for r in resolved if path.resolve().is_relative_to(r)), None)
    root = pack or path.resolve().parent
    # a pack's patterns.yaml files, or for a lone file the one beside it
    patterns = merge_patterns(registry.patterns, pack_patterns(pack or path))
    loaded = [load_template(f, patterns=patterns, source=str(path), root=root) for f in template_files(path)]
    seen: dict[str, Template] = {}
    for tmpl in loaded:
        twin = seen.get(tmpl.name)
        if twin is not None:
            raise PluginError(f"template {tmpl.name!r} is defined twice in the pack: in {twin.path} and in "
                              f"{tmpl.path}; rename one of them (generate would refuse both)")
        known = registry.templates.get(tmpl.name)
        if known is not None and known.sha256 != tmpl.sha256:  # an installed copy of this same pack is no clash
            raise PluginError(f"template {tmpl.name!r} in {tmpl.path} takes the name of the {known.source} template "
                              f"in {known.path}; rename it (generate would refuse both)")
        seen[tmpl.name] = tmpl
    return loaded


def resolve_templates(names: Iterable[str], registry: Registry) -> list[Template]:
    """Look templates up by name, or load them from a path (a file given directly)."""
    out = []
    for name in names:
        if name.endswith((".yaml", ".yml")) and Path(name).is_file():
            out += load_at(name, registry)
        else:
            out.append(registry.get(name))
    return out
