"""``run.json``: how an adapter was made (a versioned model), written by the trainer and read by the report.

Its JSON Schema is published as ``schemas/run.schema.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._atomic import write_atomic
from .._io import loads_json, read_bytes
from ..errors import CorpusforgeError
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
    model: str = Field(description="The base model as given: embedded name, folder or Hub id.")
    model_source: str = Field(description="The folder or Hub id it was loaded from.")
    config: TrainConfig
    corpus: str
    corpus_manifest_sha256: str | None = Field(description="sha256 of the corpus's manifest.json file.")
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
    steps_rule: dict | None = Field(default=None, description="How the steps were chosen from the corpus, when "
                                                              "neither steps nor epochs was given.")


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
