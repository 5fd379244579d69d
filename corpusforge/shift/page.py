"""Writing the report: report.json, the figures, one self-contained index.html, and the terminal summary."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from .._atomic import atomic_dir, write_atomic
from .._io import check_output
from ..errors import ReportError
from .figures import make_figures, tail
from .measure import CLEAR_LEAD
from .report_model import ShiftReport
from .sections import ControlGroup, Transfer, Unasked

TEMPLATE = Path(__file__).parent / "html" / "report.html.j2"


def render_page(report: ShiftReport, figs: dict[str, bytes]) -> str:
    """index.html: the report with its figures inline (opens offline)."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["img"] = lambda name: "data:image/png;base64," + base64.b64encode(figs[name]).decode()
    env.filters["f"] = lambda v, d=3: "∞" if isinstance(v, float) and math.isinf(v) else f"{v:.{d}f}"
    env.filters["tail"] = tail
    return env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        r=report, h=report.headline, heads=[k for k in figs if k.startswith("attention_head_")])


def write_report(report: ShiftReport, out: str | Path, *, overwrite: bool = False, inputs=()) -> Path:
    """Write report.json, figures/*.png and index.html into the folder ``out`` (atomically); ``out`` is never
    one of ``inputs`` (the adapter, model, probes, controls, corpus)."""
    out = check_output(out, ReportError, overwrite=overwrite, inputs=inputs)
    figs = make_figures(report)
    with atomic_dir(out) as tmp:
        (tmp / "figures").mkdir()
        for name, data in figs.items():
            (tmp / "figures" / f"{name}.png").write_bytes(data)
        write_atomic(tmp / "report.json", json.dumps(report.model_dump(mode="json"), indent=1,
                                                     ensure_ascii=False) + "\n")
        write_atomic(tmp / "index.html", render_page(report, figs))
    return out


def summary_table(report: ShiftReport) -> str:
    """The terminal summary of ``corpusforge report``: the summary's lines, then one line per probe."""
    lines = summary_lines(report)
    lines.append(f"{'target':<14} {'p before':>9} {'p after':>9} {'rank':>11}  prompt")
    for p in report.probes:
        lines.append(f"{p.target!r:<14} {p.p_before:>9.4f} {p.p_after:>9.4f} "
                     f"{p.rank_before:>5}→{p.rank_after:<5}  {tail(p.prompt, 50)!r}" + ("" if p.significant else "  *"))
    return "\n".join(lines)


def summary_lines(report: ShiftReport) -> list[str]:
    """The report in a few lines, for the terminal (``report`` and ``demo`` both print them): the headline, the
    controls, the floor, degeneration, structure and copying, the markers where nobody asked, and the transfer."""
    h, info, deg = report.headline, report.controls_info, report.degeneration.greedy
    lines = [
        f"selectivity {h.selectivity:.1f} [{h.selectivity_ci95[0]:.1f}, {h.selectivity_ci95[1]:.1f}]  "
        f"(mean target Δlog-prob {h.mean_delta_logp:+.3f} [{h.delta_logp_ci95[0]:+.3f}, "
        f"{h.delta_logp_ci95[1]:+.3f}] ÷ mean control KL {h.mean_control_kl:.4f})",
        f"targets: p {h.mean_p_before:.3f} → {h.mean_p_after:.3f}, top-1 on {h.top1_share_after:.0%} of probes",
        f"control drift ({info.count} controls, {info.also_training_controls} of them also trained on): mean KL "
        f"{h.mean_control_kl:.4f} nats, top-1 kept on {h.top1_kept_share:.0%}" + _clear(h) + _random_kept(h),
        control_groups_line(report.control_groups),
        f"the floor: random adapters of the same norm move the targets {h.null_mean_abs_delta_logp:.4f} nats; the "
        f"shift clears it {h.clears_floor_by:.0f}× — " + ("significant" if h.significant else
                                                          f"NOT significant (needs ≥ {h.min_effect} nats over "
                                                          "random, with 95% confidence)"),
        f"degeneration (greedy continuations): repeated 3-grams {deg.before.repeated_3gram_rate:.0%} → "
        f"{deg.after.repeated_3gram_rate:.0%}, looping {deg.before.loop_share:.0%} → {deg.after.loop_share:.0%}",
        structure_line(report),
    ]
    if report.copying.available:
        lines.append(f"word 8-grams copied from the corpus: {report.copying.before.copied_8gram_share:.0%} → "
                     f"{report.copying.after.copied_8gram_share:.0%} of generated ones")
    lines.append(unasked_line(report.unasked))
    if report.transfer:
        lines += transfer_lines(report.transfer)
    return lines


def _clear(h) -> str:
    """Top-1 kept where the base was not near a tie (a change of any size may flip a near-tie)."""
    if h.top1_kept_clear_share is None:
        return ""
    return (f" ({h.top1_kept_clear_share:.0%} of the {h.clear_controls} whose base top-1 leads by ≥ {CLEAR_LEAD} "
            "nats)")


def _random_kept(h) -> str:
    """What random adapters of the trained one's norm keep of the same controls: the share any change of this
    size keeps."""
    if h.null_top1_kept_share is None:
        return ""
    return f"; random adapters of the same norm: KL {h.null_mean_control_kl:.4f}, top-1 kept on " \
           f"{h.null_top1_kept_share:.0%}"


def structure_line(report: ShiftReport) -> str:
    """Structure where nobody asked for it — printed even when every share is 0."""
    s = report.structure
    if not s.patterns:
        return f"structure on neutral prompts: no detector ({s.detector})"
    return (f"on {len(s.prompts)} neutral prompts, continuations realising each pattern: "
            + ", ".join(f"{p.pattern} {p.share_before:.0%} → {p.share_after:.0%} (McNemar p {p.p_value:.2f})"
                        for p in s.patterns))


def control_groups_line(groups: list[ControlGroup]) -> str:
    """The controls' drift by kind (the languages of a kind pooled): mean KL and top-1 kept."""
    kinds: dict[str, list[ControlGroup]] = {}
    for g in groups:
        kinds.setdefault(g.kind, []).append(g)
    parts = []
    for kind, rows in kinds.items():
        n = sum(g.n for g in rows)
        kl = sum(g.mean_kl * g.n for g in rows) / n
        kept = sum(g.top1_kept_share * g.n for g in rows) / n
        parts.append(f"{kind} ({n}) KL {kl:.4f}, top-1 kept {kept:.0%}")
    return "controls by kind: " + "; ".join(parts)


def transfer_lines(t: Transfer) -> list[str]:
    """The transfer table: per condition, the share realising a pattern (95 % interval) by language, and
    degeneration; then whether the LoRA beats the base and the prompting baseline."""
    lines = [f"transfer ({t.prompts} neutral prompts, {t.new_tokens} new tokens; prompted = the base given "
             f"{t.k} of the corpus's records):"]
    for name, c in t.conditions.items():
        langs = "  ".join(f"{lang} {s.share:.0%} [{s.ci_low:.0%}, {s.ci_high:.0%}]"
                          for lang, s in c.by_language.items())
        lines.append(f"  {name:<13} any pattern {c.any_pattern.share:.1%}  ({langs})  looping "
                     f"{c.loop_share:.0%}  seq-rep-4 {c.seq_rep_4:.3f}  empty {c.empty_share:.0%}")
    for m, label in ((t.lora_vs_base, "LoRA vs base"), (t.lora_vs_prompted, "LoRA vs prompting")):
        if m is not None:
            lines.append(f"  {label}: {m.gained} prompts gained, {m.lost} lost (McNemar p {m.p_value:.3g})")
    return lines


def unasked_line(unasked: Unasked) -> str:
    """The markers where nobody asked, in one line: how often greedy decoding writes one, and where one is
    likeliest after."""
    line = (f"markers where nobody asked ({unasked.prompts} held-out controls and neutral prompts, each marker "
            f"after those in its language): greedy writes one after {unasked.written_before} → "
            f"{unasked.written_after} of {unasked.pairs} pairs")
    if unasked.most_likely:
        r = unasked.most_likely[0]
        line += (f"; likeliest: {r.marker!r} after {tail(r.prompt, 40)!r}, p {r.p_before:.4f} → "
                 f"{r.p_after:.4f} (first token rank {r.rank_before} → {r.rank_after})")
    return line
