"""Whatever object a caller passes as ``request``, the write succeeds (docs/values.rst).

Celery's ``Context``, a ``SimpleNamespace`` or a mock from a site's own tests:
optional fields of the wrong type are stored as NULL, arguments and user
metadata the serializer cannot encode as their ``repr``.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from celery import states
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_celery_results.codec import unescape_text
from django_celery_results.models import TaskResult
from tests.support.strategies import json_values

#: Attribute values a request may carry: right types, wrong types, and objects no serializer takes.
odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    st.builds(object),
    st.builds(mock.Mock),
    st.builds(mock.MagicMock),
    json_values,
)

FIELDS = (
    "task",
    "hostname",
    "periodic_task_name",
    "retries",
    "delivery_info",
    "argsrepr",
    "kwargsrepr",
    "args",
    "kwargs",
    "meta",
    "children",
    "group",
    "parent_id",
)


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    attributes=st.fixed_dictionaries({}, optional={name: odd_values for name in FIELDS}),
    state=st.sampled_from([states.SUCCESS, states.STARTED, states.FAILURE]),
)
def test_any_request_object_is_stored(backend: Any, attributes: dict[str, Any], state: str) -> None:
    task_id = uuid.uuid4().hex
    request = SimpleNamespace(id=task_id, **attributes)
    result = ValueError("x") if state == states.FAILURE else {"ok": 1}
    backend.store_result(task_id, result, state, traceback="tb", request=request)

    row = TaskResult.objects.get(task_id=task_id)
    assert row.status == state
    named = (("task_name", "task"), ("worker", "hostname"), ("periodic_task_name", "periodic_task_name"))
    for column, name in named:
        given_value = attributes.get(name)
        # Read back through unescape_text: a NUL or lone surrogate is stored escaped (docs/values.rst).
        assert unescape_text(getattr(row, column)) == (given_value if isinstance(given_value, str) else None)
    retries = attributes.get("retries")
    valid_count = isinstance(retries, int) and not isinstance(retries, bool) and 0 <= retries < 2**31
    assert row.retries == (retries if valid_count else None)
    info = attributes.get("delivery_info")
    routing_key = info.get("routing_key") if isinstance(info, dict) else None
    assert unescape_text(row.queue) == (routing_key if isinstance(routing_key, str) else None)
    meta = backend.get_task_meta(task_id, cache=False)
    if isinstance(attributes.get("argsrepr"), str):
        assert meta["args"] == attributes["argsrepr"]
    # The group and the sending task are kept as Celery's own backends keep them: when they are ids.
    for key, name in (("group_id", "group"), ("parent_id", "parent_id")):
        given_value = attributes.get(name)
        assert meta.get(key) == (given_value if isinstance(given_value, str) and given_value else None)


@pytest.mark.django_db
def test_a_mock_request_stores_the_result(backend: Any) -> None:
    # ignore_result and chord are read by Celery itself, before the backend sees the request.
    request = mock.Mock(
        id="mocked",
        task="proj.add",
        delivery_info={"routing_key": "math"},
        ignore_result=False,
        chord=None,
    )
    backend.mark_as_done("mocked", 3, request=request)
    row = TaskResult.objects.get(task_id="mocked")
    assert (row.status, row.task_name, row.queue) == (states.SUCCESS, "proj.add", "math")
    # Mock attributes are not strings or counts: NULL, not the driver's error.
    assert (row.worker, row.periodic_task_name, row.retries) == (None, None, None)
    assert backend.get_task_meta("mocked", cache=False)["result"] == 3


@pytest.mark.django_db
def test_a_mock_request_in_a_chord_part_is_ignored_not_an_error(backend: Any) -> None:
    backend.on_chord_part_return(mock.Mock(), states.SUCCESS, 1)
