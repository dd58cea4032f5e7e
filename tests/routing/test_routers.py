"""Multiple databases: every read and write of results follows Django's routers.

Two setups: reads sent to a read ``replica`` (a read-only session on the same
database, so a write through it fails on every engine), and results kept in
a database of their own (``other``). Queries are captured per alias.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any

import pytest
from celery import states
from celery.app.task import Context
from celery.result import AsyncResult
from celery.result import GroupResult as CeleryGroupResult
from django.db import connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_celery_results.backends import database as database_backend
from django_celery_results.models import ChordCounter, GroupResult, TaskResult
from django_celery_results.utils import now
from tests.settings import ENGINE
from tests.support.requests import task_request
from tests.support.routers import ResultsRouter, extra_connections_closed  # noqa: F401

#: A statement that changes rows, also as PostgreSQL's ``WITH written AS (INSERT ...) SELECT ...``.
WRITE = re.compile(r"^\s*(?:WITH\s+\w+\s+AS\s*\(\s*)?(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def statements(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries]


def writes(captured: CaptureQueriesContext) -> list[str]:
    return [sql for sql in statements(captured) if WRITE.match(sql)]


@contextmanager
def capture(*aliases: str) -> Iterator[dict[str, CaptureQueriesContext]]:
    """Capture the queries each alias runs (connections opened first, so no setup noise)."""
    with ExitStack() as stack:
        yield {alias: stack.enter_context(CaptureQueriesContext(connections[alias])) for alias in aliases}


@contextmanager
def routed(**kwargs: Any) -> Iterator[None]:
    with override_settings(DATABASE_ROUTERS=[ResultsRouter(**kwargs)]):
        yield


@pytest.fixture
def fired(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Chord callbacks the backend sent: (header id, part ids), instead of sending them."""
    calls: list[tuple[str, list[str]]] = []

    def record(app: Any, callback: Any, counter: ChordCounter) -> None:
        header = counter.group_result(app=app)
        calls.append((header.id, [r.id for r in header.results]))

    monkeypatch.setattr(database_backend, "fire_callback", record)
    return calls


@pytest.fixture
def atomic_aliases(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The ``using`` of every ``transaction.atomic()`` opened while the test runs."""
    seen: list[str | None] = []
    original = transaction.atomic

    def spy(using: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(using if isinstance(using, str) or using is None else "<decorated>")
        return original(using, *args, **kwargs)

    monkeypatch.setattr(transaction, "atomic", spy)
    return seen


def request(task_id: str, **fields: Any) -> Context:
    return task_request(task_id, **fields)


def operations(app: Any, backend: Any, tag: str) -> list[tuple[str, str, Callable[[], Any]]]:
    """(name, "read"/"write", call) for the whole backend and manager contract."""
    task_id, group_id, chord_id = f"{tag}-task", f"{tag}-group", f"{tag}-chord"
    parts = [AsyncResult(f"{chord_id}-{i}", app=app) for i in range(2)]
    extra = AsyncResult(f"{chord_id}-extra", app=app)
    header = CeleryGroupResult(chord_id, parts, app=app)
    body = app.signature("tests.callback")

    def part_returns() -> None:
        for part in [*parts, extra]:
            backend.store_result(part.id, 1, states.SUCCESS, request=request(part.id))
            backend.on_chord_part_return(request(part.id, group=chord_id, chord=body), states.SUCCESS, 1)

    return [
        (
            "store STARTED",
            "write",
            lambda: backend.store_result(task_id, {"pid": 1}, states.STARTED, request=request(task_id)),
        ),
        (
            "store SUCCESS",
            "write",
            lambda: backend.store_result(task_id, 42, states.SUCCESS, request=request(task_id)),
        ),
        ("get_task_meta", "read", lambda: backend.get_task_meta(task_id, cache=False)),
        ("TaskResult.objects.get_task", "read", lambda: TaskResult.objects.get_task(task_id)),
        (
            "TaskResult.objects.store_result",
            "write",
            lambda: TaskResult.objects.store_result(
                "application/json", "utf-8", f"{task_id}-2", "1", states.SUCCESS
            ),
        ),
        (
            "save_group",
            "write",
            lambda: backend.save_group(
                group_id, CeleryGroupResult(group_id, [AsyncResult(task_id, app=app)], app=app)
            ),
        ),
        ("restore_group", "read", lambda: backend.restore_group(group_id, cache=False)),
        ("GroupResult.objects.get_group", "read", lambda: GroupResult.objects.get_group(group_id)),
        ("delete_group", "write", lambda: backend.delete_group(group_id)),
        ("forget", "write", lambda: backend.forget(task_id)),
        ("apply_chord", "write", lambda: backend.apply_chord(header, body)),
        ("set_chord_size", "write", lambda: backend.set_chord_size(chord_id, 2)),
        ("add_to_chord", "write", lambda: backend.add_to_chord(chord_id, extra)),
        ("on_chord_part_return", "write", part_returns),
        ("cleanup", "write", backend.cleanup),
    ]


# -- reads from a read replica ------------------------------------------------------------


@pytest.mark.django_db(databases=["default", "replica"], transaction=True)
def test_reads_go_to_the_replica_and_writes_to_the_primary(
    app: Any,
    backend: Any,
    fired: list[Any],
) -> None:
    with routed(read="replica", write="default"):
        for name, kind, call in operations(app, backend, "rep"):
            with capture("default", "replica") as queries:
                call()
            if kind == "read":
                assert statements(queries["default"]) == [], name
                assert statements(queries["replica"]), name
            else:
                assert writes(queries["default"]), name
                assert writes(queries["replica"]) == [], name
            if name == "cleanup":
                # Deleting from a replica is wrong even when a replica would let us.
                assert statements(queries["replica"]) == [], name
    assert fired == [("rep-chord", ["rep-chord-0", "rep-chord-1", "rep-chord-extra"])]
    assert backend.get_task_meta("rep-task-2", cache=False)["status"] == states.SUCCESS


@pytest.mark.django_db(databases=["default", "replica"], transaction=True)
def test_the_replica_alias_refuses_writes(backend: Any) -> None:
    """The setup's premise: any write routed to the replica would fail."""
    with routed(read="replica", write="replica"), pytest.raises(Exception) as raised:
        backend.store_result("through-replica", 1, states.SUCCESS)
    message = str(raised.value).lower()
    assert any(word in message for word in ("read-only", "read only", "readonly")), message


@pytest.mark.django_db(databases=["default", "replica"], transaction=True)
def test_cleanup_deletes_on_the_primary_only(app: Any, backend: Any) -> None:
    backend.store_result("old", 1, states.SUCCESS)
    TaskResult.objects.filter(task_id="old").update(date_done=now() - timedelta(days=30))
    with routed(read="replica", write="default"), capture("replica") as queries:
        backend.cleanup()
    assert statements(queries["replica"]) == []
    assert not TaskResult.objects.filter(task_id="old").exists()


# -- results in a database of their own ---------------------------------------------------


@pytest.mark.django_db(databases=["default", "other"], transaction=True)
def test_results_in_another_database_never_touch_default(
    app: Any,
    backend: Any,
    fired: list[Any],
    atomic_aliases: list[str | None],
) -> None:
    # A decoy on "default" with the same task id: reading it would be a routing bug.
    TaskResult.objects.store_result(
        "application/json",
        "utf-8",
        "oth-task",
        '"decoy"',
        states.SUCCESS,
        using="default",
    )
    with routed(read="other", write="other"), capture("default") as queries:
        for name, _, call in operations(app, backend, "oth"):
            if name == "forget":
                assert backend.get_task_meta("oth-task", cache=False)["result"] == 42
            call()
    assert statements(queries["default"]) == []
    assert set(atomic_aliases) <= {"other"}, atomic_aliases
    assert fired == [("oth-chord", ["oth-chord-0", "oth-chord-1", "oth-chord-extra"])]
    assert list(TaskResult.objects.using("default").values_list("task_id", "result")) == [
        ("oth-task", '"decoy"'),
    ]
    assert TaskResult.objects.using("other").filter(task_id="oth-task-2").exists()


@pytest.mark.django_db(databases=["default", "other"], transaction=True)
def test_cleanup_in_another_database(app: Any, backend: Any, atomic_aliases: list[str | None]) -> None:
    old = now() - timedelta(days=30)
    for alias in ("default", "other"):
        TaskResult.objects.store_result("application/json", "utf-8", "old", "1", states.SUCCESS, using=alias)
        TaskResult.objects.using(alias).update(date_done=old)
        GroupResult.objects.store_group_result("application/json", "utf-8", "old-group", "[]", using=alias)
        GroupResult.objects.using(alias).update(date_done=old)
    atomic_aliases.clear()
    with routed(read="other", write="other"):
        backend.cleanup()
    assert atomic_aliases and set(atomic_aliases) == {"other"}
    assert not TaskResult.objects.using("other").exists()
    assert not GroupResult.objects.using("other").exists()
    assert TaskResult.objects.using("default").count() == 1
    assert GroupResult.objects.using("default").count() == 1


@pytest.mark.django_db(databases=["default", "other"], transaction=True)
def test_chord_transactions_run_on_the_counters_alias(
    app: Any,
    backend: Any,
    fired: list[Any],
    atomic_aliases: list[str | None],
) -> None:
    parts = [AsyncResult(f"c-{i}", app=app) for i in range(3)]
    body = app.signature("tests.callback")
    with routed(counters="other"), capture("default") as queries:
        backend.apply_chord(CeleryGroupResult("c", parts, app=app), body)
        backend.set_chord_size("c", 3)
        backend.add_to_chord("c", AsyncResult("c-extra", app=app))
        for part in [*parts, AsyncResult("c-extra", app=app)]:
            backend.on_chord_part_return(request(part.id, group="c", chord=body), states.SUCCESS, 1)
    assert [sql for sql in statements(queries["default"]) if "chordcounter" in sql] == []
    assert set(atomic_aliases) <= {"other"}, atomic_aliases
    assert fired == [("c", ["c-0", "c-1", "c-2", "c-extra"])]
    assert not ChordCounter.objects.using("default").exists()


# -- resetting connections before a retry -----------------------------------------------


def opened(alias: str) -> bool:
    return connections[alias].connection is not None


@pytest.mark.django_db(databases=["default", "other", "second"], transaction=True)
def test_retryable_error_resets_only_the_routed_connections(backend: Any) -> None:
    for alias in ("default", "other", "second"):
        connections[alias].ensure_connection()
    with routed(read="other", write="other"):
        backend.on_backend_retryable_error(RuntimeError("lost"))
    assert (opened("default"), opened("other"), opened("second")) == (True, False, True)


@pytest.mark.django_db(databases=["default", "replica", "second"], transaction=True)
def test_retryable_error_resets_the_replica_and_the_primary(backend: Any) -> None:
    for alias in ("default", "replica", "second"):
        connections[alias].ensure_connection()
    with routed(read="replica", write="default"):
        backend.on_backend_retryable_error(RuntimeError("lost"))
    assert (opened("default"), opened("replica"), opened("second")) == (False, False, True)


def kill_session(alias: str) -> None:
    """Make the server drop ``alias``'s session, as a failover or an admin would."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()" if ENGINE == "postgresql" else "SELECT CONNECTION_ID()")
        (session,) = cursor.fetchone()
    with connections["default"].cursor() as cursor:
        if ENGINE == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [session])
        else:
            cursor.execute(f"KILL {int(session)}")


@pytest.mark.engine("postgresql", "mysql")
@pytest.mark.django_db(databases=["default", "other"], transaction=True)
def test_store_survives_a_dropped_connection(celery_app_factory: Any) -> None:
    app = celery_app_factory(
        result_backend_always_retry=True,
        result_backend_max_retries=3,
        result_backend_base_sleep_between_retries_ms=1,
    )
    with routed(read="other", write="other"):
        app.backend.store_result("before", 1, states.SUCCESS)
        kill_session("other")
        app.backend.store_result("after", 2, states.SUCCESS)
        assert app.backend.get_task_meta("after", cache=False)["result"] == 2
    assert set(TaskResult.objects.using("other").values_list("task_id", flat=True)) == {"before", "after"}


# -- chords follow the write alias ------------------------------------------------------


@pytest.mark.django_db(databases=["default", "other"], transaction=True)
def test_chord_completes_when_the_replica_lags(app: Any, backend: Any, fired: list[Any]) -> None:
    # "other" plays a replica that has not caught up yet: it never receives the writes.
    parts = [AsyncResult(f"lag-{i}", app=app) for i in range(2)]
    body = app.signature("tests.callback")
    with routed(read="other", write="default"):
        backend.apply_chord(CeleryGroupResult("lag", parts, app=app), body)
        for part in parts:
            backend.on_chord_part_return(request(part.id, group="lag", chord=body), states.SUCCESS, 1)
    assert fired == [("lag", ["lag-0", "lag-1"])]
