"""What a run writes beside its data: ``manifest.json`` and the corpus folder's ``README.md``."""

from __future__ import annotations

from pathlib import Path

from .._atomic import sha256_file, write_atomic
from .._version import __version__
from ..corpus_readme import corpus_readme
from ..manifest import Counts, DataFile, Manifest, PatternEntry, TemplateEntry, write_manifest
from ..templates.spec import Template
from .config import GenerateConfig

SEED_POLICY = ("each unit's randomness is blake2b(seed, template name, template version, index); "
               "splits are assigned by hashing the premise text, so no premise is in two splits")
DEDUP = "exact, on NFKC case-folded text with collapsed white space (implies structural dedup)"


def build_manifest(cfg: GenerateConfig, templates: list[Template], data_dir: Path, counts: Counts,
                   digests: dict[str, str]) -> Manifest:
    """The manifest of a finished run; files written by a hashing sink keep its digests, others are hashed here."""
    files = []
    for f in sorted(data_dir.iterdir()):
        split = f.name.split(".")[0]
        files.append(DataFile(path=f"data/{f.name}", split=split, records=counts.by_split.get(split, 0),
                              bytes=f.stat().st_size, sha256=digests.get(f.name) or sha256_file(f)))
    return Manifest(
        corpusforge_version=__version__, command=cfg.command(), seed=cfg.seed, n=cfg.n,
        continuations=cfg.continuations, splits=cfg.splits,
        shard=f"{cfg.shard[0]}/{cfg.shard[1]}" if cfg.shard else None, data_format=cfg.format, mix=cfg.weights(),
        templates=template_entries(templates), patterns=pattern_entries(templates),
        counts=counts, files=files, seed_policy=SEED_POLICY, dedup=DEDUP)


def template_entries(templates: list[Template]) -> list[TemplateEntry]:
    """The manifest's record of each template used: name, version, pattern, source, content hash, markers."""
    return [TemplateEntry(name=t.name, version=t.version, pattern=t.pattern.name, language=t.language,
                          source=t.source, sha256=t.sha256, markers=t.markers, space_size=t.space_size())
            for t in templates]


def pattern_entries(templates: list[Template]) -> list[PatternEntry]:
    """The patterns the templates render, once each (so that plugin patterns travel with the corpus)."""
    return [PatternEntry(**p.to_dict()) for p in {t.pattern.name: t.pattern for t in templates}.values()]


def describe(folder: Path, manifest: Manifest) -> None:
    """Write the manifest and the README into the run's folder."""
    write_manifest(folder, manifest)
    write_atomic(folder / "README.md", corpus_readme(manifest))
