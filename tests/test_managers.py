"""The managers' public API (names and signatures users call) and its behaviour."""

from __future__ import annotations

import importlib
import inspect
import uuid
from datetime import timedelta
from typing import Any

import pytest
from celery import states
from django.db import DataError, IntegrityError, OperationalError, connection, connections
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_celery_results.exceptions import ValueTooLong
from django_celery_results.managers import (
    GroupResultManager,
    ResultManager,
    TaskResultManager,
    TxIsolationWarning,
    transaction_retry,
)
from django_celery_results.models import GroupResult, TaskResult
from tests.support.strategies import safe_text


def test_public_signatures() -> None:
    params = inspect.signature(TaskResultManager.store_result).parameters
    assert list(params)[:14] == [
        "self",
        "content_type",
        "content_encoding",
        "task_id",
        "result",
        "status",
        "traceback",
        "meta",
        "periodic_task_name",
        "task_name",
        "task_args",
        "task_kwargs",
        "worker",
        "using",
    ]
    assert params["traceback"].default is None and params["using"].default is None
    assert list(inspect.signature(GroupResultManager.store_group_result).parameters) == [
        "self",
        "content_type",
        "content_encoding",
        "group_id",
        "result",
        "using",
    ]
    assert "batch_size" in inspect.signature(ResultManager.delete_expired).parameters
    assert issubclass(TxIsolationWarning, UserWarning)
    assert isinstance(TaskResult.objects, TaskResultManager)
    assert isinstance(GroupResult.objects, GroupResultManager)


@pytest.mark.django_db
def test_get_task_returns_unsaved_pending_for_unknown_ids() -> None:
    task = TaskResult.objects.get_task("nope")
    assert (task.pk, task.task_id, task.status) == (None, "nope", states.PENDING)


@pytest.mark.django_db
def test_store_result_positional_and_keyword_forms() -> None:
    TaskResult.objects.store_result("application/json", "utf-8", "a", "1", states.STARTED)
    TaskResult.objects.store_result(
        content_type="application/json",
        content_encoding="utf-8",
        task_id="a",
        result="2",
        status=states.SUCCESS,
        traceback=None,
        meta='{"children": []}',
        task_name="t.n",
        task_args='"()"',
        task_kwargs='"{}"',
        worker="w",
        periodic_task_name="nightly",
        exception_retry_count=0,
    )
    row = TaskResult.objects.get_task("a")
    assert (row.status, row.result, row.task_name, row.worker, row.periodic_task_name) == (
        states.SUCCESS,
        "2",
        "t.n",
        "w",
        "nightly",
    )
    assert row.date_started is not None
    assert row.as_dict()["status"] == states.SUCCESS


@pytest.mark.django_db
def test_store_result_accepts_date_started() -> None:
    moment = timezone.now() - timedelta(minutes=5)
    TaskResult.objects.store_result(
        "application/json", "utf-8", "d", "1", states.STARTED, date_started=moment
    )
    assert TaskResult.objects.get(task_id="d").date_started == moment


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(suffix=safe_text, result=safe_text, name=st.none() | safe_text)
def test_store_then_get_round_trips_any_text(suffix: str, result: str, name: str | None) -> None:
    # A fresh prefix per example: MySQL's collation would equate ids differing in case.
    task_id = (uuid.uuid4().hex + suffix)[:255]
    TaskResult.objects.store_result("text/plain", "utf-8", task_id, result, states.SUCCESS, task_name=name)
    row = TaskResult.objects.get_task(task_id)
    assert (row.task_id, row.result, row.task_name) == (task_id, result, name)


@pytest.mark.django_db
def test_group_store_and_get() -> None:
    GroupResult.objects.store_group_result("application/json", "utf-8", "g", "[1]")
    GroupResult.objects.store_group_result("application/json", "utf-8", "g", "[2]")
    assert GroupResult.objects.get_group("g").result == "[2]"
    assert GroupResult.objects.get_group("missing") is None
    assert GroupResult.objects.get_group("g").as_dict()["group_id"] == "g"


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["task_id", "status", "content_type"])
def test_over_long_values_are_refused_before_writing(field: str) -> None:
    TaskResult.objects.store_result("application/json", "utf-8", "neighbour", "1", states.SUCCESS)
    limit = TaskResult._meta.get_field(field).max_length
    values = {"task_id": "victim", field: "x" * (limit + 1)}
    arguments = {"content_type": "application/json", "status": states.SUCCESS, **values}
    with pytest.raises(ValueTooLong, match=f"{field} holds at most {limit}"):
        TaskResult.objects.store_result(content_encoding="utf-8", result="1", **arguments)
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["neighbour"]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["task_name", "worker", "periodic_task_name"])
def test_over_long_descriptions_are_shortened_visibly(field: str) -> None:
    limit = TaskResult._meta.get_field(field).max_length
    TaskResult.objects.store_result(
        "application/json", "utf-8", "t", "1", states.SUCCESS, **{field: "x" * (limit + 50)}
    )
    stored = getattr(TaskResult.objects.get(task_id="t"), field)
    assert stored == "x" * (limit - 1) + "\u2026"


@pytest.mark.django_db
def test_expired_rows_and_batched_delete() -> None:
    for index in range(25):
        TaskResult.objects.store_result("application/json", "utf-8", f"t{index}", "1", states.SUCCESS)
    TaskResult.objects.filter(task_id__in=[f"t{i}" for i in range(20)]).update(
        date_done=timezone.now() - timedelta(days=2)
    )
    assert TaskResult.objects.get_all_expired(timedelta(days=1)).count() == 20
    assert TaskResult.objects.get_all_expired(3600 * 24).count() == 20
    assert TaskResult.objects.delete_expired(timedelta(days=1), batch_size=7) == 20
    assert TaskResult.objects.count() == 5


@pytest.mark.django_db
def test_connections_and_engine() -> None:
    manager = TaskResult.objects
    assert manager.connection_for_write() is connections["default"]
    assert manager.connection_for_read() is connections["default"]
    assert manager.current_engine() == connection.settings_dict["ENGINE"]


class Flaky:
    """Fails ``failures`` times with ``error`` before succeeding."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def _transient_error() -> Exception:
    # A real driver error with a transient code, wrapped as Django wraps it.
    if connection.vendor == "postgresql":
        # psycopg 3 or psycopg2, whichever Django uses: both name it so.
        errors = importlib.import_module(f"{connection.Database.__name__}.errors")  # type: ignore[attr-defined]
        cause: Exception = errors.SerializationFailure("could not serialize")
    elif connection.vendor == "mysql":
        import MySQLdb

        cause = MySQLdb.OperationalError(1213, "Deadlock found when trying to get lock")
    else:
        import sqlite3

        cause = sqlite3.OperationalError("database is locked")
    error = OperationalError(str(cause))
    error.__cause__ = cause
    return error


@pytest.mark.django_db
def test_transaction_retry_retries_transient_errors_only() -> None:
    flaky = Flaky(_transient_error(), failures=2)
    assert transaction_retry(max_retries=2)(flaky)() == "ok"
    assert flaky.calls == 3

    budget = Flaky(_transient_error(), failures=2)
    with pytest.raises(OperationalError):
        transaction_retry(max_retries=5)(budget)(exception_retry_count=1)
    assert budget.calls == 2

    for permanent in (DataError("value too long"), IntegrityError("duplicate"), ValueError("x")):
        once = Flaky(permanent, failures=1)
        with pytest.raises(type(permanent)):
            transaction_retry(max_retries=3)(once)()
        assert once.calls == 1


@pytest.mark.django_db
def test_a_group_save_is_retried_by_one_layer_only(
    celery_app_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The public manager retries; the backend leaves its retries to Celery's policy, never both."""
    from django_celery_results import engines

    writes = Flaky(_transient_error(), failures=10)
    monkeypatch.setattr(engines, "upsert_row", lambda *args, **kwargs: writes())
    results = celery_app_factory().GroupResult("g-once", [])
    with pytest.raises(OperationalError):
        results.save()  # result_backend_always_retry is off: Celery does not retry, nor do we
    assert writes.calls == 1

    writes.calls = 0
    with pytest.raises(OperationalError):
        GroupResult.objects.store_group_result("application/json", "utf-8", "g-api", "[]")
    assert writes.calls == 3  # the first try and transaction_retry's two


@pytest.mark.django_db
def test_ids_beyond_32_bits_are_stored() -> None:
    """After 0017 the id columns are 64-bit: a sequence past 2**31 keeps working."""
    from django_celery_results.models import ChordCounter

    big = 2**31 + 7
    TaskResult.objects.create(
        id=big, task_id="big-id", status=states.SUCCESS, content_type="a", content_encoding="b"
    )
    GroupResult.objects.create(id=big, group_id="big-group", content_type="a", content_encoding="b")
    ChordCounter.objects.create(id=big, group_id="big-chord", sub_tasks="[]", count=0)
    assert TaskResult.objects.get(task_id="big-id").pk == big
    assert GroupResult.objects.get(group_id="big-group").pk == big
    assert ChordCounter.objects.get(group_id="big-chord").pk == big
