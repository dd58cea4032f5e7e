"""Chords through a real worker, in every setup: each broker, each pool, and the ``django-cache`` backend.

What every setup must show is asserted through Celery's API; what the
``django-db`` backend stores besides (the rows, the chord counter) is checked
where the results are rows.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery import chord, group, states
from celery.backends.base import Backend
from celery.exceptions import ChordError
from celery.result import AsyncResult

from tests.support.rows import assert_ran_on, decoded, row, rows
from tests.support.workers import SETUPS, Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WORKER_SETUPS = tuple(SETUPS)

CHORD_SIZE = 200


def stores_rows(worker: Worker) -> bool:
    return worker.backend == "django-db"


def assert_chord_counted(header: Any) -> None:
    """The chord's counter reached zero, and counted each part of the header once."""
    from django_celery_results.models import ChordCounter

    counter = ChordCounter.objects.get(group_id=header.id)
    assert counter.count == 0
    counted = ChordCounter.objects.parts().filter(group_id=header.id)
    assert set(counted.values_list("task_id", flat=True)) == {part.id for part in header.results}


def wait_ready(worker: Worker, results: list[AsyncResult], timeout: float = 60) -> None:
    for result in results:
        worker.wait(result, timeout=timeout)


def test_chord_callback_gets_every_part(worker: Worker) -> None:
    tasks = worker.tasks
    result = chord((tasks.add.s(i, i) for i in range(CHORD_SIZE)), tasks.total.s()).apply_async()
    worker.wait(result, timeout=120)

    expected = [2 * i for i in range(CHORD_SIZE)]
    assert result.get(timeout=5) == sum(expected)
    header = result.parent
    assert [part.get(timeout=5) for part in header.results] == expected
    if not stores_rows(worker):
        return
    callback = row(result.id)
    assert (callback.status, decoded(callback.result)) == (states.SUCCESS, sum(expected))
    assert decoded(callback.task_args).startswith("([0, 2, 4, 6")
    assert_ran_on(callback, worker, "tests.support.workers.total")
    stored = rows(part.id for part in header.results)
    assert {found.status for found in stored.values()} == {states.SUCCESS}
    assert len(stored) == CHORD_SIZE
    # The callback started once the last part was done.
    assert max(found.date_done for found in stored.values()) <= callback.date_started
    assert_chord_counted(header)


def test_chord_with_a_group_in_its_header(worker: Worker) -> None:
    tasks = worker.tasks
    header = [tasks.add.s(1, 1), group(tasks.add.s(2, 2), tasks.add.s(3, 3)), tasks.add.s(4, 4)]
    result = chord(header, tasks.echo.s()).apply_async()
    worker.wait(result, timeout=60)

    # Celery unrolls a group nested in a header: the callback gets one value per
    # leaf task, in the order of the header's results (Celery's Redis backend
    # gives the same list).
    values = result.get(timeout=5)
    header_result = result.parent
    assert len(header_result.results) == 4
    assert values == [part.get(timeout=5) for part in header_result.results]
    assert sorted(values) == [2, 4, 6, 8]
    if not stores_rows(worker):
        return
    callback = row(result.id)
    assert (callback.status, decoded(callback.result)) == (states.SUCCESS, values)
    assert_ran_on(callback, worker, "tests.support.workers.echo")
    assert_chord_counted(header_result)


def test_chord_with_a_failed_part_fails_its_callback(worker: Worker) -> None:
    tasks = worker.tasks
    header = [tasks.add.s(1, 1), tasks.fail.s("part failed"), tasks.add.s(2, 2)]
    result = chord(header, tasks.total.s()).apply_async()
    worker.wait(result, timeout=60)
    parts = result.parent.results
    wait_ready(worker, parts)

    assert result.state == states.FAILURE
    assert isinstance(result.result, ChordError)
    assert "part failed" in str(result.result)
    # get() raises the header's error first, as for any result whose parent failed.
    with pytest.raises(ValueError, match="part failed"):
        result.get(timeout=5)
    assert isinstance(result.get(timeout=5, propagate=False), ChordError)
    assert isinstance(parts[1].result, ValueError)
    if not stores_rows(worker):
        return
    assert parts[1].id in str(result.result)  # the database backend names the failed part
    callback = row(result.id)
    assert callback.status == states.FAILURE
    assert decoded(callback.result)["exc_type"] == "ChordError"
    assert "ChordError" in callback.traceback
    stored = rows(part.id for part in parts)
    assert [stored[part.id].status for part in parts] == [states.SUCCESS, states.FAILURE, states.SUCCESS]
    failed = stored[parts[1].id]
    assert "ValueError: part failed" in failed.traceback
    assert_ran_on(failed, worker, "tests.support.workers.fail")


def test_a_failed_header_part_fails_a_group_body_with_its_own_exception(worker: Worker) -> None:
    tasks = worker.tasks
    body = group(tasks.total.s(), tasks.total.s())
    result = (group(tasks.add.s(1, 1), tasks.fail.s("header part failed")) | body).apply_async()
    worker.wait(result, timeout=60)

    members = result.results
    wait_ready(worker, members, timeout=30)
    assert {member.state for member in members} == {states.FAILURE}
    if hasattr(Backend, "_handle_group_chord_error"):  # Celery >= 5.6: the header's own exception
        with pytest.raises(ValueError, match="header part failed"):
            result.get(timeout=10)
        assert all(isinstance(member.result, ValueError) for member in members)
        # Celery then broadcasts a revoke of the body's tasks. The worker must
        # have handled it before the test ends: handled later, once the table is
        # emptied for the next test, it would store REVOKED rows there.
        worker.wait_for_revoke(*(member.id for member in members))
        assert {member.state for member in members} == {states.FAILURE}  # the revoke keeps the failures
    else:
        with pytest.raises(ChordError, match="header part failed"):
            result.get(timeout=10)
