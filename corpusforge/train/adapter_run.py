"""``run.json``: how an adapter was made (a versioned model), written by the trainer and read by the report.

Its JSON Schema is published as ``schemas/run.schema.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._atomic import write_atomic
from .._io import loads_json, read_bytes
from ..errors import CorpusforgeError
from ..lm.fingerprint import fingerprint
from .config import TrainConfig

FORMAT = "corpusforge.adapter/1"
FILE = "run.json"


class AdapterRun(BaseModel):
    """run.json (keys a newer corpusforge adds are kept as they are)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), json_schema_extra={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://corpusforge.dev/schemas/run.schema.json"})

    format: Literal["corpusforge.adapter/1"] = FORMAT
    corpusforge_version: str
    model: str = Field(description="The base model: an embedded model's name, a Hub id, or the absolute path of a "
                                   "local folder.")
    model_sha256: str | None = Field(default=None, description="The fingerprint of a local model folder (see "
                                     "corpusforge.train.adapter_run.fingerprint), checked whenever the adapter is "
                                     "used; null for an embedded model or a Hub id. Absent in older run.json files.")
    model_source: str = Field(description="The folder or Hub id it was loaded from.")
    config: TrainConfig
    corpus: str = Field(description="The corpus folder's absolute path (as typed in older run.json files).")
    corpus_manifest_sha256: str | None = Field(description="sha256 of the corpus's manifest.json file (which holds "
                                                           "the sha256 of every data file): the corpus's content "
                                                           "hash, checked when the corpus is used from here.")
    versions: dict[str, str | None] = Field(description="torch, transformers, peft, accelerate.")
    processes: int
    steps: int
    trainable_parameters: int
    train_records: int
    tokens: int = Field(description="Non-padding tokens processed.")
    supervised_tokens: int
    non_padding_tokens_per_s: float
    seconds: float
    peak_memory_mb: float
    loss_curve: list[tuple[int, float]]
    eval_curve: list[tuple[int, float]]
    targets_resolved: list[str] = Field(description="The projections LoRA went on, as block.name "
                                                    "(attention.q_proj, mlp.c_fc ...).")
    layers_resolved: list[int] | None = Field(description="The decoder layers adapted (null: all).")
    target_modules: int | None = Field(default=None, description="How many modules carry LoRA.")
    device: str = Field(default="cpu", description="Where it trained: cpu, cuda, cuda:N, mps.")
    dtype: str = Field(default="float32", description="The base model's dtype (LoRA weights stay float32).")
    attn_implementation: str | None = Field(default=None, description="sdpa or eager, as chosen for the model.")
    gradient_checkpointing: bool = False
    quantized: str | None = Field(default=None, description="4bit for a QLoRA base.")
    fluency: dict | None = Field(default=None, description="Training's own fluency check: greedy continuations of "
                                                           "the 12 neutral prompts with the adapter off (before) "
                                                           "and on (after) — loop share, seq-rep-4 — and whether "
                                                           "the adapter stayed within the bounds "
                                                           "(train/fluency.py).")
    steps_rule: dict | None = Field(default=None, description="How the steps were chosen from the corpus, when "
                                                              "neither steps nor epochs was given.")


def local_model(spec: str | None) -> Path | None:
    """``spec`` as a local folder, or None for an embedded model's name, a Hub id or nothing."""
    from ..lm.embedded import EMBEDDED

    if not spec or spec in EMBEDDED:
        return None
    path = Path(spec).expanduser()
    return path if path.is_dir() else None


def recorded_model(spec: str) -> tuple[str, str | None]:
    """How run.json records the base model ``spec``: a local folder by absolute path and fingerprint."""
    path = local_model(spec)
    return (str(path.resolve()), fingerprint(path)) if path is not None else (spec, None)


def _same_place(a: str, b: str) -> bool:
    pa, pb = local_model(a), local_model(b)
    return a == b if pa is None or pb is None else os.path.realpath(pa) == os.path.realpath(pb)


def _relative_path(spec: str) -> bool:
    """``spec`` (from an older run.json) is a relative folder path: not absolute, not an embedded model's name,
    and either a folder here or not shaped like a Hub id (OWNER/NAME)."""
    from ..lm.embedded import EMBEDDED

    if os.path.isabs(spec) or spec in EMBEDDED:
        return False
    hub_id = spec.count("/") == 1 and not spec.startswith((".", "~"))
    return local_model(spec) is not None or not hub_id


def check_base(run: AdapterRun | None, given: str | None, folder: str | Path,
               error: type[CorpusforgeError] = CorpusforgeError) -> str | None:
    """The base model to load for the adapter in ``folder``: ``given`` (--model) or the one run.json records,
    checked against run.json. A model recorded by fingerprint must be there and unchanged; another --model is
    accepted when it is the same folder or has the same fingerprint. An older run.json (no model_sha256) that
    names the model by a relative path is refused unless --model is given: which folder it meant depends on
    where train ran, and it cannot be checked."""
    if run is None:
        return given
    path = str(Path(folder) / FILE)
    recorded, expected = run.model, run.model_sha256
    if "model_sha256" not in run.model_fields_set:   # an older run.json: the model as typed, no fingerprint
        if given is None and not os.path.isabs(recorded) and local_model(recorded) is not None:
            raise error(f"the base model is named by the relative path {recorded!r} and has no fingerprint "
                        "(an older corpusforge), so the folder of that name here cannot be checked", file=path,
                        hint="pass --model PATH, the model the adapter was trained on")
        if given is not None and not _relative_path(recorded) and not _same_place(given, recorded):
            raise error(f"the adapter was trained on {recorded!r}, not on --model {given!r}",
                        hint=f"pass --model {recorded}")
        return given or recorded
    if expected is None or not os.path.isabs(recorded):   # an embedded model or a Hub id
        if given is not None and given != recorded:
            raise error(f"the adapter was trained on {recorded!r}, not on --model {given!r}",
                        hint=f"pass --model {recorded}")
        return recorded
    if given is not None and not _same_place(given, recorded):
        if local_model(given) is None or fingerprint(given) != expected:
            raise error(f"the adapter was trained on {recorded!r}, not on --model {given!r} (its model_sha256 "
                        "differs)", file=path, hint=f"pass --model {recorded}, or a copy of it")
        return given
    target = given or recorded
    if local_model(target) is None:
        raise error(f"the base model {recorded} is no longer there", file=path,
                    hint="pass --model PATH to a copy of it; its fingerprint is checked")
    if fingerprint(target) != expected:
        raise error(f"the base model {recorded} has changed since the adapter was trained: its fingerprint differs "
                    "from run.json's model_sha256", file=path,
                    hint="pass --model PATH to the model it was trained on, or train the adapter again")
    return target


def check_corpus(run: AdapterRun, error: type[CorpusforgeError] = CorpusforgeError,
                 folder: str | Path | None = None) -> Path | None:
    """The corpus run.json records, if it is there and unchanged (its manifest's sha256); None when it is not
    there, or is named by a relative path in an older run.json (which folder it meant cannot be known)."""
    from .._atomic import sha256_file

    corpus = Path(run.corpus)
    if not corpus.is_absolute() and "model_sha256" not in run.model_fields_set:
        return None
    if not corpus.is_dir():
        return None
    manifest = corpus / "manifest.json"
    if run.corpus_manifest_sha256 and (not manifest.is_file()
                                       or sha256_file(manifest) != run.corpus_manifest_sha256):
        raise error(f"the corpus {corpus} has changed since the adapter was trained: its manifest.json's sha256 "
                    "differs from run.json's corpus_manifest_sha256",
                    file=str(Path(folder) / FILE) if folder else None,
                    hint="pass --corpus DIR or --probes FILE to choose the probes")
    return corpus


def run_json_schema() -> dict:
    return AdapterRun.model_json_schema(mode="validation")


def write_run(folder: str | Path, run: AdapterRun) -> Path:
    path = Path(folder) / FILE
    write_atomic(path, json.dumps(run.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n")
    return path


def read_run(folder: str | Path, error: type[CorpusforgeError] = CorpusforgeError) -> AdapterRun | None:
    """The adapter folder's run.json, or None when it has none (an adapter made elsewhere)."""
    path = Path(folder) / FILE
    if not path.exists():
        return None
    data = loads_json(read_bytes(path, error, what="run.json"), path, error, what="run.json")
    try:
        return AdapterRun.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(x) for x in err["loc"]) or None
        raise error(f"run.json: {err['msg']}", file=str(path), field=where) from None
