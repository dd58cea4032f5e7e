"""One set of workloads, parametrised by the backend under test, each paired with the floor.

Used for the upstream column (:mod:`benchmarks.upstream`, in 2.6.0's own
process) and the peers (:mod:`benchmarks.peers`: Celery's Redis and
SQLAlchemy result backends, in this process). Every workload calls Celery's
public backend API of ``app.backend`` and alternates call by call with the
same floor statement on the Django connection (the scratch database), so
each side's figure is comparable through its ratio to the floor of the same
run. What a backend cannot do natively is ``None`` (the report says why).
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
import timeit
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from celery import Celery, states
from celery import uuid as new_id
from celery.result import GroupResult
from django.core.management.color import no_style
from django.db import connection

from . import children, floor
from .harness import start_children
from .measure import Paired, ms, paired, percentile

#: The chord callback's task name (never registered: the callback is only published).
CALLBACK = "bench.tasks.chord_callback"


def summary(result: Paired, **extra: Any) -> dict[str, Any]:
    """Median ms of the backend and of the floor, and their ratio."""
    return {
        "ms": ms(result.ours_median),
        "floor_ms": ms(result.floor_median),
        "ratio": round(result.ratio, 2),
        **extra,
    }


def store_new(app: Celery, n: int) -> tuple[Paired, list[str]]:
    """``store_result(SUCCESS)`` of ``n`` new ids against one upsert each; returns the stored ids."""
    backend = app.backend
    ids, floor_ids = [new_id() for _ in range(n + 10)], [new_id() for _ in range(n + 10)]
    requests = [floor.request(task_id, i) for i, task_id in enumerate(ids)]

    def ours(i: int) -> None:
        backend.store_result(ids[i], floor.result_value(i), states.SUCCESS, request=requests[i])

    def hand(i: int) -> None:
        floor.write(connection, floor_ids[i], states.SUCCESS, floor.result_value(i), i)

    return paired(ours, hand, n), ids[:n]


def lifecycle(app: Celery, n: int) -> Paired:
    """STARTED then SUCCESS per id; time per call (two calls per id)."""
    backend = app.backend
    half = max(n // 2, 1)
    ids, floor_ids = [new_id() for _ in range(half + 10)], [new_id() for _ in range(half + 10)]
    requests = [floor.request(task_id, i) for i, task_id in enumerate(ids)]

    def ours(i: int) -> None:
        backend.store_result(ids[i], floor.STARTED_META, states.STARTED, request=requests[i])
        backend.mark_as_done(ids[i], floor.result_value(i), request=requests[i])

    def hand(i: int) -> None:
        floor.write(connection, floor_ids[i], states.STARTED, floor.STARTED_META, i)
        floor.write(connection, floor_ids[i], states.SUCCESS, floor.result_value(i), i)

    return paired(ours, hand, half).scaled(0.5)


def get_meta(app: Celery, ids: list[str], floor_ids: list[str], n: int) -> Paired:
    """``get_task_meta(cache=False)`` of stored rows against one SELECT of a floor-side stored row."""
    backend = app.backend
    return paired(
        lambda i: backend.get_task_meta(ids[i % len(ids)], cache=False),
        lambda i: floor.read(connection, floor_ids[i % len(floor_ids)]),
        n,
    )


def eager_check_us(app: Celery, calls: int = 5000) -> float:
    """Microseconds per call of Celery's eager-mode check (``_ensure_not_eager``), median of 5 blocks.

    Celery's ``get_task_meta`` runs it on every call, before any backend code.
    """
    blocks = timeit.repeat(app.backend._ensure_not_eager, number=calls, repeat=5)
    return statistics.median(blocks) / calls * 1e6


def app_from_django_settings() -> Celery:
    """An app configured as Django sites usually do: from ``django.conf:settings``, namespace ``CELERY``."""
    app = Celery("bench-django-settings", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.result_backend = "django-db"
    return app


def group_join(app: Celery, ids: list[str], floor_ids: list[str], repeats: int, native: bool) -> Paired:
    """``GroupResult.join_native()`` (``native``) or ``join()`` of finished tasks, fresh results each."""
    groups = [GroupResult(new_id(), [app.AsyncResult(t) for t in ids], app=app) for _ in range(repeats + 5)]

    def ours(i: int) -> None:
        values = groups[i].join_native(timeout=30) if native else groups[i].join(timeout=30)
        if len(values) != len(ids):
            raise AssertionError("the join returned fewer values than members")

    def hand(i: int) -> None:
        if len(floor.read_ready(connection, floor_ids)) != len(floor_ids):
            raise AssertionError("the floor did not find every task")

    return paired(ours, hand, repeats)


def stored_ids(app: Celery, count: int) -> list[str]:
    """``count`` SUCCESS results stored through ``app.backend``."""
    ids = [new_id() for _ in range(count)]
    for i, task_id in enumerate(ids):
        app.backend.mark_as_done(task_id, floor.result_value(i), request=floor.request(task_id, i))
    return ids


def floor_ids(count: int) -> list[str]:
    """``count`` SUCCESS rows written by the floor (what the floor's reads select)."""
    ids = [new_id() for _ in range(count)]
    for i, task_id in enumerate(ids):
        floor.write(connection, task_id, states.SUCCESS, floor.result_value(i), i)
    return ids


def floor_counter(parts: int, extended: bool = True, sub_tasks: str = "[]") -> str:
    """A chord counter row for the floor's decrements (``extended``: our schema's extra columns).

    ``sub_tasks``: the header it holds (none by default; a chord's own header
    shows what its size costs every decrement of the contract's row).
    """
    group_id: str = new_id()
    qn = connection.ops.quote_name
    columns, values = ["group_id", "sub_tasks", "count"], [group_id, sub_tasks, 10 * parts]
    if extended:
        columns += ["counted_parts", "date_created"]
        values += ["|", connection.ops.adapt_datetimefield_value(datetime.now(timezone.utc))]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(floor.CHORD_TABLE)} ({', '.join(qn(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))})",
            values,
        )
    return group_id


def chord_part(app: Celery, parts: int, extended_counter: bool = True) -> tuple[Paired, float]:
    """``on_chord_part_return`` per non-final part against one decrement; also the last part's ms."""
    backend = app.backend
    group_id, part_ids = new_id(), [new_id() for _ in range(parts)]
    body = app.signature(CALLBACK)
    body["chord_size"] = parts
    backend.apply_chord((group_id, [app.AsyncResult(p) for p in part_ids]), body)
    requests = [floor.request(p, i, group=group_id, chord=dict(body)) for i, p in enumerate(part_ids)]
    for i, request in enumerate(requests):
        backend.store_result(request.id, i, states.SUCCESS, request=request)
    counter = floor_counter(parts, extended_counter)
    result = paired(
        lambda i: backend.on_chord_part_return(requests[i], states.SUCCESS, i),
        lambda i: floor.decrement(connection, counter),
        parts - 1,
        warmup=0,
    )
    start = time.perf_counter()
    backend.on_chord_part_return(requests[-1], states.SUCCESS, parts - 1)
    return result, time.perf_counter() - start


class _Recorder:
    """``connection.execute_wrapper`` noting when each statement ran."""

    def __init__(self) -> None:
        self.moments: list[float] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.moments.append(time.monotonic())
        return execute(sql, params, many, context)


def latency(
    app: Celery,
    engine: str,
    samples: int,
    backend_url: str | None = None,
    late: float = 3.0,
) -> dict[str, Any]:
    """From the writer's commit (its ``store_result`` returning) to ``AsyncResult(id).get()`` returning here.

    The writer (``children.latency_writer``, the same backend: ``backend_url``
    or ``django-db``) stores each SUCCESS 10-250 ms after this process started
    ``get()``. Then one result stored ``late`` seconds after ``get()`` started:
    the statements this process's Django connection ran while it waited, after
    its first second, per second (``None`` for a backend that is not the
    Django ORM).
    """
    delays = [0.010 + (i * 0.137) % 0.240 for i in range(samples)]
    pipe, writer_pipe = multiprocessing.get_context("spawn").Pipe()
    writer = start_children(children.latency_writer, [(writer_pipe, backend_url)], engine)
    wait_qps = None
    try:
        if not pipe.poll(300) or pipe.recv() != "ready":
            raise RuntimeError("the latency writer did not start")
        latencies, from_store, stores = [], [], []
        for i, delay in enumerate(delays):
            task_id = new_id()
            result = app.AsyncResult(task_id)
            pipe.send((task_id, delay, i))
            result.get(timeout=60)
            returned = time.monotonic()
            t0, t1 = pipe.recv()
            latencies.append(returned - t1)
            from_store.append(returned - t0)
            stores.append(t1 - t0)
        recorder = _Recorder()
        task_id = new_id()
        started = time.monotonic()
        pipe.send((task_id, late, samples))
        with connection.execute_wrapper(recorder):
            app.AsyncResult(task_id).get(timeout=60)
        pipe.recv()
        if backend_url is None:
            after_first = [t for t in recorder.moments if t - started >= 1.0]
            wait_qps = round(len(after_first) / max(late - 1.0, 0.001), 2)
    finally:
        pipe.send(None)
        writer.results()
    return {
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "p50_from_store_ms": ms(percentile(from_store, 0.5)),
        "p99_from_store_ms": ms(percentile(from_store, 0.99)),
        "store_ms_median": ms(statistics.median(stores)),
        "samples": samples,
        "wait_qps": wait_qps,
    }


def empty_tables() -> None:
    """Empty the package's tables, so every backend's run (and its floor's) starts where ours did.

    The floor's reads slow down as the tables fill and churn (a read of 200
    rows on PostgreSQL: 5 ms on the tables ours starts with, 8-12 ms after
    ours and 2.6.0 wrote theirs): ratios to floors measured on different
    tables do not compare.
    """
    names = connection.introspection.table_names()
    tables = [name for name in names if name.startswith("django_celery_results_")]
    connection.ops.execute_sql_flush(connection.ops.sql_flush(no_style(), tables, reset_sequences=True))


def measure_all(app: Celery, engine: str, sizes: dict[str, int], latency_url: str | None) -> dict[str, Any]:
    """Every paired workload on ``app.backend``: store_new, lifecycle, get_meta, joins, chord, latency.

    Starts on emptied tables, as ours does on the freshly migrated database.
    ``sizes`` is :class:`benchmarks.figures.Sizes` as a dict. Keys are the
    report's figure names; a figure the backend has no native way to do maps
    to a string saying so.
    """
    empty_tables()
    backend = app.backend
    n = sizes["calls"]
    found: dict[str, Any] = {}
    result, ids = store_new(app, n)
    found["store_new"] = summary(result)
    found["lifecycle"] = summary(lifecycle(app, n))
    hand_ids = floor_ids(sizes["group"])
    found["get_meta"] = summary(get_meta(app, ids, hand_ids, n))
    members = ids[: sizes["group"]]
    repeats = sizes["group_repeats"]
    if getattr(backend, "supports_native_join", False):
        found["group_join_native"] = summary(group_join(app, members, hand_ids, repeats, native=True))
    else:
        found["group_join_native"] = "n/a: no native join"
    found["group_join"] = summary(group_join(app, members, hand_ids, repeats, native=False))
    if _native_chord(backend):
        result, last = chord_part(app, sizes["chord_parts"])
        found["chord_part"] = summary(result, last_part_ms=ms(last))
    else:
        found["chord_part"] = "n/a: no native chord"
    found["latency"] = latency(app, engine, sizes["latency_samples"], latency_url)
    return found


def _native_chord(backend: Any) -> bool:
    """Whether ``backend`` counts chord parts itself (else Celery falls back to ``chord_unlock``).

    The base class's ``on_chord_part_return`` does nothing; a native chord
    overrides it (Redis, ours); Celery's SQLAlchemy backend does not.
    """
    from celery.backends.base import Backend

    return type(backend).on_chord_part_return is not Backend.on_chord_part_return
