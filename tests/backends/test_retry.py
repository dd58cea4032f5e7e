"""Transient errors: the predicate, and a real lost connection retried by Celery."""

from __future__ import annotations

from typing import Any

import pytest
from celery import states
from django.db import DatabaseError, DataError, IntegrityError, OperationalError, connection, connections

from django_celery_results.models import TaskResult

pytestmark = pytest.mark.django_db(transaction=True)


def _wrapped(cause: Exception, wrapper: type[Exception] = OperationalError) -> Exception:
    error = wrapper(str(cause))
    error.__cause__ = cause
    return error


def _driver_errors() -> tuple[list[Exception], list[Exception]]:
    """(transient, permanent) errors as each installed driver raises them."""
    import importlib.util

    transient: list[Exception] = []
    permanent: list[Exception] = [
        DataError("value too long"),
        IntegrityError("duplicate key"),
        ValueError("not a database error"),
    ]
    if importlib.util.find_spec("psycopg"):
        import psycopg

        transient += [
            _wrapped(e)
            for e in (
                psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
                psycopg.errors.SerializationFailure("could not serialize access"),
                psycopg.errors.DeadlockDetected("deadlock detected"),
                psycopg.OperationalError("server closed the connection unexpectedly"),
            )
        ]
        permanent += [
            _wrapped(psycopg.errors.StringDataRightTruncation("too long"), DataError),
            _wrapped(psycopg.errors.UniqueViolation("duplicate"), IntegrityError),
        ]
    if importlib.util.find_spec("psycopg2"):
        import psycopg2

        transient += [
            _wrapped(psycopg2.OperationalError("server closed the connection unexpectedly")),
            _wrapped(psycopg2.InterfaceError("connection already closed")),
        ]
    if importlib.util.find_spec("MySQLdb"):
        import MySQLdb

        transient += [_wrapped(MySQLdb.OperationalError(code, "lost")) for code in (2006, 2013, 1213, 4031)]
        permanent += [
            _wrapped(MySQLdb.DataError(1406, "Data too long for column"), DataError),
            _wrapped(MySQLdb.IntegrityError(1062, "Duplicate entry"), IntegrityError),
            _wrapped(MySQLdb.OperationalError(1054, "Unknown column")),
        ]
    import sqlite3

    transient.append(_wrapped(sqlite3.OperationalError("database is locked")))
    permanent.append(_wrapped(sqlite3.OperationalError("no such table: x")))
    return transient, permanent


def test_exception_safe_to_retry_is_a_pure_predicate(backend: Any) -> None:
    transient, permanent = _driver_errors()
    for error in transient:
        assert backend.exception_safe_to_retry(error), repr(error.__cause__)
    for error in permanent:
        assert not backend.exception_safe_to_retry(error), repr(error)
    # Asking does nothing to the connection.
    connection.ensure_connection()
    before = connection.connection
    backend.exception_safe_to_retry(transient[0])
    assert connection.connection is before


def _kill_own_connection() -> None:
    """End this process's database session from another session, as a server restart would."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        else:
            cursor.execute("SELECT CONNECTION_ID()")
        session = cursor.fetchone()[0]
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [session])
            else:
                cursor.execute(f"KILL {int(session)}")
    finally:
        killer.close()


@pytest.mark.engine("postgresql", "mysql")
def test_lost_connection_is_retried_with_always_retry(celery_app_factory: Any) -> None:
    app = celery_app_factory(
        result_backend_always_retry=True,
        result_backend_max_retries=3,
        result_backend_base_sleep_between_retries_ms=1,
    )
    _kill_own_connection()
    app.backend.store_result("after-kill", 1, states.SUCCESS)
    assert TaskResult.objects.get(task_id="after-kill").status == states.SUCCESS

    _kill_own_connection()
    assert app.backend.get_task_meta("after-kill", cache=False)["result"] == 1


@pytest.mark.engine("postgresql", "mysql")
def test_a_lost_idle_connection_is_replaced_without_always_retry(celery_app_factory: Any) -> None:
    """A session the server ended while idle costs one reconnection, not the state."""
    app = celery_app_factory(result_backend_always_retry=False)
    _kill_own_connection()
    app.backend.store_result("lost", 1, states.SUCCESS)
    assert TaskResult.objects.get(task_id="lost").status == states.SUCCESS

    _kill_own_connection()
    assert app.backend.get_task_meta("lost", cache=False)["result"] == 1


@pytest.mark.engine("postgresql", "mysql")
def test_a_lost_connection_inside_a_transaction_is_reported(celery_app_factory: Any) -> None:
    """Reconnecting inside the caller's transaction would lose its earlier writes: the error is raised."""
    from django.db import transaction

    app = celery_app_factory(result_backend_always_retry=False)
    with pytest.raises(DatabaseError), transaction.atomic():
        _kill_own_connection()
        app.backend.store_result("lost-in-transaction", 1, states.SUCCESS)
    connection.close()
    assert not TaskResult.objects.filter(task_id="lost-in-transaction").exists()


@pytest.mark.engine("postgresql", "mysql")
@pytest.mark.parametrize("celery_calls_hook", [True, False], ids=["celery>=5.7", "celery<5.7"])
def test_broken_connection_is_reset_whatever_the_celery_version(
    celery_app_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    celery_calls_hook: bool,
) -> None:
    """Celery < 5.7 has no retry hook: the backend then resets the connection itself.

    The error is made to look like any transient one (not a lost session, which
    the backend replaces at once), so the first attempt fails as in Celery's retry loop.
    """
    from django_celery_results import engines
    from django_celery_results.backends import database

    monkeypatch.setattr(database, "CELERY_CALLS_RETRY_HOOK", celery_calls_hook)
    monkeypatch.setattr(engines, "is_lost_connection", lambda exc: False)
    backend = celery_app_factory().backend
    _kill_own_connection()
    with pytest.raises(DatabaseError):
        backend._store_result("reset-1", 1, states.SUCCESS)  # a retry loop's first attempt
    if celery_calls_hook:
        backend.on_backend_retryable_error(DatabaseError())  # what Celery >= 5.7 does next
    backend._store_result("reset-1", 1, states.SUCCESS)  # the retry
    assert TaskResult.objects.get(task_id="reset-1").status == states.SUCCESS
