"""Single tasks stored by a real worker through either backend, read back by the test process.

The ``django-cache`` worker writes to a FileBasedCache shared with this
process; the ``django-db`` one to the test database. Chords in every setup:
:mod:`tests.workers.test_chords`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery import states

from tests.support.workers import Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


WORKER_SETUPS = ("filesystem", "django-cache")


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
