"""What the topology tests look at: stored rows as they change, and the server's open sessions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.db import connections


def row_when(task_id: str, ready: Callable[[Any], bool], timeout: float = 30, using: str = "default") -> Any:
    """The task's row once ``ready(row)`` holds; ``AssertionError`` with the last row seen otherwise."""
    from django_celery_results.models import TaskResult

    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = TaskResult.objects.using(using).filter(task_id=task_id).first()
        if row is not None and ready(row):
            return row
        time.sleep(0.05)
    shown = None if row is None else (row.status, row.task_name, row.worker, row.result)
    raise AssertionError(f"task {task_id}: no matching row after {timeout:.0f}s (last seen: {shown})")


def row_in(task_id: str, *statuses: str, timeout: float = 30, using: str = "default") -> Any:
    """The task's row once its status is one of ``statuses``."""
    return row_when(task_id, lambda row: row.status in statuses, timeout, using)


def other_sessions(alias: str = "default") -> list[Any]:
    """Sessions on the alias's database other than this connection's (``[]`` on SQLite: no server).

    Used to show that a worker leaves no connection behind, and to end the
    worker's sessions from outside as a server or a pooler would.
    """
    connection = connections[alias]
    if connection.vendor == "sqlite":
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
        else:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
                "AND id <> CONNECTION_ID() AND command <> 'Daemon'"
            )
        return [session for (session,) in cursor.fetchall()]


def sessions_left(before: set[Any], alias: str = "default", timeout: float = 10) -> set[Any]:
    """Sessions opened since ``before`` was taken that are still open (a closed one takes a moment to go)."""
    deadline = time.monotonic() + timeout
    left = set(other_sessions(alias)) - before
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = set(other_sessions(alias)) - before
    return left
