"""Counting chord parts: one row per counted part and the decrement, atomically, once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.db.backends.base.base import BaseDatabaseWrapper

from .sql import quoter


@dataclass(frozen=True)
class PartCount:
    """What counting one chord part did: decremented (and whether to zero), or not, and why if known."""

    counted: bool  # the part was new and the counter went down by one
    last: bool  # ... and it reached zero: this caller sends the callback
    counter_exists: bool | None  # when not counted: whether the counter exists (None: not asked)


NOT_COUNTED = PartCount(False, False, None)


def prepares_chord_parts(connection: BaseDatabaseWrapper) -> bool:
    """Whether a chord's part rows are written ahead, not counted, when it starts (MySQL/MariaDB).

    MySQL has no data-modifying CTE, but one multi-table UPDATE can flip a
    part row written ahead and decrement the counter: one round trip in
    autocommit where a transaction takes five. PostgreSQL counts in one
    statement anyway; SQLite's round trips stay in the process.
    """
    return connection.vendor == "mysql"


@cache
def _count_part_postgresql(table: str, parts: str) -> str:
    """One statement: insert the part unless known, and only then decrement; report what happened.

    The insert needs a counter still waiting (no orphan rows for chords
    without one); the unique key arbitrates duplicates racing each other
    (the second waits for the first to commit, then does nothing). The
    counter's row lock is taken last and held only until the statement ends.
    A new part racing the one that completes the chord keeps its row without
    a decrement (told "not counted"): harmless, it goes with the counter.
    """
    qn = quoter("postgresql")
    counter, group, task, count = qn(table), qn("group_id"), qn("task_id"), qn("count")
    return (
        f"WITH part AS (INSERT INTO {qn(parts)} ({group}, {task}, {qn('counted')}) SELECT %s, %s, TRUE "
        f"WHERE EXISTS (SELECT 1 FROM {counter} WHERE {group} = %s AND {count} > 0) "
        f"ON CONFLICT ({group}, {task}) DO NOTHING RETURNING 1), "
        f"counted AS (UPDATE {counter} SET {count} = {count} - 1 "
        f"WHERE {group} = %s AND {count} > 0 AND EXISTS (SELECT 1 FROM part) RETURNING {count}) "
        f"SELECT (SELECT {count} FROM counted), EXISTS (SELECT 1 FROM {counter} WHERE {group} = %s)"
    )


@cache
def _flip_part_mysql(table: str, parts: str) -> str:
    """Mark a part row not yet counted as counted and decrement its waiting counter, in one statement.

    Both rows are locked until the statement ends; ``LAST_INSERT_ID(expr)``
    hands the new count back in the reply (``cursor.lastrowid``), with no
    second round trip. A part counted before, or a counter missing or at
    zero, matches no row.
    """
    qn = quoter("mysql")
    group, count = qn("group_id"), qn("count")
    return (
        f"UPDATE {qn(parts)} AS p JOIN {qn(table)} AS c ON c.{group} = p.{group} "
        f"SET p.{qn('counted')} = TRUE, c.{count} = LAST_INSERT_ID(c.{count} - 1) "
        f"WHERE p.{group} = %s AND p.{qn('task_id')} = %s AND NOT p.{qn('counted')} AND c.{count} > 0"
    )


@cache
def _pending_part_mysql(table: str, parts: str) -> str:
    """Write a part row not counted yet, unless it exists or its counter is not waiting (no orphans).

    IGNORE only skips the duplicate here: callers pass ids already checked against the columns.
    """
    qn = quoter("mysql")
    group, task = qn("group_id"), qn("task_id")
    return (
        f"INSERT IGNORE INTO {qn(parts)} ({group}, {task}, {qn('counted')}) "
        f"SELECT %s, %s, FALSE FROM {qn(table)} WHERE {group} = %s AND {qn('count')} > 0"
    )


def _count_part_mysql(
    connection: BaseDatabaseWrapper, table: str, parts: str, group_id: str, task_id: str
) -> PartCount:
    """The flip of :func:`_flip_part_mysql`; for a part not written ahead, its row first, then the flip.

    Each statement commits alone: a crash between the two leaves a row not
    counted, which the part's redelivery flips.
    """
    flip = _flip_part_mysql(table, parts)
    with connection.cursor() as cursor:
        cursor.execute(flip, [group_id, task_id])
        if not cursor.rowcount:
            cursor.execute(_pending_part_mysql(table, parts), [group_id, task_id, group_id])
            cursor.execute(flip, [group_id, task_id])
        if not cursor.rowcount:
            return NOT_COUNTED
        return PartCount(True, int(cursor.lastrowid) == 0, True)


def _count_part_sqlite(
    connection: BaseDatabaseWrapper, table: str, parts: str, group_id: str, task_id: str
) -> PartCount:
    """A short transaction: the part's row (a duplicate ignored), then the decrement, the counter's lock last.

    The decrement is ``count > 1``, else a second UPDATE for ``count = 1``;
    when nothing was decremented (no counter, or already at zero) it rolls
    back, so a part row always means a decrement.
    """
    from django.db import transaction

    qn = connection.ops.quote_name
    counter, group, task, count = qn(table), qn("group_id"), qn("task_id"), qn("count")
    insert = (
        f"INSERT INTO {qn(parts)} ({group}, {task}, {qn('counted')}) VALUES (%s, %s, %s) "
        f"ON CONFLICT ({group}, {task}) DO NOTHING"
    )
    decrement = f"UPDATE {counter} SET {count} = {count} - 1 WHERE {group} = %s AND {count} > 1"
    finish = f"UPDATE {counter} SET {count} = 0 WHERE {group} = %s AND {count} = 1"
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(insert, [group_id, task_id, True])
        if cursor.rowcount != 1:
            # Counted before: a part row is only ever committed with its decrement.
            return PartCount(False, False, True)
        cursor.execute(decrement, [group_id])
        if cursor.rowcount == 1:
            return PartCount(True, False, True)
        cursor.execute(finish, [group_id])
        if cursor.rowcount == 1:
            return PartCount(True, True, True)
        transaction.set_rollback(True, using=connection.alias)
    return NOT_COUNTED


def count_chord_part(
    connection: BaseDatabaseWrapper,
    table: str,
    parts: str,
    group_id: str,
    task_id: str,
) -> PartCount:
    """Record ``task_id`` as a counted part of ``group_id`` and decrement its counter, atomically, once.

    PostgreSQL: one statement (:func:`_count_part_postgresql`). MySQL/MariaDB
    have no data-modifying CTE and no ``UPDATE ... RETURNING``: one
    multi-table UPDATE flips the part's row written ahead
    (:func:`_count_part_mysql`). SQLite: a short transaction
    (:func:`_count_part_sqlite`). Columns: ``group_id``, ``task_id``,
    ``counted``, ``count``.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            params = [group_id, task_id, group_id, group_id, group_id]
            cursor.execute(_count_part_postgresql(table, parts), params)
            left, exists = cursor.fetchone()
        if left is None:
            return PartCount(False, False, bool(exists))
        return PartCount(True, int(left) == 0, True)
    if connection.vendor == "mysql":
        return _count_part_mysql(connection, table, parts, group_id, task_id)
    return _count_part_sqlite(connection, table, parts, group_id, task_id)
