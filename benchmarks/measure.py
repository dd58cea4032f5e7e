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
    calls of both sides alike; medians then ignore the calls it slowed. Which
    side goes first flips every call. Warm-up calls use indexes from
    ``calls`` upwards.
    """
    for i in range(calls, calls + warmup):
        ours(i)
        floor(i)
    ours_times: list[float] = []
    floor_times: list[float] = []
    clock = time.perf_counter
    for i in range(calls):
        first, second = (ours, floor) if i % 2 == 0 else (floor, ours)
        start = clock()
        first(i)
        middle = clock()
        second(i)
        end = clock()
        first_time, second_time = middle - start, end - middle
        ours_times.append(first_time if first is ours else second_time)
        floor_times.append(second_time if first is ours else first_time)
    return Paired(ours_times, floor_times)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for the report."""
    return round(seconds * 1000, 3)
