"""``report.json``: the shift report's contract (a versioned model; schema ``schemas/report.schema.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_CI = Field(min_length=2, max_length=2, description="95 % bootstrap interval over the probes (or controls)")


class ProbeResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: str
    target: str
    p_before: float = Field(description="p of the whole target: the product of its tokens' probabilities")
    p_after: float
    rank_before: int = Field(description="rank of the target's first token among all next tokens")
    rank_after: int
    greedy_before: bool = Field(description="greedy decoding writes the whole target (every token the argmax)")
    greedy_after: bool
    delta_logp: float
    null_delta_logp: float = Field(description="the same, for the matched-norm random adapters (mean)")
    significant: bool = Field(description="above every random adapter's shift, and at least min_effect")


class ControlResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    prompt: str
    kl: float = Field(description="KL(base ‖ LoRA) of the next-token distribution, nats.")
    top1_kept: bool


class ControlGroup(BaseModel):
    kind: str = Field(description="the controls' kind (fact, code, chat …; 'unlabelled' where a file names none)")
    language: str
    n: int
    mean_kl: float = Field(description="mean KL(base ‖ LoRA) of the group's next-token distributions, nats")
    kl_ci95: list[float] = _CI
    top1_kept_share: float


class Headline(BaseModel):
    model_config = ConfigDict(extra="allow")
    selectivity: float = Field(description="mean target Δlog-prob ÷ mean control KL")
    selectivity_ci95: list[float] = _CI
    mean_delta_logp: float
    delta_logp_ci95: list[float] = _CI
    mean_control_kl: float
    control_kl_ci95: list[float] = _CI
    top1_kept_share: float
    top1_kept_ci95: list[float] = _CI
    null_mean_abs_delta_logp: float = Field(description="the floor: how far random adapters of the same norm "
                                                        "move the targets (mean |Δlog-prob|)")
    null_mean_control_kl: float = Field(description="how far they move the controls")
    paired_delta_logp_ci95: list[float] = Field(description="interval of the mean of (trained − random) per probe")
    clears_floor_by: float = Field(description="mean target Δlog-prob ÷ the floor")
    min_effect: float = Field(description="the smallest shift called significant, nats")
    significant: bool = Field(description="paired interval above 0 and its lower end at least min_effect")


class ShiftReport(BaseModel):
    """report.json"""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://corpusforge.dev/schemas/report.schema.json"})
    format: str = "corpusforge.report/1"
    corpusforge_version: str
    model: str
    adapter: str
    device: str
    dtype: str
    config: dict[str, Any] = Field(default_factory=dict, description="what was asked for: ReportConfig's fields")
    headline: Headline
    controls_info: dict[str, Any] = Field(description="which control set, and how many of its prompts were also "
                                                      "training controls")
    probes: list[ProbeResult]
    controls: list[ControlResult]
    control_groups: list[ControlGroup] = Field(description="the controls' drift by kind and language")
    logits_diff: dict[str, Any]
    nulls: dict[str, Any] = Field(description="per probe and control, what each random adapter of the same norm did")
    dose_response: list[dict[str, Any]]
    weight_map: list[dict[str, Any]]
    families: list[dict[str, Any]]
    logit_lens: list[dict[str, Any]]
    attention: dict[str, Any]
    generations: dict[str, Any]
    structure: dict[str, Any] = Field(description="patterns realised on neutral prompts, before and after")
    unasked: dict[str, Any] = Field(description="each marker as a whole after prompts that ask for none (held-out "
                                                "controls, neutral prompts), before and after: Δlog p, first-token "
                                                "rank, and whether greedy decoding writes it")
    copying: dict[str, Any] = Field(description="share of generated 8-grams found in the training corpus")
    degeneration: dict[str, Any] = Field(description="repeated 3-grams, distinct-2 and looping, before and after")
    transfer: dict[str, Any] | None = Field(default=None, description="with --transfer: 200 neutral prompts continued "
                                            "by the base, the LoRA and the base prompted with k of the corpus's "
                                            "records; the share realising a pattern (Wilson 95 %), by language and "
                                            "pattern, loop share, seq-rep-4, McNemar")
    timings: dict[str, float]


def report_json_schema() -> dict:
    return ShiftReport.model_json_schema(mode="validation")
