"""Render the measured figures of README.md and docs/*.md from the benchmarks' results file.

A measured figure in the documentation lives between two markers,

    <!-- rendered: NAME -->
    ...what RENDERERS[NAME] makes of benchmarks/results.json...
    <!-- /rendered -->

on lines of their own (a block) or inside a line (inline: ``<!-- rendered: NAME -->…<!-- /rendered -->``).
Nothing between the markers is written by hand: this script writes it.

    python scripts/render_docs.py           rewrite every block in place
    python scripts/render_docs.py --check   change nothing; exit 1 naming each block that differs

Only results.json is read (what `python -m benchmarks` writes). The hand-written result pages
(benchmarks/quality_results.md, benchmarks/transfer_results.md) are not parsed: figures that only they hold
are quoted, with their date and machine, in docs/benchmarks.md. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
BLOCK = re.compile(r"<!-- rendered: ([A-Za-z0-9_-]+) -->(.*?)<!-- /rendered -->", re.S)
OPEN = re.compile(r"<!-- rendered: ([A-Za-z0-9_-]+) -->")


class RenderError(Exception):
    """A marker without its end, an unknown block name, or a result the block needs that is missing."""


def doc_files(root: Path = ROOT) -> list[Path]:
    """The files whose blocks are rendered: README.md and every page in docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def load_results(path: Path = RESULTS) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --- formatting helpers --------------------------------------------------------------------------------------


def bench(results: dict, name: str) -> dict:
    try:
        return results["benchmarks"][name]
    except KeyError:
        raise RenderError(f"benchmarks/results.json has no '{name}' benchmark") from None


def from_summary(b: dict, pattern: str, name: str) -> str:
    """A figure the benchmark printed only in its summary line (no key of its own)."""
    m = re.search(pattern, b["summary"])
    if not m:
        raise RenderError(f"the '{name}' summary in results.json no longer says {pattern!r}")
    return m.group(1)


def machine(b: dict) -> str:
    """Where a benchmark ran, as results.json records it for that benchmark (never the file's last run's)."""
    m = b.get("machine")
    if not m:
        return "machine not recorded"
    flags = ", ".join(f.upper() for f in m.get("flags") or []) or "flags not recorded"
    return f"{m['cores']}-core {m['cpu']} ({flags})"


def run_of(b: dict) -> str:
    return f"{b.get('date', 'date not recorded')}, {machine(b)}"


def met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def times(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}×"


# --- the blocks ----------------------------------------------------------------------------------------------


def benchmarks_table(results: dict) -> str:
    """README's summary table: speed and memory beside each baseline, the goals judged from the numbers."""
    v, g, t = bench(results, "validation"), bench(results, "generation"), bench(results, "training")
    r, s, w = bench(results, "report"), bench(results, "steps"), bench(results, "writing")
    pr = bench(results, "profile")
    gen_1m_s = from_summary(g, r"1,000,000 records: ([\d.]+) s", "generation")
    probes = from_summary(r, r"report on (\d+) probes", "report")
    controls = from_summary(r, r"and (\d+) held-out controls", "report")
    steps, pairs = (from_summary(s, p, "steps") for p in (r"(\d+) steps x", r"x (\d+) alternating"))
    entered, whole = statistics.mean(s["seconds"]["entered"]), statistics.mean(s["seconds"]["whole"])
    loss_e, loss_w = (f"{s['final_loss'][k]:.5f}" for k in ("entered", "whole"))
    cc = w["constraint_cost"]
    sec = cc["s_per_answer"]
    refused = ", ".join(f"{n} {why}" for why, n in w["refused"].items())
    rows = [
        ["benchmark", "corpusforge", "baseline", "ratio", "goal", "run"],
        [f"validation, one core, {v['table']['records']} records",
         f"{v['records_per_s']:,.0f} records/s, peak RSS {v['peak_rss_mib']:,.0f} MiB (streamed)",
         f"`jsonschema` Draft202012Validator: {v['baseline_records_per_s']:,.0f} records/s"
         + ("; the same verdicts" if v["verdicts_agree"] else "; verdicts **differ**"),
         times(v["ratio"], 1),
         f"≥ 100,000/s {met(v['records_per_s'] >= 100_000)}; ≥ 25× {met(v['ratio'] >= 25)}", run_of(v)],
        [f"generation, `--workers 2`, {g['table']['records (timed runs)']} records",
         f"{g['records_per_s']:,.0f} records/s (1 worker: {g['records_per_s_1_worker']:,.0f})"
         + ("; byte-identical for 1 and 2 workers" if g["identical_across_workers"] else "; workers **differ**"),
         f"naive sandboxed-Jinja loop, one core: {g['baseline_records_per_s']:,.0f} records/s",
         times(g["ratio"]), f"≥ 3× {met(g['ratio'] >= 3)}; ≥ 100,000/s {met(g['records_per_s'] >= 100_000)}",
         run_of(g)],
        ["generation memory, 1,000,000 records", f"peak RSS {g['peak_rss_mib_1m']:,.0f} MiB, {gen_1m_s} s", "", "",
         f"< 300 MB {met(g['peak_rss_mib_1m'] * 2**20 < 300e6)}", run_of(g)],
        ["training, LoRA r8 q,k,v,gate,up,down of layers 20-29, batch 8, fp32 CPU",
         f"{t['tokens_per_s']:,.0f} non-padding tokens/s, peak RSS {t['peak_rss_mib']:,.0f} MiB" + _work(t),
         f"TRL `SFTTrainer`, completion-only loss: {t['baseline_tokens_per_s']:,.0f} tokens/s, "
         f"{t['baseline_peak_rss_mib']:,.0f} MiB" + _work(t, baseline=True), times(t["ratio"]),
         f"≥ 2× with memory no higher {met(t['ratio'] >= 2 and t['peak_rss_mib'] <= t['baseline_peak_rss_mib'])}; "
         f"≥ 3× (issue 22) {met(t['ratio'] >= 3)}", run_of(t)],
        [f"shift report, embedded model, {probes} probes, {controls} held-out controls, every section",
         f"{r['seconds']:.0f} s, peak RSS {r['peak_rss_mib']:,.0f} MiB",
         f"every pass whole, the head at every position, a `generate` call per side: {r['baseline_seconds']:.0f} s, "
         f"{r['baseline_peak_rss_mib']:,.0f} MiB; "
         + ("the same headline to 1e-4" if r["same_headline"] else "the headline **differs**"),
         times(r["ratio"]), f"< 120 s {met(r['seconds'] < 120)}", run_of(r)],
        [f"a training step, default recipe, demo corpus ({steps} steps × {pairs} alternating pairs)",
         f"controls' and premises' passes entered at the first adapted layer: {entered:.2f} s/step",
         f"every pass whole: {whole:.2f} s/step; final loss {loss_w}"
         + (" (the same to 5 digits)" if loss_e == loss_w else f" (entered: {loss_e})"),
         times(s["ratio"]), "", run_of(s)],
        [f"a training step, default recipe, demo corpus ({len(pr['seconds']['plain'])} alternating pairs of runs; "
         "`benchmarks/profile.py`)",
         f"{pr['default_s']:.2f} s/step; profiled: " + ", ".join(f"{k} {v:.2f} s" for k, v in pr["phases"].items()
                                                                if v >= 0.01)
         + (f"; matrix-product work {pr['flops']['default'] / pr['flops']['plain']:.2f}× the plain step's"
            if "flops" in pr else ""),
         f"a plain step of the same batches (no control KL, no premise hold): {pr['plain_s']:.2f} s/step",
         times(pr["ratio"]), f"≤ 1.5× {met(pr['ratio'] <= 1.5)}", run_of(pr)],
        [f"model-written corpus: {w['table']['records (en / ru)']} records of `if_then.en`, "
         "`paradox_conclusion.en`, `if_then.ru` by the embedded model",
         f"{w['wall_first_s']:.0f} s for {w['asked']:,} answers; refused: {refused}; "
         + ("all valid" if w["valid"] else "**not all valid**")
         + f", the detector finds the pattern in {w['detected_share']:.0%}; distinct-1/2/3 "
         f"{w['table']['distinct-1/2/3 written']}; near-duplicates {w['near_dup_share']:.0%}; the rerun from the "
         f"cache {w['wall_cached_s']:.1f} s" + (", byte-identical" if w["identical"] else ", **not identical**"),
         f"the templates' corpus of the same mix and size: distinct-2 {w['distinct_2_templates']}; plain sampling on "
         f"the same prompts: {sec['plain']:.3f} s an answer; forced by our own mask (the default for a clause) "
         f"{sec['mask']:.3f} s, by xgrammar {sec['xgrammar']:.3f} s",
         f"{times(cc['ratio'])} the cost of plain sampling (xgrammar {times(cc['xgrammar_ratio'])})",
         f"distinct-2 ≥ 0.40 {met(w['distinct_2'] >= 0.40)}, near-duplicates < 1 % {met(w['near_dup_share'] < 0.01)}, "
         f"rerun < 30 s {met(w['wall_cached_s'] < 30)}; ≤ 600 s {met(w['wall_first_s'] <= 600)}", run_of(w)],
    ]
    tg = results["benchmarks"].get("training_gemma")   # only where `make gemma` installed the second model
    if tg:
        rows.insert(4, [f"training on Gemma 3 270M (vocabulary 262,144), LoRA r8 q,k,v,gate,up,down of layers "
                        f"{tg['layers']}, batch 8, fp32 CPU",
                        f"{tg['tokens_per_s']:,.0f} non-padding tokens/s, peak RSS {tg['peak_rss_mib']:,.0f} MiB"
                        + _work(tg),
                        f"TRL `SFTTrainer`, completion-only loss (the head at every position): "
                        f"{tg['baseline_tokens_per_s']:,.0f} tokens/s, {tg['baseline_peak_rss_mib']:,.0f} MiB"
                        + _work(tg, baseline=True),
                        times(tg["ratio"]), f"≥ 2× {met(tg['ratio'] >= 2)}", run_of(tg)])
    return _table(rows)


def _work(t: dict, *, baseline: bool = False) -> str:
    """A training row's matrix-product work per token (``benchmarks/training.py`` counts it; older results did
    not): the baseline's beside its work ratio."""
    if "work_ratio" not in t:
        return ""
    if baseline:
        return f"; {t['baseline_flops_per_token'] / 1e6:,.0f} MFLOP of matrix products a token"
    return (f"; {t['flops_per_token'] / 1e6:,.0f} MFLOP of matrix products a token ({t['work_ratio']:.2f}× less "
            f"work than TRL's, run at {t['rate_ratio']:.2f}× its rate)")


def _table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def _kept(headline: dict, lang: str) -> str:
    """Top-1 kept: the mean, and each training seed's share where the row is over several."""
    each = headline.get(f"{lang}_top1_kept_each")
    share = f"{headline[f'{lang}_top1_kept']:.1%}"
    return share if not each or len(each) < 2 else f"{share} [{' / '.join(f'{x:.1%}' for x in each)}]"


def _random(headline: dict, lang: str) -> str:
    """The share of the same controls random adapters of the trained one's norm keep, where it was measured."""
    share = headline.get(f"{lang}_top1_kept_random")
    return "" if share is None else f" ({share:.1%})"


def quality_table(results: dict) -> str:
    """The default recipe's quality, a row per embedded model measured: Russian beside English, held-out probes
    and held-out controls, and the source's example (`benchmarks/quality.py`)."""
    rows = [["model", "steps × training seeds", "seed example « движение»", "ru probes: median p, rank 1",
             "ru controls: KL, top-1 kept [each seed] (by random adapters of its norm)", "en probes: median p, rank 1",
             "en controls: KL, top-1 kept [each seed] (random)", "run"]]
    for name in ("quality", "quality_gemma"):
        q = results["benchmarks"].get(name)
        if q is None:
            continue
        h = q["headline"]
        rows.append([h.get("model", "smollm2-135m"), f"{h['steps']} × {h.get('seeds', 1)}",
                     h["seed"].replace("->", " → "), f"{h['ru_median_p']:.3f}, {h['ru_rank1']:.0%}",
                     f"{h['ru_ctrl_kl']:.4f}, {_kept(h, 'ru')}{_random(h, 'ru')}",
                     f"{h['en_median_p']:.3f}, {h['en_rank1']:.0%}",
                     f"{h['en_ctrl_kl']:.4f}, {_kept(h, 'en')}{_random(h, 'en')}",
                     run_of(q)])
    if len(rows) == 1:
        raise RenderError("benchmarks/results.json has no 'quality' benchmark")
    return _table(rows)


def report_headline(results: dict) -> str:
    """What the report benchmark's adapter moved: the report's own headline numbers."""
    r = bench(results, "report")
    h = r["headline"]
    probes = from_summary(r, r"report on (\d+) probes", "report")
    controls = from_summary(r, r"and (\d+) held-out controls", "report")
    lo, hi = h["selectivity_ci95"]
    return (
        f"Measured by `python -m benchmarks report` ({run_of(r)}): the default recipe on a 2,000-record English "
        f"corpus ({r['table']['training time (default recipe)']} of training), its report on {probes} held-out "
        f"probes and {controls} held-out controls. The markers' mean p went {h['mean_p_before']:.3f} → "
        f"{h['mean_p_after']:.3f}, top-1 on {h['top1_share_after']:.0%} of the probes; the controls drifted "
        f"{h['mean_control_kl']:.4f} nats (top-1 kept on {h['top1_kept_share']:.0%}); selectivity "
        f"{h['selectivity']:.0f} [{lo:.0f}, {hi:.0f}]; random adapters of the same norm move the targets "
        f"{h['null_mean_abs_delta_logp']:.3f} nats, this one {h['mean_delta_logp']:.2f}: "
        f"{h['clears_floor_by']:.0f}× the floor, " + ("significant." if h["significant"] else "NOT significant.")
    )


def steps_inline(results: dict) -> str:
    s = bench(results, "steps")
    entered, whole = statistics.mean(s["seconds"]["entered"]), statistics.mean(s["seconds"]["whole"])
    return (f"{s['ratio']:.2f}× faster ({entered:.2f} against {whole:.2f} s, `python -m benchmarks steps`, "
            f"{run_of(s)})")


def report_inline(results: dict) -> str:
    r = bench(results, "report")
    same = "the same headline to 1e-4" if r["same_headline"] else "the headline differs"
    return (f"`python -m benchmarks report`: {r['seconds']:.0f} s against {r['baseline_seconds']:.0f} s, {same}; "
            f"{run_of(r)}")


def all_results(results: dict) -> str:
    """Every benchmark results.json holds: its own summary line, when and where it ran."""
    return "\n".join(f"- **{name}** ({run_of(b)}): {b['summary']}" for name, b in results["benchmarks"].items())


def _pct(x: float) -> str:
    return f"{x:.0%}"


def compare_table(results: dict) -> str:
    """The three edits side by side, a row per measure: each method's value and who wins by how much (the paired
    difference to the next best with its 95 % interval; "not told apart" when the interval reaches 0)."""
    c = bench(results, "compare")
    m, base = c["methods"], c["base"]

    def ci(pair: list[float], fmt: str) -> str:
        return f" [{pair[0]:{fmt}}, {pair[1]:{fmt}}]"

    def share(r: dict) -> str:
        t = r["transfer"]
        langs = " / ".join(f"{lang} {_pct(v['share'])}" for lang, v in r["transfer_by_language"].items())
        return f"{t['share']:.1%}{ci([t['ci_low'], t['ci_high']], '.0%')} ({langs})"

    values = {
        "probes: the marker's Δlog p": lambda r: f"{r['delta_logp']:+.2f}{ci(r['delta_logp_ci95'], '+.2f')}",
        "probes: the marker at rank 1": lambda r: _pct(r["rank1_share"]),
        "significant against its floor (19 random directions)":
            lambda r: f"{'yes' if r['significant'] else 'no'} (p {r['p_directions']:.2f}; floor "
                      f"{r['floor_mean_abs_delta_logp']:.3f})",
        "held-out controls: next-token KL": lambda r: f"{r['control_kl']:.4f}{ci(r['control_kl_ci95'], '.4f')}",
        "held-out controls: top-1 kept": lambda r: _pct(r["top1_kept_share"]),
        "transfer: a pattern realised": share,
        "transfer: looping continuations": lambda r: _pct(r["loop_share"]),
        "transfer: seq-rep-4": lambda r: f"{r['seq_rep_4']:.3f}",
        "markers where nobody asked: Δlog p": lambda r: f"{r['unasked_delta_logp']:+.2f}"
                                                        f"{ci(r['unasked_ci95'], '+.2f')}",
    }
    base_cells = {"probes: the marker at rank 1": _pct(base["rank1_share"]),
                  "transfer: a pattern realised": f"{base['transfer']['share']:.1%}",
                  "transfer: looping continuations": _pct(base["loop_share"]),
                  "transfer: seq-rep-4": f"{base['seq_rep_4']:.3f}"}
    wins = {w["measure"]: w for w in c["wins"]}
    methods = list(m)
    lines = ["| measure | base | " + " | ".join(methods) + " | who wins, by (95 % CI) |",
             "|" + "---|" * (len(methods) + 3)]
    for measure, cell in values.items():
        verdict = []
        for name, w in wins.items():   # "transfer: a pattern realised, English" is read on the transfer row
            if name == measure or name.startswith(measure + ", "):
                lang = name.removeprefix(measure + ", ") + ": " if name != measure else ""
                by = f"{w['by']:.3g} [{w['by_ci95'][0]:.3g}, {w['by_ci95'][1]:.3g}]"
                verdict.append(f"{lang}**{w['best']}** over {w['runner_up']} by {by}" if w["clear"]
                               else f"{lang}{w['best']} and {w['runner_up']} not told apart ({by})")
        lines.append(f"| {measure} | {base_cells.get(measure, '')} | " + " | ".join(cell(m[k]) for k in methods)
                     + f" | {'; '.join(verdict)} |")
    v = c["vector"]
    lines += ["", f"Measured by `python -m benchmarks compare` ({run_of(c)}): `corpusforge compare` on the quick "
                  f"demo's corpus and adapter took {c['seconds']:.0f} s (goal ≤ 600 s) for {c['probes']} held-out "
                  f"probes, {c['controls']} held-out controls, {c['draws']} random directions per method and the "
                  f"transfer prompts; the prompt gives {c['k']} of the corpus's records; the vector: "
                  f"{v['contrast']} contrast, layer {v['layer']}, strength {v['strength']:g}."]
    return "\n".join(lines)


RENDERERS: dict[str, Callable[[dict], str]] = {
    "benchmarks": benchmarks_table,
    "report-headline": report_headline,
    "steps-inline": steps_inline,
    "report-inline": report_inline,
    "results": all_results,
    "compare": compare_table,
    "quality": quality_table,
}


# --- rendering -----------------------------------------------------------------------------------------------


def render(text: str, results: dict) -> str:
    """The text with every block's content replaced by what its renderer makes of the results."""
    opened, closed = len(OPEN.findall(text)), len(BLOCK.findall(text))
    if opened != closed:
        raise RenderError(f"{opened} '<!-- rendered: NAME -->' markers but {closed} closed blocks")

    def one(m: re.Match) -> str:
        name, body = m.group(1), m.group(2)
        if name not in RENDERERS:
            raise RenderError(f"unknown rendered block '{name}' (known: {', '.join(RENDERERS)})")
        content = RENDERERS[name](results)
        if body.startswith("\n"):  # a block: the markers on lines of their own
            return f"<!-- rendered: {name} -->\n{content}\n<!-- /rendered -->"
        return f"<!-- rendered: {name} -->{content}<!-- /rendered -->"

    return BLOCK.sub(one, text)


def block_names(text: str) -> list[str]:
    return [m.group(1) for m in BLOCK.finditer(text)]


def differing_blocks(text: str, results: dict) -> list[str]:
    """Names of the blocks whose content is not what the results give, in order."""
    want = {i: m.group(0) for i, m in enumerate(BLOCK.finditer(render(text, results)))}
    return [m.group(1) for i, m in enumerate(BLOCK.finditer(text)) if m.group(0) != want[i]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results file (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        results = load_results(args.results)
    except (OSError, json.JSONDecodeError) as e:
        print(f"render_docs: {args.results}: {e}", file=sys.stderr)
        return 2
    stale, changed = [], []
    for path in doc_files():
        where = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8")
        try:
            new = render(text, results)
        except RenderError as e:
            print(f"render_docs: {where}: {e}", file=sys.stderr)
            return 2
        if new == text:
            continue
        if args.check:
            stale += [f"{where}: block '{name}' differs from {args.results.name}"
                      for name in differing_blocks(text, results)]
        else:
            path.write_text(new, encoding="utf-8")
            changed.append(str(where))
    if stale:
        print("\n".join(stale) + "\nrun: python scripts/render_docs.py", file=sys.stderr)
        return 1
    print(f"rewrote {', '.join(changed)}" if changed else "every rendered block is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
