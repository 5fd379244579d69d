"""Debian's chromium, headless, for the tests that open a page in a real browser (the report's, compare's)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def headless(profile: Path, budget_ms: int) -> list[str]:
    """The chromium command line, up to the action (``--dump-dom URI``, ``--screenshot=… URI``): offline, a fresh
    profile, ``budget_ms`` of virtual time for the page's scripts. Skips when chromium is missing; fails on CI,
    where ``make test`` installs it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed here (make test installs it)")
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}"]


def dump_dom(cmd: list[str], page: Path) -> str:
    """The page's DOM after its scripts ran, as chromium serialises it."""
    return subprocess.run(cmd + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
