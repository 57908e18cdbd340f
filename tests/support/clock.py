"""A controllable clock for code that reads a clock and sleeps: waits are played without
waiting."""

from __future__ import annotations


class Clock:
    """Seconds that move only when told: `sleep` (the code under test waits; recorded in
    `sleeps`) or `advance` (time passes outside it). Callable as a clock; `monotonic`,
    `time` and `sleep` let it stand in for the `time` module."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    monotonic = time = __call__

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
