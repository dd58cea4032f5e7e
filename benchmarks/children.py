"""What the benchmark runs in other processes: chord workers, the latency writer, cleanup, memory.

Each function runs in a fresh interpreter (:func:`benchmarks.harness.run_in_processes`)
and returns a small JSON-able dict to the parent.
"""

from __future__ import annotations

import resource
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from typing import Any

from celery import states

from . import floor
from .harness import make_app

#: An age no benchmark row has: a cleanup of rows older than it deletes nothing.
CENTURY = timedelta(days=36500)


def max_rss_bytes() -> int:
    """Peak resident memory of this process so far (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def chord_parts(
    barrier: Any,
    group_id: str,
    body: dict[str, Any],
    parts: list[tuple[int, str]],
) -> dict[str, Any]:
    """Finish ``parts`` of a chord header as a worker does: store the result, count the part.

    ``mark_as_done`` stores the part's result, then calls
    ``on_chord_part_return`` because the request names the chord. Returns how
    many chord callbacks this process published.
    """
    from celery.signals import after_task_publish

    app = make_app()
    backend = app.backend
    published: list[str] = []

    def count(sender: str | None = None, **kwargs: Any) -> None:
        if sender is not None and sender == body["task"]:
            published.append(sender)

    after_task_publish.connect(count, weak=False)
    backend.get_task_meta("warm-up", cache=False)  # connect before the clock starts
    barrier.wait(timeout=300)
    start = time.perf_counter()
    for i, part_id in parts:
        request = floor.request(part_id, i, group=group_id, chord=body)
        backend.mark_as_done(part_id, i, request=request)
    return {"published": len(published), "seconds": time.perf_counter() - start, "parts": len(parts)}


def latency_writer(pipe: Any, backend_url: str | None = None) -> dict[str, Any]:
    """Store a SUCCESS for each ``(task_id, delay, i)`` received, ``delay`` seconds after receiving it.

    Answers ``(t0, t1)``: ``time.monotonic()`` (system-wide on Linux) just
    before ``store_result`` and just after it returned. ``backend_url``: a
    peer's result backend instead of ``django-db``.
    """
    from .peers import make_peer_app

    app = make_app() if backend_url is None else make_peer_app(backend_url)
    backend = app.backend
    backend.get_task_meta("warm-up", cache=False)
    pipe.send("ready")
    stored = 0
    while (job := pipe.recv()) is not None:
        task_id, delay, i = job
        time.sleep(delay)
        t0 = time.monotonic()
        value, request = floor.result_value(i), floor.request(task_id, i)
        backend.store_result(task_id, value, states.SUCCESS, request=request)
        pipe.send((t0, time.monotonic()))
        stored += 1
    return {"stored": stored}


def cleanup(kind: str, traced: bool = False) -> dict[str, Any]:
    """Delete the expired task results: ``backend.cleanup()`` (``ours``) or one DELETE (``floor``).

    With ``traced``, tracemalloc records the peak of Python allocations
    (and slows the run down: its time is not the figure's).
    """
    from django.db import connection

    backend = make_app().backend
    connection.ensure_connection()
    if kind == "ours":
        # A cleanup older than every row deletes nothing but imports what the first call
        # imports, so the memory figure measures the rows, not those imports. Through the
        # backend, whose API upstream 2.6.0 shares (its child runs this too).
        expires = backend.expires
        backend.expires = CENTURY.total_seconds()
        backend.cleanup()
        backend.expires = expires
    durations: list[float] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # Each statement deleting from the task table is one batch (the floor's single one
        # included), whatever its shape (``DELETE ...``, ``WITH ... DELETE ...``).
        if "DELETE" not in sql.upper() or floor.TASK_TABLE not in sql:
            return execute(sql, params, many, context)
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            durations.append(time.perf_counter() - began)

    before = max_rss_bytes()
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    with connection.execute_wrapper(timed):
        if kind == "ours":
            backend.cleanup()
        else:
            cutoff = datetime.now(timezone.utc) - timedelta(days=1)
            with connection.cursor() as cursor:
                cursor.execute(
                    floor.delete_expired_sql(connection.vendor),
                    [connection.ops.adapt_datetimefield_value(cutoff)],
                )
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if traced else None
    tracemalloc.stop()
    return {
        "seconds": seconds,
        "rss_growth": max_rss_bytes() - before,
        "traced_peak": peak,
        "batches": len(durations),
        "longest_batch": max(durations, default=0.0),
    }


def memory(kind: str, task_id: str, size: int) -> dict[str, Any]:
    """Peak memory of storing (``*-store``) or reading back (``*-read``) one result of ``size`` chars.

    ``kind`` is ``ours-store``, ``ours-read``, ``floor-store`` or ``floor-read``.
    ``traced`` is the peak of Python allocations during the operation
    (tracemalloc); a store does not count the value itself, which exists
    before, a read counts the value it returns. ``rss_growth`` is how much
    the process's peak resident memory grew (driver buffers included).
    """
    from django.db import connection

    app = make_app()
    warm = f"{task_id}-warm-up"
    value = "x" * size if kind.endswith("store") else None
    # The same operation on a small value first: imports, connection, caches.
    if kind.startswith("ours"):
        app.backend.store_result(warm, "x", states.SUCCESS)
        app.AsyncResult(warm).get(timeout=30)
    else:
        floor.write(connection, warm, states.SUCCESS, "x", 0)
        floor.read(connection, warm)
    before = max_rss_bytes()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    returned = None
    if kind == "ours-store":
        app.backend.store_result(task_id, value, states.SUCCESS)
    elif kind == "ours-read":
        returned = app.AsyncResult(task_id).get(timeout=60)
    elif kind == "floor-store":
        floor.write(connection, task_id, states.SUCCESS, value, 0)
    else:
        returned = floor.read(connection, task_id)
    traced = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    rss_growth = max_rss_bytes() - before
    if returned is not None and len(returned) != size:
        raise AssertionError(f"{kind}: read back {len(returned)} characters, stored {size}")
    return {"traced": traced, "rss_growth": rss_growth}
