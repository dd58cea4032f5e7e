"""Seeing another session wait on a row lock, to order a race step by step."""

from __future__ import annotations

import time

from django.db import connection

#: Sessions of this database waiting on a lock, per server engine. PostgreSQL
#: keeps its statistics views fixed for a transaction: each read clears the
#: snapshot it took, so the next read inside the same transaction is fresh.
_WAITERS = {
    "postgresql": (
        "SELECT pg_stat_clear_snapshot(), COUNT(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ),
    "mysql": "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'",
}

#: MySQL refreshes INNODB_TRX only when it was not read for 0.1 s: poll more slowly than that.
POLL_INTERVAL = 0.15

#: SQLite shows no other session's wait: a writer blocked on the database lock is given this long.
SQLITE_GRACE = 1.5


def wait_for_a_lock_waiter(timeout: float = 60) -> None:
    """Return once another session waits on a lock (one this session holds, in the race tests)."""
    query = _WAITERS.get(connection.vendor)
    if query is None:
        time.sleep(SQLITE_GRACE)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(query)
            if cursor.fetchone()[-1]:  # the count is the last column
                return
        time.sleep(POLL_INTERVAL)
    raise AssertionError(f"no session waited on a lock within {timeout:.0f}s")
