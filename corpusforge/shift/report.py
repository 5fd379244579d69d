"""The shift report: one model, its LoRA switched off and on, measured ten ways; JSON, figures, one HTML page.

``build_report`` composes the measurements in ``measure``; ``write_report``
writes ``report.json`` (schema: ``schemas/report.schema.json``), ``figures/*.png``
and a self-contained ``index.html`` into a folder, atomically.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from .. import __version__
from .._atomic import atomic_dir, write_atomic
from .._timing import Laps
from ..errors import CorpusforgeError
from ..train.data import DEFAULT_CONTROLS, read_prompts
from ..train.models import load_model
from . import measure
from .probes import Probe, probes_from_corpus, read_probes


class ReportError(CorpusforgeError):
    """A report that cannot be made from these inputs."""


# ---------------------------------------------------------------------------
# The report.json contract


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


# ---------------------------------------------------------------------------
# Inputs


def _adapter_base(adapter: Path) -> tuple[str | None, dict]:
    run_path, cfg_path = adapter / "run.json", adapter / "adapter_config.json"
    if not cfg_path.is_file():
        raise ReportError("not a peft adapter folder (no adapter_config.json)", file=str(adapter))
    run = json.loads(run_path.read_text()) if run_path.is_file() else {}
    return run.get("model") or json.loads(cfg_path.read_text()).get("base_model_name_or_path"), run


def _check_lengths(tok, probes: list[Probe], controls: list[dict], context: int) -> None:
    for p in probes:
        n = len(measure.encode(tok, p.prompt)) + max(len(measure.encode(tok, t)) for t in p.targets + p.foils)
        if n > context:
            raise ReportError(f"probe {p.name or p.prompt[:30]!r} is {n} tokens, longer than the model's context "
                              f"({context})", hint="shorten the prompt")
    for c in controls:
        if len(measure.encode(tok, c["prompt"])) + 8 > context:
            raise ReportError(f"control {c['prompt'][:30]!r} is longer than the model's context ({context})")


# ---------------------------------------------------------------------------
# Building


def build_report(model_spec: str, adapter: str | Path, *, probes_file: str | Path | None = None,
                 controls_file: str | Path | None = None, corpus: str | Path | None = None, max_probes: int = 20,
                 max_controls: int = 20, echo: Callable[[str], None] = print) -> dict:
    """Measure the adapter against its base model and return the report as a dict (see ShiftReport)."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not adapter.is_dir():
        raise ReportError("adapter folder not found", file=str(adapter))
    base_spec, run = _adapter_base(adapter)
    if base_spec and base_spec != model_spec:
        raise ReportError(f"the adapter was trained on {base_spec!r}, not on --model {model_spec!r}",
                          hint=f"pass --model {base_spec}")
    if probes_file:
        probes = read_probes(probes_file)
    else:
        source = corpus or run.get("corpus")
        if not source or not Path(source).is_dir():
            raise ReportError("no probes: pass --probes FILE or --corpus DIR (the adapter's run.json names no "
                              "corpus that exists here)")
        probes = probes_from_corpus(source, limit=max_probes)
    if controls_file:
        controls = read_prompts(controls_file)
    else:  # the shipped default set, spread over its kinds
        shipped = read_prompts(DEFAULT_CONTROLS)
        controls = shipped[::max(1, len(shipped) // max_controls)][:max_controls]

    laps = Laps()
    lap, timings = laps.lap, laps.seconds

    echo(f"loading {model_spec} with the adapter {adapter}")
    lm = load_model(model_spec, echo=echo)  # SDPA; attention maps switch to eager for their forward passes
    tok = lm.tokenizer
    _check_lengths(tok, probes, controls, int(getattr(lm.model.config, "max_position_embeddings", 2048)))
    try:
        model = PeftModel.from_pretrained(lm.model, str(adapter))
    except (RuntimeError, ValueError, KeyError) as e:
        raise ReportError(f"the adapter does not fit {model_spec}: {str(e).splitlines()[0]}",
                          file=str(adapter)) from None
    model.eval()
    layer_count = int(model.config.num_hidden_layers)
    lap("load")

    echo(f"[1/9] token probabilities on {len(probes)} probes")
    before = measure.target_logps(model, tok, probes, scale=0.0)
    probe_rows = measure.probe_rows(model, tok, probes, before=before)
    deltas = [r["delta_logp"] for r in probe_rows]
    lap("probes")
    echo("[2/9] logits diff")
    diff = measure.logits_diff(model, tok, probes)
    lap("logits_diff")
    echo(f"[3/9] drift on {len(controls)} controls")
    control_rows = measure.control_rows(model, tok, controls)
    lap("controls")
    echo("[4/9] noise floor (adapter at scale 0 vs switched off)")
    floor = _noise_floor(model, tok, probes, controls)
    lap("noise_floor")
    echo("[5/9] dose-response")
    dose = measure.dose_response(model, tok, probes, controls[:10], before=before)
    lap("dose_response")
    echo("[6/9] where the LoRA sits, and which part carried the shift")
    weights = measure.weight_map(model)
    fams = measure.families(model, tok, probes, layer_count, before=before)
    lap("weights_families")
    echo("[7/9] logit lens")
    lens = [dict(measure.logit_lens(model, tok, p, p.targets[0]), prompt=p.prompt, target=p.targets[0])
            for p in probes[:8]]
    lap("logit_lens")
    echo("[8/9] attention shift")
    attention = measure.attention_shift(model, tok, probes[:8])
    lap("attention")
    echo("[9/9] generations")
    markers = sorted({t for p in probes for t in p.targets})
    gens = measure.generations(model, tok, probes[:8], markers)
    lap("generations")

    mean_delta = sum(deltas) / len(deltas)
    mean_kl = sum(r["kl"] for r in control_rows) / len(control_rows)
    floor_value = max(floor["probe_abs_delta_logp"], floor["control_kl"])
    headline = {
        "selectivity": mean_delta / mean_kl if mean_kl > 0 else math.inf,
        "mean_delta_logp": mean_delta, "delta_logp_ci95": list(measure.bootstrap_ci(deltas)),
        "mean_control_kl": mean_kl,
        "top1_kept_share": sum(r["top1_kept"] for r in control_rows) / len(control_rows),
        "mean_p_before": sum(r["p_before"] for r in probe_rows) / len(probe_rows),
        "mean_p_after": sum(r["p_after"] for r in probe_rows) / len(probe_rows),
        "top1_share_after": sum(r["rank_after"] == 1 for r in probe_rows) / len(probe_rows),
        "noise_floor": floor_value,
        "significant": abs(mean_delta) > 10 * floor_value,
    }
    for r in probe_rows:
        r["significant"] = abs(r["delta_logp"]) > 10 * floor_value
    report = {
        "format": "corpusforge.report/1", "corpusforge_version": __version__, "model": model_spec,
        "adapter": str(adapter), "headline": headline, "probes": probe_rows, "controls": control_rows,
        "logits_diff": diff, "noise_floor": floor, "dose_response": dose, "weight_map": weights, "families": fams,
        "logit_lens": lens, "attention": attention, "generations": gens, "timings": timings,
        "run": {k: run.get(k) for k in ("steps", "config", "non_padding_tokens_per_s") if k in run},
    }
    ShiftReport.model_validate(report)
    return report


def _noise_floor(model, tok, probes, controls) -> dict:
    """Scale 0 against the adapter switched off entirely: must be ~0; real shifts must clear 10× this."""
    worst_probe, worst_kl = 0.0, 0.0
    for p in probes:
        ids = measure.encode(tok, p.prompt)
        cont = measure.encode(tok, p.targets[0])
        with model.disable_adapter():
            off, _ = measure.continuation_logprob(model, ids, cont)
        with measure.adapter_scale(model, 0.0):
            zero, _ = measure.continuation_logprob(model, ids, cont)
        worst_probe = max(worst_probe, abs(zero - off))
    for c in controls:
        ids = measure.encode(tok, c["prompt"])
        with model.disable_adapter():
            off = measure.next_logprobs(model, ids)
        with measure.adapter_scale(model, 0.0):
            zero = measure.next_logprobs(model, ids)
        worst_kl = max(worst_kl, measure.kl(off, zero))
    return {"probe_abs_delta_logp": worst_probe, "control_kl": worst_kl}


# ---------------------------------------------------------------------------
# Figures and the page


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def make_figures(report: dict) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figs: dict[str, bytes] = {}
    probes = report["probes"]
    # 1. probabilities before/after
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(probes) + 1.2))
    y = np.arange(len(probes))
    ax.barh(y - 0.2, [p["p_before"] for p in probes], 0.4, label="before", color="#9aa5b1")
    ax.barh(y + 0.2, [p["p_after"] for p in probes], 0.4, label="after", color="#2f6fde")
    ax.set_yticks(y, [f"{p['target']!r} · {p['prompt'][-28:]}" for p in probes], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("p(target | prompt)")
    ax.legend(loc="lower right")
    figs["probabilities"] = _png(fig)
    # 2. dose-response
    dose = report["dose_response"]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot([d["scale"] for d in dose], [d["delta_logp"] for d in dose], "o-", color="#2f6fde",
            label="target Δlog-prob")
    ax.set_xlabel("adapter scale")
    ax.set_ylabel("mean target Δlog-prob", color="#2f6fde")
    ax2 = ax.twinx()
    ax2.plot([d["scale"] for d in dose], [d["control_kl"] for d in dose], "s--", color="#d9534f")
    ax2.set_ylabel("mean control KL (nats)", color="#d9534f")
    figs["dose_response"] = _png(fig)
    # 3. weight map: layer × module
    wm = report["weight_map"]
    layers = sorted({w["layer"] for w in wm if w["layer"] is not None})
    modules = [m for m in measure.MODULES if any(w["module"] == m for w in wm)]
    grid = np.full((len(modules), len(layers)), np.nan)
    for w in wm:
        if w["layer"] is not None and w["module"] in modules:
            grid[modules.index(w["module"]), layers.index(w["layer"])] = w["relative_norm"]
    fig, ax = plt.subplots(figsize=(max(4, 0.3 * len(layers) + 2), 2.8))
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(modules)), [m.replace("_proj", "") for m in modules])
    ax.set_xticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel("layer")
    fig.colorbar(im, ax=ax, label="‖ΔW‖ / ‖W‖")
    figs["weight_map"] = _png(fig)
    # 4. logit lens (mean over probes)
    lens = report["logit_lens"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, color in (("before", "#9aa5b1"), ("after", "#2f6fde")):
        mean = np.mean([row[label]["p"] for row in lens], axis=0)
        ax.plot(range(len(mean)), mean, color=color, label=label)
    ax.set_xlabel("layer")
    ax.set_ylabel("p(target) through the lens")
    ax.legend()
    figs["logit_lens"] = _png(fig)
    # 5. attention JS grid and heatmaps
    att = report["attention"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    im = ax.imshow(np.array(att["grid"]).T, aspect="auto", cmap="magma")
    ax.set_xlabel("layer")
    ax.set_ylabel("head")
    fig.colorbar(im, ax=ax, label="JS distance, last position")
    figs["attention_grid"] = _png(fig)
    for i, h in enumerate(att["heatmaps"]):
        before, after = np.array(h["before"]), np.array(h["after"])
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
        labels = [t.replace("\n", "⏎")[:10] for t in h["tokens"]]
        for ax, data, title, cmap in ((axes[0], before, "before", "Blues"), (axes[1], after, "after", "Blues"),
                                      (axes[2], after - before, "after − before", "RdBu_r")):
            lim = np.abs(data).max() or 1
            im = ax.imshow(data, cmap=cmap, vmin=-lim if cmap == "RdBu_r" else 0, vmax=lim)
            ax.set_title(f"layer {h['layer']} head {h['head']}: {title}", fontsize=8)
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
        figs[f"attention_head_{i}"] = _png(fig)
    return figs


def _page(report: dict, figs: dict[str, bytes]) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["img"] = lambda name: "data:image/png;base64," + base64.b64encode(figs[name]).decode()
    env.filters["f"] = lambda v, d=3: "∞" if isinstance(v, float) and math.isinf(v) else f"{v:.{d}f}"
    template = (Path(__file__).parent / "html" / "report.html.j2").read_text(encoding="utf-8")
    return env.from_string(template).render(r=report, h=report["headline"],
                                             heads=[k for k in figs if k.startswith("attention_head_")])


def write_report(report: dict, out: str | Path, *, overwrite: bool = False) -> Path:
    out = Path(out)
    if out.exists() and not overwrite:
        raise ReportError(f"{out} already exists", hint="pass --overwrite to replace it, or choose another --out")
    figs = make_figures(report)
    with atomic_dir(out) as tmp:
        (tmp / "figures").mkdir()
        for name, data in figs.items():
            (tmp / "figures" / f"{name}.png").write_bytes(data)
        write_atomic(tmp / "report.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n")
        write_atomic(tmp / "index.html", _page(report, figs))
    return out


def summary_table(report: dict) -> str:
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
