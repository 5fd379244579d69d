"""``ReportConfig``: everything a shift report depends on besides the adapter, checked where it is made.

The same keys come from Python (``build_report(adapter, ReportConfig(max_probes=8))`` or keyword arguments)
and from ``corpusforge report``'s flags: each field's description is the flag's help, as with ``TrainConfig``.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._config import config_error
from ..errors import ReportError
from ..lm.device import DEVICE_HELP, DTYPE_HELP
from .nulls import DRAWS, MIN_EFFECT


class ReportConfig(BaseModel):
    """A shift report: which inputs, how many of each, where it runs."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="The adapter's base model (default: the one its run.json names, "
                                                "checked by fingerprint; without a run.json, the one peft's "
                                                "adapter_config.json names).")
    probes: str | None = Field(None, description="Probe file (JSONL or YAML); default: from the corpus's "
                                                 "held-out split.")
    controls: str | None = Field(None, description="Control prompts (text, one per line, or JSONL); default: the "
                                                   "held-out set shipped with corpusforge, never trained on.")
    corpus: str | None = Field(None, description="The corpus to derive probes from and detect structure with "
                                                 "(default: the one run.json names, if it is here and unchanged).")
    max_probes: int = Field(20, ge=1, le=100_000, description="Probes taken from the corpus's held-out split.")
    max_controls: int | None = Field(20, ge=1, le=100_000,
                                     description="Held-out controls taken from the shipped set, evenly across "
                                                 "kinds and languages (from Python, None takes all 70); a "
                                                 "--controls file is taken whole.")
    device: str = Field("auto", description=DEVICE_HELP)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description=DTYPE_HELP)
    null_draws: int = Field(DRAWS, ge=1, le=1000, description="Random adapters of the same norm: the floor the "
                                                              "shift must clear.")
    neutral_prompts: int = Field(12, ge=1, le=12, description="Neutral prompts the structure section continues.")
    min_effect: float = Field(MIN_EFFECT, gt=0, allow_inf_nan=False,
                              description="The smallest shift called significant, nats.")
    chat: bool | None = Field(None, description="Probes in chat form (the model's chat template) or as plain text; "
                                                "default: as the adapter was trained (an adapter trained with "
                                                "--format answer: each held-out record after its prompt and a "
                                                "line break).")
    whole_passes: bool = Field(False, description="Run every forward pass whole, the head at every position (no "
                                                   "pass entered at the adapter's first layer): the same numbers, "
                                                   "slower — the baseline of benchmarks/report.py.")
    transfer: bool = Field(False, description="Also continue 200 neutral prompts (English and Russian) with the "
                                              "base, the LoRA and the base prompted with 3 of the corpus's "
                                              "records, and count the patterns realised (needs the corpus; a few "
                                              "minutes on a CPU).")

    @field_validator("model", "probes", "controls", "corpus", mode="before")
    @classmethod
    def _paths_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value


def make_report_config(config: ReportConfig | None = None, **values: Any) -> ReportConfig:
    """``config`` (or the defaults) with ``values`` on top; a bad value is a ``ReportError`` naming the option."""
    try:
        return ReportConfig(**{**(config.model_dump(exclude_unset=True) if config else {}), **values})
    except ValidationError as e:
        raise config_error(e, ReportConfig, ReportError) from None
