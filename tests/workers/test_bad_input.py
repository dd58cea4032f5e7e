"""Bad input given to a real prefork worker: one task's unstorable values never stop the worker.

Each test starts its own ``celery worker`` (see :mod:`tests.support.workers`) and
checks that the worker is still alive and still stores results afterwards.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import chord, states
from celery.result import AsyncResult
from django.db import transaction

from django_celery_results.exceptions import ValueTooLong
from django_celery_results.models import TaskResult
from django_celery_results.values import ELLIPSIS
from tests.support.workers import Worker, publishing_from, running_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ID_LIMIT = TaskResult._meta.get_field("task_id").max_length
WORKER_LIMIT = TaskResult._meta.get_field("worker").max_length


def still_working(worker: Worker) -> None:
    """The worker process lives and runs the next task to the end."""
    worker.check_alive()
    assert worker.wait(worker.tasks.add.delay(20, 22)).get(timeout=5) == 42


def test_an_over_long_task_id_fails_that_task_only(tmp_path: Path) -> None:
    with running_worker(tmp_path) as worker:
        long_id = "x" * (ID_LIMIT + 45)
        sent = worker.tasks.add.apply_async((1, 2), task_id=long_id)
        # The caller is told at once that this id can never have a result.
        with pytest.raises(ValueTooLong) as raised:
            sent.get(timeout=10)
        assert (raised.value.field, raised.value.max_length) == ("task_id", ID_LIMIT)

        worker.wait_for_log(f"holds at most {ID_LIMIT}", timeout=20)
        still_working(worker)
        log = worker.log()
        # One error, naming the column and its limit; no traceback, nothing from the parent process.
        assert log.count(f"TaskResult.task_id holds at most {ID_LIMIT} characters; got {ID_LIMIT + 45}") == 1
        assert "Unrecoverable error" not in log and "Traceback" not in log
        assert not TaskResult.objects.filter(task_id__startswith="xxxx").exists()


def test_a_host_name_longer_than_the_worker_column_costs_no_result(tmp_path: Path) -> None:
    hostname = "h" * 150 + "@example"
    with running_worker(tmp_path, hostname=hostname) as worker:
        tasks = worker.tasks
        done = worker.wait(tasks.add.delay(2, 3))
        failed = worker.wait(tasks.fail.delay("boom"))
        joined = worker.wait(chord([tasks.add.s(i, i) for i in range(3)], tasks.total.s()).apply_async())
        assert (done.get(timeout=5), joined.get(timeout=5)) == (5, 6)
        assert failed.state == states.FAILURE and isinstance(failed.result, ValueError)
        shortened = hostname[: WORKER_LIMIT - 1] + ELLIPSIS
        rows = TaskResult.objects.filter(task_id__in=[done.id, failed.id, joined.id])
        assert {(row.worker, row.status) for row in rows} == {
            (shortened, states.SUCCESS),
            (shortened, states.FAILURE),
        }
        assert rows.count() == 3
        # One warning per process that shortened a value: at most one per pool process.
        assert 1 <= worker.log().count("TaskResult.worker holds at most") <= worker.concurrency
        still_working(worker)


# -- PENDING_ON_PUBLISH inside the caller's transaction ---------------------------------


def seen_elsewhere(task_id: str, timeout: float) -> str | None:
    """The task's state as another connection sees it once ready, polled for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = TaskResult.objects.using("second").filter(task_id=task_id).values_list("status", flat=True)
        found = next(iter(state), None)
        if found in states.READY_STATES:
            return found
        time.sleep(0.05)
    return None


@pytest.fixture
def pending_worker(tmp_path: Path) -> Any:
    with running_worker(tmp_path) as worker, publishing_from(worker.app):
        yield worker


@pytest.mark.engine("postgresql", "mysql")
@pytest.mark.django_db(transaction=True, databases=["default", "second"])
def test_publishing_inside_a_long_transaction_does_not_hold_back_the_worker(pending_worker: Worker) -> None:
    with transaction.atomic():
        sent = pending_worker.tasks.add.delay(1, 2)
        # The caller's transaction stays open: the worker's write must not wait for it.
        assert seen_elsewhere(sent.id, timeout=8) == states.SUCCESS
    assert sent.get(timeout=5) == 3


@pytest.mark.engine("postgresql", "mysql")
def test_get_inside_the_publishing_transaction_returns(pending_worker: Worker) -> None:
    with transaction.atomic():
        assert pending_worker.tasks.add.delay(2, 2).get(timeout=10) == 4


@pytest.mark.engine("postgresql", "mysql")
def test_a_rolled_back_publisher_still_sees_its_task_stored(pending_worker: Worker) -> None:
    task_id = f"rolled-back-{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError), transaction.atomic():
        pending_worker.tasks.sleep.apply_async((0.5,), task_id=task_id)
        raise RuntimeError("the view failed after sending the task")
    # The PENDING row was committed on its own connection; the worker then stores the rest.
    row = TaskResult.objects.get(task_id=task_id)
    assert row.status in (states.PENDING, states.STARTED, states.SUCCESS)
    assert pending_worker.wait(AsyncResult(task_id, app=pending_worker.app)).get(timeout=5) == 0.5
    assert TaskResult.objects.get(task_id=task_id).status == states.SUCCESS


@pytest.mark.engine("mysql")
def test_a_result_over_max_allowed_packet_fails_that_task_only(tmp_path: Path) -> None:
    from django.db import connection

    from django_celery_results import engines
    from django_celery_results.exceptions import ResultTooLarge

    limit = engines.statement_size_limit(connection)
    assert limit is not None
    with running_worker(tmp_path) as worker:
        huge = worker.wait(worker.tasks.text.delay("x", limit + 10), timeout=60)
        assert huge.state == states.FAILURE
        assert isinstance(huge.result, ResultTooLarge) and huge.result.limit == limit
        assert "Traceback" in (huge.traceback or "")
        still_working(worker)
