"""What SQL the code sends and how each engine plans it, for tests that pin statements and indexes.

Shared by ``tests/test_structure.py`` and the modules that pin the same facts for their own queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest
from celery import states
from celery import uuid as new_id
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_celery_results.models import TaskResult

TASK_TABLE = TaskResult._meta.db_table
#: The index on ``TaskResult.date_done`` (its name is part of the installed schema).
DATE_DONE_INDEX = "django_cele_date_do_f59aad_idx"
#: Rows in the task table when reading plans. MariaDB 10.11 scans and sorts
#: 3,000 small rows rather than walk the index for ``ORDER BY ... LIMIT``; at
#: 20,000 it walks the index, as it does on the tables this is about.
BIG_TABLE_ROWS = 20_000

#: Statements sent for a chord part that is not the last: PostgreSQL counts it in
#: one statement; MySQL/MariaDB too, flipping the part's row written when the
#: chord started; SQLite in a transaction (BEGIN, INSERT the part, UPDATE the
#: counter, COMMIT). Pinned by tests/test_structure.py and tests/backends/test_chords.py.
STATEMENTS_PER_PART = {"postgresql": 1, "sqlite": 4, "mysql": 1}


def statements(action: Callable[[], object]) -> list[str]:
    """The SQL ``action`` sent through the default connection."""
    with CaptureQueriesContext(connection) as queries:
        action()
    return [query["sql"] for query in queries.captured_queries]


def insert_task_rows(expired: int, fresh: int) -> None:
    """Task results finished two days ago (``expired``) and just now (``fresh``), in bulk."""
    columns = ("task_id", "status", "content_type", "content_encoding", "result", "date_created", "date_done")
    qn = connection.ops.quote_name
    sql = (
        f"INSERT INTO {qn(TASK_TABLE)} ({', '.join(qn(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    now = datetime.now(timezone.utc)
    rows = []
    for count, newest in ((expired, now - timedelta(days=2)), (fresh, now)):
        for i in range(count):
            moment = connection.ops.adapt_datetimefield_value(newest - timedelta(seconds=i))
            rows.append((new_id(), states.SUCCESS, "application/json", "utf-8", "1", moment, moment))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def analyze() -> None:
    """Refresh the planner's statistics of the task table."""
    verb = "ANALYZE TABLE" if connection.vendor == "mysql" else "ANALYZE"
    with connection.cursor() as cursor:
        cursor.execute(f"{verb} {connection.ops.quote_name(TASK_TABLE)}")
        if connection.vendor == "mysql":
            cursor.fetchall()


@pytest.fixture
def planner_prefers_indexes() -> Iterator[None]:
    """On PostgreSQL, sequential scans off for this connection: a small table then shows whether
    the index *can* serve the query. MySQL and SQLite read the statistics of a table big enough."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET enable_seqscan")


def indexes_used(sql: str, table: str = TASK_TABLE) -> list[str]:
    """The indexes each engine's EXPLAIN says ``sql`` reads ``table`` (the task table) through."""
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(f"EXPLAIN {sql}")
            names = [column[0] for column in cursor.description]
            plan = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            return [str(step["key"]) for step in plan if step["table"] == table and step["key"]]
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
            details = [str(row[-1]) for row in cursor.fetchall()]
            marker = "INDEX "
            return [d.split(marker, 1)[1].split()[0] for d in details if table in d and marker in d]
        cursor.execute(f"EXPLAIN {sql}")
        lines = [str(row[0]) for row in cursor.fetchall()]
        found = []
        for line in lines:
            for marker in (" using ", "Bitmap Index Scan on "):
                if ("Index" in line) and marker in line:
                    found.append(line.split(marker, 1)[1].split()[0])
        return found


def explain_text(sql: str) -> str:
    """The raw plan, for failure messages."""
    prefix = "EXPLAIN QUERY PLAN" if connection.vendor == "sqlite" else "EXPLAIN"
    with connection.cursor() as cursor:
        cursor.execute(f"{prefix} {sql}")
        return "\n".join(" | ".join(map(str, row)) for row in cursor.fetchall())
