"""States the worker's main process stores, after the server closed its idle connection.

A prefork worker's main process stores some states itself, outside the
task hooks that refresh connections: the revoke of a task it holds (an ETA
task) or does not hold (Celery >= 5.6 stores the revoke broadcast), a
terminated task, a hard time limit, and a child killed by SIGKILL (worker
lost). The worker keeps connections (``CONN_MAX_AGE``) and the server ends
every session idle for a second (PostgreSQL ``idle_session_timeout``,
MariaDB ``wait_timeout``), as servers and proxies in production do. Each
test makes the main process store a state once (which connects the thread
storing it), waits until the server has ended that session, then makes it
store the same kind of state again: it must be stored, with and without
``result_backend_always_retry``, and the worker's log must show the lost
session was met (so the test cannot pass without meeting one).

SQLite has no server to end a session: these tests run on PostgreSQL and MySQL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import celery
import pytest
from celery import states

from tests.support.observe import row_in, row_when
from tests.support.workers import Worker, running_worker

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.engine("postgresql", "mysql"),
]

#: Seconds a session may stay idle before the server ends it.
IDLE_LIMIT = 1
#: How long the tests leave the main process idle: the limit, with margin for a loaded machine.
IDLE_WAIT = IDLE_LIMIT + 1.0
#: What the backend logs when it replaces a lost session (django_celery_results.backends.database).
LOST_LINE = "Database connection lost"
#: Celery >= 5.6 stores REVOKED when a revoke broadcast names a task no worker holds.
BROADCAST_STORES_REVOKED = celery.VERSION >= (5, 6)


def closing_idle_sessions(vendor: str, options: dict[str, Any]) -> dict[str, Any]:
    """The worker's ``DATABASES`` changes: kept connections the server ends after :data:`IDLE_LIMIT`."""
    if vendor == "postgresql":
        session = {"options": f"-c idle_session_timeout={IDLE_LIMIT * 1000}"}
    else:  # MariaDB/MySQL: the test settings' strict mode, and the idle limit
        session = {"init_command": f"SET sql_mode='STRICT_ALL_TABLES', wait_timeout={IDLE_LIMIT}"}
    return {"CONN_MAX_AGE": 600, "OPTIONS": {**options, **session}}


@pytest.fixture(scope="module", params=[False, True], ids=["no-retry", "always-retry"])
def worker(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    django_db_setup: Any,
    django_db_blocker: Any,
) -> Iterator[Worker]:
    from django.db import connection

    database = closing_idle_sessions(connection.vendor, dict(connection.settings_dict.get("OPTIONS") or {}))
    # worker_lost_wait: how long the main process waits for a killed child's result (10 s by default).
    conf = {
        "result_backend_always_retry": request.param,
        "result_backend_max_retries": 5,
        "worker_lost_wait": 1,
    }
    with running_worker(
        tmp_path_factory.mktemp("lost"), concurrency=2, database=database, conf=conf
    ) as started:
        yield started
        # After SIGKILLed pool processes a warm shutdown can wait out its whole grace period.
        started.stop(grace=3)


def main_process_losses(worker: Worker) -> int:
    """How many lost sessions the worker's main process (any of its threads) has replaced so far."""
    return sum(1 for line in worker.log().splitlines() if "/MainProcess]" in line and LOST_LINE in line)


def running(worker: Worker) -> Any:
    """A task running in a pool process (its STARTED row is stored)."""
    result = worker.tasks.sleep.delay(60)
    row_in(result.id, states.STARTED)
    return result


def revoke_of_a_held_task(worker: Worker) -> Any:
    """An ETA task the main process holds is revoked: REVOKED, with its request (name, args, worker)."""
    held = worker.tasks.add.apply_async((2, 3), countdown=1)
    worker.app.control.revoke(held.id)
    row = row_when(held.id, lambda row: row.status == states.REVOKED and row.task_name is not None)
    assert (row.task_name, row.task_args) == ("tests.support.workers.add", '"(2, 3)"')
    assert row.worker.startswith("dcr-test-")
    return row


def revoke_broadcast(worker: Worker) -> Any:
    """A task no worker holds (sent to a queue nobody consumes) is revoked: REVOKED (Celery >= 5.6)."""
    result = worker.tasks.add.apply_async((1, 1), queue=f"nobody-{uuid.uuid4().hex[:8]}")
    worker.app.control.revoke(result.id)
    row = row_in(result.id, states.REVOKED)
    assert "revoked" in row.result
    return row


def terminate(worker: Worker) -> Any:
    """A running task is revoked with ``terminate=True``: REVOKED, "terminated"."""
    result = running(worker)
    worker.app.control.revoke(result.id, terminate=True, signal="SIGKILL")
    row = row_in(result.id, states.REVOKED)
    assert "terminated" in row.result
    return row


def hard_time_limit(worker: Worker) -> Any:
    """A task outlives its hard time limit: FAILURE, TimeLimitExceeded."""
    result = worker.tasks.sleep.apply_async((60,), time_limit=1)
    row = row_in(result.id, states.FAILURE)
    assert "TimeLimitExceeded" in row.result
    return row


def worker_lost(worker: Worker) -> Any:
    """The pool process running a task is killed (SIGKILL, by the task itself): FAILURE, WorkerLostError."""
    result = worker.tasks.die.delay()
    row = row_in(result.id, states.FAILURE)
    assert "WorkerLostError" in row.result
    return row


EVENTS = [
    revoke_of_a_held_task,
    pytest.param(
        revoke_broadcast,
        marks=pytest.mark.skipif(
            not BROADCAST_STORES_REVOKED, reason="Celery < 5.6 stores nothing for a revoke broadcast"
        ),
    ),
    terminate,
    hard_time_limit,
    worker_lost,
]


@pytest.mark.parametrize("event", EVENTS)
def test_the_state_is_stored_after_the_server_ended_the_idle_session(
    worker: Worker,
    event: Callable[[Worker], Any],
) -> None:
    # The first time opens the connection of the main-process thread that stores
    # this state (Django's connections are per thread: the control commands run
    # in the main thread, time limits and lost workers in the pool's threads).
    event(worker)
    time.sleep(IDLE_WAIT)
    before = main_process_losses(worker)

    event(worker)  # every assertion on the stored row is in the event
    assert main_process_losses(worker) > before, f"no lost session met\n{worker.log_tail()}"
