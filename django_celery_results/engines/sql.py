"""Statements of the write and read paths, per engine, and running one.

The task upsert under the state precedence rule, the generic upsert, the task
SELECT, and the values as the driver wants them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

from celery import states
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

#: How a new state ranks against the stored one. A write applies only when the
#: stored state is not SUCCESS and does not rank above the new state, so:
#: a ready state is never replaced by a non-ready one; SUCCESS is final;
#: FAILURE may become SUCCESS (a redelivered task that then succeeded) but not
#: REVOKED (a revoke broadcast arriving after the task failed); REVOKED may
#: become FAILURE or SUCCESS (the task was already running and finished).
STATE_RANK = {states.SUCCESS: 3, states.FAILURE: 2, states.REVOKED: 1}

#: Columns the writer always replaces (they are the state itself).
STATE_COLUMNS = ("content_type", "content_encoding", "result", "traceback", "meta", "date_done")
#: Columns kept when the writer does not know them (``NULL``), e.g. a plain
#: ``update_state()`` must not blank the task name stored at STARTED.
KEEP_IF_NULL_COLUMNS = (
    "task_name",
    "task_args",
    "task_kwargs",
    "worker",
    "periodic_task_name",
    "date_started",
    "retries",
    "queue",
)


#: PostgreSQL channel on which ready results are announced (payload: the task id).
NOTIFY_CHANNEL = "django_celery_results"


def state_rank(status: str) -> int:
    """Rank of a state for :data:`STATE_RANK` (every non-ready state ranks 0)."""
    return STATE_RANK.get(status, 0)


def may_replace(stored: str, new: str) -> bool:
    """The precedence rule of :func:`upsert_task_sql`, in Python: the tests check the SQL against it."""
    return stored != states.SUCCESS and state_rank(stored) <= state_rank(new)


def _outranking(new_status: str) -> str:
    """The stored states a write of ``new_status`` may not replace, as SQL, from :func:`may_replace`.

    Only ranked states can be kept: any other stored state gives way to every write.
    """
    return ", ".join(f"'{s}'" for s in sorted(STATE_RANK) if not may_replace(s, new_status))


def upsert_task_sql(
    connection: BaseDatabaseWrapper,
    table: str,
    columns: Sequence[str],
    new_status: str,
    unknown: Sequence[str] = (),
) -> str:
    """One INSERT that creates the row or updates it under the precedence rule.

    A single statement means no read-before-write race and one round trip.
    PostgreSQL and SQLite share ``ON CONFLICT ... DO UPDATE ... WHERE``; MySQL
    and MariaDB have no conflict WHERE, so each assignment is guarded with
    ``IF()``, and ``status`` is assigned last because MySQL evaluates the
    assignments left to right against the already-updated row. ``unknown``
    names the columns of :data:`KEEP_IF_NULL_COLUMNS` this write holds as
    ``NULL``: they are not assigned, so the stored value stays. The text
    depends only on its arguments, so it is built once per combination; it
    is as short as the rule allows, since the server parses every expression
    of it on every call, even when the row is new.
    """
    return _upsert_task_sql(connection.vendor, table, tuple(columns), new_status, frozenset(unknown))


def quoter(vendor: str) -> Callable[[str], str]:
    """Identifier quoting of ``vendor``, as its Django backend quotes (backticks on MySQL).

    For statement builders cached by vendor, which hold no connection; with a
    connection at hand, ``connection.ops.quote_name`` does the same.
    """
    mark = "`" if vendor == "mysql" else '"'
    return lambda name: f"{mark}{name}{mark}"


@lru_cache(maxsize=256)
def _upsert_task_sql(
    vendor: str, table: str, columns: tuple[str, ...], new_status: str, unknown: frozenset[str]
) -> str:
    qn = quoter(vendor)
    cols = ", ".join(qn(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    updated = [c for c in columns if c in STATE_COLUMNS or (c in KEEP_IF_NULL_COLUMNS and c not in unknown)]
    head = f"INSERT INTO {qn(table)} ({cols}) VALUES ({marks})"
    if vendor == "mysql":
        guard = f"{qn('status')} NOT IN ({_outranking(new_status)})"
        guarded = [f"{qn(c)} = IF({guard}, VALUES({qn(c)}), {qn(c)})" for c in [*updated, "status"]]
        return f"{head} ON DUPLICATE KEY UPDATE {', '.join(guarded)}"
    # PostgreSQL and SQLite (>= 3.24).
    sets = [f"{qn(c)} = EXCLUDED.{qn(c)}" for c in [*updated, "status"]]
    upsert = (
        f"{head} ON CONFLICT ({qn('task_id')}) DO UPDATE SET {', '.join(sets)} "
        f"WHERE {qn(table)}.{qn('status')} NOT IN ({_outranking(new_status)})"
    )
    if vendor == "postgresql" and new_status in states.READY_STATES:
        # Wake waiting get() calls (django_celery_results.notify) in the same round trip; the
        # notification is sent only if the write applied, and only on commit.
        return (
            f"WITH written AS ({upsert} RETURNING {qn('task_id')}) "
            f"SELECT pg_notify('{NOTIFY_CHANNEL}', {qn('task_id')}) FROM written"
        )
    return upsert


def upsert_sql(
    connection: BaseDatabaseWrapper,
    table: str,
    columns: Sequence[str],
    conflict_column: str,
    update_columns: Sequence[str],
) -> str:
    """One INSERT that replaces ``update_columns`` of the row with the same ``conflict_column``.

    MySQL's ``ON DUPLICATE KEY UPDATE`` names no conflict target (any unique
    key triggers it); the others need ``ON CONFLICT (column)``. With no
    ``update_columns`` an existing row is left exactly as it is (MySQL gets a
    no-op assignment rather than ``INSERT IGNORE``, which would also turn
    errors such as truncation into warnings).
    """
    qn = connection.ops.quote_name
    head = (
        f"INSERT INTO {qn(table)} ({', '.join(qn(c) for c in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    if connection.vendor == "mysql":
        sets = [f"{qn(c)} = VALUES({qn(c)})" for c in update_columns] or [
            f"{qn(conflict_column)} = {qn(conflict_column)}"
        ]
        return f"{head} ON DUPLICATE KEY UPDATE {', '.join(sets)}"
    if not update_columns:
        return f"{head} ON CONFLICT ({qn(conflict_column)}) DO NOTHING"
    sets = [f"{qn(c)} = EXCLUDED.{qn(c)}" for c in update_columns]
    return f"{head} ON CONFLICT ({qn(conflict_column)}) DO UPDATE SET {', '.join(sets)}"


def select_tasks_sql(
    connection: BaseDatabaseWrapper,
    table: str,
    columns: Sequence[str],
    ids: int,
    ready_only: bool = False,
) -> str:
    """A SELECT of ``columns`` for ``ids`` task ids, of the ready ones only when ``ready_only``.

    Unqualified names and no ``LIMIT`` (``task_id`` is unique): the text is
    as short as it can be, since SQLite's cursor rewrites each query's
    placeholders with a regular expression on every call.
    """
    qn = connection.ops.quote_name
    where = f"{qn('task_id')} = %s" if ids == 1 else f"{qn('task_id')} IN ({', '.join(['%s'] * ids)})"
    if ready_only:
        ready = ", ".join(f"'{state}'" for state in sorted(states.READY_STATES))
        where += f" AND {qn('status')} IN ({ready})"
    return f"SELECT {', '.join(qn(c) for c in columns)} FROM {qn(table)} WHERE {where}"


def write_row(model: Any, alias: str, sql: str, values: Mapping[str, Any]) -> int:
    """Run one INSERT built here for ``values`` (in their order); return the affected row count.

    A plain cursor, not ``bulk_create``: that wraps each call in a transaction,
    two more round trips for a single row.
    """
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(sql, prepared(connection, model, values))
        return int(cursor.rowcount)


def upsert_row(
    model: Any,
    alias: str,
    values: Mapping[str, Any],
    conflict_column: str,
    update_columns: Sequence[str],
) -> None:
    """Insert ``values`` or update ``update_columns`` of the existing row, in one statement."""
    sql = upsert_sql(connections[alias], model._meta.db_table, list(values), conflict_column, update_columns)
    write_row(model, alias, sql, values)


def prepared(connection: BaseDatabaseWrapper, model: Any, values: Mapping[str, Any]) -> list[Any]:
    """Column values as the driver wants them.

    Only the fields whose database form differs from the Python value
    (datetimes, for instance) go through Django's preparation: it is the
    costliest step of a write in Python.
    """
    needs_prep = _fields_needing_prep(model)
    return [
        needs_prep[name].get_db_prep_save(value, connection) if name in needs_prep else value
        for name, value in values.items()
    ]


@cache
def _fields_needing_prep(model: Any) -> dict[str, Any]:
    plain = ("CharField", "TextField", "IntegerField", "PositiveIntegerField", "BigAutoField", "AutoField")
    return {
        field.name: field for field in model._meta.concrete_fields if field.get_internal_type() not in plain
    }
