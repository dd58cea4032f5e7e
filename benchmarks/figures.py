"""The figures: each measures ours beside the floor and says whether its target is met."""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

from celery import Celery, states
from celery import uuid as new_id
from celery.result import GroupResult
from celery.signals import after_task_publish
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext

from . import children, floor, workloads
from .harness import run_in_process, run_in_processes
from .measure import Paired, ms, paired, percentile

MIB = 2**20
#: The chord callback's task name (never registered: the callback is only published).
CALLBACK = "bench.tasks.chord_callback"
#: Our time per write may be this many times the floor's.
WRITE_RATIO_TARGET = 1.3
#: A 10 MB result may cost this many times its size in memory, to store or to read.
MEMORY_MULTIPLE_TARGET = 5.0
#: Latency targets in ms: (p50, p99); None: no target.
LATENCY_TARGET_MS: dict[str, tuple[float | None, float]] = {
    "postgresql": (2.0, 10.0),
    "mysql": (None, 60.0),
    "sqlite": (None, 60.0),
}
#: p50 in ms of a ``get()`` that polls because LISTEN is deaf behind a pooler
#: (2.6.0 polls every 0.5 s: about 250 ms on average).
POOLED_POLL_TARGET_MS = 50.0
#: Statements per second a waiting ``get()`` may run after its first second.
WAIT_QPS_TARGET = 10.0
#: Read and join ratios to the floor, and the chord's non-final part.
READ_RATIO_TARGET = 1.3
CHORD_RATIO_TARGET = 1.5
#: The last part's join of the header against the floor's ``SELECT ... IN`` of the same parts.
LAST_JOIN_TARGET = 2.0
LAST_JOIN_CALLS = 15
#: Statements of a non-final part: one on PostgreSQL; elsewhere BEGIN, INSERT, UPDATE, COMMIT.
MAX_PART_STATEMENTS = {"postgresql": 1, "mysql": 4, "sqlite": 4}
#: Cleanup rows/s as a share of the floor's (one unbatched DELETE).
CLEANUP_SHARE_TARGET = 0.5
#: Longest single cleanup batch, in ms (reported against it; not a met/NO target).
CLEANUP_BATCH_TARGET_MS = 100.0
#: Peak memory allowed to a cleanup of a million rows.
CLEANUP_MEMORY_TARGET = 100 * MIB
MILLION = 1_000_000


@dataclass(frozen=True)
class Sizes:
    """How much work each figure does (``--quick`` shrinks the slow ones)."""

    calls: int
    group: int
    group_repeats: int
    chord_parts: int
    cleanup_rows: int
    latency_samples: int
    memory_size: int
    #: Expired rows of each cleanup figure (the first also gives the memory figure).
    cleanup_sizes: tuple[int, ...] = ()

    @classmethod
    def full(cls) -> Sizes:
        return cls(3000, 200, 30, 500, 200_000, 50, 10 * MIB, (200_000, MILLION))

    @classmethod
    def quick(cls) -> Sizes:
        return cls(400, 200, 5, 500, 20_000, 15, 10 * MIB, (20_000,))


@dataclass
class Figure:
    """One line of the report."""

    name: str
    unit: str
    ours: float | None
    floor: float | None = None
    ratio: float | None = None
    #: Upstream 2.6.0's time over the floor's, measured the same way in its own process.
    upstream_ratio: float | None = None
    #: Upstream's own figure (its process, its floor) and ours over it, each normalised by
    #: its floor (times: <= 1 is not slower; cleanup rows/s: >= 1 is not slower).
    upstream: float | str | None = None
    vs_upstream: float | None = None
    #: The peers' figures (``benchmarks/peers.py``), or why there is none.
    redis: float | str | None = None
    sqlalchemy: float | str | None = None
    statements: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Bench:
    """What every figure needs: the engine, the sizes, a Celery app and the connection."""

    engine: str
    sizes: Sizes
    app: Celery
    #: Ids of SUCCESS rows written by ``store_new``, read again by ``get_meta``.
    stored_ids: list[str] = field(default_factory=list)
    #: Whether figures measured between loads (cleanup) also run upstream 2.6.0.
    with_upstream: bool = False

    @property
    def backend(self) -> Any:
        return self.app.backend

    @property
    def connection(self) -> BaseDatabaseWrapper:
        return connection


def count_statements(action: Callable[[], object]) -> int:
    """SQL statements ``action`` sent through the default connection."""
    with CaptureQueriesContext(connection) as queries:
        action()
    return len(queries.captured_queries)


def _write_figure(name: str, result: Paired, statements: dict[str, int], same: bool) -> Figure:
    """A write figure: ``statements`` per kind of ``store_result`` call; 1 each is the target."""
    one_each = all(n == 1 for n in statements.values())
    return Figure(
        name=name,
        unit="ms/call",
        ours=ms(result.ours_median),
        floor=ms(result.floor_median),
        ratio=round(result.ratio, 2),
        statements=", ".join(f"{n} per {kind}" for kind, n in statements.items()),
        target=f"1 statement, <= {WRITE_RATIO_TARGET}x floor",
        met=one_each and result.ratio <= WRITE_RATIO_TARGET,
        note="" if same else "the floor's row differs from ours",
        details={
            "ours_p90_ms": ms(percentile(result.ours, 0.9)),
            "floor_p90_ms": ms(percentile(result.floor, 0.9)),
            "calls": len(result.ours),
            "floor_writes_same_values": same,
        },
    )


def _same_row(ours_id: str, floor_id: str) -> bool:
    """Whether the floor wrote the same values as we did (ids and timestamps aside)."""
    columns = ", ".join([*floor.COMPARED, "date_started"])
    rows = []
    with connection.cursor() as cursor:
        for task_id in (ours_id, floor_id):
            cursor.execute(f"SELECT {columns} FROM {floor.TASK_TABLE} WHERE task_id = %s", [task_id])
            row = cursor.fetchone()
            rows.append(None if row is None else (*row[:-1], row[-1] is None))
    return rows[0] is not None and rows[0] == rows[1]


# -- writes ----------------------------------------------------------------------


def store_new(bench: Bench) -> Figure:
    """SUCCESS stored for ids never seen: ``backend.store_result`` against one INSERT each."""
    n = bench.sizes.calls
    ours_ids = [new_id() for _ in range(n + 10)]
    floor_ids = [new_id() for _ in range(n + 10)]
    # A worker has the request already; the floor builds its row values inside the timing.
    requests = [floor.request(task_id, i) for i, task_id in enumerate(ours_ids)]

    def ours(i: int) -> None:
        bench.backend.store_result(ours_ids[i], floor.result_value(i), states.SUCCESS, request=requests[i])

    def hand(i: int) -> None:
        floor.write(connection, floor_ids[i], states.SUCCESS, floor.result_value(i), i)

    result = paired(ours, hand, n)
    fresh = new_id()
    statements = count_statements(
        lambda: bench.backend.store_result(fresh, 1, states.SUCCESS, request=floor.request(fresh, 1))
    )
    bench.stored_ids = ours_ids[:n]
    return _write_figure(
        "store_new",
        result,
        {"new SUCCESS": statements},
        _same_row(ours_ids[0], floor_ids[0]),
    )


def lifecycle(bench: Bench) -> Figure:
    """STARTED then SUCCESS per id (a worker with ``task_track_started``): two writes per id."""
    n = max(bench.sizes.calls // 2, 1)
    ours_ids = [new_id() for _ in range(n + 10)]
    floor_ids = [new_id() for _ in range(n + 10)]
    requests = [floor.request(task_id, i) for i, task_id in enumerate(ours_ids)]

    def ours(i: int) -> None:
        task_id, request = ours_ids[i], requests[i]
        bench.backend.store_result(task_id, floor.STARTED_META, states.STARTED, request=request)
        bench.backend.mark_as_done(task_id, floor.result_value(i), request=request)

    def hand(i: int) -> None:
        floor.write(connection, floor_ids[i], states.STARTED, floor.STARTED_META, i)
        floor.write(connection, floor_ids[i], states.SUCCESS, floor.result_value(i), i)

    result = paired(ours, hand, n)
    # Two calls per id: report the time per call.
    result = result.scaled(0.5)
    fresh = new_id()
    request = floor.request(fresh, 1)
    started = count_statements(
        lambda: bench.backend.store_result(fresh, floor.STARTED_META, states.STARTED, request=request)
    )
    done = count_statements(lambda: bench.backend.mark_as_done(fresh, 1, request=request))
    return _write_figure(
        "lifecycle",
        result,
        {"STARTED": started, "SUCCESS": done},
        _same_row(ours_ids[0], floor_ids[0]),
    )


# -- reads -----------------------------------------------------------------------


def get_meta(bench: Bench) -> Figure:
    """``backend.get_task_meta`` of a stored SUCCESS against one SELECT (and decoding the result)."""
    ids = bench.stored_ids
    if not ids:
        ids = [new_id() for _ in range(100)]
        for i, task_id in enumerate(ids):
            bench.backend.mark_as_done(task_id, floor.result_value(i), request=floor.request(task_id, i))

    def ours(i: int) -> None:
        bench.backend.get_task_meta(ids[i % len(ids)], cache=False)

    def hand(i: int) -> None:
        floor.read(connection, ids[i % len(ids)])

    result = paired(ours, hand, bench.sizes.calls)
    queries = count_statements(lambda: bench.backend.get_task_meta(ids[0], cache=False))
    own = paired(lambda i: bench.backend._get_task_meta_for(ids[i % len(ids)]), hand, bench.sizes.calls)
    return Figure(
        name="get_meta",
        unit="ms/call",
        ours=ms(result.ours_median),
        floor=ms(result.floor_median),
        ratio=round(result.ratio, 2),
        statements=f"{queries} per call",
        target=f"1 query, <= {READ_RATIO_TARGET}x floor",
        met=queries == 1 and result.ratio <= READ_RATIO_TARGET,
        note=(
            f"without Celery's get_task_meta around it (our _get_task_meta_for): {own.ratio:.2f}x the floor; "
            f"Celery's eager-mode check, run by it on every call: "
            f"{workloads.eager_check_us(bench.app):.1f} us with this app, "
            f"{workloads.eager_check_us(workloads.app_from_django_settings()):.1f} us with an app configured "
            "from Django's settings (namespace CELERY)"
        ),
    )


def group_join(bench: Bench) -> list[Figure]:
    """A group of finished tasks: ``join_native`` (one poll) and ``join`` (a get per member)."""
    size, repeats = bench.sizes.group, bench.sizes.group_repeats
    ids = [new_id() for _ in range(size)]
    for i, task_id in enumerate(ids):
        bench.backend.mark_as_done(task_id, floor.result_value(i), request=floor.request(task_id, i))
    expected = [floor.result_value(i) for i in range(size)]

    def group() -> GroupResult:
        return GroupResult(new_id(), [bench.app.AsyncResult(t) for t in ids], app=bench.app)

    groups = [group() for _ in range(repeats + 5)]
    plain_groups = [group() for _ in range(repeats + 5)]

    def native(i: int) -> None:
        if groups[i].join_native(timeout=30) != expected:
            raise AssertionError("join_native returned other values")

    def plain(i: int) -> None:
        if plain_groups[i].join(timeout=30) != expected:
            raise AssertionError("join returned other values")

    def hand(i: int) -> None:
        if len(floor.read_ready(connection, ids)) != size:
            raise AssertionError("the floor did not find every task")

    result = paired(native, hand, repeats)
    polls = [1]

    def poll_counted() -> None:
        group().join_native(timeout=30, on_interval=lambda: polls.append(1))

    native_queries = count_statements(poll_counted)
    per_poll = native_queries / len(polls)
    plain_result = paired(plain, hand, repeats)
    plain_queries = count_statements(lambda: group().join(timeout=30))
    return [
        Figure(
            name="group_join_native",
            unit=f"ms/join of {size}",
            ours=ms(result.ours_median),
            floor=ms(result.floor_median),
            ratio=round(result.ratio, 2),
            statements=f"{per_poll:g} per poll ({len(polls)} poll{'s' if len(polls) > 1 else ''})",
            target=f"<= 2 queries per poll, <= {READ_RATIO_TARGET}x floor",
            met=per_poll <= 2 and result.ratio <= READ_RATIO_TARGET,
        ),
        Figure(
            name="group_join",
            unit=f"ms/join of {size}",
            ours=ms(plain_result.ours_median),
            floor=ms(plain_result.floor_median),
            ratio=round(plain_result.ratio, 2),
            statements=f"{plain_queries} per join (1 per member)",
            target="(reference: GroupResult.join polls each member)",
        ),
    ]


# -- chords ------------------------------------------------------------------------


def _start_chord(bench: Bench, parts: int) -> tuple[str, list[str], dict[str, Any]]:
    """Apply a chord of ``parts`` header tasks as Celery does; return its id, part ids and body."""
    group_id = new_id()
    part_ids = [new_id() for _ in range(parts)]
    body = bench.app.signature(CALLBACK)
    body["chord_size"] = parts
    bench.backend.apply_chord((group_id, [bench.app.AsyncResult(p) for p in part_ids]), body)
    return group_id, part_ids, dict(body)


def _counter_state(group_id: str) -> tuple[int, int]:
    """``(count, parts counted)`` of a chord: its counter row and its part rows."""
    from django_celery_results.models import ChordCounter

    counter = ChordCounter.objects.get(group_id=group_id)
    return counter.count, ChordCounter.objects.parts().filter(group_id=group_id, counted=True).count()


class PublishCounter:
    """Counts the chord callbacks this process publishes (Celery's ``after_task_publish``)."""

    def __init__(self) -> None:
        self.count = 0
        after_task_publish.connect(self._seen, weak=False)

    def _seen(self, sender: str | None = None, **kwargs: Any) -> None:
        if sender == CALLBACK:
            self.count += 1

    def close(self) -> None:
        after_task_publish.disconnect(self._seen)


def chord(bench: Bench) -> list[Figure]:
    """Chord parts through ``on_chord_part_return``: per part in one process, then 1 vs 4 processes."""
    n = bench.sizes.chord_parts
    published = PublishCounter()
    try:
        # A small chord first: warms up, and counts the statements of a part and of the last part.
        group_id, part_ids, body = _start_chord(bench, 3)
        requests = [floor.request(p, i, group=group_id, chord=body) for i, p in enumerate(part_ids)]
        for i, request in enumerate(requests):
            bench.backend.store_result(request.id, i, states.SUCCESS, request=request)

        def part(i: int) -> None:
            bench.backend.on_chord_part_return(requests[i], states.SUCCESS, i)

        per_part = count_statements(lambda: part(0))
        part(1)
        last_part = count_statements(lambda: part(2))
        published.count = 0

        group_id, part_ids, body = _start_chord(bench, n)
        requests = [floor.request(p, i, group=group_id, chord=body) for i, p in enumerate(part_ids)]
        for i, request in enumerate(requests):
            bench.backend.store_result(request.id, i, states.SUCCESS, request=request)
        floor_group = workloads.floor_counter(n)

        def ours(i: int) -> None:
            bench.backend.on_chord_part_return(requests[i], states.SUCCESS, i)

        result = paired(ours, lambda i: floor.decrement(connection, floor_group), n - 1, warmup=0)
        start = time.perf_counter()
        ours(n - 1)
        last_ms = ms(time.perf_counter() - start)
        count, counted = _counter_state(group_id)
        one_process_ok = published.count == 1 and count == 0 and counted == n
        header_join = _last_part_join(bench, group_id, part_ids)
        in_process = Figure(
            name="chord_part",
            unit="ms/part",
            ours=ms(result.ours_median),
            floor=ms(result.floor_median),
            ratio=round(result.ratio, 2),
            statements=f"{per_part} per part, {last_part} for the last",
            target=(
                f"1 statement (PostgreSQL) or 1 transaction per non-final part, <= {CHORD_RATIO_TARGET}x "
                f"floor; callback sent once; last part's join <= {LAST_JOIN_TARGET}x the floor's join"
            ),
            met=(
                per_part <= MAX_PART_STATEMENTS[connection.vendor]
                and one_process_ok
                and result.ratio <= CHORD_RATIO_TARGET
                and header_join.ratio <= LAST_JOIN_TARGET
            ),
            note=(
                f"last part (joins {n}, sends the callback) {last_ms} ms; its join of the header "
                f"{ms(header_join.ours_median)} ms, {header_join.ratio:.2f}x the floor's "
                f"({ms(header_join.floor_median)} ms)"
            ),
            details={
                "last_join_ms": ms(header_join.ours_median),
                "last_join_floor_ms": ms(header_join.floor_median),
                "last_join_ratio": round(header_join.ratio, 2),
                "first_tenth_ms": ms(statistics.median(result.ours[: n // 10])),
                "last_tenth_ms": ms(statistics.median(result.ours[-(n // 10) :])),
                "last_part_ms": last_ms,
                "callbacks": published.count,
                "count_left": count,
                "parts_counted": counted,
            },
        )
    finally:
        published.close()
    return [in_process, _chord_processes(bench, 1), _chord_processes(bench, 4)]


def _last_part_join(bench: Bench, group_id: str, part_ids: list[str]) -> Paired:
    """What the last part reads to send the callback (counter, parts' results), against the floor's join."""
    from django_celery_results.backends.database import plain_task_ids
    from django_celery_results.models import ChordCounter

    def ours(i: int) -> None:
        counter = ChordCounter.objects.get(group_id=group_id)
        values = bench.backend.join_header(plain_task_ids(json.loads(counter.sub_tasks)) or [], timeout=30)
        if len(values) != len(part_ids):
            raise AssertionError("the header's join returned fewer values than parts")

    def hand(i: int) -> None:
        if len(floor.read_ready(connection, part_ids)) != len(part_ids):
            raise AssertionError("the floor did not find every part")

    return paired(ours, hand, LAST_JOIN_CALLS, warmup=2)


def _chord_processes(bench: Bench, processes: int) -> Figure:
    """``n`` parts finished by ``processes`` worker-like processes at once (store + count each)."""
    n = bench.sizes.chord_parts
    group_id, part_ids, body = _start_chord(bench, n)
    barrier = multiprocessing.get_context("spawn").Barrier(processes)
    shares = [[(i, p) for i, p in enumerate(part_ids) if i % processes == k] for k in range(processes)]
    outcomes = run_in_processes(
        children.chord_parts,
        [(barrier, group_id, body, share) for share in shares],
        bench.engine,
    )
    callbacks = sum(o["published"] for o in outcomes)
    seconds = max(o["seconds"] for o in outcomes)
    count, counted = _counter_state(group_id)
    lost = n - counted
    ok = callbacks == 1 and count == 0 and lost == 0
    return Figure(
        name=f"chord_{processes}proc",
        unit="parts/s",
        ours=round(n / seconds, 1),
        statements="",
        target="callback sent once, no decrement lost",
        met=ok,
        note=f"{callbacks} callback(s), {lost} decrement(s) lost, counter left at {count}",
        details={
            "seconds": round(seconds, 3),
            "callbacks": callbacks,
            "lost": lost,
            "count_left": count,
            "engine": bench.engine,
        },
    )


# -- cleanup -----------------------------------------------------------------------


def insert_rows(expired: int, fresh: int) -> None:
    """``expired`` task results finished two days ago or earlier and ``fresh`` ones from now."""
    columns = (
        "task_id",
        "status",
        "content_type",
        "content_encoding",
        "result",
        "meta",
        "task_name",
        "date_created",
        "date_done",
    )
    sql = f"INSERT INTO {floor.TASK_TABLE} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    now = datetime.now(timezone.utc)
    adapt = connection.ops.adapt_datetimefield_value

    def rows(count: int, newest: datetime, tag: str) -> Any:
        for i in range(count):
            moment = adapt(newest - timedelta(milliseconds=i))
            yield (
                f"{tag}-{i}-{new_id()}",
                states.SUCCESS,
                "application/json",
                "utf-8",
                '{"sum": 3}',
                '{"children": []}',
                floor.TASK_NAME,
                moment,
                moment,
            )

    batch = 5000
    for count, newest, tag in ((expired, now - timedelta(days=2), "old"), (fresh, now, "new")):
        source = rows(count, newest, tag)
        for start in range(0, count, batch):
            chunk = [next(source) for _ in range(min(batch, count - start))]
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, chunk)


def _analyze_tasks() -> None:
    """Refresh the planner's statistics, as autovacuum/InnoDB do on a table that grew.

    Without it PostgreSQL plans each batch's DELETE with the statistics of an
    empty table and scans every remaining expired row per batch.
    """
    verb = "ANALYZE TABLE" if connection.vendor == "mysql" else "ANALYZE"
    with connection.cursor() as cursor:
        cursor.execute(f"{verb} {floor.TASK_TABLE}")
        if connection.vendor == "mysql":
            cursor.fetchall()


def _empty_tasks() -> None:
    """Remove every task result; TRUNCATE where there is one, so no dead rows stay behind."""
    verb = "DELETE FROM" if connection.vendor == "sqlite" else "TRUNCATE TABLE"
    with connection.cursor() as cursor:
        cursor.execute(f"{verb} {floor.TASK_TABLE}")


def _expired_left() -> tuple[int, int]:
    cutoff = connection.ops.adapt_datetimefield_value(datetime.now(timezone.utc) - timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {floor.TASK_TABLE} WHERE date_done < %s", [cutoff])
        old = cursor.fetchone()[0]
        cursor.execute(f"SELECT COUNT(*) FROM {floor.TASK_TABLE} WHERE date_done >= %s", [cutoff])
        new = cursor.fetchone()[0]
    return int(old), int(new)


def _label(rows: int) -> str:
    return f"{rows // MILLION}M" if rows % MILLION == 0 else f"{rows // 1000}k"


def cleanup_rounds(size: int) -> int:
    """How many loads each cleanup of ``size`` rows is measured on (the median counts).

    A cleanup of 200,000 rows takes 0.1-1 s: one run alone is at the mercy of noise.
    """
    return 1 if size >= MILLION else 3


def median_run(outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median duration (an error when every run failed)."""
    timed = sorted(
        (outcome for outcome in outcomes if "seconds" in outcome), key=lambda outcome: outcome["seconds"]
    )
    return timed[len(timed) // 2] if timed else outcomes[-1]


def cleanup(bench: Bench) -> list[Figure]:
    """``backend.cleanup()`` of expired rows in a fresh process, beside the floor and upstream.

    For each size in ``Sizes.cleanup_sizes``: with fresh planner statistics
    (ANALYZE after the bulk load, see :func:`_analyze_tasks`) and with stale
    ones (no ANALYZE: the table's statistics from before the load, as right
    after a busy day). Each: ours (longest single DELETE batch timed in the
    child through ``connection.execute_wrapper``), the floor (one unbatched
    DELETE) and, with ``with_upstream``, 2.6.0's ``cleanup()`` in its own
    process; each on :func:`cleanup_rounds` loads in turn, the median run
    counts (the longest batch: of every run). Peak memory is the peak of Python allocations (tracemalloc)
    during cleanups of ``n/5`` and ``n`` rows (first size, fresh statistics);
    a million rows is extrapolated linearly from the two.
    """
    from . import upstream

    sizes = bench.sizes.cleanup_sizes or (bench.sizes.cleanup_rows,)
    n = sizes[0]
    # The statements of a small cleanup (two batches: the first deletes BatchSizer.first rows).
    _empty_tasks()
    insert_rows(2500, 10)
    with CaptureQueriesContext(connection) as queries:
        bench.backend.cleanup()
    task_statements = [q["sql"] for q in queries.captured_queries if floor.TASK_TABLE in q["sql"]]
    deletes = sum(1 for sql in task_statements if "DELETE FROM" in sql.upper())

    def run(kind: str, size: int, traced: bool = False, analyze: bool = True) -> dict[str, Any]:
        fresh = max(size // 10, 1)
        _empty_tasks()
        _analyze_tasks()  # the empty table's statistics: what a stale run keeps
        insert_rows(size, fresh)
        if analyze:
            _analyze_tasks()
        if kind == "upstream":
            outcome: dict[str, Any] = upstream.cleanup(bench.engine)
        else:
            outcome = run_in_process(children.cleanup, kind, traced, engine=bench.engine)
        left, kept = _expired_left()
        if left or kept != fresh:
            raise AssertionError(f"{kind} cleanup left {left} expired rows, kept {kept} of {fresh} fresh")
        return outcome

    small = run("ours", n // 5, traced=True)
    full = run("ours", n, traced=True)
    slope = max((full["traced_peak"] - small["traced_peak"]) / (n - n // 5), 0.0)
    million = full["traced_peak"] + slope * max(MILLION - n, 0)
    memory_ok = million < CLEANUP_MEMORY_TARGET
    memory_note = (
        f"peak Python memory {small['traced_peak'] / MIB:.2f} MiB at {n // 5} rows, "
        f"{full['traced_peak'] / MIB:.2f} MiB at {n}: 1M rows extrapolated {million / MIB:.2f} MiB"
    )
    found: list[Figure] = []
    for size in sizes:
        for stats in ("fresh", "stale"):
            analyze = stats == "fresh"
            kinds = ("ours", "floor", "upstream") if bench.with_upstream else ("ours", "floor")
            runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
            for _ in range(cleanup_rounds(size)):
                for kind in kinds:
                    try:
                        runs[kind].append(run(kind, size, analyze=analyze))
                    except Exception as exc:
                        if kind != "upstream":
                            raise
                        runs[kind].append({"error": repr(exc)})
            timed, hand = median_run(runs["ours"]), median_run(runs["floor"])
            theirs = median_run(runs["upstream"]) if bench.with_upstream else None
            longest = max(outcome["longest_batch"] for outcome in runs["ours"])
            ours_rate, floor_rate = size / timed["seconds"], size / hand["seconds"]
            share = ours_rate / floor_rate
            upstream_rate = None
            if theirs and "seconds" in theirs:
                upstream_rate = size / theirs["seconds"]
            longest_ms = ms(longest)
            figure = Figure(
                name=f"cleanup_{_label(size)}_{stats}",
                unit=f"rows/s ({size} expired, {stats} stats)",
                ours=round(ours_rate),
                floor=round(floor_rate),
                ratio=round(share, 2),
                upstream=round(upstream_rate) if upstream_rate else (theirs or {}).get("error"),
                vs_upstream=round(ours_rate / upstream_rate, 2) if upstream_rate else None,
                statements=f"{len(task_statements)} for 2500 rows ({deletes} batches)",
                target=(
                    f">= {CLEANUP_SHARE_TARGET:.0%} floor rows/s; batched; "
                    f"memory < 100 MB at 1M rows; batch < {CLEANUP_BATCH_TARGET_MS:g} ms (shown)"
                ),
                # Batched: more than one DELETE in the measured run (the batch size is the package's).
                met=timed["batches"] >= 2 and memory_ok and share >= CLEANUP_SHARE_TARGET,
                note=(
                    f"ratio = ours/floor rows/s (floor: one unbatched DELETE, "
                    f"{ms(hand['seconds'])} ms); {timed['batches']} batches, longest {longest_ms} ms"
                    f" (median of {len(runs['ours'])} loads each)"
                    f"{' (over target)' if longest_ms > CLEANUP_BATCH_TARGET_MS else ''}; "
                    f"vs upstream = ours/upstream rows/s"
                    + (f"; {memory_note}" if size == n and analyze else "")
                ),
                details={
                    "ours_seconds": [round(outcome["seconds"], 3) for outcome in runs["ours"]],
                    "floor_seconds": [round(outcome["seconds"], 3) for outcome in runs["floor"]],
                    "upstream": theirs,
                    "batches": timed["batches"],
                    "longest_batch_ms": longest_ms,
                    "rss_growth": timed["rss_growth"],
                    "floor_rss_growth": hand["rss_growth"],
                    **(
                        {
                            "traced_peak_small": small["traced_peak"],
                            "traced_peak_full": full["traced_peak"],
                            "traced_peak_1m_extrapolated": round(million),
                            "rows_small": n // 5,
                        }
                        if size == n and analyze
                        else {}
                    ),
                },
            )
            found.append(figure)
    _empty_tasks()
    return found


# -- latency and memory ----------------------------------------------------------


def latency(bench: Bench) -> list[Figure]:
    """From the commit of ``store_result`` in another process to ``AsyncResult.get()`` returning here.

    :func:`benchmarks.workloads.latency` (the same for upstream and the
    peers): the reader starts ``get()`` (default ``interval=0.5``) when it
    asks the writer to store; the writer waits 10-250 ms first, like short
    tasks. Then one result stored 3 s late: the reader's statements per
    second after its first second of waiting.
    """
    from . import workloads

    found = workloads.latency(bench.app, bench.engine, bench.sizes.latency_samples)
    p50_target, p99_target = LATENCY_TARGET_MS[bench.engine]
    p50, p99, qps = found["p50_ms"], found["p99_ms"], found["wait_qps"]
    met = (p50_target is None or p50 <= p50_target) and qps <= WAIT_QPS_TARGET
    target = (f"p50 <= {p50_target:g} ms; " if p50_target is not None else "") + (
        f"waiting get() <= {WAIT_QPS_TARGET:g} statements/s after 1 s"
    )
    p99_figure = Figure(
        name="latency_p99",
        unit="ms (p99)",
        ours=p99,
        target=f"p99 <= {p99_target:g} ms",
        met=p99 <= p99_target,
    )
    return [
        Figure(
            name="latency",
            unit="ms (p50)",
            ours=p50,
            statements=f"{qps:g}/s while waiting",
            target=target,
            met=met,
            note=(
                f"from the writer's commit; p99 {p99} ms over {found['samples']} samples; from the start "
                f"of its store_result: p50 {found['p50_from_store_ms']} ms, p99 {found['p99_from_store_ms']} "
                f"ms (the store itself {found['store_ms_median']} ms, median); a get() waiting 3 s ran "
                f"{qps:g} statements/s after its first second"
            ),
            details={**found, "delays_ms": [10, 250]},
        ),
        p99_figure,
    ]


@contextmanager
def _through_pooler(port: int) -> Iterator[None]:
    """``default`` goes through the pooler on ``port``, here and in the processes started meanwhile."""
    from django_celery_results import notify

    entry = connection.settings_dict
    saved = {key: entry.get(key) for key in ("PORT", "DISABLE_SERVER_SIDE_CURSORS")}
    connection.close()
    notify.close_all()  # the listener of an earlier figure went to the server directly
    entry.update(PORT=str(port), DISABLE_SERVER_SIDE_CURSORS=True)
    try:
        with mock.patch.dict(os.environ, {"DCR_BENCH_POOLER_PORT": str(port)}):
            yield
    finally:
        connection.close()
        notify.close_all()
        notify._deaf_aliases.discard("default")  # found deaf through the pooler: not once it is gone
        entry.update(saved)


def latency_pooler(bench: Bench) -> list[Figure]:
    """:func:`latency` again, reader and writer both through PgBouncer in transaction pooling mode.

    PgBouncer (Debian's package) is started in front of the benchmark's server
    for this figure only. First as a site would have it by default: the
    backend finds that LISTEN is deaf through the pooler and polls; then with
    ``DJANGO_CELERY_RESULTS["LISTEN_DATABASE"]`` naming a direct alias.
    """
    if bench.engine != "postgresql":
        return [Figure("latency_pooler", "", None, note="PostgreSQL only: PgBouncer pools PostgreSQL")]
    from django.test import override_settings

    from django_celery_results import notify
    from tests.support.servers import pgbouncer

    from . import workloads

    listen_target = LATENCY_TARGET_MS["postgresql"][0]
    assert listen_target is not None
    variants: tuple[tuple[str, dict[str, str], float, str], ...] = (
        ("latency_pooler", {}, POOLED_POLL_TARGET_MS, "LISTEN is deaf through the pooler"),
        (
            "latency_pooler_listen",
            {"LISTEN_DATABASE": "direct"},
            listen_target,
            "LISTEN_DATABASE names a direct alias",
        ),
    )
    found: list[Figure] = []
    entry = connection.settings_dict
    with pgbouncer(upstream_port=int(entry["PORT"] or 5432), upstream_host=str(entry["HOST"])) as bouncer:
        for name, options, target_ms, how in variants:
            with _through_pooler(bouncer.port), override_settings(DJANGO_CELERY_RESULTS=options):
                measured = workloads.latency(bench.app, bench.engine, bench.sizes.latency_samples)
                polled = "default" in notify._deaf_aliases
            p50, p99, qps = measured["p50_ms"], measured["p99_ms"], measured["wait_qps"]
            found.append(
                Figure(
                    name=name,
                    unit="ms (p50)",
                    ours=p50,
                    statements=f"{qps:g}/s while waiting",
                    target=f"p50 <= {target_ms:g} ms; waiting get() <= {WAIT_QPS_TARGET:g} statements/s "
                    "after 1 s",
                    met=p50 <= target_ms and qps <= WAIT_QPS_TARGET,
                    note=(
                        f"{how}: waits {'polled' if polled else 'were notified'}; p99 {p99} ms over "
                        f"{measured['samples']} samples; 2.6.0 polls every 0.5 s whatever the topology"
                    ),
                    details={**measured, "polled": polled},
                )
            )
    return found


def memory(bench: Bench) -> list[Figure]:
    """A 10 MB result stored, then read back in another process: peak memory over its size."""
    size = bench.sizes.memory_size
    ours_id, floor_id = new_id(), new_id()
    measured = {
        kind: run_in_process(children.memory, kind, task_id, size, engine=bench.engine)
        for kind, task_id in (
            ("ours-store", ours_id),
            ("ours-read", ours_id),
            ("floor-store", floor_id),
            ("floor-read", floor_id),
        )
    }

    def multiple(kind: str, key: str = "traced") -> float:
        return round(float(measured[kind][key]) / size, 2)

    return [
        Figure(
            name=f"memory_{operation}",
            unit=f"x size ({size // MIB} MiB)",
            ours=multiple(f"ours-{operation}"),
            floor=multiple(f"floor-{operation}"),
            target=f"<= {MEMORY_MULTIPLE_TARGET:g}x the size",
            met=multiple(f"ours-{operation}") <= MEMORY_MULTIPLE_TARGET,
            note=(
                "peak Python allocations (tracemalloc)"
                + (", the value read included" if operation == "read" else "")
                + f"; peak RSS growth {multiple(f'ours-{operation}', 'rss_growth')}x "
                f"(floor {multiple(f'floor-{operation}', 'rss_growth')}x)"
            ),
            details={"ours": measured[f"ours-{operation}"], "floor": measured[f"floor-{operation}"]},
        )
        for operation in ("store", "read")
    ]
