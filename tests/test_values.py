"""The storage rule (docs/values.rst): ids refused, descriptions shortened visibly, other text escaped.

Run on every engine: what one engine cannot store (NUL on PostgreSQL, lone
surrogates anywhere) must never reach its driver.
"""

from __future__ import annotations

import inspect
import json
import logging
import pickle
import uuid
from typing import Any

import pytest
from celery import states
from celery.result import GroupResult as CeleryGroupResult
from celery.utils.serialization import get_pickleable_exception
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_celery_results import exceptions
from django_celery_results.codec import escape_text
from django_celery_results.exceptions import StorageRefused, UnstorableText, ValueTooLong
from django_celery_results.managers import TxIsolationWarning
from django_celery_results.models import GroupResult, TaskResult
from django_celery_results.values import ELLIPSIS
from tests.support.apps import make_app
from tests.support.strategies import any_text

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
ID_LIMIT = TaskResult._meta.get_field("task_id").max_length

#: Every exception class this package defines.
OWN_EXCEPTIONS = [
    value
    for value in vars(exceptions).values()
    if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == exceptions.__name__
] + [TxIsolationWarning]


def constructor_fields(kind: type[Exception]) -> list[str]:
    """The names of ``kind``'s own constructor arguments (none for plain message exceptions)."""
    if kind.__init__ in (Exception.__init__, ValueError.__init__, UserWarning.__init__):
        return []
    return [name for name in inspect.signature(kind.__init__).parameters if name != "self"]


@pytest.mark.parametrize("kind", OWN_EXCEPTIONS, ids=lambda kind: kind.__name__)
@given(data=st.data())
def test_every_exception_survives_pickle_and_celerys_json_form(
    kind: type[Exception],
    data: st.DataObject,
) -> None:
    names = constructor_fields(kind)
    values = [
        data.draw(any_text if name in ("model", "field", "value") else st.integers(0, 2**40))
        for name in names
    ] or [data.draw(any_text)]
    error = kind(*values)
    app = make_app(result_serializer="json")
    as_json = app.backend.exception_to_python(json.loads(json.dumps(app.backend.prepare_exception(error))))
    # JSON joins a high and a low surrogate into one character: compare with what it gives back.
    for copy, original in ((pickle.loads(pickle.dumps(error)), error), (as_json, kind(*via_json(values)))):
        assert type(copy) is kind and str(copy) == str(original)
        assert [getattr(copy, name) for name in names] == [getattr(original, name) for name in names]
    # Celery keeps it as is (it would otherwise substitute an UnpickleableExceptionWrapper).
    assert get_pickleable_exception(error) is error
    app.close()


def via_json(value: Any) -> Any:
    """``value`` after a trip through the JSON serializer."""
    return json.loads(json.dumps(value))


def description_read_back(stored: str | None, given_value: str, limit: int) -> None:
    """A descriptive column holds its value whole when it fits, else a visible prefix of it."""
    if len(escape_text(given_value)) <= limit:
        assert stored == given_value
        return
    assert stored is not None and stored.endswith(ELLIPSIS)
    assert given_value.startswith(stored[: -len(ELLIPSIS)])
    assert len(escape_text(stored)) <= limit


@pytest.mark.django_db
@PROPERTY
@given(
    name=any_text,
    worker=any_text,
    periodic=any_text,
    queue=any_text,
    args=any_text,
    message=any_text,
    traceback=any_text,
    note=any_text,
    long=st.booleans(),
)
def test_any_text_in_any_column_is_stored_and_read_back(
    backend: Any,
    name: str,
    worker: str,
    periodic: str,
    queue: str,
    args: str,
    message: str,
    traceback: str,
    note: str,
    long: bool,
) -> None:
    from celery.app.task import Context

    if long:  # descriptions longer than their columns
        name, worker, periodic, queue = (value * 30 + "!" for value in (name, worker, periodic, queue))
    task_id = uuid.uuid4().hex
    request = Context(
        id=task_id,
        task=name,
        hostname=worker,
        periodic_task_name=periodic,
        argsrepr=args,
        kwargsrepr=message,
        delivery_info={"routing_key": queue},
        retries=1,
        meta={"note": note},
    )
    backend.mark_as_failure(task_id, ValueError(message), traceback=traceback, request=request)

    meta = backend.get_task_meta(task_id, cache=False)
    assert meta["status"] == states.FAILURE
    assert meta["traceback"] == traceback
    # Serialized values read back as their serializer gives them back (JSON joins a
    # high and a low surrogate into one character): the storage itself adds no change.
    assert isinstance(meta["result"], ValueError) and meta["result"].args == (via_json(message),)
    assert (meta["args"], meta["kwargs"], meta["note"]) == (via_json(args), via_json(message), via_json(note))
    described = (
        ("name", name, "task_name"),
        ("worker", worker, "worker"),
        ("periodic_task_name", periodic, "periodic_task_name"),
        ("queue", queue, "queue"),
    )
    for key, value, field in described:
        description_read_back(meta[key], value, TaskResult._meta.get_field(field).max_length)

    backend.mark_as_done(task_id, message, request=request)
    assert backend.get_task_meta(task_id, cache=False)["result"] == via_json(message)


@pytest.mark.django_db
@PROPERTY
@given(suffix=any_text, repeat=st.sampled_from([1, 1, 20]))
def test_any_id_is_stored_exactly_or_refused_before_any_query(backend: Any, suffix: str, repeat: int) -> None:
    task_id = uuid.uuid4().hex + suffix * repeat
    storable = (
        len(task_id) <= ID_LIMIT
        and "\x00" not in task_id
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in task_id)
    )
    group = CeleryGroupResult(task_id, [], app=backend.app)
    if storable:
        backend.mark_as_done(task_id, 7)
        assert backend.get_task_meta(task_id, cache=False)["result"] == 7
        assert TaskResult.objects.get_task(task_id).task_id == task_id
        backend.save_group(task_id, group)
        assert backend.restore_group(task_id, cache=False).id == task_id
        backend.forget(task_id)
        backend.delete_group(task_id)
        assert not TaskResult.objects.filter(task_id=task_id).exists()
        assert not GroupResult.objects.filter(group_id=task_id).exists()
        return
    refusal = ValueTooLong if len(task_id) > ID_LIMIT else UnstorableText
    before = TaskResult.objects.count()
    backend.mark_as_done(task_id, 7)  # a worker's store: logged, nothing stored, nothing raised
    assert TaskResult.objects.count() == before
    for call in (
        lambda: backend.get_task_meta(task_id, cache=False),
        lambda: backend.forget(task_id),
        lambda: TaskResult.objects.get_task(task_id),
        lambda: backend.save_group(task_id, group),
        lambda: backend.restore_group(task_id, cache=False),
        lambda: TaskResult.objects.store_result("application/json", "utf-8", task_id, "1", states.SUCCESS),
    ):
        with pytest.raises(refusal) as raised:
            call()
        assert raised.value.field in ("task_id", "group_id")
    assert TaskResult.objects.count() == before


@pytest.mark.django_db
def test_a_surrogate_in_an_exception_message_keeps_the_failure(backend: Any) -> None:
    import os

    error = ValueError("cannot open " + os.fsdecode(b"/data/caf\xe9.txt"))
    try:
        raise error
    except ValueError:
        import traceback

        text = traceback.format_exc()
    backend.mark_as_failure("fs-name", error, traceback=text)
    meta = backend.get_task_meta("fs-name", cache=False)
    assert meta["status"] == states.FAILURE
    assert meta["result"].args == error.args
    assert meta["traceback"] == text and "caf\udce9" in meta["traceback"]


@pytest.mark.django_db
def test_a_shortened_description_is_logged_once_per_column(
    backend: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.app.task import Context

    from django_celery_results import values

    monkeypatch.setattr(values, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="django_celery_results.values"):
        for index in range(3):
            request = Context(id=f"t{index}", task="tests.add", hostname="h" * 300)
            backend.mark_as_done(f"t{index}", index, request=request)
    warnings = [r for r in caplog.records if "TaskResult.worker holds at most 100" in r.getMessage()]
    assert len(warnings) == 1
    assert set(TaskResult.objects.values_list("worker", flat=True)) == {"h" * 99 + ELLIPSIS}


@pytest.mark.django_db
def test_store_result_returns_the_row_as_the_database_holds_it() -> None:
    manager = TaskResult.objects
    manager.store_result("application/json", "utf-8", "kept", '"done"', states.SUCCESS, worker="w1")
    # A late progress state: the rule keeps SUCCESS, and the caller is told so.
    returned = manager.store_result("application/json", "utf-8", "kept", None, states.STARTED, worker="w2")
    assert (returned.pk is not None, returned.status, returned.result, returned.worker) == (
        True,
        states.SUCCESS,
        '"done"',
        "w1",
    )
    assert returned == manager.get(task_id="kept")


def test_refusals_are_value_errors() -> None:
    # Code written for the package we replace catches ValueError (Django's DataError is not one).
    assert issubclass(StorageRefused, ValueError)


@pytest.mark.engine("mysql")
@pytest.mark.django_db
def test_a_result_over_max_allowed_packet_is_refused_at_once(backend: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_celery_results import engines
    from django_celery_results.exceptions import ResultTooLarge

    limit = engines.statement_size_limit(connection)
    assert limit is not None
    value = "r" * (limit + 1)
    with CaptureQueriesContext(connection) as queries, pytest.raises(ResultTooLarge) as raised:
        backend.store_result("huge", value, states.SUCCESS)
    assert raised.value.limit == limit and raised.value.size > limit
    assert str(limit) in str(raised.value) and "max_allowed_packet" in str(raised.value)
    # Refused before sending: no INSERT reached the server, so no lost connection to retry.
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert not TaskResult.objects.filter(task_id="huge").exists()
    backend.store_result("small", "r" * 1000, states.SUCCESS)  # the connection still works
    assert TaskResult.objects.filter(task_id="small").exists()
