"""Time as the workbench shows it, behind one injection point.

Every duration, rate and age on screen goes through a Clock, so tests and screenshots can use
a FrozenClock and get the same pixels on every run: the engine measures real seconds, and the
frozen clock decides what is displayed for them.
"""

from __future__ import annotations

import time


class Clock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def seconds(self, measured: float) -> float:
        """A duration the engine measured, as it should be displayed."""
        return measured

    def age(self, timestamp: float) -> float:
        """Seconds since `timestamp` (wall clock)."""
        return max(0.0, self.wall() - timestamp)


class FrozenClock(Clock):
    """A clock that never moves: rates show as unknown, durations and ages are fixed."""

    def __init__(self, wall: float = 1_700_000_000.0, duration: float = 0.25, age: float = 120.0):
        self._wall = wall
        self._duration = duration
        self._age = age

    def monotonic(self) -> float:
        return 1000.0

    def wall(self) -> float:
        return self._wall

    def seconds(self, measured: float) -> float:
        return self._duration

    def age(self, timestamp: float) -> float:
        return self._age


def format_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def format_eta(seconds: float) -> str:
    """A time left in at most 4 characters: '9s', '45s', '12m', '3h'."""
    if seconds < 60:
        return f"{max(1, round(seconds))}s"
    if seconds < 3600:
        return f"{round(seconds / 60)}m"
    return f"{min(99, round(seconds / 3600))}h"


def format_age(seconds: float) -> str:
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"
