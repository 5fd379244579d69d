"""Building the shift report: one model, its LoRA switched off and on, measured ten ways.

``build_report`` loads the base model with the adapter once; "before" is the
adapter at scale 0, "after" at scale 1 — no merge, no second copy. The
measurements themselves are in ``measure``; this module chooses the inputs,
runs the measurements in order and assembles report.json.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .._timing import Laps
from .._version import __version__
from ..errors import ReportError
from ..lm.adapter import check_adapter, load_adapter
from ..lm.arch import check_head, describe
from ..lm.device import Placement, choose
from ..lm.embedded import DEFAULT_MODEL
from ..lm.load import load_model
from ..prompts import DEFAULT_CONTROLS, HELDOUT_CONTROLS, prompt_language, read_prompts
from ..train.adapter_run import AdapterRun, check_base, check_corpus, read_run
from . import inside, measure, nulls, passes, structure
from .config import ReportConfig, make_report_config
from .probes import Probe, probes_from_corpus, read_probes
from .report_model import ShiftReport
from .sections import (
    ControlResult,
    ControlsInfo,
    Copying,
    Degeneration,
    Headline,
    ProbeResult,
    RunInfo,
    Structure,
    Transfer,
    Verdict,
)


@dataclass
class Inputs:
    """What a report measures: the adapter, its run (if it has run.json), probes and controls."""

    adapter: Path
    run: AdapterRun | None
    probes: list[Probe]
    controls: list[dict]
    controls_info: ControlsInfo  # which set, and how many of its prompts the adapter was trained on
    corpus: Path | None          # for the structure and copying measures (None: those are skipped)
    model: str = DEFAULT_MODEL   # the base model, checked against the adapter


def base_model(adapter: Path, run: AdapterRun | None, given: str | None) -> str:
    """The base model to load for the adapter: ``given`` (--model) or the one it was trained on — run.json's,
    checked by path and fingerprint, else peft's adapter_config.json's — checked here, with the weights, before
    anything is loaded."""
    config = check_adapter(adapter, ReportError)
    if run is not None:
        return check_base(run, given, adapter, ReportError)
    named = config.get("base_model_name_or_path")
    if given and named and given != named:
        raise ReportError(f"the adapter was trained on {named!r}, not on --model {given!r}",
                          hint=f"pass --model {named}")
    return given or named or DEFAULT_MODEL


def choose_inputs(adapter: str | Path, cfg: ReportConfig) -> Inputs:
    """The base model (checked against the adapter), the probes and the controls ``cfg`` asks for."""
    adapter = Path(adapter)
    if not adapter.is_dir():
        raise ReportError("adapter folder not found", file=str(adapter))
    run = read_run(adapter, ReportError)
    model = base_model(adapter, run, cfg.model)
    if cfg.corpus:
        source = Path(cfg.corpus) if Path(cfg.corpus).is_dir() else None
    else:   # the corpus run.json records, by absolute path, if it is there and unchanged
        source = check_corpus(run, ReportError, adapter) if run else None
    if cfg.probes:
        probes = read_probes(cfg.probes)
    else:
        if source is None:
            raise ReportError("no probes: pass --probes FILE or --corpus DIR (the adapter's run.json names no "
                              "corpus that exists here)")
        chat, answer = cfg.chat, False
        if chat is None:   # measure where the adapter will be used: in the form it was trained on
            form = run.config.format if run else "text"
            chat, answer = form == "chat", form == "answer"
        probes = probes_from_corpus(source, limit=cfg.max_probes, chat=chat, answer=answer)
    controls, info = _controls(cfg.controls, cfg.max_controls, run)
    return Inputs(adapter, run, probes, controls, info, source, model)


def _spread(prompts: list[dict], count: int | None) -> list[dict]:
    """``count`` prompts taken evenly across the list (the shipped sets are grouped by kind and language); None:
    all of them."""
    if count is None or len(prompts) <= count:
        return prompts
    return [prompts[round(i * (len(prompts) - 1) / (count - 1))] for i in range(count)] if count > 1 else prompts[:1]


def _controls(controls_file: str | None, max_controls: int | None,
              run: AdapterRun | None) -> tuple[list[dict], ControlsInfo]:
    """The controls to measure drift on — by default the held-out set, never used in training — and a note of
    which set it is and how many of its prompts were also the adapter's training controls."""
    path = Path(controls_file) if controls_file else HELDOUT_CONTROLS
    controls = read_prompts(path, what="controls file") if controls_file \
        else _spread(read_prompts(HELDOUT_CONTROLS), max_controls)
    trained_on: set[str] = set()
    if run is not None and run.config.use_controls:
        trained_on = {c["prompt"] for c in read_prompts(run.config.controls or DEFAULT_CONTROLS)} \
            if not run.config.controls or Path(run.config.controls).is_file() else set()
    shared = sum(c["prompt"] in trained_on for c in controls)
    name = str(path) if controls_file else "the held-out control set shipped with corpusforge (never trained on)"
    return controls, ControlsInfo(source=name, count=len(controls), also_training_controls=shared,
                                  languages=sorted({prompt_language(c) for c in controls}))


def _check_lengths(tok, probes: list[Probe], controls: list[dict], context: int) -> None:
    for p in probes:
        n = len(passes.probe_ids(tok, p)) + max(len(passes.piece(tok, t)) for t in p.targets + p.foils)
        if n > context:
            raise ReportError(f"probe {p.name or p.prompt[:30]!r} is {n} tokens, longer than the model's context "
                              f"({context})", hint="shorten the prompt")
    for c in controls:
        if len(passes.encode(tok, c["prompt"])) + 8 > context:
            raise ReportError(f"control {c['prompt'][:30]!r} is longer than the model's context ({context})")


def load_with_adapter(model_spec: str, inputs: Inputs, echo: Callable[[str], None], placement: Placement):
    """The base model with the adapter on it (one copy), and its tokenizer."""
    echo(f"loading {model_spec} with the adapter {inputs.adapter}")
    for note in placement.notes:
        echo(note)
    lm = load_model(model_spec, placement=placement, echo=echo)  # attention maps switch to eager for their passes
    _check_lengths(lm.tokenizer, inputs.probes, inputs.controls,
                   int(getattr(lm.model.config, "max_position_embeddings", 2048)))
    model = load_adapter(lm.model, inputs.adapter, model_spec, ReportError)
    _check_finite_outputs(model, lm.tokenizer, inputs)
    return model, lm.tokenizer


def _check_finite_outputs(model, tok, inputs: Inputs) -> None:
    """Finite weights can still overflow (weights of 1e30 do): one pass with the adapter on, before anything
    is measured or shown, so that no NaN is ever printed as a probability or passes a comparison."""
    import torch

    prompt = inputs.probes[0] if inputs.probes else None
    ids = passes.probe_ids(tok, prompt) if prompt else passes.encode(tok, "The")
    if not bool(torch.isfinite(passes.next_logprobs(model, ids)).all()):
        raise _nonfinite(prompt.prompt if prompt else "The", inputs.adapter)


def _nonfinite(prompt: str, adapter: Path) -> ReportError:
    return ReportError(f"the model with this adapter gives NaN or infinite probabilities after {prompt[:40]!r}",
                       file=str(adapter), hint="the adapter's weights are too large or damaged: train it again")


def _target_sections(model, tok, inputs: Inputs, cfg: ReportConfig, echo,
                     lap) -> tuple[dict, list[measure.TargetScore]]:
    probes, controls = inputs.probes, inputs.controls
    out: dict = {}
    echo(f"[1/11] token probabilities on {len(probes)} probes")
    before = measure.target_logps(model, tok, probes, scale=0.0)
    shifts = measure.probe_rows(model, tok, probes, before=before)
    lap("probes")
    echo("[2/11] logits diff")
    out["logits_diff"] = measure.logits_diff(model, tok, probes)
    lap("logits_diff")
    echo(f"[3/11] drift on {len(controls)} controls ({inputs.controls_info.source})")
    base = measure.control_base(model, tok, controls)    # once, for every drift measure below
    out["controls"] = measure.control_rows(model, tok, controls, base=base)
    lap("controls")
    echo(f"[4/11] the floor: {cfg.null_draws} random adapters of the same norm")
    out["nulls"] = nulls.null_effects(model, tok, probes, controls, before, draws=cfg.null_draws, base=base)
    out["probes"] = nulls.judge(shifts, out["nulls"], min_effect=cfg.min_effect)
    lap("nulls")
    echo("[5/11] dose-response")
    out["dose_response"] = measure.dose_response(model, tok, probes, controls[:10], before=before,
                                                 at_one=(shifts, out["controls"][:10]))
    lap("dose_response")
    return out, before


def _model_sections(model, tok, probes: list[Probe], echo, lap, before: list[measure.TargetScore]) -> dict:
    arch = describe(model)
    out: dict = {}
    echo("[6/11] where the LoRA sits, and which part carried the shift")
    out["weight_map"] = inside.weight_map(model)
    out["families"] = inside.families(model, tok, probes, arch.num_layers, before=before)
    lap("weights_families")
    echo("[7/11] logit lens")
    _, lens_ok = check_head(model, arch, passes.as_input(model, passes.probe_ids(tok, probes[0])))
    out["logit_lens"] = [inside.logit_lens(model, tok, p, p.targets[0], arch, verified=lens_ok) for p in probes[:8]]
    lap("logit_lens")
    echo("[8/11] attention shift")
    out["attention"] = inside.attention_shift(model, tok, probes[:8])
    lap("attention")
    return out


def _text_sections(model, tok, inputs: Inputs, echo, lap, neutral_prompts: int) -> dict:
    out: dict = {}
    echo(f"[9/11] generations: probes greedy and sampled, {neutral_prompts} neutral prompts sampled, before and "
         "after, in one batch")
    probes, prompts = inputs.probes[:8], _spread(structure.read_neutral(), neutral_prompts)
    probe_ids = [passes.probe_ids(tok, p) for p in probes]
    neutral_ids = [passes.encode(tok, p["prompt"]) for p in prompts]
    texts = structure.before_after(model, tok, {"greedy": (probe_ids, 32, False), "sampled": (probe_ids, 32, True),
                                              "neutral": (neutral_ids, 40, True)})
    markers = sorted({t for p in inputs.probes for t in p.targets})
    out["generations"] = structure.generations(probes, markers, texts["greedy"], texts["sampled"])
    lap("generations")
    echo("[10/11] structure on the neutral prompts, the markers where nobody asked, and copying from the corpus")
    neutral = texts["neutral"]
    out["unasked"] = measure.unasked(model, tok, inputs.controls + prompts, markers)
    detector = _detector(inputs.corpus, inputs.probes)
    out["structure"] = Structure(prompts=[p["prompt"] for p in prompts], continuations=neutral,
                                 patterns=structure.structure_transfer(detector, prompts, neutral) if detector else [],
                                 detector="the corpus's templates" if detector else "unavailable (no corpus)")
    out["copying"] = _copying(inputs.corpus, neutral, out["generations"].rows)
    lap("structure")
    echo("[11/11] degeneration")
    rows = out["generations"].rows
    out["degeneration"] = Degeneration(
        greedy=structure.degeneration_summary([r.greedy_before for r in rows], [r.greedy_after for r in rows]),
        sampled=structure.degeneration_summary([r.sampled_before for r in rows] + neutral["before"],
                                               [r.sampled_after for r in rows] + neutral["after"]))
    lap("degeneration")
    return out


def _transfer_section(model, tok, inputs: Inputs, echo) -> Transfer:
    from . import transfer

    detector = _detector(inputs.corpus, inputs.probes)
    if detector is None:
        raise ReportError("--transfer needs the corpus the adapter was trained on (its templates' detector and its "
                          "records for the prompting baseline)", hint="pass --corpus DIR")
    prompts = transfer.read_transfer()
    echo(f"[+] transfer: {len(prompts)} neutral prompts, base / LoRA greedy and sampled, and the base prompted with "
         "3 of the corpus's records")
    return transfer.measure_transfer(model, tok, detector, inputs.corpus, prompts=prompts)


def _detector(corpus: Path | None, probes: list[Probe]):
    """The structure detector built from the templates the corpus was rendered from (those installed here)."""
    if corpus is None:
        return None
    from ..manifest import read_manifest
    from ..templates.detect import Detector
    from ..templates.registry import load_registry

    manifest = read_manifest(corpus)
    if manifest is None:
        return None
    registry = load_registry()
    templates = [registry.templates[t.name] for t in manifest.templates if t.name in registry.templates]
    return Detector(templates) if templates else None


def _copying(corpus: Path | None, neutral: dict[str, list[str]], rows) -> Copying:
    """The share of generated word 8-grams found verbatim in the corpus's training records, before and after."""
    if corpus is None:
        return Copying(available=False)
    from ..validate import corpus_patterns, iter_records

    train_files = [f for f in sorted((corpus / "data").glob("*")) if f.name.split(".")[0] == "train"]
    grams = structure.CorpusGrams(r["text"] for r in iter_records(train_files, patterns=corpus_patterns([corpus])))
    return Copying(available=True, **{label: grams.copied_share(
        neutral[label] + [getattr(r, f"greedy_{label}") for r in rows] + [getattr(r, f"sampled_{label}") for r in rows])
        for label in ("before", "after")})


def headline(probe_rows: list[ProbeResult], control_rows: list[ControlResult], verdict: Verdict) -> Headline:
    """The numbers the report leads with, each with its bootstrap interval, judged against the nulls."""
    n = len(probe_rows)
    clear = [r for r in control_rows if r.base_lead >= measure.CLEAR_LEAD]
    mean_delta = sum(r.delta_logp for r in probe_rows) / n
    mean_kl = sum(r.kl for r in control_rows) / len(control_rows)
    return Headline(
        selectivity=mean_delta / mean_kl if mean_kl > 0 else math.inf,
        mean_delta_logp=mean_delta, mean_control_kl=mean_kl,
        top1_kept_share=sum(r.top1_kept for r in control_rows) / len(control_rows), clear_controls=len(clear),
        top1_kept_clear_share=sum(r.top1_kept for r in clear) / len(clear) if clear else None,
        mean_p_before=sum(r.p_before for r in probe_rows) / n, mean_p_after=sum(r.p_after for r in probe_rows) / n,
        median_p_after=sorted(r.p_after for r in probe_rows)[n // 2],
        top1_share_after=sum(r.rank_after == 1 for r in probe_rows) / n,
        greedy_share_before=sum(r.greedy_before for r in probe_rows) / n,
        greedy_share_after=sum(r.greedy_after for r in probe_rows) / n, **verdict.model_dump())


def build_report(adapter: str | Path, config: ReportConfig | None = None, *, extra_probes: list[Probe] = (),
                 echo: Callable[[str], None] = print, **values) -> ShiftReport:
    """Measure the adapter against its base model and return the report (report.json's typed contents).

    ``config`` and ``values`` (keys of ``ReportConfig``: ``build_report(adapter, corpus=..., max_probes=8)``)
    say what to measure; ``extra_probes`` come first in every per-probe section."""
    cfg = make_report_config(config, **values)
    inputs = choose_inputs(adapter, cfg)
    inputs.probes = list(extra_probes) + inputs.probes
    placement = choose(cfg.device, cfg.dtype)
    laps = Laps()
    model, tok = load_with_adapter(inputs.model, inputs, echo, placement)
    laps.lap("load")
    with passes.measuring(model, passes.probe_ids(tok, inputs.probes[0])) if not cfg.whole_passes else nullcontext():
        sections, before = _target_sections(model, tok, inputs, cfg, echo, laps.lap)
        sections.update(_model_sections(model, tok, inputs.probes, echo, laps.lap, before))
        sections.update(_text_sections(model, tok, inputs, echo, laps.lap, cfg.neutral_prompts))
        if cfg.transfer:
            sections["transfer"] = _transfer_section(model, tok, inputs, echo)
            laps.lap("transfer")
    run = inputs.run
    verdict = nulls.verdict(sections["probes"], sections["controls"], sections["nulls"], min_effect=cfg.min_effect)
    return ShiftReport(
        corpusforge_version=__version__, model=inputs.model, adapter=str(inputs.adapter), device=placement.device,
        dtype=placement.dtype, config=cfg, headline=headline(sections["probes"], sections["controls"], verdict),
        controls_info=inputs.controls_info, control_groups=nulls.control_groups(sections["controls"]), **sections,
        timings=laps.seconds,
        run=RunInfo(steps=run.steps, config=run.config.model_dump(mode="json"),
                    non_padding_tokens_per_s=run.non_padding_tokens_per_s) if run else None)
