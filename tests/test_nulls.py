"""Significance, tested on distributions whose answer is known (corpusforge.shift.nulls).

``bootstrap`` and ``bootstrap_ratio`` against the analytic normal interval, within a tolerance derived from the
number of resamples; their percentile edges exactly, with a stand-in random generator whose resampled means are
known; ``judge``'s per-probe and ``verdict``'s overall rules, case by case.
"""

from __future__ import annotations

import math
import random
import statistics
from types import SimpleNamespace

import pytest

from corpusforge.shift import nulls
from corpusforge.shift.sections import ControlResult, Nulls, ProbeShift

Z = statistics.NormalDist().inv_cdf(0.975)          # 1.95996...
DENSITY_AT_Z = statistics.NormalDist().pdf(Z)       # φ(z) ≈ 0.0584


def monte_carlo_tolerance(samples: int, se: float, *, sigmas: float = 4.0, slack: float = 0.02) -> float:
    """How far a percentile end of ``samples`` resampled means may fall from the analytic one.

    The 2.5 % quantile of B draws from N(μ, se²) has a standard error of √(p(1−p)/B) / φ(z) · se (the order
    statistic's binomial error, mapped through the density); ``sigmas`` of those, plus ``slack``·se for the
    bootstrap distribution not being exactly normal (plug-in variance, a little skew)."""
    return (sigmas * math.sqrt(0.025 * 0.975 / samples) / DENSITY_AT_Z + slack) * se


class KnownMeans:
    """A stand-in for ``random.Random``: its i-th ``choices`` call on ``population`` returns ``k`` copies of the
    i-th value of ``means[population]`` (in a shuffled order), so the i-th resample's mean is exactly that value."""

    def __init__(self, means: dict[int, list[float]]):
        self.queues = {key: iter(values) for key, values in means.items()}

    def __call__(self, seed):   # used as the class: nulls.random.Random(seed)
        return self

    def choices(self, population, k):
        return [next(self.queues[id(population)])] * k


def known_means(monkeypatch, means: dict[int, list[float]]) -> None:
    monkeypatch.setattr(nulls, "random", SimpleNamespace(Random=KnownMeans(means)))


def shuffled(values: list[float], seed: int = 3) -> list[float]:
    values = list(values)
    random.Random(seed).shuffle(values)
    return values


# --- bootstrap -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_matches_the_analytic_normal_interval(seed):
    """The percentile interval of the mean of n = 400 normal values is x̄ ± z·σ̂/√n (σ̂ with divisor n, as the
    bootstrap's own plug-in distribution has); a 90 % interval (0.315 se narrower per end), a shifted centre or
    a median instead of a mean falls outside the tolerance."""
    rng = random.Random(100 + seed)
    values = [rng.gauss(3.0, 2.0) for _ in range(400)]
    mean, se = statistics.fmean(values), statistics.pstdev(values) / math.sqrt(len(values))
    samples = 10_000
    lo, hi = nulls.bootstrap(values, samples=samples, seed=seed)
    tolerance = monte_carlo_tolerance(samples, se)
    assert lo == pytest.approx(mean - Z * se, abs=tolerance)
    assert hi == pytest.approx(mean + Z * se, abs=tolerance)
    assert lo < mean < hi


@pytest.mark.parametrize("samples", [40, 1000, 2000])
def test_bootstrap_percentile_edges_are_exact(monkeypatch, samples):
    """Resampled means 0, 1, …, B−1 (in a shuffled order): the 95 % interval leaves exactly 2.5 % of them below
    its lower end and 2.5 % above its upper end, i.e. (B/40, B − 1 − B/40). An index one off either way fails."""
    values = [5.0, 6.0, 7.0]
    known_means(monkeypatch, {id(values): shuffled(float(i) for i in range(samples))})
    lo, hi = nulls.bootstrap(values, samples=samples)
    tail = samples // 40
    assert (lo, hi) == (tail, samples - 1 - tail)


def test_bootstrap_tails_are_equal_for_any_number_of_resamples(monkeypatch):
    values = [5.0, 6.0]
    known_means(monkeypatch, {id(values): shuffled(float(i) for i in range(100))})
    lo, hi = nulls.bootstrap(values, samples=100)
    assert lo == 99 - hi


def test_bootstrap_of_a_constant_and_of_nothing():
    assert nulls.bootstrap([0.7] * 5) == (pytest.approx(0.7), pytest.approx(0.7))
    assert all(math.isnan(x) for x in nulls.bootstrap([]))


def test_bootstrap_is_seeded():
    rng = random.Random(5)
    values = [rng.random() for _ in range(30)]
    assert nulls.bootstrap(values, seed=4) == nulls.bootstrap(values, seed=4)
    assert nulls.bootstrap(values, seed=4) != nulls.bootstrap(values, seed=5)


# --- bootstrap_ratio -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_ratio_matches_the_delta_method(seed):
    """mean(top)/mean(bottom) of two independent normal samples (means 10 and 5, so the ratio is near 2, not
    near its inverse): the interval is R ± z·se_R, se_R = R·√(se_t²/t̄² + se_b²/b̄²), within the resampling
    tolerance plus the ratio's small nonlinearity (its coefficient of variation is about 1 %)."""
    rng = random.Random(200 + seed)
    top = [rng.gauss(10.0, 1.0) for _ in range(400)]
    bottom = [rng.gauss(5.0, 1.0) for _ in range(400)]
    t, b = statistics.fmean(top), statistics.fmean(bottom)
    se_t, se_b = (statistics.pstdev(x) / math.sqrt(len(x)) for x in (top, bottom))
    ratio = t / b
    se = ratio * math.sqrt((se_t / t) ** 2 + (se_b / b) ** 2)
    samples = 10_000
    lo, hi = nulls.bootstrap_ratio(top, bottom, samples=samples, seed=seed)
    tolerance = monte_carlo_tolerance(samples, se, slack=0.06)
    assert lo == pytest.approx(ratio - Z * se, abs=tolerance)
    assert hi == pytest.approx(ratio + Z * se, abs=tolerance)


@pytest.mark.parametrize("samples", [40, 1000])
def test_bootstrap_ratio_percentile_edges_are_exact(monkeypatch, samples):
    """Top's resampled means 0 … B−1, bottom's always 2: the ratios are i/2, and the interval's ends leave
    exactly B/40 of them on each side. Swapping top and bottom, or an index off by one, fails."""
    top, bottom = [1.0, 2.0], [2.0, 2.0, 2.0]
    known_means(monkeypatch, {id(top): shuffled(float(i) for i in range(samples)), id(bottom): [2.0] * samples})
    lo, hi = nulls.bootstrap_ratio(top, bottom, samples=samples)
    tail = samples // 40
    assert (lo, hi) == (tail / 2, (samples - 1 - tail) / 2)


def test_bootstrap_ratio_over_nothing_is_infinite():
    """A bottom whose resampled mean is 0 makes that ratio infinite (control KL 0: no drift at all)."""
    assert nulls.bootstrap_ratio([1.0, 2.0], [0.0, 0.0]) == (math.inf, math.inf)
    # a quarter-ones bottom: mean 0 in (3/4)^4 ≈ 32 % of resamples, so only the upper end is infinite
    lo, hi = nulls.bootstrap_ratio([1.0] * 4, [0.0, 0.0, 0.0, 1.0])
    assert math.isfinite(lo) and lo >= 1.0 and hi == math.inf


# --- verdict ---------------------------------------------------------------------------------------------------

#: (delta_logp, the random directions' deltas on that probe, significant?) — min_effect 0.1
PROBES = [
    (1.0, [0.1, -0.2, 0.05], True),      # clears every random draw and the minimum effect
    (0.15, [0.3, 0.0, -0.1], False),     # clears the draws' mean (0.067) but not the largest draw
    (0.3, [-0.5, 0.1, 0.0], False),      # a large *negative* draw counts: the floor is the largest |draw|
    (0.3, [0.3, 0.1, 0.0], False),       # equal to the largest draw is not above it
    (-1.0, [0.01, 0.01, 0.01], False),   # a large move the wrong way is no success
    (0.05, [0.01, 0.0, -0.01], False),   # clears the draws, below min_effect
    (0.1, [0.01, 0.0, -0.01], True),     # exactly min_effect is enough
]


def _probe(delta: float) -> ProbeShift:
    return ProbeShift(prompt="If it rains,", target=" then", target_tokens=1, logp_before=-3.0, logp_after=-3.0 + delta,
                      delta_logp=delta, p_before=math.exp(-3.0), p_after=math.exp(-3.0 + delta), rank_before=5,
                      rank_after=1, greedy_before=False, greedy_after=True)


def _control(kl: float, kept: bool, *, kind: str = "", prompt: str = "Paris is", language: str = "en"):
    return ControlResult(prompt=prompt, kind=kind, language=language, kl=kl, js=kl / 2, top1_kept=kept, base_lead=1.0,
                         top1_before=" the", top1_after=" the" if kept else " a", delta_entropy=0.0,
                         kl_continuation=kl)


def _verdict(deltas, draws, *, kls=None, min_effect=nulls.MIN_EFFECT, kept=None):
    kls = kls if kls is not None else [0.01 * (i + 1) for i in range(len(deltas))]
    control_rows = [_control(k, i % 3 != 0) for i, k in enumerate(kls)]
    flat = [x for d in draws for x in d]
    null = Nulls(draws=len(draws[0]), probe_delta_logp=draws, control_kl=[[k] for k in kls],
                 control_top1_kept=kept if kept is not None else [],
                 mean_abs_delta_logp=sum(abs(x) for x in flat) / len(flat), mean_control_kl=0.002)
    probe_rows = nulls.judge([_probe(d) for d in deltas], null, min_effect=min_effect)
    return probe_rows, control_rows, nulls.verdict(probe_rows, control_rows, null, min_effect=min_effect)


def test_the_floor_of_top1_kept_is_the_share_random_adapters_keep_over_controls_and_draws():
    """Beside the trained adapter's share of controls whose top-1 is kept, the share random adapters of its norm
    keep: over every control and draw (five of six here); a report written before it was measured says None."""
    deltas, draws = [p[0] for p in PROBES], [p[1] for p in PROBES]
    kept = [[True, True], [False, True], [True, True]]
    assert _verdict(deltas, draws, kls=[0.01, 0.02, 0.03], kept=kept)[2].null_top1_kept_share == pytest.approx(5 / 6)
    assert _verdict(deltas, draws, kls=[0.01, 0.02, 0.03])[2].null_top1_kept_share is None


def test_verdict_per_probe_rule():
    """A probe is significant when its delta is above every random direction's |delta| on it and at least
    min_effect; each row also gets the random directions' mean delta."""
    rows, _, out = _verdict([p[0] for p in PROBES], [p[1] for p in PROBES])
    assert [r.significant for r in rows] == [p[2] for p in PROBES]
    assert [r.null_delta_logp for r in rows] == pytest.approx([statistics.fmean(p[1]) for p in PROBES])
    assert out.significant_probes == sum(p[2] for p in PROBES)


def test_verdict_overall_rule_on_exact_intervals():
    """Overall: the paired (trained − random mean) interval's lower end above 0 and at least min_effect.
    Constant paired differences make the interval exact: 0.05 clears zero but not min_effect 0.1."""
    draws = [[0.0, 0.1, -0.1]] * 6                               # each probe's random mean is 0
    assert _verdict([2.0] * 6, draws)[2].significant is True
    assert _verdict([0.05] * 6, draws)[2].significant is False
    assert _verdict([0.05] * 6, draws, min_effect=0.01)[2].significant is True
    assert _verdict([-2.0] * 6, draws)[2].significant is False
    shifted = [[1.0, 1.2, 0.8]] * 6                              # random directions move these probes by 1.0
    out = _verdict([1.05] * 6, shifted)[2]
    assert out.paired_delta_logp_ci95 == [pytest.approx(0.05), pytest.approx(0.05)]
    assert out.significant is False


def test_verdict_reports_each_interval_of_the_right_numbers():
    """Each headline interval is the bootstrap of its own list (not a neighbour's), the floor is the nulls'
    mean |delta|, and 'clears the floor by' is mean delta ÷ floor."""
    deltas = [1.0, 2.0, 0.5, 3.0, 1.5]
    draws = [[0.1, -0.1, 0.2], [0.0, 0.1, 0.1], [0.3, -0.3, 0.0], [0.2, 0.2, 0.2], [-0.1, 0.0, 0.1]]
    kls = [0.01, 0.03, 0.02, 0.05, 0.04]
    rows, controls, out = _verdict(deltas, draws, kls=kls)
    kept = [1.0 if c.top1_kept else 0.0 for c in controls]
    paired = [d - statistics.fmean(n) for d, n in zip(deltas, draws)]
    floor = sum(abs(x) for d in draws for x in d) / 15
    assert out.delta_logp_ci95 == list(nulls.bootstrap(deltas))
    assert out.control_kl_ci95 == list(nulls.bootstrap(kls))
    assert out.top1_kept_ci95 == list(nulls.bootstrap(kept))
    assert out.selectivity_ci95 == list(nulls.bootstrap_ratio(deltas, kls))
    assert out.paired_delta_logp_ci95 == pytest.approx(list(nulls.bootstrap(paired)))
    assert out.null_mean_abs_delta_logp == pytest.approx(floor)
    assert out.clears_floor_by == pytest.approx(statistics.fmean(deltas) / floor)
    assert out.min_effect == nulls.MIN_EFFECT and out.null_mean_control_kl == 0.002
    assert out.selectivity_ci95[0] > 10   # target Δ (mean 1.6) over KL (mean 0.03): about 53, not its inverse


def test_control_groups_read_each_kind_and_language_apart():
    """One moved kind is visible beside the others: means, counts and top-1 kept per (kind, language)."""
    rows = [_control(0.001, True, kind="fact", prompt="Paris is"),
            _control(0.003, False, kind="fact", prompt="Байкал —", language="ru"),
            _control(0.005, True, kind="fact", prompt="Луна —", language="ru"),
            _control(0.7, True, kind="chat", prompt="User: hi"),
            _control(0.02, True, prompt="x")]
    groups = nulls.control_groups(rows)
    by = {(g.kind, g.language): g for g in groups}
    assert set(by) == {("fact", "en"), ("fact", "ru"), ("chat", "en"), ("unlabelled", "en")}
    assert by[("fact", "ru")].n == 2 and by[("fact", "ru")].mean_kl == pytest.approx(0.004)
    assert by[("fact", "ru")].top1_kept_share == 0.5 and by[("chat", "en")].mean_kl == 0.7
    lo, hi = by[("fact", "ru")].kl_ci95
    assert 0.003 <= lo <= 0.004 <= hi <= 0.005
