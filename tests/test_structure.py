"""Structural facts behind the benchmarks (``benchmarks/run.py``), pinned without timing anything.

Round trips per operation, counted on the connection results go through,
and the index the planner picks for the date-ordered queries on big tables,
read from each engine's EXPLAIN. If one of these changes, the figures in
``BENCHMARKS.md`` no longer describe the code.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from celery import states
from celery import uuid as new_id
from celery.result import GroupResult
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_celery_results.models import ChordCounter, TaskResult
from tests.support.requests import task_request
from tests.support.statements import (  # noqa: F401 (planner_prefers_indexes: a fixture)
    BIG_TABLE_ROWS,
    DATE_DONE_INDEX,
    STATEMENTS_PER_PART,
    TASK_TABLE,
    analyze,
    explain_text,
    indexes_used,
    insert_task_rows,
    planner_prefers_indexes,
    statements,
)

pytestmark = pytest.mark.django_db(transaction=True)


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "state"),
    [
        (None, states.STARTED),
        (None, states.SUCCESS),
        (states.STARTED, states.SUCCESS),
        (states.STARTED, states.STARTED),
        (states.SUCCESS, states.SUCCESS),
        (states.SUCCESS, states.STARTED),
    ],
    ids=lambda value: value or "new",
)
def test_store_result_is_one_statement(backend: Any, before: str | None, state: str) -> None:
    task_id = new_id()
    if before is not None:
        backend.store_result(task_id, "earlier", before, request=task_request(task_id))
    sent = statements(lambda: backend.store_result(task_id, "now", state, request=task_request(task_id)))
    assert len(sent) == 1, sent
    assert TaskResult.objects.get(task_id=task_id).status == (before if before == states.SUCCESS else state)


@pytest.mark.parametrize("stored", [True, False], ids=["stored", "missing"])
def test_get_task_meta_is_one_query(backend: Any, stored: bool) -> None:
    task_id = new_id()
    if stored:
        backend.mark_as_done(task_id, 42, request=task_request(task_id))
    sent = statements(lambda: backend.get_task_meta(task_id, cache=False))
    assert len(sent) == 1, sent


def finish_in_another_thread(backend: Any, task_ids: list[str]) -> None:
    """Mark ``task_ids`` done through another connection, and wait until it committed."""

    def finish() -> None:
        try:
            for task_id in task_ids:
                backend.mark_as_done(task_id, task_id, request=task_request(task_id))
        finally:
            connections.close_all()  # this thread's own connections

    helper = threading.Thread(target=finish)
    helper.start()
    helper.join()


@pytest.mark.parametrize("unfinished", [0, 50])
def test_join_native_of_200_tasks_is_at_most_two_queries_per_poll(app: Any, unfinished: int) -> None:
    backend = app.backend
    ids = [new_id() for _ in range(200)]
    for task_id in ids[unfinished:]:
        backend.mark_as_done(task_id, task_id, request=task_request(task_id))
    polls = [1]

    def between_polls() -> None:
        # Runs between two polls: the rest finish meanwhile, elsewhere.
        if len(polls) == 1:
            finish_in_another_thread(backend, ids[:unfinished])
        polls.append(1)

    group = GroupResult(new_id(), [app.AsyncResult(task_id) for task_id in ids], app=app)
    joined: list[Any] = []
    sent = statements(
        lambda: joined.extend(group.join_native(timeout=30, interval=0.05, on_interval=between_polls))
    )
    assert joined == ids
    assert len(polls) == (2 if unfinished else 1)
    assert len(sent) <= 2 * len(polls), sent


def test_a_chord_part_that_is_not_the_last_is_one_statement(app: Any) -> None:
    backend = app.backend
    group_id, part_ids = new_id(), [new_id() for _ in range(5)]
    body = app.signature("tests.chord_callback")
    backend.apply_chord((group_id, [app.AsyncResult(p) for p in part_ids]), body)
    requests = [task_request(p, group=group_id, chord=dict(body)) for p in part_ids]
    for i, part in enumerate(requests):
        backend.store_result(part.id, i, states.SUCCESS, request=part)
    for i, part in enumerate(requests[:-1]):
        with CaptureQueriesContext(connection) as queries:
            backend.on_chord_part_return(part, states.SUCCESS, i)
        sent = queries.captured_queries
        assert len(sent) == STATEMENTS_PER_PART[connection.vendor], sent
    backend.on_chord_part_return(requests[-1], states.SUCCESS, len(requests) - 1)
    assert ChordCounter.objects.get(group_id=group_id).count == 0


# -- indexes ---------------------------------------------------------------------------


def reads_by_date_done(sent: list[str]) -> list[str]:
    """The SELECTs of the task table that filter or order on ``date_done``."""
    return [
        sql
        for sql in sent
        if sql.lstrip().upper().startswith("SELECT")
        and TASK_TABLE in sql
        and "date_done" in sql
        and "COUNT(" not in sql.upper()
    ]


def deletes_of_tasks(sent: list[str]) -> list[str]:
    """The DELETEs of the task table (a cleanup's batches: each selects its keys by ``date_done``)."""
    return [sql for sql in sent if re.search(rf'DELETE FROM "?`?{TASK_TABLE}\b', sql)]


def assert_date_done_index(queries: list[str]) -> None:
    assert queries, "no query on the task table's date_done was captured"
    for sql in queries:
        assert DATE_DONE_INDEX in indexes_used(sql), f"{sql}\n{explain_text(sql)}"


def test_cleanup_finds_expired_results_through_the_date_done_index(
    app: Any,
    planner_prefers_indexes: None,  # noqa: F811
) -> None:
    insert_task_rows(expired=BIG_TABLE_ROWS // 10, fresh=BIG_TABLE_ROWS)
    analyze()
    with transaction.atomic():
        sent = statements(app.backend.cleanup)
        assert TaskResult.objects.count() == BIG_TABLE_ROWS
        transaction.set_rollback(True)  # keep the rows: the plans are read on the full table
    # EXPLAIN, without ANALYZE, plans each DELETE without running it.
    assert_date_done_index(deletes_of_tasks(sent))


def test_admin_changelist_reads_the_newest_rows_through_the_date_done_index(
    admin_client: Client,
    planner_prefers_indexes: None,  # noqa: F811
) -> None:
    insert_task_rows(expired=0, fresh=BIG_TABLE_ROWS)
    analyze()
    sent = statements(lambda: admin_client.get(reverse("admin:django_celery_results_taskresult_changelist")))
    page = [sql for sql in reads_by_date_done(sent) if re.search(r"LIMIT 100\b", sql, re.IGNORECASE)]
    assert len(page) == 1, reads_by_date_done(sent)
    assert "ORDER BY" in page[0].upper()
    assert_date_done_index(page)


# -- the reads' indexes ----------------------------------------------------------------


#: The unique index on ``task_id``, as each engine's plan names it (part of the installed schema).
TASK_ID_INDEXES = {
    "postgresql": {
        "django_celery_results_taskresult_task_id_key",
        "django_celery_results_taskresult_task_id_de0d95bf_like",
    },
    "mysql": {"task_id"},
    "sqlite": {"sqlite_autoindex_django_celery_results_taskresult_1"},
}


def test_get_task_meta_and_a_join_poll_read_through_the_task_id_index(
    backend: Any,
    planner_prefers_indexes: None,  # noqa: F811
) -> None:
    # PostgreSQL walks the status index for 200 ready rows among 20,000 finished
    # ones; among 100,000 (still a small table) it looks the ids up, as on real tables.
    filler = 5 * BIG_TABLE_ROWS if connection.vendor == "postgresql" else BIG_TABLE_ROWS
    insert_task_rows(expired=0, fresh=filler)
    ids = [new_id() for _ in range(200)]
    for task_id in ids:
        backend.mark_as_done(task_id, task_id, request=task_request(task_id))
    analyze()
    read_one = statements(lambda: backend.get_task_meta(ids[0], cache=False))
    group = GroupResult(new_id(), [backend.app.AsyncResult(task_id) for task_id in ids], app=backend.app)
    poll = statements(lambda: group.join_native(timeout=30))
    assert len(read_one) == 1 and len(poll) == 1, (read_one, poll)
    for sql in (*read_one, *poll):
        assert set(indexes_used(sql)) & TASK_ID_INDEXES[connection.vendor], explain_text(sql)
