"""An alias the caller names (``db_manager()``, ``using()``, ``using=``) always wins over the routers.

The tests that prove it name only the ``other`` alias in ``databases``:
Django then refuses every query, and every threaded connection, on any other
alias, and :func:`executed` records the alias of every statement run in any
thread (the writes committed beside a transaction run in one of their own),
so a single stray query fails the test. They run with no router (Django
sends everything to ``default``) and with a router that sends reads, writes
and chord counters to three more aliases, none of them ``other``.

Without an explicit alias the routers still decide: see the last tests, and
tests/routing/test_routers.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from celery import states
from django.conf import settings
from django.db import connections, transaction
from django.db.backends.utils import CursorWrapper
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_celery_results.cleanup import CHORDS, GROUPS, KINDS, TASKS, Cleanup, delete_expired_results
from django_celery_results.managers import (
    ChordCounterManager,
    GroupResultManager,
    PartOutcome,
    TaskResultManager,
)
from django_celery_results.models import ChordCounter, GroupResult, TaskResult
from django_celery_results.utils import now
from tests.support.routers import ResultsRouter, extra_connections_closed  # noqa: F401

#: The alias every test names; the only one the explicit-alias tests may touch.
ALIAS = "other"
JSON = "application/json"
OLD = timedelta(days=3)

only_other = pytest.mark.django_db(transaction=True, databases=[ALIAS])

#: Routers for the explicit-alias tests: whichever decides, it never picks ``other``.
ROUTERS = {
    "no-router": None,
    "routed-elsewhere": ResultsRouter(read="replica", write="second", counters="lax"),
}


@pytest.fixture(params=list(ROUTERS), ids=list(ROUTERS))
def router_elsewhere(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run the test under each of :data:`ROUTERS`."""
    chosen = ROUTERS[request.param]
    with override_settings(DATABASE_ROUTERS=[chosen]) if chosen else nullcontext():
        yield


@contextmanager
def executed() -> Iterator[list[str]]:
    """The alias of every statement executed, in any thread, while the block runs."""
    seen: list[str] = []
    execute, executemany = CursorWrapper.execute, CursorWrapper.executemany

    def spy_execute(self: CursorWrapper, sql: Any, params: Any = None) -> Any:
        seen.append(self.db.alias)
        return execute(self, sql, params)

    def spy_executemany(self: CursorWrapper, sql: Any, param_list: Any) -> Any:
        seen.append(self.db.alias)
        return executemany(self, sql, param_list)

    CursorWrapper.execute = spy_execute  # type: ignore[method-assign]
    CursorWrapper.executemany = spy_executemany  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        CursorWrapper.execute = execute  # type: ignore[method-assign]
        CursorWrapper.executemany = executemany  # type: ignore[method-assign]


@contextmanager
def only_on_alias() -> Iterator[None]:
    """Fail unless the block ran queries, and all of them on :data:`ALIAS`."""
    with executed() as seen:
        yield
    assert seen, "the block ran no query at all"
    assert set(seen) == {ALIAS}, sorted(set(seen))


def task_values(task_id: str, status: str = states.SUCCESS, result: str = "1") -> dict[str, Any]:
    """The columns ``upsert``/``insert_if_absent`` take, as the backend passes them."""
    return {
        "task_id": task_id,
        "status": status,
        "content_type": JSON,
        "content_encoding": "utf-8",
        "result": result,
        "traceback": None,
        "meta": None,
        "periodic_task_name": None,
        "task_name": "tests.add",
        "task_args": None,
        "task_kwargs": None,
        "worker": None,
        "date_started": None,
    }


def tag() -> str:
    """A fresh id prefix, so rows of one example or call never meet another's."""
    return uuid.uuid4().hex[:12]


def on_alias_tasks() -> set[str]:
    return set(TaskResult.objects.using(ALIAS).values_list("task_id", flat=True))


def on_alias_groups() -> set[str]:
    return set(GroupResult.objects.using(ALIAS).values_list("group_id", flat=True))


def seed_tasks(*ids: str) -> None:
    """Task results on :data:`ALIAS`, written without the manager method under test."""
    for task_id in ids:
        TaskResult.objects.using(ALIAS).create(
            task_id=task_id,
            status=states.SUCCESS,
            content_type=JSON,
            content_encoding="utf-8",
            result="1",
        )


def seed_groups(*ids: str) -> None:
    for group_id in ids:
        GroupResult.objects.using(ALIAS).create(
            group_id=group_id,
            content_type=JSON,
            content_encoding="utf-8",
            result="[]",
        )


def seed_counter(group_id: str, count: int, sub_tasks: str = "[]") -> None:
    ChordCounter.objects.using(ALIAS).create(group_id=group_id, sub_tasks=sub_tasks, count=count)


def age(model: type[Any], field: str, ids: list[str], by: timedelta = OLD) -> None:
    """Move the date of ``ids``' rows on :data:`ALIAS` back by ``by``."""
    key = "task_id" if model is TaskResult else "group_id"
    model._base_manager.using(ALIAS).filter(**{f"{key}__in": ids}).update(**{field: now() - by})


@dataclass(frozen=True)
class Bound:
    """The three managers, each bound with ``db_manager(ALIAS)``."""

    tasks: TaskResultManager
    groups: GroupResultManager
    counters: ChordCounterManager


def bound() -> Bound:
    return Bound(
        TaskResult.objects.db_manager(ALIAS),
        GroupResult.objects.db_manager(ALIAS),
        ChordCounter.objects.db_manager(ALIAS),
    )


# -- one check per method, through db_manager(ALIAS) -----------------------------------------


def op_store_result(b: Bound, t: str) -> None:
    b.tasks.store_result(JSON, "utf-8", t, None, states.STARTED)
    row = b.tasks.store_result(JSON, "utf-8", t, "42", states.SUCCESS, task_name="tests.add")
    assert (row.pk is not None, row.status, row.result) == (True, states.SUCCESS, "42")
    assert on_alias_tasks() == {t}


def op_get_task(b: Bound, t: str) -> None:
    seed_tasks(t)
    assert b.tasks.get_task(t).result == "1"
    missing = b.tasks.get_task(f"{t}-missing")
    assert (missing.pk, missing.status) == (None, states.PENDING)


def op_upsert(b: Bound, t: str) -> None:
    b.tasks.upsert(task_values(t, states.STARTED, "null"))
    b.tasks.upsert(task_values(t, states.SUCCESS, "5"))
    assert TaskResult.objects.using(ALIAS).get(task_id=t).status == states.SUCCESS


def op_insert_if_absent(b: Bound, t: str) -> None:
    b.tasks.insert_if_absent(task_values(t, states.PENDING, "null"))
    b.tasks.insert_if_absent(task_values(t, states.SUCCESS))  # never overwrites
    assert TaskResult.objects.using(ALIAS).get(task_id=t).status == states.PENDING


def op_delete_task(b: Bound, t: str) -> None:
    seed_tasks(t)
    b.tasks.delete_task(t)
    b.tasks.delete_task(t)  # a missing row is not an error
    assert on_alias_tasks() == set()


def op_get_all_expired(b: Bound, t: str) -> None:
    seed_tasks(f"{t}-old", f"{t}-new")
    age(TaskResult, "date_done", [f"{t}-old"])
    expired = b.tasks.get_all_expired(timedelta(days=1))
    assert expired.db == ALIAS
    assert list(expired.values_list("task_id", flat=True)) == [f"{t}-old"]


def op_delete_expired(b: Bound, t: str) -> None:
    ids = [f"{t}-{n}" for n in range(5)]
    seed_tasks(*ids)
    age(TaskResult, "date_done", ids[:3])
    assert b.tasks.delete_expired(timedelta(days=1), batch_size=2) == 3
    assert on_alias_tasks() == set(ids[3:])


def op_store_group_result(b: Bound, t: str) -> None:
    saved = b.groups.store_group_result(JSON, "utf-8", t, "[]")
    b.groups.store_group_result(JSON, "utf-8", t, '["x"]')  # replaces
    assert saved.group_id == t
    assert GroupResult.objects.using(ALIAS).get(group_id=t).result == '["x"]'


def op_get_group(b: Bound, t: str) -> None:
    seed_groups(t)
    found = b.groups.get_group(t)
    assert found is not None and found.result == "[]"
    assert b.groups.get_group(f"{t}-missing") is None


def op_delete_group(b: Bound, t: str) -> None:
    seed_groups(t)
    b.groups.delete_group(t)
    b.groups.delete_group(t)  # a missing group is not an error
    assert on_alias_groups() == set()


def op_group_expiry(b: Bound, t: str) -> None:
    seed_groups(f"{t}-old", f"{t}-new")
    age(GroupResult, "date_done", [f"{t}-old"])
    assert list(b.groups.get_all_expired(timedelta(days=1)).values_list("group_id", flat=True)) == [
        f"{t}-old",
    ]
    assert b.groups.delete_expired(timedelta(days=1)) == 1
    assert on_alias_groups() == {f"{t}-new"}


def op_connections(b: Bound, t: str) -> None:
    for manager in (b.tasks, b.groups):
        assert manager.connection_for_write().alias == ALIAS
        assert manager.connection_for_read().alias == ALIAS
        assert manager.current_engine() == settings.DATABASES[ALIAS]["ENGINE"]
        manager.warn_if_repeatable_read()  # a warning would fail the test (filterwarnings=error)
    b.tasks.get_task(t)  # at least one query, for only_on_alias()


def op_start(b: Bound, t: str) -> None:
    b.counters.start(t, "[]", 2)
    b.counters.start(t, '[["x", null], null]', 3)  # applied again: reset
    counter = ChordCounter.objects.using(ALIAS).get(group_id=t)
    assert (counter.count, counter.sub_tasks, counter.counted_parts) == (3, '[["x", null], null]', "|")


def op_for_write(b: Bound, t: str) -> None:
    seed_counter(t, 2)
    assert b.counters.for_write().db == ALIAS
    assert b.counters.for_write().get(group_id=t).count == 2


def op_resize(b: Bound, t: str) -> None:
    seed_counter(t, 2)
    assert b.counters.part_done(t, "p0") is PartOutcome.COUNTED
    b.counters.resize(t, 4)  # one part finished already
    assert b.counters.for_write().get(group_id=t).count == 3


def op_add_part(b: Bound, t: str) -> None:
    seed_counter(t, 1)
    b.counters.add_part(t, [["extra", None], None])
    counter = b.counters.for_write().get(group_id=t)
    assert (counter.count, json.loads(counter.sub_tasks)) == (2, [[["extra", None], None]])


def op_part_done(b: Bound, t: str) -> None:
    seed_counter(t, 2)
    assert b.counters.part_done(t, "p0") is PartOutcome.COUNTED
    assert b.counters.part_done(t, "p0") is PartOutcome.ALREADY
    assert b.counters.part_done(t, "p1") is PartOutcome.LAST
    # No counter: the first part says so (and records one), the next finds it.
    assert b.counters.part_done(f"{t}-none", "p0") is PartOutcome.NO_COUNTER
    assert b.counters.part_done(f"{t}-none", "p1") is PartOutcome.ALREADY


def op_dateless(b: Bound, t: str) -> None:
    seed_counter(t, 1)
    seed_counter(f"{t}-dated", 1)
    ChordCounter.objects.using(ALIAS).filter(group_id=t).update(date_created=None)
    assert b.counters.dateless().db == ALIAS
    assert list(b.counters.dateless().values_list("group_id", flat=True)) == [t]


def op_expired(b: Bound, t: str) -> None:
    for suffix, count in (("done", 0), ("waiting", 1), ("given-up", 1)):
        seed_counter(f"{t}-{suffix}", count)
    counters = ChordCounter.objects.using(ALIAS)
    counters.filter(group_id__in=[f"{t}-done", f"{t}-waiting"]).update(date_created=now() - timedelta(days=1))
    counters.filter(group_id=f"{t}-given-up").update(date_created=now() - timedelta(days=30))
    expired = b.counters.expired(now())
    assert expired.db == ALIAS
    assert set(expired.values_list("group_id", flat=True)) == {f"{t}-done", f"{t}-given-up"}


def op_cleanup(b: Bound, t: str) -> None:
    """``Cleanup(database=ALIAS)``: counting, the dateless counters' update, and the deletes."""
    seed_tasks(f"{t}-old", f"{t}-new")
    seed_groups(f"{t}-old", f"{t}-new")
    age(TaskResult, "date_done", [f"{t}-old"])
    age(GroupResult, "date_done", [f"{t}-old"])
    seed_counter(f"{t}-done", 0)
    seed_counter(f"{t}-dateless", 0)
    ChordCounter.objects.using(ALIAS).filter(group_id=f"{t}-done").update(date_created=now() - OLD)
    ChordCounter.objects.using(ALIAS).filter(group_id=f"{t}-dateless").update(date_created=None)
    cleanup = Cleanup(before=now() - timedelta(days=1), database=ALIAS, batch_size=1)
    assert [cleanup.alias(kind) for kind in KINDS] == [ALIAS] * 3
    assert cleanup.count() == {TASKS: 1, GROUPS: 1, CHORDS: 1}
    assert cleanup.delete() == {TASKS: 1, GROUPS: 1, CHORDS: 1}
    assert on_alias_tasks() == on_alias_groups() == {f"{t}-new"}
    # The dateless counter got its date (now) on this alias, and so it stays.
    left = ChordCounter.objects.using(ALIAS).get()
    assert (left.group_id, left.date_created is not None) == (f"{t}-dateless", True)


OPERATIONS: dict[str, Callable[[Bound, str], None]] = {
    name.removeprefix("op_"): fn for name, fn in list(globals().items()) if name.startswith("op_")
}


@only_other
@pytest.mark.parametrize("name", list(OPERATIONS))
def test_db_manager_alias_wins(name: str, router_elsewhere: None) -> None:
    with only_on_alias():
        OPERATIONS[name](bound(), tag())


@only_other
def test_writes_beside_a_transaction_stay_on_the_alias(router_elsewhere: None) -> None:
    """Inside ``atomic(using=ALIAS)`` the PENDING row and the counter commit on their own connection to it."""
    t = tag()
    b = bound()
    with only_on_alias():
        with transaction.atomic(using=ALIAS):
            b.tasks.insert_if_absent(task_values(t, states.PENDING, "null"))
            b.counters.start(t, "[]", 1)
        assert on_alias_tasks() == {t}
        assert b.counters.for_write().filter(group_id=t).exists()


# -- using= arguments, and querysets' using() -----------------------------------------------


def using_store_result(t: str) -> None:
    row = TaskResult.objects.store_result(JSON, "utf-8", t, "1", states.SUCCESS, using=ALIAS)
    assert row.pk is not None and on_alias_tasks() == {t}


def using_upsert(t: str) -> None:
    TaskResult.objects.upsert(task_values(t), using=ALIAS)
    assert on_alias_tasks() == {t}


def using_insert_if_absent(t: str) -> None:
    TaskResult.objects.insert_if_absent(task_values(t, states.PENDING, "null"), using=ALIAS)
    TaskResult.objects.insert_if_absent(task_values(t, states.SUCCESS), using=ALIAS)
    assert TaskResult.objects.using(ALIAS).get(task_id=t).status == states.PENDING


def using_store_group_result(t: str) -> None:
    saved = GroupResult.objects.store_group_result(JSON, "utf-8", t, "[]", using=ALIAS)
    assert saved.group_id == t and on_alias_groups() == {t}


USING: dict[str, Callable[[str], None]] = {
    name.removeprefix("using_"): fn for name, fn in list(globals().items()) if name.startswith("using_")
}


@only_other
@pytest.mark.parametrize("name", list(USING))
def test_using_argument_wins(name: str, router_elsewhere: None) -> None:
    with only_on_alias():
        USING[name](tag())


@only_other
def test_using_argument_beats_the_managers_own_alias() -> None:
    """The most specific choice wins: ``using=`` over ``db_manager()`` (an alias the test may not touch)."""
    t = tag()
    tasks, groups = TaskResult.objects.db_manager("second"), GroupResult.objects.db_manager("second")
    with only_on_alias():
        tasks.store_result(JSON, "utf-8", t, "1", states.SUCCESS, using=ALIAS)
        tasks.upsert(task_values(f"{t}-u"), using=ALIAS)
        tasks.insert_if_absent(task_values(f"{t}-i"), using=ALIAS)
        groups.store_group_result(JSON, "utf-8", t, "[]", using=ALIAS)
        assert on_alias_tasks() == {t, f"{t}-u", f"{t}-i"} and on_alias_groups() == {t}


@only_other
def test_queryset_using_wins(router_elsewhere: None) -> None:
    """Querysets the managers return are lazy: ``.using(ALIAS)`` on them decides where they run."""
    t = tag()
    with only_on_alias():
        seed_tasks(f"{t}-old")
        age(TaskResult, "date_done", [f"{t}-old"])
        assert list(
            TaskResult.objects.get_all_expired(timedelta(days=1))
            .using(ALIAS)
            .values_list("task_id", flat=True)
        ) == [f"{t}-old"]
        assert TaskResult.objects.using(ALIAS).done_before(now()).count() == 1
        seed_counter(t, 0)
        ChordCounter.objects.for_write().using(ALIAS).filter(group_id=t).update(date_created=None)
        assert ChordCounter.objects.dateless().using(ALIAS).count() == 1
        ChordCounter.objects.dateless().using(ALIAS).update(date_created=now() - OLD)
        assert ChordCounter.objects.expired(now()).using(ALIAS).count() == 1


@only_other
def test_the_alias_is_a_migrated_test_database() -> None:
    """The premise: ``other`` is a test database of its own, with every migration of the app applied."""
    connection = connections[ALIAS]
    assert connection.settings_dict["NAME"] == settings.DATABASES[ALIAS]["TEST"]["NAME"]
    assert connection.settings_dict["NAME"] != settings.DATABASES["default"]["TEST"]["NAME"]
    loader = MigrationLoader(connection)
    ours = {key for key in loader.disk_migrations if key[0] == "django_celery_results"}
    assert ours and ours <= set(loader.applied_migrations)
    tables = set(connection.introspection.table_names())
    assert {model._meta.db_table for model in (TaskResult, GroupResult, ChordCounter)} <= tables


# -- any sequence of calls on the alias stays there ----------------------------------------


CALLS = [
    "store",
    "insert",
    "forget",
    "get",
    "group",
    "ungroup",
    "restore",
    "chord",
    "part",
    "resize",
    "add",
    "expire",
    "cleanup",
]


@only_other
@hypothesis_settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(calls=st.lists(st.tuples(st.sampled_from(CALLS), st.integers(0, 2)), min_size=1, max_size=8))
def test_any_sequence_of_calls_stays_on_the_alias(
    router_elsewhere: None,
    calls: list[tuple[str, int]],
) -> None:
    """Calls in any order on ``db_manager(ALIAS)``: all stay there, and the rows are what they wrote."""
    t = tag()
    b = bound()
    tasks: set[str] = set()
    groups: set[str] = set()
    with executed() as seen:
        for call, n in calls:
            key = f"{t}-{n}"
            if call == "store":
                b.tasks.store_result(JSON, "utf-8", key, "1", states.SUCCESS)
                tasks.add(key)
            elif call == "insert":
                b.tasks.insert_if_absent(task_values(key, states.PENDING, "null"))
                tasks.add(key)
            elif call == "forget":
                b.tasks.delete_task(key)
                tasks.discard(key)
            elif call == "get":
                assert (b.tasks.get_task(key).pk is not None) == (key in tasks)
            elif call == "group":
                b.groups.store_group_result(JSON, "utf-8", key, "[]")
                groups.add(key)
            elif call == "ungroup":
                b.groups.delete_group(key)
                groups.discard(key)
            elif call == "restore":
                assert (b.groups.get_group(key) is not None) == (key in groups)
            elif call == "chord":
                b.counters.start(t, "[]", 2)
            elif call == "part":
                b.counters.part_done(t, key)
            elif call == "resize":
                b.counters.resize(t, n + 1)
            elif call == "add":
                b.counters.add_part(t, [[key, None], None])
            elif call == "expire":
                b.tasks.delete_expired(timedelta(days=1))  # every row is fresh: none goes
                b.groups.delete_expired(timedelta(days=1))
            else:
                Cleanup(before=now() - timedelta(days=1), database=ALIAS).delete()
        stored_tasks = {i for i in on_alias_tasks() if i.startswith(t)}
        stored_groups = {i for i in on_alias_groups() if i.startswith(t)}
    assert (stored_tasks, stored_groups) == (tasks, groups)
    assert set(seen) == {ALIAS}, sorted(set(seen))


# -- without an explicit alias, the routers decide ----------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
def test_without_an_alias_reads_follow_db_for_read_and_writes_db_for_write() -> None:
    # A decoy on each alias under the same id tells which one a read used.
    for alias in ("default", ALIAS):
        TaskResult.objects.store_result(JSON, "utf-8", "both", json.dumps(alias), states.SUCCESS, using=alias)
        GroupResult.objects.store_group_result(JSON, "utf-8", "both", json.dumps(alias), using=alias)
    with override_settings(DATABASE_ROUTERS=[ResultsRouter(read=ALIAS, write="default", counters=ALIAS)]):
        assert TaskResult.objects.get_task("both").result == json.dumps(ALIAS)
        group = GroupResult.objects.get_group("both")
        assert group is not None and group.result == json.dumps(ALIAS)
        for manager in (TaskResult.objects, GroupResult.objects):
            assert manager.connection_for_read().alias == ALIAS
            assert manager.connection_for_write().alias == "default"
            assert manager.get_all_expired(0).db == "default"
        assert ChordCounter.objects.for_write().db == ALIAS
        assert ChordCounter.objects.expired(now()).db == ChordCounter.objects.dateless().db == ALIAS
        assert [Cleanup(before=now()).alias(kind) for kind in KINDS] == ["default", "default", ALIAS]

        with executed() as seen:
            TaskResult.objects.store_result(JSON, "utf-8", "routed", "1", states.SUCCESS)
            TaskResult.objects.upsert(task_values("routed-u"))
            TaskResult.objects.insert_if_absent(task_values("routed-i"))
            GroupResult.objects.store_group_result(JSON, "utf-8", "routed", "[]")
            TaskResult.objects.delete_task("both")
            GroupResult.objects.delete_group("both")
        assert set(seen) == {"default"}

        with executed() as seen:
            ChordCounter.objects.start("chord", "[]", 2)
            ChordCounter.objects.resize("chord", 3)
            ChordCounter.objects.add_part("chord", [["x", None], None])
            assert ChordCounter.objects.part_done("chord", "p0") is PartOutcome.COUNTED
        assert set(seen) == {ALIAS}

        TaskResult.objects.using("default").update(date_done=now() - OLD)
        with executed() as seen:
            assert TaskResult.objects.delete_expired(timedelta(days=1)) == 3
        assert set(seen) == {"default"}

    assert set(TaskResult.objects.using(ALIAS).values_list("task_id", flat=True)) == {"both"}
    assert not TaskResult.objects.using("default").exists()
    assert set(GroupResult.objects.using("default").values_list("group_id", flat=True)) == {"routed"}
    assert ChordCounter.objects.using(ALIAS).get().count == 3
    assert not ChordCounter.objects.using("default").exists()


@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
def test_without_an_alias_cleanup_follows_the_write_alias() -> None:
    old = now() - OLD
    for alias in ("default", ALIAS):
        TaskResult.objects.store_result(JSON, "utf-8", "old", "1", states.SUCCESS, using=alias)
        GroupResult.objects.store_group_result(JSON, "utf-8", "old", "[]", using=alias)
        ChordCounter.objects.using(alias).create(group_id="old", sub_tasks="[]", count=0)
        TaskResult.objects.using(alias).update(date_done=old)
        GroupResult.objects.using(alias).update(date_done=old)
        ChordCounter.objects.using(alias).update(date_created=old)
    router = ResultsRouter(read="default", write=ALIAS, counters="default")
    with override_settings(DATABASE_ROUTERS=[router]), executed() as seen:
        assert delete_expired_results(timedelta(days=1)) == {TASKS: 1, GROUPS: 1, CHORDS: 1}
    assert set(seen) == {"default", ALIAS}
    assert TaskResult.objects.using(ALIAS).count() == GroupResult.objects.using(ALIAS).count() == 0
    assert ChordCounter.objects.using(ALIAS).count() == 1
    assert TaskResult.objects.using("default").count() == GroupResult.objects.using("default").count() == 1
    assert not ChordCounter.objects.using("default").exists()
