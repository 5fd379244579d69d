"""The CPU's matrix-product rate at a training step's own shapes: the ceiling the step runs under.

A plain step of SmolLM2 (``profile``: 376 tokens a batch) is nearly all matrix products: each decoder layer's
projections forward — (tokens × 576) by 576 → 576 (q, o), 576 → 192 (k, v), 576 → 1536 (gate, up), 1536 → 576
(down) — and, in the adapted half, the same products backward for the gradient of their input. This benchmark
times ``torch.mm`` at exactly those shapes, in float32 on every core, and a large square product (2048³) as the
CPU's best case; the step's shapes are weighed by the work each does in a step (30 layers forward, 15
backward). bfloat16 at the same shapes is measured beside them, for CPUs whose units take it natively (AMX,
AVX512_BF16; slow where emulated).
"""

from __future__ import annotations

import time

TOKENS = 376                       # the plain step's rows (benchmarks/profile.py: 8 records a batch)
D, KV, FFN = 576, 192, 1536        # SmolLM2-135M: hidden size, k/v width (3 heads × 64), MLP width
LAYERS, ADAPTED = 30, 15           # forward through all, backward through the adapted half
# (k, n, products of that shape per layer): q and o; k and v; gate and up; down
FORWARD = [(D, D, 2), (D, KV, 2), (D, FFN, 2), (FFN, D, 1)]
BACKWARD = [(n, k, count) for k, n, count in FORWARD]    # the gradient of the input: (tokens × n) by n → k


def rate(m: int, k: int, n: int, dtype) -> float:
    """GFLOP/s of (m × k) @ (k × n), the median of five timings of enough repeats for about 0.2 s each."""
    import torch

    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        torch.mm(a, b)
    repeats = max(1, int(0.2 / _once(a, b)))
    times = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        times.append((time.perf_counter() - started) / repeats)
    return 2 * m * k * n / sorted(times)[2] / 1e9


def _once(a, b) -> float:
    import torch

    started = time.perf_counter()
    torch.mm(a, b)
    return max(time.perf_counter() - started, 1e-6)


def step_rate(dtype) -> tuple[float, dict[str, float]]:
    """The step's shapes, each's rate, and their rate together (work over the time all would take)."""
    shapes = [("forward", k, n, count * LAYERS) for k, n, count in FORWARD] + \
             [("backward", k, n, count * ADAPTED) for k, n, count in BACKWARD]
    work = seconds = 0.0
    each = {}
    for side, k, n, count in shapes:
        r = rate(TOKENS, k, n, dtype)
        each[f"{side} {TOKENS}×{k} by {k}×{n} (GFLOP/s)"] = r
        flop = 2 * TOKENS * k * n * count
        work, seconds = work + flop, seconds + flop / (r * 1e9)
    return work / seconds / 1e9, each


def run() -> dict:
    import torch

    fp32, shapes = step_rate(torch.float32)
    bf16, _ = step_rate(torch.bfloat16)
    square = rate(2048, 2048, 2048, torch.float32)
    table = {"threads": str(torch.get_num_threads()),
             "fp32, the step's shapes together (GFLOP/s)": f"{fp32:.0f}",
             "fp32, 2048 x 2048 x 2048 (GFLOP/s)": f"{square:.0f}",
             "bf16, the step's shapes together (GFLOP/s)": f"{bf16:.0f}",
             **{k: f"{v:.0f}" for k, v in shapes.items()}}
    return {"summary": f"torch.mm in float32 at a plain SmolLM2 step's shapes: {fp32:.0f} GFLOP/s together "
                       f"(a 2048-cube product: {square:.0f}); bfloat16 at the same shapes: {bf16:.0f} GFLOP/s",
            "table": table, "fp32_step_shapes": fp32, "fp32_square": square, "bf16_step_shapes": bf16}
