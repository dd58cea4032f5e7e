"""What a second connection sees: a stored result is visible to pollers at once.

The writer and the reader are separate connections to the same database, as
a worker and a web process are. Inside one transaction, what a reader sees
depends on the isolation level: READ COMMITTED sees each new commit,
REPEATABLE READ keeps its first snapshot (why W001 exists), and SQLite's
readers hold a lock that makes writers wait.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from celery import states
from django.db import OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend
from django.test import override_settings

from django_celery_results import engines
from django_celery_results.models import TaskResult
from tests.support.routers import ResultsRouter, extra_connections_closed  # noqa: F401

TABLE = TaskResult._meta.db_table


def status_seen_by(connection: BaseDatabaseWrapper, task_id: str) -> str | None:
    """The stored status as ``connection`` sees it now (a plain query, no ORM caching)."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {qn('status')} FROM {qn(TABLE)} WHERE {qn('task_id')} = %s", [task_id])
        row = cursor.fetchone()
    return row[0] if row else None


def status_in(alias: str, task_id: str) -> str | None:
    return status_seen_by(connections[alias], task_id)


def store(alias: str, task_id: str, status: str) -> None:
    """Store a state through ``alias``'s connection (autocommit: committed on return)."""
    TaskResult.objects.store_result("application/json", "utf-8", task_id, "null", status, using=alias)


@pytest.fixture
def fresh_connection() -> Iterator[BaseDatabaseWrapper]:
    """A connection of its own to the default test database, not known to ``connections``."""
    connection = connections.create_connection("default")
    try:
        yield connection
    finally:
        connection.close()


@pytest.mark.django_db(databases=["default"], transaction=True)
def test_a_stored_result_is_visible_at_once_on_another_connection(
    backend: Any,
    fresh_connection: BaseDatabaseWrapper,
) -> None:
    assert status_seen_by(fresh_connection, "vis-1") is None
    backend.store_result("vis-1", None, states.STARTED)
    assert status_seen_by(fresh_connection, "vis-1") == states.STARTED
    backend.store_result("vis-1", 42, states.SUCCESS)
    assert status_seen_by(fresh_connection, "vis-1") == states.SUCCESS


@pytest.mark.django_db(databases=["default", "second"], transaction=True)
def test_a_poller_on_another_alias_sees_the_result_at_once(app: Any, backend: Any) -> None:
    backend.store_result("vis-2", None, states.STARTED)
    with override_settings(DATABASE_ROUTERS=[ResultsRouter(read="second", write="default")]):
        assert app.AsyncResult("vis-2").state == states.STARTED
        backend.store_result("vis-2", 42, states.SUCCESS)
        result = app.AsyncResult("vis-2")
        assert (result.state, result.result) == (states.SUCCESS, 42)


@pytest.mark.engine("mysql", "postgresql")
@pytest.mark.django_db(databases=["default", "second"], transaction=True)
def test_a_reader_in_a_transaction_sees_new_commits_at_read_committed() -> None:
    store("second", "vis-3", states.STARTED)
    assert engines.snapshot_isolation_level(connections["default"]) is None
    with transaction.atomic(using="default"):
        assert status_in("default", "vis-3") == states.STARTED
        store("second", "vis-3", states.SUCCESS)
        assert status_in("default", "vis-3") == states.SUCCESS


@pytest.mark.engine("mysql", "postgresql")
@pytest.mark.django_db(databases=["default", "second", "repeatable"], transaction=True)
def test_a_reader_in_a_transaction_is_stale_at_repeatable_read() -> None:
    store("second", "vis-4", states.STARTED)
    assert engines.snapshot_isolation_level(connections["repeatable"]) == "REPEATABLE READ"
    with transaction.atomic(using="repeatable"):
        assert status_in("repeatable", "vis-4") == states.STARTED
        store("second", "vis-4", states.SUCCESS)
        # Same transaction, same snapshot: the poller would wait forever.
        assert status_in("repeatable", "vis-4") == states.STARTED
    assert status_in("repeatable", "vis-4") == states.SUCCESS


@pytest.mark.engine("sqlite")
@pytest.mark.django_db(databases=["default"], transaction=True)
def test_sqlite_writers_wait_for_a_reader_in_a_transaction() -> None:
    """SQLite (rollback journal) has no snapshots: a reading transaction holds a shared lock.

    So a reader never sees stale results, but a worker cannot store one until
    the reader's transaction ends.
    """
    store("default", "vis-5", states.STARTED)
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict["OPTIONS"] = {**settings_dict.get("OPTIONS", {}), "timeout": 0.2}
    writer = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, "dcr_writer")
    update = f"UPDATE {TABLE} SET status = %s WHERE task_id = %s"
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            (journal_mode,) = cursor.fetchone()
        assert journal_mode.lower() != "wal"
        with transaction.atomic(using="default"):
            assert status_in("default", "vis-5") == states.STARTED
            with pytest.raises(OperationalError, match="locked"), writer.cursor() as cursor:
                cursor.execute(update, [states.SUCCESS, "vis-5"])
        with writer.cursor() as cursor:
            cursor.execute(update, [states.SUCCESS, "vis-5"])
        assert status_in("default", "vis-5") == states.SUCCESS
    finally:
        writer.close()
