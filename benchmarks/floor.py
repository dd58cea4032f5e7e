"""The floor: the same rows written by one hand-written statement per call, and the workload.

Every figure that writes compares ``django_celery_results`` with what the
database and driver cost anyway: one single-statement upsert per call,
through the same Django connection (so the same driver and cursor wrapper),
with the same column values. The floor serializes the result with ``json``
and takes the time per call, as any backend must; nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import cache, partial
from typing import Any

from celery import states
from celery.app.task import Context
from django.db.backends.base.base import BaseDatabaseWrapper

TASK_TABLE = "django_celery_results_taskresult"
CHORD_TABLE = "django_celery_results_chordcounter"

TASK_NAME = "bench.tasks.add"
HOSTNAME = "celery@bench"
QUEUE = "celery"
#: What a worker stores at STARTED (``celery.app.trace``).
STARTED_META = {"pid": 4242, "hostname": HOSTNAME}

#: The columns the floor writes, in order.
COLUMNS = (
    "task_id",
    "status",
    "content_type",
    "content_encoding",
    "result",
    "traceback",
    "meta",
    "date_done",
    "date_created",
    "date_started",
    "task_name",
    "task_args",
    "task_kwargs",
    "worker",
    "periodic_task_name",
    "retries",
    "queue",
)
#: Replaced when the row exists: all but the key and the dates of the first write.
UPDATED = tuple(c for c in COLUMNS if c not in ("task_id", "date_created", "date_started"))
#: Compared between a row we wrote and one the floor wrote (the rest differ by nature).
COMPARED = tuple(c for c in COLUMNS if not c.startswith("date_") and c != "task_id")


# -- the workload: the same values for ours and the floor ----------------------


def result_value(i: int) -> dict[str, Any]:
    """The SUCCESS value of call ``i``: small and JSON, like most task results."""
    return {"sum": i + 2, "items": [i, "two", None, 2.5], "text": "h\u00e9llo"}


def args_repr(i: int) -> str:
    return f"({i}, 2)"


KWARGS_REPR = "{'z': 1}"


def request(task_id: str, i: int, **extra: Any) -> Context:
    """The request a worker passes for call ``i`` (``result_extended`` stores its fields)."""
    return Context(
        id=task_id,
        task=TASK_NAME,
        args=[i, 2],
        kwargs={"z": 1},
        argsrepr=args_repr(i),
        kwargsrepr=KWARGS_REPR,
        hostname=HOSTNAME,
        delivery_info={"routing_key": QUEUE},
        retries=0,
        **extra,
    )


# -- hand-written statements ---------------------------------------------------
# Each text is built once per shape (cached), as ours are: the floor pays for no string building.


def _quote(vendor: str, name: str) -> str:
    return f"`{name}`" if vendor == "mysql" else f'"{name}"'


@cache
def upsert_task_sql(vendor: str) -> str:
    """``INSERT ... ON CONFLICT DO UPDATE`` (``ON DUPLICATE KEY UPDATE`` on MySQL/MariaDB)."""
    q = partial(_quote, vendor)
    head = (
        f"INSERT INTO {q(TASK_TABLE)} ({', '.join(q(c) for c in COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    )
    if vendor == "mysql":
        return f"{head} ON DUPLICATE KEY UPDATE " + ", ".join(f"{q(c)} = VALUES({q(c)})" for c in UPDATED)
    return f"{head} ON CONFLICT ({q('task_id')}) DO UPDATE SET " + ", ".join(
        f"{q(c)} = EXCLUDED.{q(c)}" for c in UPDATED
    )


@cache
def select_meta_sql(vendor: str, ids: int = 1) -> str:
    """The row of one task (``ids=1``), or the ready rows among ``ids`` task ids."""
    q = partial(_quote, vendor)
    columns = ", ".join(q(c) for c in COLUMNS)
    if ids == 1:
        return f"SELECT {columns} FROM {q(TASK_TABLE)} WHERE {q('task_id')} = %s"
    ready = ", ".join(f"'{s}'" for s in sorted(states.READY_STATES))
    return (
        f"SELECT {columns} FROM {q(TASK_TABLE)} WHERE {q('task_id')} IN ({', '.join(['%s'] * ids)}) "
        f"AND {q('status')} IN ({ready})"
    )


@cache
def decrement_sql(vendor: str) -> str:
    """One chord part: the counter goes down by one."""
    q = partial(_quote, vendor)
    return f"UPDATE {q(CHORD_TABLE)} SET {q('count')} = {q('count')} - 1 WHERE {q('group_id')} = %s"


@cache
def delete_expired_sql(vendor: str) -> str:
    """Every expired task result in one statement (unbatched: the fastest, not the kindest)."""
    q = partial(_quote, vendor)
    return f"DELETE FROM {q(TASK_TABLE)} WHERE {q('date_done')} < %s"


# -- values ----------------------------------------------------------------------


def row_values(
    connection: BaseDatabaseWrapper,
    task_id: str,
    status: str,
    value: Any,
    i: int,
) -> list[Any]:
    """The floor's values for ``COLUMNS``: what our backend writes for the same call."""
    moment = connection.ops.adapt_datetimefield_value(datetime.now(timezone.utc))
    return [
        task_id,
        status,
        "application/json",
        "utf-8",
        json.dumps(value),
        None,
        json.dumps({"children": []}),
        moment,
        moment,
        moment if status == states.STARTED else None,
        TASK_NAME,
        json.dumps(args_repr(i)),
        json.dumps(KWARGS_REPR),
        HOSTNAME,
        None,
        0,
        QUEUE,
    ]


def write(connection: BaseDatabaseWrapper, task_id: str, status: str, value: Any, i: int) -> None:
    """One floor write: one upsert statement."""
    with connection.cursor() as cursor:
        cursor.execute(upsert_task_sql(connection.vendor), row_values(connection, task_id, status, value, i))


def decrement(connection: BaseDatabaseWrapper, group_id: str) -> None:
    """One floor chord part: the counter of ``group_id`` goes down by one."""
    with connection.cursor() as cursor:
        cursor.execute(decrement_sql(connection.vendor), [group_id])


def read(connection: BaseDatabaseWrapper, task_id: str) -> Any:
    """One floor read: select the row, decode the result."""
    with connection.cursor() as cursor:
        cursor.execute(select_meta_sql(connection.vendor), [task_id])
        row = cursor.fetchone()
    return json.loads(row[COLUMNS.index("result")])


def read_ready(connection: BaseDatabaseWrapper, task_ids: Sequence[str]) -> list[Any]:
    """One floor poll of many tasks: select the ready rows, decode each result."""
    with connection.cursor() as cursor:
        cursor.execute(select_meta_sql(connection.vendor, len(task_ids)), list(task_ids))
        rows = cursor.fetchall()
    at = COLUMNS.index("result")
    return [json.loads(row[at]) for row in rows]
