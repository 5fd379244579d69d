"""Timing the steps of a pipeline."""

from __future__ import annotations

import time


class Laps:
    """``laps.lap("train")`` records the seconds since the previous lap; ``laps.seconds`` holds them all."""

    def __init__(self, digits: int = 2):
        self.digits = digits
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._clock, self.digits)
        self._clock = now
