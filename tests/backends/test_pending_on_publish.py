"""Opt-in PENDING rows written when a task is published."""

from __future__ import annotations

from typing import Any

import pytest
from celery import states
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_celery_results.models import TaskResult

pytestmark = pytest.mark.django_db(transaction=True)

ON = {"PENDING_ON_PUBLISH": True}


@pytest.fixture
def current(celery_app_factory: Any) -> Any:
    from celery import current_app

    app = celery_app_factory()
    previous = current_app._get_current_object()
    app.set_current()

    @app.task(name="proj.tasks.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    yield app
    previous.set_current()


def test_publishing_stores_a_pending_row_with_name_and_arguments(current: Any) -> None:
    add = current.tasks["proj.tasks.add"]
    with override_settings(DJANGO_CELERY_RESULTS=ON), CaptureQueriesContext(connection) as queries:
        result = add.apply_async((2, 3), queue="math")
    assert len(queries) == 1, [q["sql"] for q in queries]
    row = TaskResult.objects.get(task_id=result.id)
    assert (row.status, row.task_name, row.queue) == (states.PENDING, "proj.tasks.add", "math")
    meta = current.backend.get_task_meta(result.id, cache=False)
    assert (meta["args"], meta["kwargs"]) == ("(2, 3)", "{}")
    assert result.state == states.PENDING


def test_off_by_default(current: Any) -> None:
    result = current.tasks["proj.tasks.add"].delay(1, 1)
    assert not TaskResult.objects.filter(task_id=result.id).exists()


def test_never_overwrites_what_a_worker_stored(current: Any) -> None:
    current.backend.mark_as_started("already-running")
    with override_settings(DJANGO_CELERY_RESULTS=ON):
        current.tasks["proj.tasks.add"].apply_async((1, 2), task_id="already-running")
    assert TaskResult.objects.get(task_id="already-running").status == states.STARTED


def test_other_backends_are_left_alone(celery_app_factory: Any) -> None:
    from celery import current_app

    app = celery_app_factory("django-cache")
    previous = current_app._get_current_object()
    app.set_current()
    try:
        with override_settings(DJANGO_CELERY_RESULTS=ON):
            result = app.send_task("proj.tasks.add", (1, 2))
    finally:
        previous.set_current()
    assert not TaskResult.objects.filter(task_id=result.id).exists()


def test_tasks_that_ignore_their_result_get_no_row(current: Any) -> None:
    with override_settings(DJANGO_CELERY_RESULTS=ON):
        result = current.tasks["proj.tasks.add"].apply_async((1, 2), ignore_result=True)
    assert not TaskResult.objects.filter(task_id=result.id).exists()
