"""Results stored by a real ``celery worker`` process, read back by the test process.

One worker per backend (``django-db`` and ``django-cache``) serves the whole
module; it writes to the test database or to a FileBasedCache shared with
this process. See :mod:`tests.support.workers`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from celery import chord, states
from celery.exceptions import ChordError

from tests.support.workers import Worker, running_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", params=["django-db", "django-cache"])
def worker(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    django_db_setup: Any,
    django_db_blocker: Any,
) -> Iterator[Worker]:
    # django_db_setup first: the worker must get the *test* database's name.
    with running_worker(tmp_path_factory.mktemp(request.param), backend=request.param) as started:
        yield started


def stored_row(task_id: str) -> Any:
    from django_celery_results.models import TaskResult

    return TaskResult.objects.get(task_id=task_id)


def test_success_is_stored_with_request_details(worker: Worker) -> None:
    result = worker.wait(worker.tasks.add.delay(2, 3))

    assert result.get(timeout=5) == 5
    meta = worker.app.backend.get_task_meta(result.id)
    assert meta["status"] == states.SUCCESS
    assert meta["name"] == "tests.support.workers.add"
    assert meta["worker"].startswith(worker.hostname.split("@")[0] + "@")
    assert meta["date_done"] is not None
    if worker.backend == "django-db":
        row = stored_row(result.id)
        assert (row.status, json.loads(row.result)) == (states.SUCCESS, 5)
        assert row.task_name == "tests.support.workers.add"
        assert row.worker == meta["worker"]
        assert row.date_started is not None  # task_track_started
        assert row.date_started <= row.date_done
        assert row.traceback is None


def test_failure_keeps_exception_and_traceback(worker: Worker) -> None:
    result = worker.wait(worker.tasks.fail.delay("boom"))

    assert result.state == states.FAILURE
    assert isinstance(result.result, ValueError)
    assert result.result.args == ("boom",)
    assert "ValueError: boom" in result.traceback
    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=5)
    if worker.backend == "django-db":
        row = stored_row(result.id)
        assert row.status == states.FAILURE
        assert row.traceback.startswith("Traceback (most recent call last)")
        assert json.loads(row.result)["exc_type"] == "ValueError"


def test_chord_callback_gets_every_part(worker: Worker) -> None:
    tasks = worker.tasks
    result = chord([tasks.add.s(i, i) for i in range(4)], tasks.total.s()).apply_async()
    worker.wait(result, timeout=60)

    assert result.get(timeout=5) == 12
    assert [part.get(timeout=5) for part in result.parent.results] == [0, 2, 4, 6]
    if worker.backend == "django-db":
        from django_celery_results.models import ChordCounter

        # Every part was counted: no counter of this chord still waits for parts.
        assert not ChordCounter.objects.filter(group_id=result.parent.id, count__gt=0).exists()


def test_chord_with_a_failed_part_fails_its_callback(worker: Worker) -> None:
    tasks = worker.tasks
    header = [tasks.add.s(1, 1), tasks.fail.s("part failed"), tasks.add.s(2, 2)]
    result = chord(header, tasks.total.s()).apply_async()
    worker.wait(result, timeout=60)

    assert result.state == states.FAILURE
    assert isinstance(result.result, ChordError)
    failed_part = result.parent.results[1]
    assert "part failed" in str(result.result)
    assert isinstance(failed_part.result, ValueError)


def test_a_failed_header_part_fails_a_group_body_with_its_own_exception(worker: Worker) -> None:
    from celery import group
    from celery.backends.base import Backend

    tasks = worker.tasks
    body = group(tasks.total.s(), tasks.total.s())
    result = (group(tasks.add.s(1, 1), tasks.fail.s("header part failed")) | body).apply_async()
    worker.wait(result, timeout=60)

    members = result.results
    for member in members:
        worker.wait(member, timeout=30)
        assert member.state == states.FAILURE
    if hasattr(Backend, "_handle_group_chord_error"):  # Celery >= 5.6: the header's own exception
        with pytest.raises(ValueError, match="header part failed"):
            result.get(timeout=10)
        assert all(isinstance(member.result, ValueError) for member in members)
    else:
        with pytest.raises(ChordError, match="header part failed"):
            result.get(timeout=10)
