"""Waiting for results: native joins poll many ids per query; get() polls fast, then backs off."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from celery import states
from celery import uuid as celery_uuid
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult, GroupResult
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from django_celery_results.backends.database import poll_pauses

pytestmark = pytest.mark.django_db(transaction=True)


def test_poll_pauses_grow_to_the_ceiling_once_the_first_second_is_over() -> None:
    pauses = poll_pauses(0.002, 0.5)
    first = [next(pauses)]
    while sum(first) < 1.0:
        first.append(next(pauses))
    assert first[0] == 0.002
    assert all(a <= b for a, b in itertools.pairwise(first))
    assert next(pauses) == 0.5


def test_join_native_of_200_finished_tasks_is_one_query(app: Any) -> None:
    backend = app.backend
    assert backend.supports_native_join
    members = [AsyncResult(celery_uuid(), backend=backend) for _ in range(200)]
    for index, member in enumerate(members):
        backend.mark_as_done(member.id, index)
    group = GroupResult(celery_uuid(), members, app=app)
    backend._cache.clear()
    with CaptureQueriesContext(connection) as queries:
        assert group.join_native(timeout=10) == list(range(200))
    assert len(queries) == 1


def test_get_many_yields_as_tasks_finish(app: Any) -> None:
    backend = app.backend
    ids = [celery_uuid() for _ in range(3)]
    backend.mark_as_done(ids[0], "first")
    backend.mark_as_failure(ids[1], KeyError("k"), traceback="tb")

    def finish_later() -> None:
        time.sleep(0.2)
        backend.mark_as_done(ids[2], "late")
        connections.close_all()  # this thread's own connection

    helper = threading.Thread(target=finish_later)
    helper.start()
    seen = {}
    for task_id, meta in backend.get_many(ids, timeout=10, interval=0.05):
        seen[task_id] = meta["status"]
    helper.join()
    assert seen == {ids[0]: states.SUCCESS, ids[1]: states.FAILURE, ids[2]: states.SUCCESS}


def test_get_many_times_out(app: Any) -> None:
    with pytest.raises(CeleryTimeoutError):
        list(app.backend.get_many(["never"], timeout=0.1, interval=0.02))


def test_get_wakes_soon_after_the_result_is_stored(app: Any) -> None:
    backend = app.backend
    task_id = celery_uuid()
    stored_at: list[float] = []

    def store_later() -> None:
        time.sleep(0.3)
        backend.mark_as_done(task_id, "done")
        stored_at.append(time.monotonic())
        connections.close_all()  # this thread's own connection

    helper = threading.Thread(target=store_later)
    helper.start()
    value = AsyncResult(task_id, backend=backend).get(timeout=10, interval=0.5)
    woke_at = time.monotonic()
    helper.join()
    assert value == "done"
    # Celery polls every 0.5 s; the adaptive schedule is far finer at first.
    assert woke_at - stored_at[0] < 0.25


def test_get_times_out(app: Any) -> None:
    with pytest.raises(CeleryTimeoutError):
        AsyncResult("never", backend=app.backend).get(timeout=0.1)


@pytest.mark.engine("postgresql")
def test_get_on_postgresql_is_woken_by_the_notification_not_by_polling(app: Any) -> None:
    backend = app.backend
    task_id = celery_uuid()
    stored_at: list[float] = []

    def store_later() -> None:
        time.sleep(0.5)
        backend.mark_as_done(task_id, "pushed")
        stored_at.append(time.monotonic())
        connections.close_all()

    helper = threading.Thread(target=store_later)
    helper.start()
    with CaptureQueriesContext(connection) as queries:
        # A poll interval far longer than the test: only a notification can end the wait.
        value = AsyncResult(task_id, backend=backend).get(timeout=20, interval=10)
    woke_at = time.monotonic()
    helper.join()
    assert value == "pushed"
    assert woke_at - stored_at[0] < 0.2
    # Read before listening, once listening, once notified: no polling loop.
    assert len(queries) == 3, [q["sql"] for q in queries]
