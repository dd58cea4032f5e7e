"""Reading what a worker stored: rows, their decoded columns, and waiting for states."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from celery.result import AsyncResult

from tests.support.workers import Worker


def row(task_id: str) -> Any:
    from django_celery_results.models import TaskResult

    return TaskResult.objects.get(task_id=task_id)


def rows(task_ids: Iterable[str]) -> dict[str, Any]:
    """The rows of ``task_ids`` by task id (one query)."""
    from django_celery_results.models import TaskResult

    return {found.task_id: found for found in TaskResult.objects.filter(task_id__in=list(task_ids))}


def decoded(text: str | None) -> Any:
    """A JSON column (``result``, ``task_args``, ``task_kwargs``, ``meta``) as Python."""
    return None if text is None else json.loads(text)


def assert_dates_in_order(stored: Any) -> None:
    """Created, then started (``task_track_started``), then done."""
    assert stored.date_started is not None, stored.task_id
    assert stored.date_created <= stored.date_started <= stored.date_done, (
        stored.task_id,
        stored.date_created,
        stored.date_started,
        stored.date_done,
    )


def assert_ran_on(
    stored: Any,
    worker: Worker,
    task_name: str,
    queue: str | None = None,
    retries: int = 0,
) -> None:
    """The columns ``result_extended`` fills: task name, worker, retries, queue (the routing key)."""
    from tests.support.workers import nodename

    assert stored.task_name == task_name
    assert stored.worker == nodename(worker)
    assert stored.queue == (queue or worker.app.conf.task_default_queue)
    assert stored.retries == retries


def wait_for_status(worker: Worker, task_id: str, status: str, timeout: float = 30) -> Any:
    """Poll the row until it has ``status``; return it."""
    from django_celery_results.models import TaskResult

    deadline = time.monotonic() + timeout
    while True:
        found = TaskResult.objects.filter(task_id=task_id, status=status).first()
        if found is not None:
            return found
        worker.check_alive()
        if time.monotonic() > deadline:
            current = TaskResult.objects.filter(task_id=task_id).values_list("status", flat=True).first()
            raise TimeoutError(
                f"{task_id} is {current}, not {status}, after {timeout:.0f}s\n{worker.log_tail()}"
            )
        time.sleep(0.05)


def wait_all(worker: Worker, results: Iterable[AsyncResult], timeout: float = 60) -> None:
    """Wait until every result is ready (one query per poll for the lot)."""
    from celery import states

    from django_celery_results.models import TaskResult

    ids = {result.id for result in results}
    deadline = time.monotonic() + timeout
    while True:
        done = TaskResult.objects.filter(task_id__in=ids, status__in=states.READY_STATES).count()
        if done == len(ids):
            return
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{done} of {len(ids)} results ready after {timeout:.0f}s\n{worker.log_tail()}"
            )
        time.sleep(0.05)
