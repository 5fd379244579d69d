"""``report.json``: the shift report's contract (a versioned model; schema ``schemas/report.schema.json``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .config import ReportConfig
from .sections import (
    Attention,
    ControlGroup,
    ControlResult,
    ControlsInfo,
    Copying,
    Degeneration,
    DosePoint,
    FamilyShare,
    Generations,
    Headline,
    LensRow,
    LogitsDiff,
    Nulls,
    ProbeResult,
    RunInfo,
    Structure,
    Transfer,
    Unasked,
    WeightRow,
)


class ShiftReport(BaseModel):
    """report.json"""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://corpusforge.dev/schemas/report.schema.json"})
    format: str = "corpusforge.report/1"
    corpusforge_version: str
    model: str
    adapter: str
    device: str
    dtype: str
    config: ReportConfig = Field(description="what was asked for")
    headline: Headline
    controls_info: ControlsInfo = Field(description="which control set, and how many of its prompts were also "
                                                    "training controls")
    probes: list[ProbeResult]
    controls: list[ControlResult]
    control_groups: list[ControlGroup] = Field(description="the controls' drift by kind and language")
    logits_diff: LogitsDiff
    nulls: Nulls = Field(description="per probe and control, what each random adapter of the same norm did")
    dose_response: list[DosePoint]
    weight_map: list[WeightRow]
    families: list[FamilyShare]
    logit_lens: list[LensRow]
    attention: Attention
    generations: Generations
    structure: Structure = Field(description="patterns realised on neutral prompts, before and after")
    unasked: Unasked = Field(description="each marker as a whole after prompts that ask for none (held-out "
                                         "controls, neutral prompts), before and after: Δlog p, first-token "
                                         "rank, and whether greedy decoding writes it")
    copying: Copying = Field(description="share of generated 8-grams found in the training corpus")
    degeneration: Degeneration = Field(description="repeated 3-grams, distinct-2 and looping, before and after")
    transfer: Transfer | None = Field(default=None, description="with --transfer: 200 neutral prompts continued "
                                      "by the base, the LoRA and the base prompted with k of the corpus's "
                                      "records; the share realising a pattern (Wilson 95 %), by language and "
                                      "pattern, loop share, seq-rep-4, McNemar")
    timings: dict[str, float]
    run: RunInfo | None = Field(default=None, description="the adapter's training run, from its run.json")


def report_json_schema() -> dict:
    return ShiftReport.model_json_schema(mode="validation")
