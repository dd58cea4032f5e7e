"""Property-based round trips through the database: what is stored is what comes back."""

from __future__ import annotations

from typing import Any

import pytest
from celery import states
from celery import uuid as celery_uuid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.apps import make_app
from tests.support.strategies import json_values, pickle_values, safe_text

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
JSON_APP = {"result_serializer": "json", "accept_content": ["json"]}
PICKLE_APP = {"result_serializer": "pickle", "accept_content": ["json", "pickle"]}


@pytest.fixture(scope="module")
def backends() -> Any:
    apps = {"json": make_app(**JSON_APP), "pickle": make_app(**PICKLE_APP)}
    yield {name: app.backend for name, app in apps.items()}
    for app in apps.values():
        app.close()


@SETTINGS
@given(value=json_values)
def test_json_results(backends: Any, value: Any) -> None:
    task_id = celery_uuid()
    backends["json"].mark_as_done(task_id, value)
    assert backends["json"].get_task_meta(task_id, cache=False)["result"] == value


@SETTINGS
@given(value=pickle_values)
def test_pickle_results(backends: Any, value: Any) -> None:
    task_id = celery_uuid()
    backends["pickle"].mark_as_done(task_id, value)
    assert backends["pickle"].get_task_meta(task_id, cache=False)["result"] == value


@SETTINGS
@given(
    serializer=st.sampled_from(["json", "pickle"]),
    message=safe_text,
    kind=st.sampled_from([ValueError, KeyError, RuntimeError]),
    traceback=st.text(max_size=200),
)
def test_exceptions_and_tracebacks(
    backends: Any, serializer: str, message: str, kind: type[Exception], traceback: str
) -> None:
    backend = backends[serializer]
    task_id = celery_uuid()
    backend.mark_as_failure(task_id, kind(message), traceback=traceback)
    meta = backend.get_task_meta(task_id, cache=False)
    assert meta["status"] == states.FAILURE
    assert type(meta["result"]).__name__ == kind.__name__
    assert meta["result"].args == (message,)
    assert meta["traceback"] == traceback


@SETTINGS
@given(meta=st.dictionaries(safe_text.filter(bool), json_values, max_size=4), value=json_values)
def test_custom_states_with_meta(backends: Any, meta: dict[str, Any], value: Any) -> None:
    task_id = celery_uuid()
    backends["json"].store_result(task_id, {"progress": value, **meta}, "PROGRESS")
    stored = backends["json"].get_task_meta(task_id, cache=False)
    assert stored["status"] == "PROGRESS"
    assert stored["result"] == {"progress": value, **meta}
