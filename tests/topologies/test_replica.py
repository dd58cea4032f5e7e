"""A real hot-standby replica: a disposable primary and its streaming replica, started by the tests.

For this module ``default`` is a database on the disposable primary and
``replica`` the same database on its standby (``pg_basebackup -R``), and a
router sends the results' reads to the replica and writes to the primary,
the deployment docs/deployments.rst describes. Most tests pause the replay
(``pg_wal_replay_pause()``), so the replica lags for as long as they need:
what must read its own writes (a waiting ``get()`` woken by the primary's
notification, a chord's join, ``GroupResult.restore`` right after ``save``)
still works, and no write ever reaches the read-only standby.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import states
from celery.result import AsyncResult, GroupResult
from celery.utils import uuid as celery_uuid
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from django_celery_results import notify
from tests.support.brokers import drain
from tests.support.requests import chord_part
from tests.support.routers import ResultsRouter
from tests.support.servers import Primary, Replica, primary_and_replica

pytestmark = [
    pytest.mark.engine("postgresql"),
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
    pytest.mark.usefixtures("routed", "lagging"),
]

DATABASE = "dcr_replica"


@pytest.fixture(scope="module")
def servers(django_db_setup: Any, django_db_blocker: Any) -> Iterator[tuple[Primary, Replica]]:
    """``default`` on the disposable primary (migrated), ``replica`` on its standby, for the module."""
    default = connections["default"].settings_dict  # the very dict of settings.DATABASES
    replica_wrapper = connections["replica"]
    saved_default, saved_replica = dict(default), replica_wrapper.settings_dict
    with primary_and_replica() as (primary, replica), django_db_blocker.unblock():
        primary.create_database(DATABASE)
        connections["default"].close()
        notify.close_all()
        default.update({"HOST": "127.0.0.1", "PORT": str(primary.port), "NAME": DATABASE, "USER": "postgres"})
        replica_wrapper.close()
        # A mirror, as in the test settings: Django never flushes it (a standby refuses writes).
        replica_wrapper.settings_dict = {
            **default,
            "PORT": str(replica.port),
            "TEST": {**default.get("TEST", {}), "MIRROR": "default"},
            # A read stuck behind a lock held by paused replay fails the test instead of hanging it.
            "OPTIONS": {**default.get("OPTIONS", {}), "options": "-c statement_timeout=20000"},
        }
        try:
            call_command("migrate", database="default", verbosity=0)
            replica.wait_for_replay()
            yield primary, replica
        finally:
            connections["default"].close()
            replica_wrapper.close()
            notify.close_all()
            default.clear()
            default.update(saved_default)
            replica_wrapper.settings_dict = saved_replica


@pytest.fixture
def routed(servers: Any) -> Iterator[None]:
    with override_settings(DATABASE_ROUTERS=[ResultsRouter(read="replica", write="default")]):
        yield


@pytest.fixture
def lagging(servers: tuple[Primary, Replica]) -> Iterator[Replica]:
    """The replica stops replaying for the test: nothing written meanwhile is visible there."""
    replica = servers[1]
    # Caught up first: replay paused inside the previous test's flush (TRUNCATE) would keep
    # its lock on the standby, and this test's reads there would wait for it forever.
    replica.wait_for_replay()
    replica.pause_replay()
    try:
        yield replica
    finally:
        replica.resume_replay()


def on_primary(model: Any) -> Any:
    return model._base_manager.using("default")


def test_this_is_a_real_standby_that_lags_while_paused(app: Any, lagging: Replica) -> None:
    from django_celery_results.models import TaskResult

    app.backend.mark_as_done("while-paused", 1)

    with connections["replica"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone()[0] is True
    assert app.backend.get_task_meta("while-paused", cache=False)["status"] == states.PENDING  # not there yet
    lagging.resume_replay()
    lagging.wait_for_replay()
    assert app.backend.get_task_meta("while-paused", cache=False)["status"] == states.SUCCESS
    assert TaskResult.objects.using("replica").get(task_id="while-paused").status == states.SUCCESS


def test_a_waiting_get_returns_at_once_although_the_replica_lags(app: Any) -> None:
    result = AsyncResult(celery_uuid(), app=app)
    stored = threading.Event()

    def store_soon() -> None:
        try:
            time.sleep(0.5)
            app.backend.mark_as_done(result.id, 42)
            stored.set()
        finally:
            connections.close_all()

    writer = threading.Thread(target=store_soon)
    writer.start()
    started = time.monotonic()
    assert result.get(timeout=10) == 42
    waited = time.monotonic() - started
    writer.join()
    assert stored.is_set()
    assert waited < 1.5, waited  # woken by the primary's notification, read from the primary


def test_a_result_stored_before_the_wait_is_read_at_once(app: Any) -> None:
    app.backend.mark_as_done("stored-before", "early")

    started = time.monotonic()
    assert AsyncResult("stored-before", app=app).get(timeout=10) == "early"
    assert time.monotonic() - started < 1.5


def test_restore_right_after_save_finds_the_group(app: Any) -> None:
    members = [AsyncResult(celery_uuid(), app=app) for _ in range(3)]
    for member in members:
        app.backend.mark_as_done(member.id, member.id[:4])
    group = GroupResult(celery_uuid(), members, app=app)
    group.save(backend=app.backend)

    restored = GroupResult.restore(group.id, backend=app.backend, app=app)
    assert [r.id for r in restored.results] == [m.id for m in members]
    assert restored.join_native(timeout=10) == [m.id[:4] for m in members]
    group.delete(backend=app.backend)
    assert GroupResult.restore(group.id, backend=app.backend, app=app) is None


def test_a_chord_never_loses_its_callback_to_lag(app: Any) -> None:

    from django_celery_results.models import ChordCounter

    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    group_id = celery_uuid()
    parts = [AsyncResult(celery_uuid(), app=app) for _ in range(3)]
    app.backend.apply_chord((group_id, parts), callback)
    for index, part in enumerate(parts):
        request = chord_part(part.id, group_id, callback)
        app.backend.mark_as_done(part.id, index, request=request)

    messages = drain(app.connection_for_read())
    assert [m.decode()[0] for m in messages] == [[[0, 1, 2]]]
    assert on_primary(ChordCounter).get(group_id=group_id).count == 0


def test_writes_cleanup_and_forget_go_to_the_primary(celery_app_factory: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from django_celery_results.models import TaskResult

    backend = celery_app_factory(result_expires=timedelta(hours=1)).backend
    for task_id in ("old", "forgotten", "kept"):
        backend.mark_as_done(task_id, 1)
    on_primary(TaskResult).filter(task_id="old").update(date_done=timezone.now() - timedelta(days=2))

    backend.cleanup()  # would fail with "cannot execute DELETE in a read-only transaction" on the standby
    backend.forget("forgotten")

    assert sorted(on_primary(TaskResult).values_list("task_id", flat=True)) == ["kept"]


def test_w008_when_results_are_written_to_the_standby() -> None:
    from django_celery_results.checks import check_results_databases

    def w008(router: ResultsRouter) -> list[str]:
        with override_settings(DATABASE_ROUTERS=[router]):
            issues = check_results_databases(databases=["default", "replica"])
        return [issue.obj for issue in issues if issue.id == "django_celery_results.W008"]

    assert w008(ResultsRouter(read="replica", write="default")) == []  # this module's router: fine
    assert w008(ResultsRouter(read="replica", write="default", counters="replica")) == ["replica"]
    assert w008(ResultsRouter(read="replica", write="replica")) == ["replica"]
