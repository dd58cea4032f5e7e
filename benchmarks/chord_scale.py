"""A chord of 20,000 parts: a part must cost the same at the end as at the start.

With the parts kept in one growing text every part rewrote it (quadratic,
and the counter table grew to gigabytes); with a row per part
(``ChordPart``) the last parts cost what the first did, and the tables stay small.
The ends are minutes apart, and this machine's commits speed up and slow down
over minutes: each part is timed in turn with the floor's decrement of a
counter of its own, and the ends are compared through their ratios to it. A
third decrement, of a counter holding this chord's header, shows what the
contract's row costs any implementation that counts in it.
"""

from __future__ import annotations

import statistics
import time

from celery import states
from django.db import connection

from django_celery_results import engines
from django_celery_results.models import ChordCounter, ChordPart

from . import floor, workloads
from .figures import Bench, Figure, PublishCounter, Sizes, _counter_state, _start_chord
from .measure import Paired, interleaved, ms

#: Parts of the chord (a full run), and under ``--quick``.
FULL_PARTS = 20_000
QUICK_PARTS = 4_000
#: Parts timed at each end of the chord.
WINDOW = 1_000
#: The last window's ratio to the floor over the first's.
DRIFT_TARGET = 1.2


def _parts(sizes: Sizes) -> int:
    """The chord's size for this run (``--quick`` runs have fewer cleanup rows)."""
    return QUICK_PARTS if sizes.cleanup_rows < Sizes.full().cleanup_rows else FULL_PARTS


def _ends(timed: Paired) -> tuple[float, float]:
    """Ours over the floor in the first and in the last :data:`WINDOW` calls (their medians)."""
    first, last = slice(None, WINDOW), slice(-WINDOW, None)
    return (
        statistics.median(timed.ours[first]) / statistics.median(timed.floor[first]),
        statistics.median(timed.ours[last]) / statistics.median(timed.floor[last]),
    )


def _sizes() -> dict[str, str]:
    """The counter and part tables' sizes on disk (:func:`_size`)."""
    return {
        "counter_table": _size(ChordCounter._meta.db_table),
        "part_table": _size(ChordPart._meta.db_table),
    }


def _size(table: str) -> str:
    """The table's size on disk with its indexes, in KiB, or ``n/a``."""
    found = engines.relation_size(connection, table)
    return "n/a" if found is None else f"{found / 1024:,.0f} KiB"


def chord_scale(bench: Bench) -> Figure:
    """Complete one big chord part by part through ``on_chord_part_return``; compare its ends."""
    n = _parts(bench.sizes)
    published = PublishCounter()
    try:
        group_id, part_ids, body = _start_chord(bench, n)
        requests = [floor.request(p, i, group=group_id, chord=body) for i, p in enumerate(part_ids)]
        # The header's results exist (the last part's join reads them), stored before timing.
        for i, request in enumerate(requests):
            bench.backend.store_result(request.id, i, states.SUCCESS, request=request)
        header = ChordCounter.objects.values_list("sub_tasks", flat=True).get(group_id=group_id)
        plain, loaded = workloads.floor_counter(n), workloads.floor_counter(n, sub_tasks=header)
        # Before any part: the chord's counter and the floor's two (one as big as the chord's).
        before = _sizes()

        ours, on_plain, on_loaded = interleaved(
            [
                lambda i: bench.backend.on_chord_part_return(requests[i], states.SUCCESS, i),
                lambda i: floor.decrement(connection, plain),
                lambda i: floor.decrement(connection, loaded),
            ],
            n - 1,
            warmup=0,
        )
        timed, schema = Paired(ours, on_plain), Paired(ours, on_loaded)
        started = time.perf_counter()
        bench.backend.on_chord_part_return(requests[-1], states.SUCCESS, n - 1)
        last_ms = ms(time.perf_counter() - started)
        count, counted = _counter_state(group_id)
        callbacks = published.count
    finally:
        published.close()
    first, last = ms(statistics.median(timed.ours[:WINDOW])), ms(statistics.median(timed.ours[-WINDOW:]))
    first_ratio, last_ratio = _ends(timed)
    drift = round(last_ratio / first_ratio, 2)
    # The floor on the contract's row: the same decrement of a counter holding this chord's header.
    schema_first, schema_last = _ends(schema)
    sizes = _sizes()
    ok = callbacks == 1 and count == 0 and counted == n and drift <= DRIFT_TARGET
    return Figure(
        name="chord_scale",
        unit=f"ms/part, chord of {n:,}",
        ours=last,
        statements="",
        target=f"last {WINDOW:,} / first {WINDOW:,} <= {DRIFT_TARGET}; callback sent once",
        met=ok,
        note=(
            f"first {WINDOW:,}: {first} ms/part ({first_ratio:.2f}x the floor), last {WINDOW:,}: {last} "
            f"ms/part ({last_ratio:.2f}x; x{drift}); against a decrement of a counter row holding "
            f"this header (the contract's row, which any implementation counting there rewrites): "
            f"{schema_first:.2f}x first, {schema_last:.2f}x last; "
            f"counter table {before['counter_table']} before the parts and {sizes['counter_table']} after, "
            f"part table {before['part_table']} and {sizes['part_table']}; "
            f"{callbacks} callback(s)"
        ),
        details={
            "parts": n,
            "first_ms": first,
            "last_ms": last,
            "first_ratio": round(first_ratio, 3),
            "last_ratio": round(last_ratio, 3),
            "drift": drift,
            "schema_first_ratio": round(schema_first, 3),
            "schema_last_ratio": round(schema_last, 3),
            "last_part_ms": last_ms,
            "callbacks": callbacks,
            "count_left": count,
            "parts_counted": counted,
            **sizes,
            **{f"{name}_before": size for name, size in before.items()},
        },
    )
