"""The whole job in one call: generate → validate → stats → train → report.

Each step is one plain function of the library; the demo is their composition,
on the built-in if_then and paradox_conclusion packs in English and Russian and
the Russian definition_movement pack, one adapter on the embedded default model
with the default recipe and control set — and the source's own worked example,
«Смысл — это» → « движение», measured before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ._timing import Laps
from .generate import GenerateConfig, generate
from .stats import corpus_stats
from .validate import ValidationReport, validate_paths

if TYPE_CHECKING:
    from .shift.report_model import ShiftReport

DEMO_MIX = {"if_then.en": 1.0, "paradox_conclusion.en": 1.0, "definition_movement.ru": 1.0, "if_then.ru": 1.0,
            "paradox_conclusion.ru": 1.0}
#: the source's worked example: a model says «Смысл — это данность»; the LoRA should move it to « движение»
SEED_PROMPT, SEED_TARGET = "Смысл — это", " движение"
SEED_NAME = "the source's example"   # the seed example's probe, first in the demo's report


@dataclass
class DemoResult:
    corpus: Path
    validation: ValidationReport
    stats: dict
    adapter: Path | None = None
    report: ShiftReport | None = None
    report_dir: Path | None = None
    seconds: dict | None = None


def _checked(corpus: Path, laps: Laps, echo: Callable[[str], None]) -> DemoResult:
    """Steps 2 and 3 of either recipe: the corpus validated and described."""
    echo("[2/5] validating")
    report = validate_paths([corpus])
    echo(f"      {report.records:,} records: {report.valid:,} valid, {report.invalid:,} invalid")
    echo("[3/5] statistics")
    result = DemoResult(corpus, report, corpus_stats([corpus]), seconds=laps.seconds)
    laps.lap("validate_stats")
    return result


def run_demo(out: str | Path, *, n: int = 2000, seed: int = 0, train_model: bool = True,
             model: str = "smollm2-135m", echo: Callable[[str], None] = print,
             progress: bool | None = None) -> DemoResult:
    out = Path(out)
    laps = Laps(digits=1)
    lap = laps.lap

    corpus = out / "corpus"
    echo(f"[1/5] generating {n:,} records from {', '.join(DEMO_MIX)} into {corpus}")
    generate(GenerateConfig(mix=DEMO_MIX, n=n, seed=seed, overwrite=True, progress=progress), corpus)
    lap("generate")
    result = _checked(corpus, laps, echo)
    if not train_model or not result.validation.ok:
        return result

    from .train.loop import TrainConfig, train

    adapter = out / "adapter"
    echo(f"[4/5] training a LoRA on {model}, default recipe and controls, each record's end supervised")
    # the periodic validation loss is left out: it costs a quarter of the training time here, and the report
    # measures the held-out probes and controls instead. --end-of-text: without it, a quarter of the adapter's
    # greedy probe continuations looped (benchmarks/transfer_results.md, "Why the demo's adapter looped")
    train(corpus, adapter, TrainConfig(model=model, eval_every=0, end_of_text=True), overwrite=True, echo=echo,
          progress=progress)
    lap("train")
    echo("[5/5] the shift report")
    result.report, result.report_dir = demo_report(corpus, adapter, out / "report", model=model, echo=echo)
    result.adapter = adapter
    lap("report")
    return result


#: the transfer recipe's corpus: the embedded model answers the prompt pool in these templates' grammar
TRANSFER_MIX = {"if_then.en": 1.0, "if_then.ru": 1.0}
#: what the writer may write: a role's clause, 3 to 16 words (SmolLM2's Russian spends many tokens a word)
TRANSFER_WRITING = {"min_words": 3, "max_words": 16, "max_new_tokens": 48, "batch_size": 32}


def run_transfer_demo(out: str | Path, *, n: int = 600, seed: int = 0, model: str | None = None,
                      echo: Callable[[str], None] = print, progress: bool | None = None) -> DemoResult:
    """The transfer recipe: the embedded model (or ``model``: a folder) writes ``n`` records answering the prompt
    pool (English and Russian, the grammar forced), an adapter learns to answer that way (``train --format
    answer``), and the report measures it on the 200 held-out transfer prompts beside the base and the
    prompting baseline."""
    from .lm.embedded import DEFAULT_MODEL
    from .train.loop import TrainConfig, train
    from .write import WriteConfig, write_corpus

    model = model or DEFAULT_MODEL

    out = Path(out)
    laps = Laps(digits=1)
    corpus = out / "corpus"
    echo(f"[1/5] the embedded model writes {n:,} records answering the prompt pool ({', '.join(TRANSFER_MIX)}) "
         f"into {corpus}")
    writer = "embedded" if model == DEFAULT_MODEL else f"hf:{model}"
    written = write_corpus(WriteConfig(writer=writer, prompts="pool", mix=TRANSFER_MIX, n=n, seed=seed,
                                       overwrite=True, progress=progress, **TRANSFER_WRITING), corpus)
    t = written.tally
    echo(f"      {written.records:,} kept; answers {t.asked:,} asked, {t.cached:,} from the cache; refused: "
         + (", ".join(f"{k} {v}" for k, v in t.refused.most_common(4)) or "none"))
    laps.lap("write")
    result = _checked(corpus, laps, echo)
    if not result.validation.ok:
        return result
    adapter = out / "adapter"
    echo("[4/5] training a LoRA to answer that way (--format answer: after each prompt, every role and the end "
         "of text supervised)")
    train(corpus, adapter, TrainConfig(model=model, format="answer", eval_every=0), overwrite=True, echo=echo,
          progress=progress)
    laps.lap("train")
    echo("[5/5] the shift report, with the transfer measure")
    result.report, result.report_dir = demo_report(corpus, adapter, out / "report", transfer=True, model=model,
                                                   max_controls=None, echo=echo)   # every held-out control
    result.adapter = adapter
    laps.lap("report")
    return result


def demo_report(corpus: Path, adapter: Path, out: Path, *, max_probes: int = 12, max_controls: int | None = 12,
                transfer: bool = False, model: str = "smollm2-135m",
                echo: Callable[[str], None] = print) -> tuple[ShiftReport, Path]:
    """The demo's report: lighter than the benchmark's 20 probes and 20 controls, so the demo stays within
    3.5 minutes, plus the source's worked example as a probe of its own."""
    from .shift.probes import Probe
    from .shift.report import build_report, write_report

    seed_probe = Probe(prompt=SEED_PROMPT, targets=[SEED_TARGET], foils=[" данность"], name=SEED_NAME)
    shift = build_report(adapter, model=model, corpus=corpus, max_probes=max_probes, max_controls=max_controls,
                         extra_probes=[seed_probe], transfer=transfer, echo=echo)
    return shift, write_report(shift, out, overwrite=True)


def demo_summary(result: DemoResult) -> str:
    """The source's example, what moved per marker on the held-out probes, then the report's summary lines."""
    if result.report is None:
        return f"corpus: {result.corpus}"
    from .shift.page import summary_lines

    rep = result.report
    probes = [p for p in rep.probes if p.name != SEED_NAME]
    seed = next(p for p in rep.probes if p.name == SEED_NAME)
    by_target: dict[str, list] = {}
    for p in probes:
        by_target.setdefault(p.target, []).append(p)
    lines = ["", f"The source's example: {SEED_PROMPT!r} → {SEED_TARGET!r}: p {seed.p_before:.4f} → "
                 f"{seed.p_after:.3f}, rank {seed.rank_before} → {seed.rank_after}, greedy writes it: "
                 f"{'yes' if seed.greedy_before else 'no'} → {'yes' if seed.greedy_after else 'no'}"]
    written = next((g for g in rep.generations.rows if g.prompt == SEED_PROMPT), None)
    if written is not None:
        lines += [f"  the model writes, greedy: before {SEED_PROMPT}{written.greedy_before.rstrip()!r}",
                  f"                           after  {SEED_PROMPT}{written.greedy_after.rstrip()!r}"]
    lines += ["", "What moved (held-out probes, not in the training split):"]
    for target, rows in by_target.items():
        rb = sorted(r.rank_before for r in rows)[len(rows) // 2]
        ra = sorted(r.rank_after for r in rows)[len(rows) // 2]
        pb = sum(r.p_before for r in rows) / len(rows)
        pa = sum(r.p_after for r in rows) / len(rows)
        top1 = sum(r.rank_after == 1 for r in rows)
        lines.append(f"  {target!r:<14} median rank {rb} → {ra}, mean p {pb:.3f} → {pa:.3f}, "
                     f"top-1 on {top1}/{len(rows)} probes")
    lines += ["  " + line for line in summary_lines(rep)]
    lines += [f"  time: {', '.join(f'{k} {v:.0f} s' for k, v in (result.seconds or {}).items())}",
              f"report: {result.report_dir / 'index.html'}"]
    return "\n".join(lines)
