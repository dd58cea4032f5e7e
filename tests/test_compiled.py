"""The reads built once (``django_celery_results.compiled``) return what the ORM returns."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from celery import states
from celery import uuid as new_id
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_celery_results import compiled
from django_celery_results.codec import META_COLUMNS, READY_COLUMNS
from django_celery_results.models import TaskResult
from django_celery_results.utils import now
from tests.support.strategies import any_text, safe_text

pytestmark = pytest.mark.django_db(transaction=True)

optional_text = st.none() | safe_text
rows = st.fixed_dictionaries(
    {
        "status": st.sampled_from(sorted(states.ALL_STATES)),
        "result": optional_text,
        "traceback": st.none() | any_text,
        "task_name": optional_text,
        "worker": st.none() | st.text(max_size=20),
        "retries": st.none() | st.integers(min_value=0, max_value=2**31 - 1),
        "queue": optional_text,
        "started": st.none() | st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
    }
)


def orm_rows(task_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """The same columns through a plain ORM query, in the same order, for comparison."""
    found = TaskResult.objects.filter(task_id__in=task_ids).values_list(*META_COLUMNS)
    return {row[0]: row for row in found}


def store(app: Any, fields: dict[str, Any]) -> str:
    """A stored row holding ``fields`` (through the backend's own write, as a worker stores it)."""
    task_id = new_id()
    started = None if fields["started"] is None else now() - fields["started"]
    TaskResult.objects.store_result(
        "application/json",
        "utf-8",
        task_id,
        fields["result"],
        fields["status"],
        traceback=fields["traceback"],
        task_name=fields["task_name"],
        worker=fields["worker"],
        date_started=started,
    )
    TaskResult.objects.filter(task_id=task_id).update(retries=fields["retries"], queue=fields["queue"])
    return task_id


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(rows, min_size=1, max_size=4))
def test_compiled_reads_return_the_orm_values(app: Any, stored: list[dict[str, Any]]) -> None:
    task_ids = [store(app, fields) for fields in stored]
    expected = orm_rows(task_ids)
    for task_id in task_ids:
        assert TaskResult.objects.meta_record(task_id) == expected[task_id]
    ready = {record[0]: record for record in TaskResult.objects.ready_meta_records([*task_ids, new_id()])}
    in_ready = [META_COLUMNS.index(name) for name in READY_COLUMNS]
    assert ready == {
        k: tuple(v[at] for at in in_ready)
        for k, v in expected.items()
        if v[META_COLUMNS.index("status")] in states.READY_STATES
    }


def test_a_missing_task_has_no_row() -> None:
    assert TaskResult.objects.meta_record(new_id()) is None
    assert TaskResult.objects.ready_meta_records([new_id(), new_id()]) == []


@pytest.mark.parametrize("task_id", ["100%", "a_b", "it's", "%s", "x' OR '1'='1"])
def test_ids_holding_sql_characters_are_looked_up_as_themselves(task_id: str) -> None:
    TaskResult.objects.store_result("application/json", "utf-8", task_id, "1", states.SUCCESS)
    TaskResult.objects.store_result("application/json", "utf-8", "plain-id", "2", states.SUCCESS)
    assert TaskResult.objects.meta_record(task_id)[META_COLUMNS.index("result")] == "1"  # type: ignore[index]
    records = TaskResult.objects.ready_meta_records([task_id, "plain-id"])
    assert sorted((record[0], record[4]) for record in records) == sorted([(task_id, "1"), ("plain-id", "2")])


def test_an_id_no_engine_stores_is_refused_before_any_query() -> None:
    with pytest.raises(ValueError):
        TaskResult.objects.meta_record("nul\x00id")


def test_each_thread_compiles_on_its_own_connection() -> None:
    task_id = new_id()
    TaskResult.objects.store_result("application/json", "utf-8", task_id, "7", states.SUCCESS)
    seen: list[Any] = []

    def read() -> None:
        try:
            seen.append(TaskResult.objects.meta_record(task_id))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [record[META_COLUMNS.index("result")] for record in seen] == ["7"] * 4


def test_shapes_are_bounded_per_connection() -> None:
    cache = TaskResult.objects._ready_reads
    for size in range(1, compiled.SHAPES_PER_CONNECTION + 10):
        cache.records("default", [new_id() for _ in range(size)])
    assert len(cache._per_connection[connections["default"]]) <= compiled.SHAPES_PER_CONNECTION
