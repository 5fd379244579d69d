"""Shared helpers: timing, peak memory of a child process, the machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "flags": cpu_flags(), "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), "platform": platform.platform()}


#: the CPU flags that change how fast matrix products run here (AMX and AVX-512 bf16 on the Intel machines,
#: plain AVX2 on the AMD ones): every result says which it was measured with
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in SPEED_FLAGS if f in have]
    except OSError:
        pass
    return []


def machine_line(m: dict) -> str:
    flags = ", ".join(m.get("flags") or []) or "flags not recorded"
    return f"{m['cpu']} ({flags}), {m['cores']} cores"


def demo_corpus() -> Path:
    """``make demo``'s corpus (2,000 records of its mix, seed 0) under ``_work``, generated the first time."""
    from corpusforge.demo import DEMO_MIX
    from corpusforge.generate import GenerateConfig, generate

    WORK.mkdir(exist_ok=True)
    corpus = WORK / "demo-corpus"
    if not corpus.exists():
        generate(GenerateConfig(mix=DEMO_MIX, n=2000, seed=0, progress=False), corpus)
    return corpus


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


#: a child script's work count (``training``, ``profile``), when its last argument is "count": each optimiser
#: step wrapped by ``counted`` runs under ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and
#: attention, forward and backward; padding positions count as the model computes them), its FLOPs appended to
#: ``flops``. A separate run: counting slows the steps it counts.
COUNTED = """
from torch.utils.flop_counter import FlopCounterMode
count_work, flops = sys.argv[-1] == "count", []
def counted(step):
    def run(*args, **kw):
        if not count_work:
            return step(*args, **kw)
        with FlopCounterMode(display=False) as counter:
            out = step(*args, **kw)
        flops.append(counter.get_total_flops())
        return out
    return run
"""

# VmHWM is this process's own high-water mark (ru_maxrss would also count the parent's memory
# copied at fork, before exec); RUSAGE_CHILDREN covers its worker processes.
PEAK_PROBE = """
import re as _re, resource as _r
_hwm = int(_re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
print("PEAK_RSS_KB", max(_hwm, _r.getrusage(_r.RUSAGE_CHILDREN).ru_maxrss))
"""


def run_child(code: str, *args: str) -> tuple[float, float, str]:
    """Run ``python -c code args``; return (wall seconds, peak RSS MiB of the child or its workers, stdout).

    The peak is read inside the child (see PEAK_PROBE).
    """
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code + PEAK_PROBE, *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr}")
    peak_kb = int(proc.stdout.split("PEAK_RSS_KB")[-1].split()[0])
    return wall, peak_kb / 1024, proc.stdout


def write_results(results: dict) -> None:
    (HERE / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    lines = ["# Benchmark results", "", f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
             f"{results['machine']['memory_gib']} GiB, Python {results['machine']['python']}.",
             f"Run: `{results['command']}` on {results['date']}.", ""]
    for name, bench in results["benchmarks"].items():
        where = f" on {machine_line(bench['machine'])}" if "machine" in bench else ""
        lines += [f"## {name}", "", f"{bench['summary']} (run {bench.get('date', results['date'])}{where})", "",
                  "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in bench["table"].items()]
        lines.append("")
    (HERE / "results.md").write_text("\n".join(lines))
