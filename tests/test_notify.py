"""The shared PostgreSQL listener (one LISTEN connection per process) and the poll schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from celery import uuid as celery_uuid
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from django_celery_results import notify
from django_celery_results.backends.database import FIRST_SECOND_CAP, poll_pauses
from tests.support.processes import child_environ

pytestmark = pytest.mark.django_db(transaction=True)

postgresql_only = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="only PostgreSQL pushes results (LISTEN/NOTIFY)"
)


def listening() -> int:
    """Connections listening for results on the test database, this process's and any other's.

    Only this database's: other test runs on the shared server have listeners of their own.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND (application_name = %s OR query ILIKE 'LISTEN%%')",
            [notify.APPLICATION_NAME],
        )
        return int(cursor.fetchone()[0])


def store_later(backend: Any, task_ids: list[str], delay: float) -> threading.Thread:
    """A writer thread (own Django connection) storing ``task_ids`` after ``delay``."""

    def write() -> None:
        time.sleep(delay)
        try:
            for task_id in task_ids:
                backend.mark_as_done(task_id, task_id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.fixture(autouse=True)
def _fresh_listeners() -> Any:
    notify.close_all()
    yield
    notify.close_all()


def test_poll_pauses_are_capped_in_the_first_second_then_grow() -> None:
    pauses = poll_pauses(0.002, 0.5)
    elapsed, seen = 0.0, []
    while elapsed < 5:
        pause = next(pauses)
        if elapsed < 1:
            assert pause <= FIRST_SECOND_CAP
        seen.append(pause)
        elapsed += pause
    assert seen[-1] == 0.5
    assert sum(1 for p in seen if p <= FIRST_SECOND_CAP) <= 40


def test_a_waiting_get_costs_at_most_10_queries_a_second_after_the_first(app: Any) -> None:
    result = AsyncResult(celery_uuid(), backend=app.backend)
    with CaptureQueriesContext(connection) as queries, pytest.raises(CeleryTimeoutError):
        result.get(timeout=3)
    assert len(queries.captured_queries) <= 10 * 3 + 25


@postgresql_only
def test_50_waiting_threads_share_one_listener(app: Any) -> None:
    ids = [celery_uuid() for _ in range(50)]
    got: dict[str, Any] = {}

    def wait(task_id: str) -> None:
        try:
            got[task_id] = AsyncResult(task_id, backend=app.backend).get(timeout=30, interval=5)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wait, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    assert listening() <= 2
    started = time.monotonic()
    store_later(app.backend, ids, 0).join()
    for thread in threads:
        thread.join(30)
    assert got == {i: i for i in ids}
    assert time.monotonic() - started < 4  # woken by push, not by the 5 s interval


@postgresql_only
def test_get_returns_promptly_after_a_store(app: Any) -> None:
    task_id = celery_uuid()
    store_later(app.backend, [task_id], 0.3)
    started = time.monotonic()
    assert AsyncResult(task_id, backend=app.backend).get(timeout=10, interval=5) == task_id
    assert time.monotonic() - started < 0.3 + 0.2


@postgresql_only
def test_listener_is_reopened_after_its_backend_is_terminated(app: Any) -> None:
    shared = notify.dispatcher("default")
    for _ in range(100):
        if shared.raw is not None:
            break
        time.sleep(0.05)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [notify.APPLICATION_NAME],
        )
    task_id = celery_uuid()
    store_later(app.backend, [task_id], 0.2)
    assert AsyncResult(task_id, backend=app.backend).get(timeout=10, interval=0.5) == task_id
    time.sleep(1.5)
    task_id = celery_uuid()
    store_later(app.backend, [task_id], 0.3)
    started = time.monotonic()
    assert AsyncResult(task_id, backend=app.backend).get(timeout=10, interval=5) == task_id
    assert time.monotonic() - started < 2  # pushed by the reopened listener, not the 5 s poll


CHILD = """
import os, sys, django
django.setup()
from celery import uuid
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from django_celery_results import notify
from tests.support.apps import make_app
app = make_app()
try:
    AsyncResult(uuid(), backend=app.backend).get(timeout=0.5)
except Exception:
    pass
assert notify._dispatchers
mode = sys.argv[1]
if mode == "fork":
    parent = notify._dispatchers["default"]
    pid = os.fork()
    if pid == 0:
        try:
            AsyncResult(uuid(), backend=app.backend).get(timeout=0.3)
        except Exception:
            pass
        child = notify._dispatchers["default"]
        os._exit(0 if child is not parent and child.thread.is_alive() else 3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    import time; time.sleep(0.5)
    assert parent.thread.is_alive() and parent.raw is not None, "parent listener broken"
    task_id = uuid()
    app.backend.mark_as_done(task_id, 1)
    assert AsyncResult(task_id, backend=app.backend).get(timeout=5) == 1
print("ok")
"""


def run_child(mode: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        env={**os.environ, **child_environ()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


@postgresql_only
def test_no_listening_connection_is_left_at_exit() -> None:
    notify.close_all()
    before = listening()
    run_child("exit")
    time.sleep(0.5)
    assert listening() <= before


@postgresql_only
def test_a_forked_child_gets_its_own_listener_and_the_parents_keeps_working() -> None:
    run_child("fork")


@postgresql_only
def test_under_django_tests_the_listener_closes_when_its_last_waiter_leaves(app: Any) -> None:
    # Outside tests it stays open for the next wait; here the test database must stay droppable.
    assert notify._under_django_tests()
    task_id = celery_uuid()
    store_later(app.backend, [task_id], 0.2)
    assert AsyncResult(task_id, backend=app.backend).get(timeout=30) == task_id
    assert "default" not in notify._dispatchers
    deadline = time.monotonic() + 5  # a closed session takes a moment to leave pg_stat_activity
    while listening() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listening() == 0


@postgresql_only
def test_a_join_of_finished_tasks_is_one_query_and_opens_no_listener(app: Any) -> None:
    from celery.result import GroupResult

    ids = [celery_uuid() for _ in range(20)]
    for task_id in ids:
        app.backend.mark_as_done(task_id, task_id)
    group = GroupResult(celery_uuid(), [AsyncResult(i, backend=app.backend) for i in ids], app=app)
    with CaptureQueriesContext(connection) as queries:
        assert group.join_native(timeout=5) == ids
    assert len(queries.captured_queries) == 1
    assert listening() == 0
    assert not notify._dispatchers
