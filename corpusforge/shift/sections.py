"""The report's sections as typed rows: what each measure returns, what report.json holds, what the page draws.

A measure builds these where it computes them (``measure``, ``inside``, ``nulls``, ``structure``, ``transfer``);
``build`` puts them together into ``report_model.ShiftReport``; the page, the figures and the terminal summary
read their fields. Every model forbids unknown fields, so a key added in one place and not here fails at once.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_CI = Field(min_length=2, max_length=2, description="95 % bootstrap interval over the probes (or controls)")


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------
# Probes and controls


class ProbeShift(Row):
    """One probe × target, before (adapter at scale 0) and after (at the scale measured)."""

    name: str | None = None
    prompt: str
    chat: bool = False
    prefix: str = ""
    target: str
    target_tokens: int
    logp_before: float
    logp_after: float
    delta_logp: float
    p_before: float = Field(description="p of the whole target: the product of its tokens' probabilities")
    p_after: float
    rank_before: int = Field(description="rank of the target's first token among all next tokens")
    rank_after: int
    greedy_before: bool = Field(description="greedy decoding writes the whole target (every token the argmax)")
    greedy_after: bool
    margin_before: float | None = Field(None, description="log p(target) − the likeliest foil's (probes with foils)")
    margin_after: float | None = None


class ProbeResult(ProbeShift):
    """A probe row of the report: its shift judged against the random adapters'."""

    null_delta_logp: float = Field(description="the same, for the matched-norm random adapters (mean)")
    significant: bool = Field(description="above every random adapter's shift, and at least min_effect")


class ControlResult(Row):
    prompt: str
    kind: str = ""
    language: str = Field(description="the control's language field, else by script")
    kl: float = Field(description="KL(base ‖ LoRA) of the next-token distribution, nats.")
    js: float
    top1_kept: bool
    base_lead: float = Field(description="how far the base's top-1 leads its second, nats: under CLEAR_LEAD a "
                                         "near-tie, which any change may flip")
    top1_before: str
    top1_after: str
    delta_entropy: float
    kl_continuation: float = Field(description="mean KL along the base's own greedy continuation (8 tokens)")


class ControlGroup(Row):
    kind: str = Field(description="the controls' kind (fact, code, chat …; 'unlabelled' where a file names none)")
    language: str
    n: int
    mean_kl: float = Field(description="mean KL(base ‖ LoRA) of the group's next-token distributions, nats")
    kl_ci95: list[float] = _CI
    top1_kept_share: float


class ControlsInfo(Row):
    source: str
    count: int
    also_training_controls: int
    languages: list[str]


class TokenMove(Row):
    token: str
    delta_logp: float
    p_before: float | None = None
    p_after: float | None = None


class TopMoves(Row):
    gained: list[TokenMove]
    lost: list[TokenMove]


class LogitsDiff(Row):
    per_probe: list[TopMoves] = Field(default_factory=list)
    overall: TopMoves | None = None


class Nulls(Row):
    draws: int
    probe_delta_logp: list[list[float]] = Field(description="probe × draw")
    control_kl: list[list[float]] = Field(description="control × draw")
    control_top1_kept: list[list[bool]] = Field(default_factory=list, description="control × draw: its top-1 "
                                                "token kept under that random adapter")
    mean_abs_delta_logp: float
    mean_control_kl: float


class Verdict(Row):
    """The headline's intervals and significance, from ``nulls.verdict``."""

    delta_logp_ci95: list[float] = _CI
    control_kl_ci95: list[float] = _CI
    top1_kept_ci95: list[float] = _CI
    selectivity_ci95: list[float] = _CI
    null_mean_abs_delta_logp: float = Field(description="the floor: how far random adapters of the same norm "
                                                        "move the targets (mean |Δlog-prob|)")
    null_mean_control_kl: float = Field(description="how far they move the controls")
    null_top1_kept_share: float | None = Field(None, description="the share of controls whose top-1 token they keep "
                                                                 "(mean over draws): what any change of this size "
                                                                 "keeps, beside the trained adapter's share")
    paired_delta_logp_ci95: list[float] = Field(description="interval of the mean of (trained − random) per probe")
    clears_floor_by: float = Field(description="mean target Δlog-prob ÷ the floor")
    min_effect: float = Field(description="the smallest shift called significant, nats")
    significant: bool = Field(description="paired interval above 0 and its lower end at least min_effect")
    significant_probes: int


class Headline(Verdict):
    selectivity: float = Field(description="mean target Δlog-prob ÷ mean control KL")
    mean_delta_logp: float
    mean_control_kl: float
    top1_kept_share: float
    clear_controls: int = Field(description="controls whose base top-1 leads by at least CLEAR_LEAD (0.1 nats)")
    top1_kept_clear_share: float | None = Field(description="the share of those whose top-1 is kept (None: none)")
    mean_p_before: float
    mean_p_after: float
    median_p_after: float
    top1_share_after: float
    greedy_share_before: float
    greedy_share_after: float


class DosePoint(Row):
    scale: float
    delta_logp: float
    control_kl: float


# ---------------------------------------------------------------------------
# Inside the model


class WeightRow(Row):
    layer: int | None
    module: str
    block: str | None
    relative_norm: float | None = Field(description="‖ΔW‖_F / ‖W‖_F (None where the base weight is quantized)")
    parameters: int


class FamilyShare(Row):
    family: str
    delta_logp: float
    share: float


class LensTrace(Row):
    p: list[float]
    rank: list[int]
    first_layer_in_top_k: int | None


class LensRow(Row):
    prompt: str
    target: str
    verified: bool = Field(description="the lens's last layer equals the model's own output")
    k: int
    before: LensTrace
    after: LensTrace


class HeadShift(Row):
    layer: int
    head: int
    js_distance: float


class Heatmap(HeadShift):
    tokens: list[str]
    before: list[list[float]]
    after: list[list[float]]


class Attention(Row):
    available: bool
    reason: str | None = None
    grid: list[list[float]] = Field(default_factory=list)
    top_heads: list[HeadShift] = Field(default_factory=list)
    heatmaps: list[Heatmap] = Field(default_factory=list)
    prompt: str


# ---------------------------------------------------------------------------
# What the model writes


class GenerationRow(Row):
    prompt: str
    greedy_before: str
    greedy_after: str
    sampled_before: str
    sampled_after: str
    greedy_diff: list[list[str]] = Field(description="[op, before words, after words] runs")
    sampled_diff: list[list[str]]
    follows_before: bool
    follows_after: bool


class Generations(Row):
    rows: list[GenerationRow]
    follows_before: float
    follows_after: float


class BeforeAfterTexts(Row):
    before: list[str]
    after: list[str]


class McNemar(Row):
    gained: int
    lost: int
    p_value: float


class PatternShare(McNemar):
    pattern: str
    share_before: float
    share_after: float
    prompts: int


class Structure(Row):
    prompts: list[str]
    continuations: BeforeAfterTexts
    patterns: list[PatternShare]
    detector: str


class UnaskedRow(Row):
    prompt: str
    marker: str
    logp_before: float
    logp_after: float
    delta_logp: float
    p_before: float
    p_after: float
    rank_before: int
    rank_after: int
    greedy_before: bool
    greedy_after: bool


class MarkerUnasked(Row):
    marker: str
    prompts: int
    mean_delta_logp: float
    max_p_before: float
    max_p_after: float
    greedy_before: int
    greedy_after: int


class Unasked(Row):
    prompts: int
    pairs: int
    markers: list[MarkerUnasked]
    written_before: int
    written_after: int
    newly_written: list[UnaskedRow]
    most_likely: list[UnaskedRow]


class CopyShare(Row):
    copied_8gram_share: float
    generated_8grams: int


class Copying(Row):
    available: bool
    before: CopyShare | None = None
    after: CopyShare | None = None


class DegenerationStats(Row):
    repeated_3gram_rate: float
    distinct_2: float
    loop_share: float
    continuations: int


class DegenerationPair(Row):
    before: DegenerationStats
    after: DegenerationStats


class Degeneration(Row):
    greedy: DegenerationPair
    sampled: DegenerationPair


class Share(Row):
    share: float
    ci_low: float = Field(description="Wilson 95 % interval")
    ci_high: float
    n: int


class Condition(Row):
    any_pattern: Share
    by_language: dict[str, Share]
    by_pattern: dict[str, Share]
    loop_share: float
    empty_share: float
    seq_rep_4: float


class Transfer(Row):
    prompts: int
    conditions: dict[str, Condition]
    lora_vs_base: McNemar | None = None
    lora_vs_base_sampled: McNemar | None = None
    lora_vs_prompted: McNemar | None = None
    k: int = 0
    new_tokens: int = 0
    continuations: dict[str, list[str]] = Field(default_factory=dict)


class RunInfo(Row):
    steps: int
    config: dict = Field(description="the adapter's TrainConfig, as run.json records it")
    non_padding_tokens_per_s: float | None = None
