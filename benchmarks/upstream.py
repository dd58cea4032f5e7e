"""Upstream django-celery-results 2.6.0, measured in a child process against the same floor.

Timings taken in another process at another moment are not comparable on a
noisy machine, so the child pairs upstream with the floor call by call, as
the parent pairs ours: what is compared is each one's ratio to the floor.
The child runs ``python -m benchmarks.upstream`` with upstream's unpacked
wheel first on ``sys.path`` (and as working directory), against the
scratch database the parent migrated with our migrations; upstream's
models read and write a subset of those columns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .harness import CHILD_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent


def upstream_root() -> Path:
    """Where upstream's package is unpacked (downloaded by pip on first use)."""
    sys.path.insert(0, str(ROOT))
    from tests.upstream import upstream_root as unpacked

    return unpacked()


def run(engine: str, sizes: Any) -> dict[str, dict[str, Any]]:
    """Measure upstream in a child; return its figures by name. Raises ``RuntimeError`` on failure."""
    root = upstream_root()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DCR_BENCH_UPSTREAM_ROOT": str(root),
    }
    with tempfile.TemporaryDirectory(prefix="dcr_bench_") as scratch:
        answer = Path(scratch) / "answer.json"
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.upstream", engine, json.dumps(asdict(sizes)), str(answer)],
            cwd=root, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT,
        )
        if proc.returncode != 0 or not answer.exists():
            raise RuntimeError(f"the upstream child exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        figures: dict[str, dict[str, Any]] = json.loads(answer.read_text())
    return figures


# -- the child side -------------------------------------------------------------------


def _summary(result: Any, statements: str | None) -> dict[str, Any]:
    from .measure import ms

    return {
        "ms": ms(result.ours_median),
        "floor_ms": ms(result.floor_median),
        "ratio": round(result.ratio, 2),
        "statements": statements,
    }


def measure(engine: str, sizes: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Upstream's store_new, lifecycle, get_meta, group join and chord part, each paired with the floor."""
    from celery import states
    from celery import uuid as new_id
    from celery.result import GroupResult
    from django.db import connection

    from . import floor
    from .figures import CALLBACK, count_statements
    from .harness import make_app
    from .measure import paired

    app = make_app()
    backend = app.backend
    n = sizes["calls"]
    found: dict[str, dict[str, Any]] = {}

    ours_ids, floor_ids = [new_id() for _ in range(n + 10)], [new_id() for _ in range(n + 10)]
    requests = [floor.request(task_id, i) for i, task_id in enumerate(ours_ids)]

    def store(i: int) -> None:
        backend.store_result(ours_ids[i], floor.result_value(i), states.SUCCESS, request=requests[i])

    def store_floor(i: int) -> None:
        floor.write(connection, floor_ids[i], states.SUCCESS, floor.result_value(i), i)

    result = paired(store, store_floor, n)
    fresh = new_id()
    fresh_request = floor.request(fresh, 1)
    new = count_statements(lambda: backend.store_result(fresh, 1, states.SUCCESS, request=fresh_request))
    found["store_new"] = _summary(result, f"{new} per new SUCCESS")

    half = max(n // 2, 1)
    life_ids, life_floor = [new_id() for _ in range(half + 10)], [new_id() for _ in range(half + 10)]
    life_requests = [floor.request(task_id, i) for i, task_id in enumerate(life_ids)]

    def lifecycle(i: int) -> None:
        backend.store_result(life_ids[i], floor.STARTED_META, states.STARTED, request=life_requests[i])
        backend.mark_as_done(life_ids[i], floor.result_value(i), request=life_requests[i])

    def lifecycle_floor(i: int) -> None:
        floor.write(connection, life_floor[i], states.STARTED, floor.STARTED_META, i)
        floor.write(connection, life_floor[i], states.SUCCESS, floor.result_value(i), i)

    result = paired(lifecycle, lifecycle_floor, half).scaled(0.5)
    fresh = new_id()
    request = floor.request(fresh, 1)
    started = count_statements(
        lambda: backend.store_result(fresh, floor.STARTED_META, states.STARTED, request=request)
    )
    done = count_statements(lambda: backend.mark_as_done(fresh, 1, request=request))
    found["lifecycle"] = _summary(result, f"{started} per STARTED, {done} per SUCCESS")

    stored = ours_ids[:n]
    result = paired(
        lambda i: backend.get_task_meta(stored[i % n], cache=False),
        lambda i: floor.read(connection, stored[i % n]),
        n,
    )
    queries = count_statements(lambda: backend.get_task_meta(stored[0], cache=False))
    found["get_meta"] = _summary(result, f"{queries} per call")

    members = stored[: sizes["group"]]
    repeats = sizes["group_repeats"]
    groups = [
        GroupResult(new_id(), [app.AsyncResult(t) for t in members], app=app) for _ in range(repeats + 5)
    ]
    result = paired(
        lambda i: groups[i].join(timeout=30),
        lambda i: floor.read_ready(connection, members),
        repeats,
    )
    found["group_join"] = _summary(result, f"{len(members)} per join (no native join)")

    parts = sizes["chord_parts"]
    group_id, part_ids = new_id(), [new_id() for _ in range(parts)]
    body = app.signature(CALLBACK)
    backend.apply_chord((group_id, [app.AsyncResult(p) for p in part_ids]), body)
    chord_requests = [floor.request(p, i, group=group_id, chord=dict(body)) for i, p in enumerate(part_ids)]
    for i, request in enumerate(chord_requests):
        backend.store_result(request.id, i, states.SUCCESS, request=request)
    floor_group = new_id()
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(floor.CHORD_TABLE)} ({qn('group_id')}, {qn('sub_tasks')}, {qn('count')}) "
            "VALUES (%s, %s, %s)",
            [floor_group, "[]", 10 * parts],
        )
    decrement = floor.decrement_sql(connection.vendor)

    def decrement_floor(i: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(decrement, [floor_group])

    per_part = count_statements(
        lambda: backend.on_chord_part_return(chord_requests[0], states.SUCCESS, 0)
    )
    result = paired(
        lambda i: backend.on_chord_part_return(chord_requests[i + 1], states.SUCCESS, i + 1),
        decrement_floor,
        parts - 2,
        warmup=0,
    )
    backend.on_chord_part_return(chord_requests[-1], states.SUCCESS, parts - 1)
    found["chord_part"] = _summary(result, f"{per_part} per part")
    return found


def main(argv: list[str]) -> int:
    """Child entry point: ``python -m benchmarks.upstream ENGINE SIZES_JSON ANSWER_FILE``."""
    engine, sizes, answer = argv
    from .harness import setup

    setup(engine)
    import django_celery_results

    origin = Path(django_celery_results.__file__).resolve()
    expected = Path(os.environ["DCR_BENCH_UPSTREAM_ROOT"]).resolve()
    if origin.parent.parent != expected:
        print(f"imported django_celery_results from {origin}, not from {expected}", file=sys.stderr)
        return 3
    figures = measure(engine, json.loads(sizes))
    Path(answer).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
