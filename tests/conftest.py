from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

from corpusforge.cli import main

ROOT = Path(__file__).resolve().parent.parent

# `make test` draws the same property-test examples on every run and every machine, so a submission that passed
# here passes in CI; `make fuzz` (HYPOTHESIS_PROFILE=explore) draws new ones — run it to look for new bugs, and
# pin each one it finds as an @example.
settings.register_profile("repeatable", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
SAMPLE = ROOT / "sample_data"

# The Ctrl-C tests send SIGINT to a child as a terminal sends it to its foreground job. A suite started in the
# background by a shell without job control (`make test &` in a script) inherits SIGINT ignored, and so would
# every child it starts: those runs would not stop. Give the children the foreground's disposition: a Python
# handler here becomes the default one in a child at exec, where an ignored signal would stay ignored.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _one_thread_for_tiny_models():
    """Tiny test models run many times faster on one thread (a 64-wide matmul is all overhead on two, and
    worse when the other core is busy); the real embedded model's tests take both cores (``all_cores``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def all_cores():
    """Both cores for the real model's tests — unless the suite runs on several workers (``make test``: one per
    core), where a second thread would only contend with the other worker."""
    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // workers))
    yield
    torch.set_num_threads(1)


@pytest.fixture
def run():
    """Run the CLI in-process; returns the click Result (exit_code, output, stderr)."""

    def _run(*args: str, input: str | None = None):
        return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return _run


@pytest.fixture
def good_record() -> dict:
    line = (SAMPLE / "corpus" / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    return json.loads(line)


def write_jsonl(path: Path, records, *, newline: bytes = b"\n") -> Path:
    path.write_bytes(b"".join(
        (r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + newline for r in records))
    return path
