"""Where a training step's time goes on this CPU: the default recipe's step beside a plain step of the same
batches, and a ``torch.profiler`` table of the default step by phase and by operator family.

- plain vs default: ``STEPS`` steps of each in child processes, alternating ``PAIRS`` times; seconds per step
  (each step as ``run_step`` times it — the model's loading and the controls' kept base passes are not steps
  — the first left out as a warm-up) and their ratio (issue 22's goal: the default step <= 1.5x the plain
  one). *Plain* is the same trainer with no control KL and no premise hold: one supervised pass, its
  backward, the update.
- the profile: ``PROFILED`` default-recipe steps after ``WARMUP`` under ``torch.profiler`` in a child. Phases
  are the named ranges of ``corpusforge/train/step.py`` (``phase``): the supervised pass, the head inside the
  passes, the control pass, the premise hold, backward, the optimizer, batch making; each phase's total CPU
  time (its children included), per step. Operator families sum the operators' own (self) CPU time: matrix
  products, attention, softmax/log-softmax/KL over the vocabulary, normalisation and element-wise arithmetic,
  copies and indexing, the rest. And the matrix products by shape — (m × k) @ (k × n) grouped by k × n over
  every pass, LoRA's low-rank ones together — with the rate each ran at inside the step (``TOP_PRODUCTS``).
- the work: the same steps of each, run again under ``torch.utils.flop_counter.FlopCounterMode`` (matrix
  products and attention, forward and backward, as the step runs them), per step. The time ratio cannot go
  much below this ratio of work: what the default step adds beyond it is the cost of running the extra passes
  (their element-wise arithmetic, the softmaxes over the vocabulary, each operator's fixed cost). The default
  step's work over the time its matrix products take in the profile is the rate they run at inside the step
  (``benchmarks/matmul.py`` measures the same shapes alone).
- every part measures the same steps: the timed ones but the first (the batches are length-grouped, so steps
  differ in size several-fold).
"""

from __future__ import annotations

import json

from .common import COUNTED, WORK, demo_corpus, run_child

STEPS = 12
PAIRS = 2
WARMUP, PROFILED = 1, STEPS - 1   # the timed steps again
TOP_PRODUCTS = 8                  # the matrix-product shapes that take the most time, with the rate each ran at

STEPPED = """
import json, sys
from pathlib import Path
import corpusforge.train.loop as loop
from corpusforge.train.loop import make_config, train
""" + COUNTED + """
plain = {"use_controls": False, "premise_weight": 0.0} if sys.argv[2] == "plain" else {}
cfg = make_config({"steps": int(sys.argv[3]), "checkpoint_every": 0, "eval_every": 0, **plain})
run_step, seconds = counted(loop.run_step), []   # counted when the last argument is "count", else timed
def stepped(*args, **kw):
    out = run_step(*args, **kw)
    seconds.append(out["seconds"])
    return out
loop.run_step = stepped
r = train(Path(sys.argv[1]), Path(sys.argv[4]), cfg, overwrite=True, echo=lambda s: None, progress=False)
print(json.dumps({"seconds": seconds, "flops": flops, "loss": r.final_loss}))
"""

PROFILE = """
import json, sys
from pathlib import Path
from torch.profiler import ProfilerActivity, profile
import corpusforge.train.loop as loop
from corpusforge.train.loop import make_config, train
warmup, active = int(sys.argv[3]), int(sys.argv[4])
cfg = make_config({"steps": warmup + active, "checkpoint_every": 0, "eval_every": 0})
prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
run_step, done = loop.run_step, []
def stepped(*args, **kw):
    if len(done) == warmup:
        prof.start()
    out = run_step(*args, **kw)
    done.append(out["seconds"])
    if len(done) == warmup + active:
        prof.stop()
    return out
loop.run_step = stepped
train(Path(sys.argv[1]), Path(sys.argv[2]), cfg, overwrite=True, echo=lambda s: None, progress=False)
phases, ops = {}, {}
for e in prof.events():
    if e.name in PHASES:
        phases[e.name] = phases.get(e.name, 0.0) + e.cpu_time_total / 1e6
for e in prof.key_averages():
    if e.key.startswith("aten::"):
        ops[e.key] = ops.get(e.key, 0.0) + e.self_cpu_time_total / 1e6
products = {}   # (k, n) of each (m × k) @ (k × n) product: [seconds, FLOPs], summed over its m
for e in prof.key_averages(group_by_input_shape=True):
    if e.key in ("aten::mm", "aten::addmm") and e.input_shapes:
        (m, k), (_, n) = e.input_shapes[-2:]
        kept = products.setdefault("low-rank" if min(m, k, n) <= LOW_RANK else f"{k}x{n}", [0.0, 0.0])
        kept[0] += e.self_cpu_time_total / 1e6
        kept[1] += 2.0 * m * k * n * e.count
print(json.dumps({"phases": phases, "ops": ops, "products": products, "step_seconds": done[warmup:]}))
"""

PHASES = ("batches", "supervised pass", "head", "control pass", "premise hold", "backward", "optimizer")
FAMILIES = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"),
    "attention": ("aten::_scaled_dot_product", "aten::scaled_dot_product"),
    "softmax, log-softmax, KL": ("aten::_log_softmax", "aten::_softmax", "aten::log_softmax", "aten::softmax",
                                 "aten::kl_div", "aten::exp", "aten::nll_loss", "aten::_log_softmax_backward",
                                 "aten::_softmax_backward"),
    "normalisation, element-wise": ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::pow", "aten::mean",
                                    "aten::rsqrt", "aten::silu", "aten::neg", "aten::sum", "aten::cat",
                                    "aten::where", "aten::sigmoid"),
    "copies, indexing": ("aten::copy_", "aten::index", "aten::index_put", "aten::to", "aten::clone",
                         "aten::contiguous", "aten::fill_", "aten::zero_", "aten::zeros", "aten::empty",
                         "aten::gather", "aten::scatter", "aten::embedding"),
}


def family(op: str) -> str:
    for name, prefixes in FAMILIES.items():
        if any(op.startswith(p) for p in prefixes):
            return name
    return "the rest"


def run() -> dict:
    corpus = demo_corpus()
    seconds: dict[str, list[float]] = {"plain": [], "default": []}
    for _ in range(PAIRS):
        for kind in seconds:
            _, _, out = run_child(STEPPED, str(corpus), kind, str(STEPS), str(WORK / f"profile-{kind}"), "time")
            timed = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
            seconds[kind].append(sum(timed["seconds"][1:]) / (STEPS - 1))     # the first step warms up
    plain, default = (sum(v) / len(v) for v in (seconds["plain"], seconds["default"]))
    work = {}   # matrix-product FLOPs per step (forward and backward), the same batches in both
    for kind in seconds:
        _, _, out = run_child(STEPPED, str(corpus), kind, str(STEPS), str(WORK / f"profile-{kind}"), "count")
        counted = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])["flops"]
        work[kind] = sum(counted[1:]) / (len(counted) - 1)
    code = PROFILE.replace("PHASES", repr(PHASES)).replace("LOW_RANK", repr(LOW_RANK))
    _, _, out = run_child(code, str(corpus), str(WORK / "profile-traced"), str(WARMUP), str(PROFILED))
    traced = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    per_phase = {k: traced["phases"].get(k, 0.0) / PROFILED for k in PHASES}
    per_family: dict[str, float] = {}
    for op, s in traced["ops"].items():
        per_family[family(op)] = per_family.get(family(op), 0.0) + s / PROFILED
    top_ops = sorted(traced["ops"].items(), key=lambda kv: -kv[1])[:8]
    top_products = sorted(traced["products"].items(), key=lambda kv: -kv[1][0])[:TOP_PRODUCTS]
    table = {"plain step (s)": f"{plain:.2f} ({', '.join(f'{s:.2f}' for s in seconds['plain'])})",
             "default step (s)": f"{default:.2f} ({', '.join(f'{s:.2f}' for s in seconds['default'])})",
             "default / plain": f"{default / plain:.2f}x (goal <= 1.5x)",
             "matrix-product work, plain (GFLOP/step)": f"{work['plain'] / 1e9:.1f}",
             "matrix-product work, default (GFLOP/step)": f"{work['default'] / 1e9:.1f}",
             "work: default / plain": f"{work['default'] / work['plain']:.2f}x",
             "matrix products in the default step (GFLOP/s)":
                 f"{work['default'] / 1e9 / per_family['matrix products']:.0f}"}
    table.update({f"phase: {k} (s/step)": f"{v:.3f}" for k, v in per_phase.items()})
    table.update({f"operators: {k} (s/step)": f"{v:.3f}" for k, v in sorted(per_family.items(), key=lambda kv: -kv[1])})
    table.update({f"top operator: {op} (s/step)": f"{s / PROFILED:.3f}" for op, s in top_ops})
    table.update({f"products {'' if shape == 'low-rank' else f'(m x {shape}) '}{_role(shape)} (s/step at GFLOP/s)":
                  f"{sec / PROFILED:.3f} at {flop / sec / 1e9:.0f}" for shape, (sec, flop) in top_products})
    return {
        "summary": (f"a default-recipe step {default:.2f} s beside a plain step of the same batches {plain:.2f} s: "
                    f"{default / plain:.2f}x (goal <= 1.5x), where its matrix-product work is "
                    f"{work['default'] / work['plain']:.2f}x the plain step's ({work['default'] / 1e9:.0f} vs "
                    f"{work['plain'] / 1e9:.0f} GFLOP); profiled per step: "
                    + ", ".join(f"{k} {v:.2f} s" for k, v in per_phase.items())),
        "table": table, "plain_s": plain, "default_s": default, "ratio": default / plain, "seconds": seconds,
        "phases": per_phase, "families": per_family, "flops": work,
        "products": {shape: {"s_per_step": sec / PROFILED, "gflop_per_s": flop / sec / 1e9}
                     for shape, (sec, flop) in top_products},
    }


#: SmolLM2-135M's products by (k, n): the layer's projections forward, the gradient of their input backward
#: (the same shapes), LoRA's rank-8 pair, and the LM head (49,152 words) forward and backward
ROLES = {"576x1536": "gate, up (forward)", "1536x576": "down (forward); gate, up (backward)",
         "576x576": "q, o (forward and backward)", "576x192": "k, v (forward)", "192x576": "k, v (backward)",
         "576x49152": "the head (forward)", "49152x576": "the head (backward)",
         "low-rank": "LoRA's rank-8 products, forward and backward"}
#: a product with a side this small is one of LoRA's (rank r, forward and backward, and its weights' gradients)
LOW_RANK = 64


def _role(shape: str) -> str:
    return ROLES.get(shape, "other")
