"""One corpus, three edits, the same measures: the LoRA, a steering vector fitted on the corpus, and a k-shot prompt.

``corpusforge compare --adapter A --corpus C --out DIR``. Each method is measured against the base model (the
adapter off, no vector, no examples) on the same prompts:

- **probes** — the corpus's held-out probes, as the report derives them: the marker's mean Δlog p (95 % bootstrap
  interval), the share at rank 1, the mean p after;
- **controls** — the held-out controls: mean next-token KL(base ‖ method) with its interval, top-1 kept;
- **the floor** — the same edit without its direction, ``DRAWS`` times: random LoRA directions of the same norm
  (``nulls``), random vectors of the same norm at the same layer and strength, and for the prompt, ``k`` neutral
  prompts from the writer's pool as the examples. A method's shift is **significant** when it goes farther than
  every draw and its interval clears ``MIN_EFFECT`` (``significance``);
- **markers where nobody asked** — each marker of the probes after each held-out control in its language:
  the mean Δlog p of the whole marker against the base, and how many the method writes greedily (the base: how
  many it wrote);
- **transfer** — ``TRANSFER_PROMPTS`` of the 200 neutral transfer prompts, evenly spaced, continued greedily (48
  tokens): the share realising a corpus pattern (Wilson interval, by language), McNemar against the base, the loop
  share and seq-rep-4;
- **who wins** each measure, by how much: the paired difference to the next best method (``winners``).

The prompt method puts its ``k`` examples before every prompt it is measured on — probes, controls and transfer
prompts alike — as a user prompting the model would; scoring shares the examples' keys and values across prompts
(``Edits.rows``), generation does not. Passes run the output head only where a score is read
(``passes.measuring(enter=False)``) but never start at a cached layer: a vector added below it, or examples
before the prompt, would be skipped.

``DIR/compare.json`` holds a row per method (``lora``, ``vector``, ``prompt``) with each measure;
``DIR/index.html`` shows the table; ``DIR/vector/`` is the fitted vector (``steer``'s format).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from .._atomic import atomic_dir, write_atomic
from .._io import check_output
from .._timing import Laps
from .._version import __version__
from ..errors import ReportError
from ..lm.arch import describe
from ..lm.device import choose
from ..lm.generation import Ask, adapter_scale, continue_asks
from ..lm.tokens import without_start
from ..prompts import read_pool
from . import compare_page, nulls, steer
from .build import _detector, choose_inputs, load_with_adapter
from .config import make_report_config
from .passes import encode, kl, logprob_rows, measuring, piece, prefixed_rows, probe_ids
from .probes import Probe
from .structure import degeneration, mcnemar
from .transfer import corpus_examples, few_shot, read_transfer, seq_rep_4
from .transfer import score as score_transfer

METHODS = ("lora", "vector", "prompt")
DRAWS = 19      # random directions per method: the smallest number at which p can reach ALPHA
CONTROL_DRAWS = 3   # of them, the ones whose control drift is also measured (the floor's KL; not in the rule)
FLOOR_CONTROLS = 24  # on about this many of the controls, evenly spaced
TRANSFER_PROMPTS = 100   # of the 200, evenly spaced (half English, half Russian); None: all
ALPHA = 0.05


def _training_records(corpus: Path) -> list[dict]:
    from ..corpus import corpus_files
    from ..validate import corpus_patterns, iter_records

    files = [f for f in corpus_files([corpus]) if f.name.startswith("train")]
    return list(iter_records(files, patterns=corpus_patterns([corpus])))


class Edits:
    """The three edits on one loaded model, each a way to read log-probabilities after a prompt."""

    def __init__(self, model, tok, vector: steer.SteeringVector, examples: dict[str, list[str]]):
        self.model, self.tok, self.vector, self.examples = model, tok, vector, examples
        self.arch = describe(model)

    def prefix(self, method: str, prompt: str, language: str) -> str:
        """The text ``method`` is given for ``prompt``: the prompt's examples before it, for the prompt method."""
        if method != "prompt":
            return prompt
        return few_shot(self.examples_for(language), prompt)

    def examples_for(self, language: str) -> list[str]:
        return self.examples.get(language) or self.examples.get("en", [])

    def on(self, method: str, vector: steer.SteeringVector | None = None):
        """The model as ``method`` sees it: the adapter at 1 for the LoRA, else at 0 (with the vector added)."""
        from contextlib import ExitStack

        stack = ExitStack()
        stack.enter_context(adapter_scale(self.model, 1.0 if method == "lora" else 0.0))
        if method == "vector":
            stack.enter_context(steer.steered(self.model, self.arch, vector or self.vector))
        return stack

    def rows(self, method: str | None, prompts: list[list[int]], tails: list[list[int]], languages: list[str],
             vector: steer.SteeringVector | None = None) -> list:
        """Log-probability rows from each prompt's last position to the end of its tail, as ``method`` sees it.
        The prompt method's examples (a language's, tokenized apart and joined at a line break) are one prefix
        whose keys and values every prompt of that language shares (``passes.prefixed_rows``)."""
        method = method or "base"
        with self.on(method, vector):
            if method != "prompt":
                return list(logprob_rows(self.model, [p + t for p, t in zip(prompts, tails)],
                                         starts=[len(p) - 1 for p in prompts]))
            out: list = [None] * len(prompts)
            for language in sorted(set(languages)):
                mine = [i for i, lang in enumerate(languages) if lang == language]
                prefix = encode(self.tok, few_shot(self.examples_for(language), ""))
                after = {i: without_start(self.tok, prompts[i]) for i in mine}   # the prefix has the <bos>
                rows = prefixed_rows(self.model, prefix, [after[i] + tails[i] for i in mine],
                                     [len(after[i]) - 1 for i in mine])
                for i, row in zip(mine, rows):
                    out[i] = row
            return out


def _language(text: str) -> str:
    from ..prompts import prompt_language

    return prompt_language({"prompt": text})


def _tail_score(rows, tail: list[int]) -> tuple[float, int, bool]:
    """The tail as a whole: the sum of its tokens' log p, the rank of its first token, whether greedy writes it."""
    total = sum(float(rows[i, t]) for i, t in enumerate(tail))
    rank = int((rows[0] > rows[0, tail[0]]).sum()) + 1
    return total, rank, all(int(rows[i].argmax()) == t for i, t in enumerate(tail))


def probe_logps(edits: Edits, method: str | None, probes: list[Probe], vector=None) -> list[tuple[float, int]]:
    """Per probe: log p of its first target after the prompt (with the method's examples before it), its rank."""
    tails = [piece(edits.tok, p.targets[0]) for p in probes]
    rows = edits.rows(method, [probe_ids(edits.tok, p) for p in probes], tails,
                      [_language(p.prompt) for p in probes], vector)
    return [_tail_score(r, t)[:2] for r, t in zip(rows, tails)]


def control_logps(edits: Edits, method: str | None, controls: list[dict], vector=None) -> list:
    """Per control: the next token's log-probabilities, as ``method`` sees it."""
    rows = edits.rows(method, [encode(edits.tok, c["prompt"]) for c in controls], [[] for _ in controls],
                      [_language(c["prompt"]) for c in controls], vector)
    return [r[0] for r in rows]


def unasked_scores(edits: Edits, method: str | None, controls: list[dict], markers: list[str]) -> list:
    """(log p, rank, greedy) of each marker after each control in the marker's language, as ``method`` sees it."""
    pairs = [(c["prompt"], m) for c in controls for m in markers if _language(m) == _language(c["prompt"])]
    tails = [piece(edits.tok, m) for _, m in pairs]
    rows = edits.rows(method, [encode(edits.tok, c) for c, _ in pairs], tails, [_language(c) for c, _ in pairs])
    return [_tail_score(r, t) for r, t in zip(rows, tails)]


def _unasked_row(before: list, after: list) -> dict:
    deltas = [a[0] - b[0] for a, b in zip(after, before)]
    return {"pairs": len(deltas), "mean_delta_logp": sum(deltas) / len(deltas) if deltas else 0.0,
            "delta_logp_ci95": list(nulls.bootstrap(deltas)) if deltas else [0.0, 0.0],
            "written_before": sum(bool(b[2]) for b in before), "written_after": sum(bool(a[2]) for a in after)}


def _shift(base_p, after_p, base_c, after_c) -> dict:
    deltas = [a[0] - b[0] for a, b in zip(after_p, base_p)]
    kls = [kl(b, a) for b, a in zip(base_c, after_c)]
    return {"deltas": deltas, "kls": kls,
            "top1_kept": [int(b.argmax()) == int(a.argmax()) for b, a in zip(base_c, after_c)]}


def significance(deltas: list[float], floor_deltas: list[list[float]], min_effect: float = nulls.MIN_EFFECT) -> dict:
    """Is the method's shift more than its edit in a random direction gives? Two conditions:

    - **against the directions**: a random direction moves every probe together (one vector, one adapter), so
      the probes' spread says nothing about how far another direction would go. The method's mean Δlog p is
      ranked among the draws' mean |Δlog p|: p = (1 + draws at least as far) / (1 + draws), and it must be at most
      ``ALPHA`` — with ``DRAWS`` = 19, farther than every draw;
    - **far enough**: the bootstrap interval over the probes of (Δlog p − the draws' mean) lies above
      ``min_effect``.

    The interval alone (the report's overall rule) calls one random vector of the same norm significant against
    three others: a test holds that it no longer does."""
    floor_means = [sum(d[i] for d in floor_deltas) / len(floor_deltas) for i in range(len(deltas))]
    paired = [x - f for x, f in zip(deltas, floor_means)]
    low, high = nulls.bootstrap(paired)
    mean = sum(deltas) / len(deltas)
    draw_means = [sum(d) / len(d) for d in floor_deltas]
    p = (1 + sum(abs(m) >= mean for m in draw_means)) / (1 + len(draw_means))
    return {"floor_mean_abs_delta_logp": sum(abs(m) for m in draw_means) / len(draw_means),
            "floor_max_abs_delta_logp": max(abs(m) for m in draw_means), "p_directions": p,
            "paired_delta_logp_ci95": [low, high], "significant": p <= ALPHA and low >= min_effect}


def floors(edits: Edits, method: str, probes, controls, base_p, base_c, draws: int,
           control_draws: int = CONTROL_DRAWS) -> tuple[list, list]:
    """Per draw of the method's floor: the probes' Δlog p; for the first ``control_draws``, the controls' KL."""
    deltas, kls = [], []
    for seed in range(draws):
        wanted = controls[::max(1, len(controls) // FLOOR_CONTROLS)] if seed < control_draws else []
        if method == "lora":
            with nulls.random_direction(edits.model, seed):
                p, c = probe_logps(edits, "lora", probes), control_logps(edits, "lora", wanted)
        elif method == "vector":
            rand = steer.random_like(edits.vector, seed)
            p, c = probe_logps(edits, "vector", probes, rand), control_logps(edits, "vector", wanted, rand)
        else:
            k = len(next(iter(edits.examples.values()), [])) or 3
            neutral = Edits(edits.model, edits.tok, edits.vector, _neutral_examples(k, seed))
            p, c = probe_logps(neutral, "prompt", probes), control_logps(neutral, "prompt", wanted)
        deltas.append([a[0] - b[0] for a, b in zip(p, base_p)])
        if wanted:
            kls.append(sum(kl(b, a) for b, a in zip(base_c, c)) / len(c))
    return deltas, kls


def _neutral_examples(k: int, seed: int) -> dict[str, list[str]]:
    """``k`` neutral prompts a language from the writer's pool (no structure): the prompt's floor."""
    import random

    pool = read_pool()
    rng = random.Random(seed)
    return {lang: rng.sample([p["prompt"] for p in pool if p["language"] == lang], k)
            for lang in sorted({p["language"] for p in pool})}


def transfer_texts(edits: Edits, prompts: list[dict], new_tokens: int) -> dict[str, list[str]]:
    """Greedy continuations of the transfer prompts: base and LoRA in one mixed call, the prompt's, the vector's."""
    tok = edits.tok
    ids = [encode(tok, p["prompt"]) for p in prompts]
    shots = [encode(tok, edits.prefix("prompt", p["prompt"], p.get("language", "en"))) for p in prompts]
    asks = [Ask(i, new_tokens, False, adapter, key=f"t:{n}") for adapter in (False, True) for n, i in enumerate(ids)]
    asks += [Ask(i, new_tokens, False, False, key=f"t:{n}") for n, i in enumerate(shots)]
    new = continue_asks(edits.model, tok, asks)
    with edits.on("vector"):
        vec = continue_asks(edits.model, tok, [Ask(i, new_tokens, False, None, key=f"t:{n}")
                                               for n, i in enumerate(ids)])
    text = [tok.decode(t, skip_special_tokens=True) for t in new + vec]
    n = len(prompts)
    return {"base": text[:n], "lora": text[n:2 * n], "prompt": text[2 * n:3 * n], "vector": text[3 * n:]}


def evenly(items: list, n: int | None) -> list:
    """``n`` of ``items`` evenly spaced (the transfer set is English then Russian: both stay in proportion)."""
    if n is None or n >= len(items):
        return items
    return [items[i * len(items) // n] for i in range(n)]


#: the measures a method can win: (name, the per-item values' key, whether higher is better)
MEASURES = (
    ("probes: the marker's Δlog p", "delta_logp", True),
    ("probes: the marker at rank 1", "rank1", True),
    ("held-out controls: next-token KL", "control_kl", False),
    ("held-out controls: top-1 kept", "top1_kept", True),
    ("transfer: a pattern realised, English", "transfer_en", True),
    ("transfer: a pattern realised, Russian", "transfer_ru", True),
    ("transfer: looping continuations", "loops", False),
    ("transfer: seq-rep-4", "seq_rep_4", False),
    ("markers where nobody asked: Δlog p", "unasked", False),
)


def winners(items: dict[str, dict[str, list[float]]]) -> list[dict]:
    """Per measure, the best method and by how much it beats the next best: the mean of the paired differences
    over the same items (probes, controls, prompts), signed so that positive favours the best, with its 95 %
    bootstrap interval. ``clear`` when the interval lies above 0; otherwise the two are not told apart."""
    out = []
    for name, key, higher in MEASURES:
        values = {m: v[key] for m, v in items.items() if v.get(key)}
        if len(values) < 2:
            continue
        means = {m: sum(v) / len(v) for m, v in values.items()}
        best, runner = sorted(means, key=lambda m: -means[m] if higher else means[m])[:2]
        sign = 1.0 if higher else -1.0
        diffs = [sign * (a - b) for a, b in zip(values[best], values[runner])]
        low, high = nulls.bootstrap(diffs)
        out.append({"measure": name, "higher_is_better": higher, "means": means, "items": len(diffs),
                    "best": best, "runner_up": runner, "by": sum(diffs) / len(diffs), "by_ci95": [low, high],
                    "clear": low > 0})
    return out


def _transfer_items(prompts: list[dict], texts: list[str], flags: list[bool]) -> dict[str, list[float]]:
    """Per continuation: a pattern realised (``flags``, by language), looping, seq-rep-4 — the items ``winners``
    pairs."""
    flags = [float(f) for f in flags]
    language = [p.get("language", "en") for p in prompts]
    return {"transfer_en": [f for f, lang in zip(flags, language) if lang == "en"],
            "transfer_ru": [f for f, lang in zip(flags, language) if lang == "ru"],
            "loops": [float(degeneration(t)["loops"]) for t in texts], "seq_rep_4": [seq_rep_4(t) for t in texts]}


def _method_row(shift: dict, base_p, after_p, sig: dict, floor_kls: list[float]) -> dict:
    import math

    kls, kept = shift["kls"], [1.0 if k else 0.0 for k in shift["top1_kept"]]
    return {"probes": {"n": len(after_p), "mean_delta_logp": sum(shift["deltas"]) / len(shift["deltas"]),
                       "delta_logp_ci95": list(nulls.bootstrap(shift["deltas"])),
                       "rank1_share": sum(r == 1 for _, r in after_p) / len(after_p),
                       "rank1_share_before": sum(r == 1 for _, r in base_p) / len(base_p),
                       "mean_p_after": sum(math.exp(lp) for lp, _ in after_p) / len(after_p)},
            "controls": {"n": len(kls), "mean_kl": sum(kls) / len(kls), "kl_ci95": list(nulls.bootstrap(kls)),
                         "top1_kept_share": sum(kept) / len(kept), "top1_kept_ci95": list(nulls.bootstrap(kept))},
            "floor": {**sig, "control_kl": sum(floor_kls) / len(floor_kls), "control_draws": len(floor_kls)}}


def compare(adapter: str | Path, out: str | Path, *, corpus: str | Path | None = None, model: str | None = None,
            k: int = 3, draws: int = DRAWS, max_probes: int = 20, max_controls: int | None = None,
            transfer_prompts: int | None = TRANSFER_PROMPTS, new_tokens: int = 48, device: str = "auto",
            echo: Callable[[str], None] = print, overwrite: bool = False) -> dict:
    """Fit the vector, measure the three methods and their floors, write DIR/compare.json and DIR/index.html."""
    cfg = make_report_config(model=model, corpus=corpus, max_probes=max_probes, max_controls=max_controls,
                             device=device)
    out = check_output(out, ReportError, overwrite=overwrite, inputs=[adapter, cfg.corpus, cfg.model])
    inputs = choose_inputs(adapter, cfg)
    if inputs.corpus is None:
        raise ReportError("compare needs the corpus the adapter was trained on (its premises fit the vector, its "
                          "records are the prompt's examples)", hint="pass --corpus DIR")
    detector = _detector(inputs.corpus, inputs.probes)
    if detector is None:
        raise ReportError("the corpus's templates are not installed here, so no detector reads the transfer",
                          file=str(inputs.corpus))
    laps = Laps()
    lm, tok = load_with_adapter(inputs.model, inputs, echo, choose(cfg.device, cfg.dtype))
    laps.lap("load")
    with measuring(lm, probe_ids(tok, inputs.probes[0]), enter=False):
        result, vector = _measure(lm, tok, inputs, detector, k=k, draws=draws, transfer_prompts=transfer_prompts,
                                  new_tokens=new_tokens, echo=echo, laps=laps)
    _write(result, vector, out)
    return result


def _measure(lm, tok, inputs, detector, *, k, draws, transfer_prompts, new_tokens, echo,
             laps) -> tuple[dict, steer.SteeringVector]:
    echo("fitting the steering vector (DiffMean at the marker position of the corpus's premises; the contrast, "
         "layer and strength by a sweep on training data)")
    vector = steer.fit_vector(lm, tok, _training_records(inputs.corpus), model_name=inputs.model,
                              corpus=str(inputs.corpus), echo=echo)
    laps.lap("fit_vector")
    edits = Edits(lm, tok, vector, corpus_examples(inputs.corpus, k))
    probes, controls = inputs.probes, inputs.controls
    base_p, base_c = probe_logps(edits, None, probes), control_logps(edits, None, controls)
    markers = sorted({t for p in probes for t in p.targets})
    base_u = unasked_scores(edits, None, controls, markers)
    rows, items = {}, {}
    for method in METHODS:
        echo(f"{method}: {len(probes)} probes, {len(controls)} controls, and its floor ({draws} draws)")
        after_p, after_c = probe_logps(edits, method, probes), control_logps(edits, method, controls)
        shift = _shift(base_p, after_p, base_c, after_c)
        floor_deltas, floor_kls = floors(edits, method, probes, controls, base_p, base_c, draws)
        rows[method] = _method_row(shift, base_p, after_p, significance(shift["deltas"], floor_deltas), floor_kls)
        after_u = unasked_scores(edits, method, controls, markers)
        rows[method]["unasked"] = _unasked_row(base_u, after_u)
        items[method] = {"delta_logp": shift["deltas"], "rank1": [float(r == 1) for _, r in after_p],
                         "control_kl": shift["kls"], "top1_kept": [float(kept) for kept in shift["top1_kept"]],
                         "unasked": [a[0] - b[0] for a, b in zip(after_u, base_u)]}
        laps.lap(method)
    prompts = evenly(read_transfer(), transfer_prompts)
    echo(f"transfer: {len(prompts)} neutral prompts, greedy, base and each method")
    texts = transfer_texts(edits, prompts, new_tokens)
    table = {c: row.model_dump() for c, row in score_transfer(detector, prompts, texts).conditions.items()}
    realised = {c: [bool(detector.patterns_in(t)) for t in texts[c]] for c in texts}
    for method in METHODS:
        vs_base = mcnemar(realised["base"], realised[method]).model_dump()
        rows[method]["transfer"] = {**table[method], "vs_base": vs_base}
        items[method] |= _transfer_items(prompts, texts[method], realised[method])
    laps.lap("transfer")
    result = {"format": "corpusforge.compare/1", "corpusforge_version": __version__, "model": inputs.model,
              "adapter": str(inputs.adapter), "corpus": str(inputs.corpus), "k": k, "draws": draws,
              "vector": {key: value for key, value in vector.provenance.items() if key != "sweep"}
              | {"layer": vector.layer, "strength": vector.strength, "applied_norm": vector.norm,
                 "dose_response": [r for r in vector.provenance["sweep"]
                                   if (r["contrast"], r["layer"]) == (vector.provenance["contrast"], vector.layer)]},
              "base": {"transfer": table["base"], "probes_rank1_share": rows["lora"]["probes"]["rank1_share_before"]},
              "methods": [{"method": m, **rows[m]} for m in METHODS], "wins": winners(items),
              "timings": laps.seconds,
              "examples": {"prompt": texts["prompt"][:3], "vector": texts["vector"][:3], "lora": texts["lora"][:3],
                           "base": texts["base"][:3], "prompts": [p["prompt"] for p in prompts[:3]]}}
    return result, vector


def _write(result: dict, vector: steer.SteeringVector, out: Path) -> None:
    with atomic_dir(out) as tmp:
        (tmp / "vector").mkdir()
        steer.save_vector(vector, tmp / "vector")
        write_atomic(tmp / "compare.json", json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        write_atomic(tmp / "index.html", compare_page.page(result))
