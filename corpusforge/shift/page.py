"""Writing the report: report.json, the figures, one self-contained index.html, and the terminal summary."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from .._atomic import atomic_dir, write_atomic
from .._io import check_output
from ..errors import ReportError
from .figures import make_figures

TEMPLATE = Path(__file__).parent / "html" / "report.html.j2"


def render_page(report: dict, figs: dict[str, bytes]) -> str:
    """index.html: the report with its figures inline (opens offline)."""
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["img"] = lambda name: "data:image/png;base64," + base64.b64encode(figs[name]).decode()
    env.filters["f"] = lambda v, d=3: "∞" if isinstance(v, float) and math.isinf(v) else f"{v:.{d}f}"
    return env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        r=report, h=report["headline"], heads=[k for k in figs if k.startswith("attention_head_")])


def write_report(report: dict, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write report.json, figures/*.png and index.html into the folder ``out`` (atomically)."""
    out = check_output(out, ReportError, overwrite=overwrite)
    figs = make_figures(report)
    with atomic_dir(out) as tmp:
        (tmp / "figures").mkdir()
        for name, data in figs.items():
            (tmp / "figures" / f"{name}.png").write_bytes(data)
        write_atomic(tmp / "report.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        write_atomic(tmp / "index.html", render_page(report, figs))
    return out


def summary_table(report: dict) -> str:
    """The headline and one line per probe, for the terminal."""
    h = report["headline"]
    lines = [f"selectivity {h['selectivity']:.1f}  (mean target Δlog-prob {h['mean_delta_logp']:+.3f} "
             f"[{h['delta_logp_ci95'][0]:+.3f}, {h['delta_logp_ci95'][1]:+.3f}] ÷ mean control KL "
             f"{h['mean_control_kl']:.4f})",
             f"targets: p {h['mean_p_before']:.3f} → {h['mean_p_after']:.3f}, top-1 on {h['top1_share_after']:.0%} "
             f"of probes; controls: top-1 kept on {h['top1_kept_share']:.0%}; noise floor {h['noise_floor']:.2e}"
             + ("" if h["significant"] else "  (NOT significant: below 10× the noise floor)"),
             f"{'target':<14} {'p before':>9} {'p after':>9} {'rank':>11}  prompt"]
    for p in report["probes"]:
        lines.append(f"{p['target']!r:<14} {p['p_before']:>9.4f} {p['p_after']:>9.4f} "
                     f"{p['rank_before']:>5}→{p['rank_after']:<5}  {p['prompt'][-50:]!r}")
    return "\n".join(lines)
