"""Generation: `corpusforge generate --workers 2` vs a naive loop, and peak memory at 1,000,000 records.

The naive loop is how one would write it first: per record a ``random.Random``
seeded from a hash, a sandboxed Jinja render of every role, the same record
built with ``build_record``, ``json.dumps`` and a write; one core, no dedup.
corpusforge does more (dedup, splits, premise ids, manifest) and is timed as a
whole command, start-up included.
"""

from __future__ import annotations

import hashlib
import json
import random

from .common import WORK, Timer, run_child

# templates with spaces over a million, so that dedup rejects few draws and both sides render the same work
MIX = {"paradox_conclusion.en": 1, "dialectic.en": 1, "silence.ru": 1, "fragmentation.en": 1}
N = 300_000
N_NAIVE = 60_000
N_MEMORY = 1_000_000

GENERATE = """
import sys
from corpusforge.generate import GenerateConfig, generate
mix = dict(kv.split("=") for kv in sys.argv[1].split(","))
generate(GenerateConfig(mix={k: float(v) for k, v in mix.items()}, n=int(sys.argv[2]), workers=int(sys.argv[3]),
                        overwrite=True, progress=False), sys.argv[4])
"""


def naive(n: int, out_path) -> float:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    from corpusforge.records import build_record
    from corpusforge.templates.registry import load_registry

    registry = load_registry()
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters.update({"cap": lambda s: s[:1].upper() + s[1:]})
    templates = []
    for name, weight in MIX.items():
        t = registry.get(name)
        variants = [[(role, env.from_string(cs.source)) for role, cs in v.roles] for v in t.variants]
        values = {s: [str(w) for w in ws] for s, ws in t.slot_values.items()}
        templates.append((t, weight, variants, values))
    weights = [w for _, w, _, _ in templates]
    with Timer() as timer, open(out_path, "w", encoding="utf-8") as out:
        for i in range(n):
            rng = random.Random(int.from_bytes(hashlib.blake2b(f"0:{i}".encode(), digest_size=8).digest(), "little"))
            t, _, variants, values = rng.choices(templates, weights)[0]
            slots = {s: rng.choice(vs) for s, vs in values.items()}
            parts = [(role, tpl.render(slots)) for role, tpl in rng.choice(variants)]
            rec = build_record(pattern=t.pattern.name, template=t.ref, language=t.language, parts=parts,
                               markers=t.markers, slots=slots, seed=0, index=i)
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return n / timer.seconds


def run() -> dict:
    WORK.mkdir(exist_ok=True)
    mix = ",".join(f"{k}={v}" for k, v in MIX.items())
    naive_rate = naive(N_NAIVE, WORK / "naive.jsonl")
    wall1, _, _ = run_child(GENERATE, mix, str(N), "1", str(WORK / "gen-w1"))
    wall2, _, _ = run_child(GENERATE, mix, str(N), "2", str(WORK / "gen-w2"))
    same = all((WORK / "gen-w1" / "data" / f).read_bytes() == (WORK / "gen-w2" / "data" / f).read_bytes()
               for f in ("train.jsonl", "validation.jsonl", "test.jsonl"))
    wall_m, peak_m, _ = run_child(GENERATE, mix, str(N_MEMORY), "2", str(WORK / "gen-1m"))
    rate1, rate2 = N / wall1, N / wall2
    ratio = rate2 / naive_rate
    return {
        "summary": (f"corpusforge generate --workers 2: {rate2:,.0f} records/s (--workers 1: {rate1:,.0f}); naive "
                    f"sandboxed-Jinja loop on one core: {naive_rate:,.0f} records/s; ratio {ratio:.2f}x (goal: >= "
                    f"100,000 records/s and >= 3x). Byte-identical for 1 and 2 workers: {same}. "
                    f"{N_MEMORY:,} records: {wall_m:.1f} s, peak RSS {peak_m:,.0f} MiB (goal: < 300 MB)."),
        "table": {"records (timed runs)": f"{N:,}", "--workers 2 records/s": f"{rate2:,.0f}",
                  "--workers 1 records/s": f"{rate1:,.0f}", "naive loop records/s": f"{naive_rate:,.0f}",
                  "ratio (workers 2 / naive)": f"{ratio:.2f}x", "identical across workers": str(same),
                  f"peak RSS at {N_MEMORY:,} records": f"{peak_m:,.0f} MiB"},
        "ratio": ratio, "records_per_s": rate2, "records_per_s_1_worker": rate1, "baseline_records_per_s": naive_rate,
        "peak_rss_mib_1m": peak_m, "identical_across_workers": same,
    }
