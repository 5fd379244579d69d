"""What ``corpusforge compare`` prints and draws: the table of the three methods, the markers where nobody asked,
who wins each measure, and ``index.html`` (self-contained)."""

from __future__ import annotations

import json


def _realised(transfer: dict) -> str:
    """A transfer column's share of prompts realising a pattern, with its Wilson interval."""
    share = transfer["any_pattern"]
    return f"{share['share']:>5.1%} [{share['ci_low']:.0%}, {share['ci_high']:.0%}]"


def table_lines(result: dict) -> list[str]:
    """The comparison for the terminal: a line per method and measure, with intervals and the floor."""
    lines = [f"{'method':<7} {'probes Δlog p [95 % CI]':<26} {'rank 1':>7} {'floor':>7} {'signif.':>8} "
             f"{'control KL [95 % CI]':<26} {'top-1 kept':>10} {'transfer [95 % CI]':<22} {'loop':>5} {'seq-rep-4':>9}"]
    t = result["base"]["transfer"]
    lines.append(f"{'base':<7} {'':<26} {result['base']['probes_rank1_share']:>7.0%} {'':>7} {'':>8} {'':<26} "
                 f"{'':>10} {_realised(t)}"
                 f"{'':<5} {t['loop_share']:>5.0%} {t['seq_rep_4']:>9.3f}")
    for row in result["methods"]:
        p, c, f, t = row["probes"], row["controls"], row["floor"], row["transfer"]
        lines.append(
            f"{row['method']:<7} {p['mean_delta_logp']:+.2f} [{p['delta_logp_ci95'][0]:+.2f}, "
            f"{p['delta_logp_ci95'][1]:+.2f}]{'':<8} {p['rank1_share']:>7.0%} {f['floor_mean_abs_delta_logp']:>7.3f} "
            f"{'yes' if f['significant'] else 'NO':>8} {c['mean_kl']:.4f} [{c['kl_ci95'][0]:.4f}, "
            f"{c['kl_ci95'][1]:.4f}]{'':<4} {c['top1_kept_share']:>10.0%} {_realised(t)} "
            f"(p {t['vs_base']['p_value']:.2g}) "
            f"{t['loop_share']:>5.0%} {t['seq_rep_4']:>9.3f}")
    for row in result["methods"]:
        u = row["unasked"]
        lines.append(f"{row['method']:<7} markers where nobody asked ({u['pairs']} control × marker pairs): "
                     f"Δlog p {u['mean_delta_logp']:+.2f} [{u['delta_logp_ci95'][0]:+.2f}, "
                     f"{u['delta_logp_ci95'][1]:+.2f}], written greedily {u['written_before']} → {u['written_after']}")
    lines.append("who wins each measure (the paired difference to the next best, 95 % CI):")
    for win in result["wins"]:
        means = "  ".join(f"{m} {v:.4g}" for m, v in win["means"].items())
        low, high = win["by_ci95"]
        verdict = (f"{win['best']} beats {win['runner_up']} by {win['by']:.4g} [{low:.4g}, {high:.4g}]"
                   if win["clear"] else f"{win['best']} and {win['runner_up']} not told apart "
                                        f"({win['by']:.4g} [{low:.4g}, {high:.4g}])")
        lines.append(f"{win['measure']}: {verdict}; means: {means}")
    return lines


def page(result: dict) -> str:
    """index.html: the table, the vector's provenance and a few continuations (self-contained)."""
    import html

    rows = "\n".join(f"<tr><td>{html.escape(line)}</td></tr>" for line in table_lines(result))
    shown = ("base", *(r["method"] for r in result["methods"]))
    examples = "\n".join(
        f"<h3>{html.escape(prompt)}</h3>" + "".join(
            f"<p><b>{m}</b>: {html.escape(result['examples'][m][i])}</p>" for m in shown)
        for i, prompt in enumerate(result["examples"]["prompts"]))
    return (f"<!doctype html><meta charset='utf-8'><title>corpusforge compare</title>"
            f"<style>body{{font-family:sans-serif;margin:2em}} td{{font-family:monospace;white-space:pre}}</style>"
            f"<h1>LoRA, steering vector and prompt on {html.escape(result['corpus'])}</h1>"
            f"<p>Model {html.escape(result['model'])}; adapter {html.escape(result['adapter'])}; the prompt gives "
            f"{result['k']} of the corpus's records; the floors are {result['draws']} draws each.</p>"
            f"<table>{rows}</table><h2>The steering vector</h2><pre>"
            f"{html.escape(json.dumps(result['vector'], indent=1, ensure_ascii=False))}</pre>"
            f"<h2>Continuations (greedy)</h2>{examples}")
