"""Every worker pool (prefork, threads, solo, gevent) stores every state, on every engine.

One real worker per pool serves the module's tests (workers are slow to
start); a worker of its own shows that stopping it leaves no database session open. What a
pool cannot do is asserted as such: only prefork and gevent can terminate a
running task, so on threads and solo a terminated task runs to its end.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import states

from tests.support.observe import other_sessions, row_in, row_when, sessions_left
from tests.support.workers import Worker, running_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

#: Processes, threads or greenlets per pool (solo runs one task at a time, in the main process).
CONCURRENCY = {"prefork": 2, "threads": 2, "solo": 1, "gevent": 4}
#: Pools that can stop a running task (``revoke(terminate=True)``): prefork kills
#: the child, gevent kills the greenlet; a thread cannot be killed, and solo
#: reads the revoke only once the running task has returned.
TERMINATES = {"prefork": True, "threads": False, "solo": False, "gevent": True}


@pytest.fixture(scope="module", params=list(CONCURRENCY))
def worker(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    django_db_setup: Any,
    django_db_blocker: Any,
) -> Iterator[Worker]:
    pool = request.param
    with running_worker(tmp_path_factory.mktemp(pool), pool=pool, concurrency=CONCURRENCY[pool]) as started:
        yield started


def test_success_failure_and_retries_are_stored_with_their_request(worker: Worker) -> None:
    tasks = worker.tasks
    done, failed, retried = tasks.add.delay(2, 3), tasks.fail.delay("boom"), tasks.flaky.delay(2)

    row = row_in(done.id, states.SUCCESS)
    assert (json.loads(row.result), row.task_name, row.task_args) == (
        5,
        "tests.support.workers.add",
        '"(2, 3)"',
    )
    assert row.worker.startswith("dcr-test-")
    assert row.date_started is not None  # STARTED was stored first (task_track_started)
    row = row_in(failed.id, states.FAILURE)
    assert json.loads(row.result)["exc_type"] == "ValueError"
    assert "ValueError: boom" in row.traceback
    row = row_in(retried.id, states.SUCCESS)
    assert (json.loads(row.result), row.retries) == (2, 2)


def test_a_running_task_is_stored_started(worker: Worker) -> None:
    result = worker.tasks.sleep.delay(1)

    assert row_in(result.id, states.STARTED, states.SUCCESS).status == states.STARTED
    assert row_in(result.id, states.SUCCESS).date_done is not None


def test_a_revoked_waiting_task_is_stored_with_its_request(worker: Worker) -> None:
    """Revoked while the worker holds it (an ETA task): REVOKED, with its name, arguments and worker."""
    held = worker.tasks.add.apply_async((4, 5), countdown=1)
    worker.app.control.revoke(held.id)

    row = row_when(held.id, lambda row: row.status == states.REVOKED and row.task_name is not None)
    assert (row.task_name, row.task_args) == ("tests.support.workers.add", '"(4, 5)"')
    assert row.worker.startswith("dcr-test-")


def test_a_task_revoked_before_it_reached_the_worker_is_stored_with_its_request(worker: Worker) -> None:
    """The revoke arrives first, as when a busy solo worker reads its queue late.

    Celery >= 5.6 stores REVOKED at once, knowing only the id; the message,
    discarded on arrival, stores REVOKED again with its request, which must
    fill in the name, arguments and worker rather than be refused as a repeat.
    """
    task_id = str(uuid.uuid4())
    worker.app.control.revoke(task_id)
    worker.wait_for_revoke(task_id)
    worker.tasks.add.apply_async((6, 7), task_id=task_id)

    row = row_when(task_id, lambda row: row.status == states.REVOKED and row.worker is not None)
    assert (row.task_name, row.task_args) == ("tests.support.workers.add", '"(6, 7)"')
    assert row.worker.startswith("dcr-test-")


def test_terminate_stops_a_running_task_only_where_the_pool_can(worker: Worker) -> None:
    result = worker.tasks.sleep.delay(1.5)
    row_in(result.id, states.STARTED)
    worker.app.control.revoke(result.id, terminate=True, signal="SIGKILL")

    row = row_in(result.id, *states.READY_STATES)
    if TERMINATES[worker.pool or ""]:
        assert row.status == states.REVOKED
        assert "terminated" in row.result
    else:  # the pool cannot stop it: the task finishes, and its result is kept
        assert (row.status, json.loads(row.result)) == (states.SUCCESS, 1.5)


def test_tasks_running_at_once_never_share_a_connection(worker: Worker) -> None:
    results = [worker.tasks.session.delay(0.3) for _ in range(2 * worker.concurrency)]
    runs = [json.loads(row_in(result.id, states.SUCCESS).result) for result in results]

    overlapping = [
        (a, b)
        for a, b in itertools.combinations(runs, 2)
        if a["started"] < b["ended"] and b["started"] < a["ended"]
    ]
    if worker.concurrency > 1:
        assert overlapping, "the pool never ran two tasks at once"
    else:  # solo: one task at a time
        assert not overlapping
    for first, second in overlapping:
        assert first["session"] != second["session"]


@pytest.mark.parametrize("pool", list(CONCURRENCY))
def test_stopping_the_worker_leaves_no_session_open(pool: str, tmp_path: Path) -> None:
    before = set(other_sessions())
    with running_worker(tmp_path, pool=pool, concurrency=CONCURRENCY[pool]) as worker:
        results = [worker.tasks.session.delay(0.1) for _ in range(2 * worker.concurrency)]
        for result in results:
            row_in(result.id, states.SUCCESS)
        worker.stop()

        assert worker.remaining_processes() == []
    left = sessions_left(before)
    assert not left, f"sessions left open by the {pool} worker: {left}"


@pytest.mark.engine("sqlite")  # the pool comes from the settings whatever the engine: one run shows it
def test_the_pool_named_in_django_settings_is_used(tmp_path: Any, django_db_setup: Any) -> None:
    """``CELERY_WORKER_POOL = "threads"`` (read through ``config_from_object(..., namespace="CELERY")``)."""
    with running_worker(
        tmp_path,
        pool=None,
        concurrency=2,
        app_module="tests.support.django_app",
        settings_module="tests.settings.pools",
    ) as worker:
        result = worker.tasks.add.delay(20, 22)
        row = row_in(result.id, states.SUCCESS)
        assert ".> concurrency: 2 (thread)" in worker.log()
        assert (json.loads(row.result), row.task_name) == (42, "tests.support.workers.add")
