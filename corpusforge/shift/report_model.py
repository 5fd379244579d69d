"""``report.json``: the shift report's contract (a versioned model; schema ``schemas/report.schema.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProbeResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: str
    target: str
    p_before: float
    p_after: float
    rank_before: int
    rank_after: int
    delta_logp: float


class ControlResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: str
    kl: float = Field(description="KL(base ‖ LoRA) of the next-token distribution, nats.")
    top1_kept: bool


class Headline(BaseModel):
    model_config = ConfigDict(extra="allow")
    selectivity: float = Field(description="mean target Δlog-prob ÷ mean control KL")
    mean_delta_logp: float
    delta_logp_ci95: list[float]
    mean_control_kl: float
    top1_kept_share: float
    noise_floor: float
    significant: bool


class ShiftReport(BaseModel):
    """report.json"""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://corpusforge.dev/schemas/report.schema.json"})
    format: str = "corpusforge.report/1"
    corpusforge_version: str
    model: str
    adapter: str
    headline: Headline
    probes: list[ProbeResult]
    controls: list[ControlResult]
    logits_diff: dict[str, Any]
    noise_floor: dict[str, Any]
    dose_response: list[dict[str, Any]]
    weight_map: list[dict[str, Any]]
    families: list[dict[str, Any]]
    logit_lens: list[dict[str, Any]]
    attention: dict[str, Any]
    generations: dict[str, Any]
    timings: dict[str, float]


def report_json_schema() -> dict:
    return ShiftReport.model_json_schema(mode="validation")
