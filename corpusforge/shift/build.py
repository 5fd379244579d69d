"""Building the shift report: one model, its LoRA switched off and on, measured ten ways.

``build_report`` loads the base model with the adapter once; "before" is the
adapter at scale 0, "after" at scale 1 — no merge, no second copy. The
measurements themselves are in ``measure``; this module chooses the inputs,
runs the measurements in order and assembles report.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._timing import Laps
from .._version import __version__
from ..errors import ReportError
from ..train.adapter_run import AdapterRun, read_run
from ..train.data import DEFAULT_CONTROLS, read_prompts
from ..lm.arch import check_head, describe
from ..lm.device import Placement, choose
from ..lm.load import load_model
from . import measure
from .probes import Probe, probes_from_corpus, read_probes
from .report_model import ShiftReport


@dataclass
class Inputs:
    """What a report measures: the adapter, its run (if it has run.json), probes and controls."""

    adapter: Path
    run: AdapterRun | None
    probes: list[Probe]
    controls: list[dict]


def _adapter_base(adapter: Path, run: AdapterRun | None) -> str | None:
    """The base model the adapter was trained on, from run.json or peft's adapter_config.json."""
    import json

    cfg_path = adapter / "adapter_config.json"
    if not cfg_path.is_file():
        raise ReportError("not a peft adapter folder (no adapter_config.json)", file=str(adapter))
    if run is not None:
        return run.model
    try:
        return json.loads(cfg_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (ValueError, AttributeError):
        raise ReportError("adapter_config.json is not a JSON object", file=str(cfg_path)) from None


def choose_inputs(model_spec: str, adapter: str | Path, *, probes_file=None, controls_file=None, corpus=None,
                  max_probes: int = 20, max_controls: int = 20) -> Inputs:
    """Check the adapter against ``model_spec`` and pick the probes and controls."""
    adapter = Path(adapter)
    if not adapter.is_dir():
        raise ReportError("adapter folder not found", file=str(adapter))
    run = read_run(adapter, ReportError)
    base_spec = _adapter_base(adapter, run)
    if base_spec and base_spec != model_spec:
        raise ReportError(f"the adapter was trained on {base_spec!r}, not on --model {model_spec!r}",
                          hint=f"pass --model {base_spec}")
    if probes_file:
        probes = read_probes(probes_file)
    else:
        source = corpus or (run.corpus if run else None)
        if not source or not Path(source).is_dir():
            raise ReportError("no probes: pass --probes FILE or --corpus DIR (the adapter's run.json names no "
                              "corpus that exists here)")
        probes = probes_from_corpus(source, limit=max_probes)
    if controls_file:
        controls = read_prompts(controls_file)
    else:  # the shipped default set, spread over its kinds
        shipped = read_prompts(DEFAULT_CONTROLS)
        controls = shipped[::max(1, len(shipped) // max_controls)][:max_controls]
    return Inputs(adapter, run, probes, controls)


def _check_lengths(tok, probes: list[Probe], controls: list[dict], context: int) -> None:
    for p in probes:
        n = len(measure.encode(tok, p.prompt)) + max(len(measure.encode(tok, t)) for t in p.targets + p.foils)
        if n > context:
            raise ReportError(f"probe {p.name or p.prompt[:30]!r} is {n} tokens, longer than the model's context "
                              f"({context})", hint="shorten the prompt")
    for c in controls:
        if len(measure.encode(tok, c["prompt"])) + 8 > context:
            raise ReportError(f"control {c['prompt'][:30]!r} is longer than the model's context ({context})")


def load_with_adapter(model_spec: str, inputs: Inputs, echo: Callable[[str], None], placement: Placement):
    """The base model with the adapter on it (one copy), and its tokenizer."""
    from peft import PeftModel

    echo(f"loading {model_spec} with the adapter {inputs.adapter}")
    for note in placement.notes:
        echo(note)
    lm = load_model(model_spec, placement=placement, echo=echo)  # attention maps switch to eager for their passes
    _check_lengths(lm.tokenizer, inputs.probes, inputs.controls,
                   int(getattr(lm.model.config, "max_position_embeddings", 2048)))
    try:
        model = PeftModel.from_pretrained(lm.model, str(inputs.adapter))
    except (RuntimeError, ValueError, KeyError) as e:
        raise ReportError(f"the adapter does not fit {model_spec}: {str(e).splitlines()[0]}",
                          file=str(inputs.adapter)) from None
    model.eval()
    return model, lm.tokenizer


def measure_all(model, tok, probes: list[Probe], controls: list[dict], echo: Callable[[str], None],
                laps: Laps) -> dict:
    arch = describe(model)
    """Every section of the report but the headline, each timed."""
    lap = laps.lap
    out: dict = {}
    echo(f"[1/9] token probabilities on {len(probes)} probes")
    before = measure.target_logps(model, tok, probes, scale=0.0)
    out["probes"] = measure.probe_rows(model, tok, probes, before=before)
    lap("probes")
    echo("[2/9] logits diff")
    out["logits_diff"] = measure.logits_diff(model, tok, probes)
    lap("logits_diff")
    echo(f"[3/9] drift on {len(controls)} controls")
    out["controls"] = measure.control_rows(model, tok, controls)
    lap("controls")
    echo("[4/9] noise floor (adapter at scale 0 vs switched off)")
    out["noise_floor"] = noise_floor(model, tok, probes, controls)
    lap("noise_floor")
    echo("[5/9] dose-response")
    out["dose_response"] = measure.dose_response(model, tok, probes, controls[:10], before=before)
    lap("dose_response")
    echo("[6/9] where the LoRA sits, and which part carried the shift")
    out["weight_map"] = measure.weight_map(model)
    out["families"] = measure.families(model, tok, probes, arch.num_layers, before=before)
    lap("weights_families")
    echo("[7/9] logit lens")
    _, lens_ok = check_head(model, arch, measure.as_input(model, measure.encode(tok, probes[0].prompt)))
    out["logit_lens"] = [dict(measure.logit_lens(model, tok, p, p.targets[0], arch), prompt=p.prompt,
                              target=p.targets[0], verified=lens_ok) for p in probes[:8]]
    lap("logit_lens")
    echo("[8/9] attention shift")
    out["attention"] = measure.attention_shift(model, tok, probes[:8])
    lap("attention")
    echo("[9/9] generations")
    markers = sorted({t for p in probes for t in p.targets})
    out["generations"] = measure.generations(model, tok, probes[:8], markers)
    lap("generations")
    return out


def noise_floor(model, tok, probes, controls) -> dict:
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


def headline(probe_rows: list[dict], control_rows: list[dict], floor: dict) -> dict:
    """The numbers the report leads with (and marks each probe significant or not)."""
    deltas = [r["delta_logp"] for r in probe_rows]
    mean_delta = sum(deltas) / len(deltas)
    mean_kl = sum(r["kl"] for r in control_rows) / len(control_rows)
    floor_value = max(floor["probe_abs_delta_logp"], floor["control_kl"])
    for r in probe_rows:
        r["significant"] = abs(r["delta_logp"]) > 10 * floor_value
    return {
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


def build_report(model_spec: str, adapter: str | Path, *, probes_file: str | Path | None = None,
                 controls_file: str | Path | None = None, corpus: str | Path | None = None, max_probes: int = 20,
                 max_controls: int = 20, device: str = "auto", dtype: str = "auto",
                 echo: Callable[[str], None] = print) -> dict:
    """Measure the adapter against its base model and return the report as a dict (see ShiftReport)."""
    inputs = choose_inputs(model_spec, adapter, probes_file=probes_file, controls_file=controls_file, corpus=corpus,
                           max_probes=max_probes, max_controls=max_controls)
    placement = choose(device, dtype)
    laps = Laps()
    model, tok = load_with_adapter(model_spec, inputs, echo, placement)
    laps.lap("load")
    sections = measure_all(model, tok, inputs.probes, inputs.controls, echo, laps)
    run = inputs.run
    report = {
        "format": "corpusforge.report/1", "corpusforge_version": __version__, "model": model_spec,
        "adapter": str(inputs.adapter), "device": placement.device, "dtype": placement.dtype,
        "headline": headline(sections["probes"], sections["controls"], sections["noise_floor"]),
        **sections, "timings": laps.seconds,
        "run": {"steps": run.steps, "config": run.config.model_dump(mode="json"),
                "non_padding_tokens_per_s": run.non_padding_tokens_per_s} if run else {},
    }
    ShiftReport.model_validate(report)
    return report
