"""Single tasks through a real worker: many at once, failures, retries, big results, revoke, cleanup.

One worker per broker serves the module (see ``conftest.py``); each test
checks the stored rows column by column and what ``AsyncResult`` reads back.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from celery import states
from celery.exceptions import TaskRevokedError
from celery.result import AsyncResult, ResultSet
from celery.utils.saferepr import saferepr

from tests.support.rows import (
    assert_dates_in_order,
    assert_ran_on,
    decoded,
    row,
    rows,
    wait_for_status,
)
from tests.support.workers import Worker, nodename, other_queue

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

#: How many tasks the load test sends.
MANY = 300
#: Celery's limit on the ``argsrepr`` it sends with a task.
ARGSREPR_MAXSIZE = 1024
#: ``result_expires`` of the module's worker, seconds.
EXPIRES = 3600


@pytest.fixture(scope="module")
def worker_conf() -> dict[str, Any]:
    return {"result_expires": EXPIRES}


def test_hundreds_of_tasks_are_all_stored(worker: Worker) -> None:
    sent = [worker.tasks.add.delay(i, i) for i in range(MANY)]

    assert ResultSet(sent, app=worker.app).join_native(timeout=120) == [2 * i for i in range(MANY)]
    stored = rows(result.id for result in sent)
    assert len(stored) == MANY
    for i, result in enumerate(sent):
        found = stored[result.id]
        assert (found.status, decoded(found.result)) == (states.SUCCESS, 2 * i)
        assert decoded(found.task_args) == f"({i}, {i})"
        assert decoded(found.task_kwargs) == "{}"
        assert_ran_on(found, worker, "tests.support.workers.add")
        assert found.traceback is None
        assert_dates_in_order(found)
    last = sent[-1]
    assert (last.name, last.args, last.kwargs) == (
        "tests.support.workers.add",
        f"({MANY - 1}, {MANY - 1})",
        "{}",
    )
    assert (last.worker, last.retries) == (nodename(worker), 0)
    assert last.queue == worker.app.conf.task_default_queue
    assert last.date_done == stored[last.id].date_done


def test_keyword_arguments_and_routing_key_are_stored(worker: Worker) -> None:
    queue = other_queue(worker)
    result = worker.wait(worker.tasks.add.apply_async((2,), {"y": 40}, queue=queue))

    assert result.get(timeout=5) == 42
    found = row(result.id)
    assert (found.status, decoded(found.result)) == (states.SUCCESS, 42)
    assert (decoded(found.task_args), decoded(found.task_kwargs)) == ("(2,)", "{'y': 40}")
    assert_ran_on(found, worker, "tests.support.workers.add", queue=queue)
    assert (result.queue, result.kwargs) == (queue, "{'y': 40}")


def test_failure_keeps_exception_and_traceback(worker: Worker) -> None:
    result = worker.wait(worker.tasks.fail.delay("boom ✗"))

    assert result.state == states.FAILURE
    assert isinstance(result.result, ValueError)
    assert result.result.args == ("boom ✗",)
    assert "ValueError: boom ✗" in result.traceback
    with pytest.raises(ValueError, match="boom ✗"):
        result.get(timeout=5)
    found = row(result.id)
    assert found.status == states.FAILURE
    assert found.traceback.startswith("Traceback (most recent call last)")
    assert found.traceback.rstrip().endswith("ValueError: boom ✗")
    assert "raise ValueError(message)" in found.traceback
    stored = decoded(found.result)
    assert (stored["exc_type"], stored["exc_message"]) == ("ValueError", ["boom ✗"])
    assert decoded(found.task_args) == "('boom ✗',)"
    assert_ran_on(found, worker, "tests.support.workers.fail")
    assert_dates_in_order(found)


def test_retried_task_succeeds_and_counts_its_retries(worker: Worker) -> None:
    result = worker.wait(worker.tasks.flaky.delay(3))

    assert result.get(timeout=5) == 3
    found = row(result.id)
    assert (found.status, decoded(found.result)) == (states.SUCCESS, 3)
    assert found.traceback is None  # the retries' tracebacks do not outlive the success
    assert_ran_on(found, worker, "tests.support.workers.flaky", retries=3)
    assert_dates_in_order(found)
    assert (result.retries, result.traceback) == (3, None)


def test_unicode_result_round_trips(worker: Worker) -> None:
    text = "ünïcødé ✓ 日本語 🎉 \u2063 ‮rtl‬ \\ \" ' \t end"
    value = {"text": text, "list": [text, "ß"], "ключ": "значение"}
    result = worker.wait(worker.tasks.echo.delay(value))

    assert result.get(timeout=5) == value
    found = row(result.id)
    assert (found.status, decoded(found.result)) == (states.SUCCESS, value)
    assert decoded(found.task_args) == saferepr((value,), ARGSREPR_MAXSIZE)


def test_one_megabyte_result_round_trips(worker: Worker) -> None:
    piece = "0123456789abcdé€"  # 16 characters, 19 bytes in UTF-8
    times = 65536  # 1 MiB of characters
    result = worker.wait(worker.tasks.text.delay(piece, times), timeout=60)

    value = result.get(timeout=10)
    assert len(value) == 1024 * 1024
    assert value == piece * times
    found = row(result.id)
    assert found.status == states.SUCCESS
    assert decoded(found.result) == piece * times


def test_forget_deletes_the_row(worker: Worker) -> None:
    result = worker.wait(worker.tasks.add.delay(1, 2))
    assert row(result.id).status == states.SUCCESS

    result.forget()

    assert not rows([result.id])
    fresh = AsyncResult(result.id, app=worker.app)
    assert (fresh.state, fresh.result) == (states.PENDING, None)


def test_a_finished_task_keeps_success_after_a_revoke_broadcast(worker: Worker) -> None:
    result = worker.wait(worker.tasks.add.delay(20, 22))
    before = row(result.id)

    replies = worker.app.control.revoke(result.id, reply=True, timeout=10, destination=[nodename(worker)])

    assert replies, "the worker did not answer the revoke broadcast"
    assert nodename(worker) in replies[0]
    after = row(result.id)
    assert (after.status, decoded(after.result), after.date_done) == (states.SUCCESS, 42, before.date_done)
    fresh = AsyncResult(result.id, app=worker.app)
    assert (fresh.state, fresh.get(timeout=5)) == (states.SUCCESS, 42)


def test_terminated_long_running_task_ends_revoked(worker: Worker) -> None:
    result = worker.tasks.sleep.delay(120)
    started = wait_for_status(worker, result.id, states.STARTED)
    assert started.date_started is not None

    worker.app.control.revoke(result.id, terminate=True, signal="SIGTERM")
    worker.wait(result, timeout=30)

    assert result.state == states.REVOKED
    with pytest.raises(TaskRevokedError):
        result.get(timeout=5)
    found = row(result.id)
    assert found.status == states.REVOKED
    assert decoded(found.result)["exc_type"] == "TaskRevokedError"
    assert found.date_started == started.date_started
    assert found.date_started <= found.date_done
    assert_ran_on(found, worker, "tests.support.workers.sleep")


def test_backend_cleanup_task_deletes_expired_rows(worker: Worker) -> None:
    from django_celery_results.models import ChordCounter, GroupResult, TaskResult
    from django_celery_results.utils import now

    old, recent = (worker.wait(worker.tasks.add.delay(i, i)) for i in (1, 2))
    saved = worker.app.GroupResult(f"group-{old.id}", [old, recent])
    saved.save()
    long_ago = now() - timedelta(seconds=EXPIRES + 60)
    TaskResult.objects.filter(task_id=old.id).update(date_done=long_ago)
    GroupResult.objects.filter(group_id=saved.id).update(date_done=long_ago)
    ChordCounter.objects.create(group_id=f"chord-{old.id}", sub_tasks="[]", count=0)  # a completed chord
    ChordCounter.objects.filter(group_id=f"chord-{old.id}").update(date_created=long_ago)

    cleanup = worker.wait(worker.app.send_task("celery.backend_cleanup"))

    assert cleanup.state == states.SUCCESS
    assert set(rows([old.id, recent.id, cleanup.id])) == {recent.id, cleanup.id}
    assert not GroupResult.objects.filter(group_id=saved.id).exists()
    assert not ChordCounter.objects.filter(group_id=f"chord-{old.id}").exists()
    assert AsyncResult(old.id, app=worker.app).state == states.PENDING
    assert row(recent.id).status == states.SUCCESS
