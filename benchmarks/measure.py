"""Timing on a noisy machine: ours and the floor alternate, and figures are ratios within one run."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Paired:
    """Seconds of each call of ours and of the floor, in the order they ran."""

    ours: list[float]
    floor: list[float]

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def floor_median(self) -> float:
        return statistics.median(self.floor)

    @property
    def ratio(self) -> float:
        """Median call of ours over median call of the floor."""
        return self.ours_median / self.floor_median

    def scaled(self, factor: float) -> Paired:
        """Every time multiplied by ``factor`` (e.g. per write when a call makes two)."""
        return Paired([t * factor for t in self.ours], [t * factor for t in self.floor])


def paired(
    ours: Callable[[int], object],
    floor: Callable[[int], object],
    calls: int,
    warmup: int = 5,
) -> Paired:
    """Time ``ours(i)`` and ``floor(i)`` for ``i`` in ``range(calls)``, alternating call by call.

    On a machine others load at the same time, a burst hits neighbouring
    calls of both sides alike; medians then ignore the calls it slowed.
    """
    ours_times, floor_times = interleaved([ours, floor], calls, warmup)
    return Paired(ours_times, floor_times)


def interleaved(sides: Sequence[Callable[[int], object]], calls: int, warmup: int = 5) -> list[list[float]]:
    """Seconds of each of ``sides`` called with ``i``, all of them in turn for each ``i`` in ``range(calls)``.

    Which side goes first rotates every call. Warm-up calls use indexes from
    ``calls`` upwards.
    """
    for i in range(calls, calls + warmup):
        for side in sides:
            side(i)
    times: list[list[float]] = [[] for _ in sides]
    clock = time.perf_counter
    count = len(sides)
    for i in range(calls):
        for turn in range(count):
            at = (i + turn) % count
            start = clock()
            sides[at](i)
            times[at].append(clock() - start)
    return times


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for the report."""
    return round(seconds * 1000, 3)
