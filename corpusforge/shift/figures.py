"""The report's figures, one function per figure: each takes the report (``ShiftReport``) and returns a PNG."""

from __future__ import annotations

import io
from typing import Callable

from .report_model import ShiftReport
from .sections import Heatmap

BEFORE, AFTER, CONTROL = "#9aa5b1", "#2f6fde", "#d9534f"


def tail(text: str, n: int) -> str:
    """The last ``n`` characters of a prompt (where its target follows), with "…" where it was cut."""
    return text if len(text) <= n else "…" + text[-(n - 1):]

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def probabilities(report: ShiftReport) -> bytes:
    """p(target) before and after, one bar pair per probe."""
    import numpy as np

    probes = report.probes
    fig, ax = _plt().subplots(figsize=(7, 0.28 * len(probes) + 1.2))
    y = np.arange(len(probes))
    ax.barh(y - 0.2, [p.p_before for p in probes], 0.4, label="before", color=BEFORE)
    ax.barh(y + 0.2, [p.p_after for p in probes], 0.4, label="after", color=AFTER)
    ax.set_yticks(y, [f"{p.target!r} · {tail(p.prompt, 28)}" for p in probes], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("p(target | prompt)")
    ax.set_xlim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)   # beside the bars, never over them
    return _png(fig)


def dose_response(report: ShiftReport) -> bytes:
    """Target Δlog-prob and control KL against the adapter's scale."""
    dose = report.dose_response
    fig, ax = _plt().subplots(figsize=(5.5, 3.2))
    scales = [d.scale for d in dose]
    ax.plot(scales, [d.delta_logp for d in dose], "o-", color=AFTER, label="target Δlog-prob")
    ax.set_xlabel("adapter scale")
    ax.set_ylabel("mean target Δlog-prob", color=AFTER)
    ax2 = ax.twinx()
    ax2.plot(scales, [d.control_kl for d in dose], "s--", color=CONTROL)
    ax2.set_ylabel("mean control KL (nats)", color=CONTROL)
    return _png(fig)


def weight_map(report: ShiftReport) -> bytes:
    """‖ΔW‖/‖W‖ per layer × module, in the order the modules were found."""
    import numpy as np

    wm = report.weight_map
    layers = sorted({w.layer for w in wm if w.layer is not None})
    modules = list(dict.fromkeys(w.module for w in wm if w.layer is not None))
    grid = np.full((len(modules), len(layers)), np.nan)
    for w in wm:
        if w.layer is not None and w.relative_norm is not None:
            grid[modules.index(w.module), layers.index(w.layer)] = w.relative_norm
    fig, ax = _plt().subplots(figsize=(max(4, 0.3 * len(layers) + 2), 0.3 * len(modules) + 1.6))
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(modules)), modules, fontsize=7)
    ax.set_xticks(range(len(layers)), layers, fontsize=7)
    ax.set_xlabel("layer")
    fig.colorbar(im, ax=ax, label="‖ΔW‖ / ‖W‖")
    return _png(fig)


def logit_lens(report: ShiftReport) -> bytes:
    """p(target) through the lens at every layer, mean over probes, before and after."""
    import numpy as np

    lens = report.logit_lens
    fig, ax = _plt().subplots(figsize=(6, 3.2))
    for label, color in (("before", BEFORE), ("after", AFTER)):
        mean = np.mean([getattr(row, label).p for row in lens], axis=0)
        ax.plot(range(len(mean)), mean, color=color, label=label)
    ax.set_xlabel("layer")
    ax.set_ylabel("p(target) through the lens")
    ax.legend()
    return _png(fig)


def attention_grid(report: ShiftReport) -> bytes:
    """JS distance of the last position's attention, per layer × head."""
    import numpy as np

    fig, ax = _plt().subplots(figsize=(6, 3.2))
    im = ax.imshow(np.array(report.attention.grid).T, aspect="auto", cmap="magma")
    ax.set_xlabel("layer")
    ax.set_ylabel("head")
    fig.colorbar(im, ax=ax, label="JS distance, last position")
    return _png(fig)


def attention_head(heatmap: Heatmap) -> bytes:
    """One head's token × token attention: before, after, and their difference."""
    import numpy as np

    before, after = np.array(heatmap.before), np.array(heatmap.after)
    fig, axes = _plt().subplots(1, 3, figsize=(11, 3.6))
    labels = [t.replace("\n", "⏎")[:10] for t in heatmap.tokens]
    for ax, data, title, cmap in ((axes[0], before, "before", "Blues"), (axes[1], after, "after", "Blues"),
                                  (axes[2], after - before, "after − before", "RdBu_r")):
        lim = np.abs(data).max() or 1
        ax.imshow(data, cmap=cmap, vmin=-lim if cmap == "RdBu_r" else 0, vmax=lim)
        ax.set_title(f"layer {heatmap.layer} head {heatmap.head}: {title}", fontsize=8)
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
    return _png(fig)


#: name → figure function, in the page's order
FIGURES: dict[str, Callable[[ShiftReport], bytes]] = {
    "probabilities": probabilities, "dose_response": dose_response, "weight_map": weight_map,
    "logit_lens": logit_lens, "attention_grid": attention_grid,
}


def make_figures(report: ShiftReport) -> dict[str, bytes]:
    """Every figure of the report, by name (the attention heads as attention_head_0, _1, ...)."""
    figs = {name: draw(report) for name, draw in FIGURES.items()
            if name != "attention_grid" or report.attention.available}
    for i, heatmap in enumerate(report.attention.heatmaps):
        figs[f"attention_head_{i}"] = attention_head(heatmap)
    return figs
