"""Counting chord parts: one row per counted part and the decrement, atomically, once."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper

from .sql import quoter


@dataclass(frozen=True)
class PartCount:
    """What counting one chord part did: decremented (and whether to zero), or not, and why if known."""

    counted: bool  # the part was new and the counter went down by one
    last: bool  # ... and it reached zero: this caller sends the callback
    counter_exists: bool | None  # when not counted: whether the counter exists (None: not asked)


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
        f"WITH part AS (INSERT INTO {qn(parts)} ({group}, {task}) SELECT %s, %s "
        f"WHERE EXISTS (SELECT 1 FROM {counter} WHERE {group} = %s AND {count} > 0) "
        f"ON CONFLICT ({group}, {task}) DO NOTHING RETURNING 1), "
        f"counted AS (UPDATE {counter} SET {count} = {count} - 1 "
        f"WHERE {group} = %s AND {count} > 0 AND EXISTS (SELECT 1 FROM part) RETURNING {count}) "
        f"SELECT (SELECT {count} FROM counted), EXISTS (SELECT 1 FROM {counter} WHERE {group} = %s)"
    )


def count_chord_part(
    connection: BaseDatabaseWrapper,
    table: str,
    parts: str,
    group_id: str,
    task_id: str,
) -> PartCount:
    """Record ``task_id`` as a counted part of ``group_id`` and decrement its counter, atomically, once.

    PostgreSQL: one statement (:func:`_count_part_postgresql`). SQLite and
    MySQL/MariaDB have no data-modifying CTE (and MariaDB no ``UPDATE ...
    RETURNING``): a short transaction inserts the part ignoring a duplicate,
    then decrements (``count > 1``, else a second UPDATE for ``count = 1``),
    the counter's lock last, just before the commit; when nothing was
    decremented (no counter, or already at zero) it rolls back, so a part
    row always means a decrement. Columns: ``group_id``, ``task_id``, ``count``.
    """
    from django.db import transaction

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            params = [group_id, task_id, group_id, group_id, group_id]
            cursor.execute(_count_part_postgresql(table, parts), params)
            left, exists = cursor.fetchone()
        if left is None:
            return PartCount(False, False, bool(exists))
        return PartCount(True, int(left) == 0, True)
    qn = connection.ops.quote_name
    counter, group, task, count = qn(table), qn("group_id"), qn("task_id"), qn("count")
    if connection.vendor == "mysql":
        # IGNORE only skips the duplicate here: callers pass ids already checked against the columns.
        insert = f"INSERT IGNORE INTO {qn(parts)} ({group}, {task}) VALUES (%s, %s)"
    else:
        insert = (
            f"INSERT INTO {qn(parts)} ({group}, {task}) VALUES (%s, %s) "
            f"ON CONFLICT ({group}, {task}) DO NOTHING"
        )
    decrement = f"UPDATE {counter} SET {count} = {count} - 1 WHERE {group} = %s AND {count} > 1"
    finish = f"UPDATE {counter} SET {count} = 0 WHERE {group} = %s AND {count} = 1"
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(insert, [group_id, task_id])
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
    return PartCount(False, False, None)
