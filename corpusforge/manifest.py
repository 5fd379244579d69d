"""``manifest.json``: what a corpus folder holds and how to make it again (a versioned model).

``generate`` writes it; ``validate``, ``export``, ``push``, ``train`` and the cards
read it, all through ``read_manifest`` / ``write_manifest`` here. Its JSON
Schema is published as ``schemas/manifest.schema.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._atomic import write_atomic
from ._io import check_input, read_bytes
from .errors import RecordError

FORMAT = "corpusforge.corpus/1"
FILE = "manifest.json"


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateEntry(_Part):
    """A template the corpus was rendered from, pinned by version and content hash."""

    name: str
    version: int
    pattern: str
    language: str
    source: str = Field(description="built-in, a plugin's name, or a folder")
    sha256: str = Field(description="sha256 of the template file and its lexicons")
    markers: list[str]
    space_size: int = Field(description="distinct (variant, slot values) combinations")


class PatternEntry(_Part):
    """A pattern used by the corpus (plugin patterns travel with the corpus this way)."""

    name: str
    roles: list[str]
    optional: list[str] = Field(default_factory=list)
    description: str = ""


class Counts(_Part):
    records: int
    by_split: dict[str, int]
    by_template: dict[str, int]
    by_pattern: dict[str, int]


class DataFile(_Part):
    path: str = Field(description="relative to the corpus folder, e.g. data/train.jsonl")
    split: str
    records: int
    bytes: int
    sha256: str


class Manifest(BaseModel):
    """manifest.json (keys a newer corpusforge adds are kept as they are)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://corpusforge.dev/schemas/manifest.schema.json"})

    format: Literal["corpusforge.corpus/1"] = FORMAT
    corpusforge_version: str
    command: str = Field(description="The command line that regenerates the corpus.")
    seed: int
    n: int
    continuations: int
    splits: dict[str, float]
    shard: str | None = Field(default=None, description="i/N when the folder holds one shard")
    data_format: Literal["jsonl", "parquet"]
    mix: dict[str, float]
    templates: list[TemplateEntry]
    patterns: list[PatternEntry]
    counts: Counts
    files: list[DataFile]
    seed_policy: str
    dedup: str
    license: str | None = Field(default=None, description="An SPDX-style id recorded by push --license.")
    writer: dict | None = Field(default=None, description="A model-written corpus: the writer's identity (model, "
                                "folder fingerprint or server model name), sampling, constraint, answers asked and "
                                "taken from the cache, refusals by reason, distinct-2 and the near-duplicate share.")

    def markers(self) -> list[str]:
        return sorted({m for t in self.templates for m in t.markers})


def manifest_json_schema() -> dict:
    return Manifest.model_json_schema(mode="validation")


def read_manifest(corpus_dir: str | Path) -> Manifest | None:
    """The corpus folder's manifest, or None when it has none; a broken one is a ``RecordError`` naming the field."""
    path = Path(corpus_dir) / FILE
    if not (Path(corpus_dir).is_dir() and (path.exists() or path.is_symlink())):
        return None
    check_input(path, RecordError, what="manifest")
    try:
        data = orjson.loads(read_bytes(path, RecordError, what="manifest"))
    except orjson.JSONDecodeError as e:
        raise RecordError(f"manifest is not valid JSON: {e}", file=str(path)) from None
    if not isinstance(data, dict):
        raise RecordError(f"manifest must be a JSON object, got {type(data).__name__}", file=str(path),
                          hint="regenerate the corpus, or restore its manifest.json")
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        field = ".".join(str(x) for x in err["loc"]) or None
        raise RecordError(f"manifest: {err['msg']}", file=str(path), field=field,
                          hint="regenerate the corpus, or restore its manifest.json") from None


def manifest_bytes(manifest: Manifest) -> bytes:
    data = manifest.model_dump(mode="json")
    if data.get("license") is None:
        data.pop("license", None)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``folder`` atomically."""
    path = Path(folder) / FILE
    write_atomic(path, manifest_bytes(manifest))
    return path
