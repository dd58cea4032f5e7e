"""Task and group ids are compared exactly, on every engine.

MySQL's and MariaDB's default collations take "abc", "ABC", "abc " and "àbc"
for one string, so the unique keys made them one task, one group and one
chord counter. Migration 0018 gives the id columns a binary collation there;
PostgreSQL and SQLite compare exactly already. The same tests run on each.
"""

from __future__ import annotations

import json
import string
import uuid
from typing import Any

import pytest
from celery import states
from celery.result import AsyncResult, GroupResult
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_celery_results import engines
from django_celery_results.managers import PartOutcome
from django_celery_results.models import ChordCounter, TaskResult
from django_celery_results.models import GroupResult as GroupResultModel
from tests.settings import ENGINE

#: Ids that MySQL's default collations equate: case, a trailing space, an accent.
LOOK_ALIKES = ("abc", "ABC", "abc ", "\u00e0bc")

#: Letters with an accented form that utf8mb4_general_ci takes for the letter itself.
ACCENTED = {
    "a": "\u00e0",
    "c": "\u00e7",
    "e": "\u00e9",
    "i": "\u00ee",
    "n": "\u00f1",
    "o": "\u00f6",
    "u": "\u00fc",
}
id_parts = st.text(st.sampled_from(string.ascii_letters + string.digits + "-_.:"), max_size=20)


@st.composite
def look_alike_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Two different ids that a case-, accent- and pad-insensitive collation takes for one."""
    head, letter, tail = draw(id_parts), draw(st.sampled_from(sorted(ACCENTED))), draw(id_parts)
    base = f"{head}{letter}{tail}"
    how = draw(st.sampled_from(["case", "trailing space", "accent"]))
    if how == "case":
        other = base.swapcase()  # ``letter`` is lower case, so something changes
    elif how == "trailing space":
        other = base + " " * draw(st.integers(1, 3))
    else:
        other = f"{head}{ACCENTED[letter]}{tail}"
    return (base, other) if draw(st.booleans()) else (other, base)


def fresh_pair(pair: tuple[str, str]) -> tuple[str, str]:
    """``pair`` behind a prefix of its own: examples share one test transaction."""
    prefix = f"{uuid.uuid4().hex}-"
    return prefix + pair[0], prefix + pair[1]


def assert_default_collation_equates(first: str, second: str) -> None:
    """On MySQL, the pair is one string in the tables' default collation (else the test proves nothing)."""
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s = %s COLLATE utf8mb4_general_ci", [first, second])
            assert cursor.fetchone() == (1,), (first, second)


def stored_task_ids() -> set[str]:
    """Every task id in the table, compared in Python (exactly)."""
    return set(TaskResult.objects.values_list("task_id", flat=True))


hypothesis_settings = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


# -- task results ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_done_under_another_case_does_not_finish_the_started_task(backend: Any) -> None:
    """The case the issue reported: "ABC" finishing must not finish the running "abc"."""
    backend.mark_as_started("abc")
    backend.mark_as_done("ABC", "x")
    assert stored_task_ids() == {"abc", "ABC"}
    started, done = backend.get_task_meta("abc", cache=False), backend.get_task_meta("ABC", cache=False)
    assert started["status"] == states.STARTED and started["result"] != "x"
    assert (done["status"], done["result"]) == (states.SUCCESS, "x")


@pytest.mark.django_db
def test_each_look_alike_task_id_keeps_its_own_row_and_state(backend: Any) -> None:
    """Every look-alike gets a row of its own, holding the value written under its id."""
    for task_id in LOOK_ALIKES:
        backend.mark_as_started(task_id)
    # Written in reverse: had the rows merged, "abc" would end with the last value.
    for number, task_id in reversed(list(enumerate(LOOK_ALIKES))):
        backend.mark_as_done(task_id, f"result {number}")
    assert stored_task_ids() == set(LOOK_ALIKES)
    for number, task_id in enumerate(LOOK_ALIKES):
        meta = backend.get_task_meta(task_id, cache=False)
        assert (meta["task_id"], meta["status"]) == (task_id, states.SUCCESS)
        assert meta["result"] == f"result {number}"
        assert TaskResult.objects.get(task_id=task_id).task_id == task_id


@pytest.mark.django_db
def test_forget_removes_only_the_exact_task_id(backend: Any) -> None:
    """``forget`` deletes by the exact id: a look-alike never takes another task's result with it."""
    for number, task_id in enumerate(LOOK_ALIKES):
        backend.mark_as_done(task_id, number)
    backend.forget("ABC ")  # no such task: nothing goes
    assert stored_task_ids() == set(LOOK_ALIKES)
    backend.forget("ABC")
    assert stored_task_ids() == set(LOOK_ALIKES) - {"ABC"}
    assert backend.get_task_meta("ABC", cache=False)["status"] == states.PENDING
    assert backend.get_task_meta("abc", cache=False)["result"] == 0
    assert backend.get_task_meta("abc ", cache=False)["result"] == 2


@pytest.mark.django_db
@hypothesis_settings
@given(pair=look_alike_pairs())
def test_look_alike_task_ids_are_different_tasks(backend: Any, pair: tuple[str, str]) -> None:
    """Any pair a lenient collation equates: states, reads and forget stay apart."""
    first, second = fresh_pair(pair)
    assert_default_collation_equates(first, second)
    backend.mark_as_started(first)
    backend.mark_as_done(second, "second's")
    assert {first, second} <= stored_task_ids()
    assert backend.get_task_meta(first, cache=False)["status"] == states.STARTED
    assert backend.get_task_meta(second, cache=False)["result"] == "second's"
    backend.forget(second)
    assert first in stored_task_ids() and second not in stored_task_ids()
    assert backend.get_task_meta(first, cache=False)["status"] == states.STARTED


# -- group results ----------------------------------------------------------------------------------


def members(app: Any, group_id: str) -> GroupResult:
    """A group whose member ids say which group they belong to."""
    return GroupResult(group_id, [AsyncResult(f"{group_id}|part-{n}", app=app) for n in range(2)], app=app)


def restored_members(backend: Any, group_id: str) -> list[str] | None:
    """Member ids of the saved group, read from the table (no cache); ``None`` when not saved."""
    restored = backend.restore_group(group_id, cache=False)
    return None if restored is None else [result.id for result in restored.results]


def stored_group_ids() -> set[str]:
    """Every group id in the table, compared in Python (exactly)."""
    return set(GroupResultModel.objects.values_list("group_id", flat=True))


@pytest.mark.django_db
def test_each_look_alike_group_id_keeps_its_own_group(app: Any, backend: Any) -> None:
    """Saved groups are found, restored and deleted by their exact id."""
    for group_id in LOOK_ALIKES:
        backend.save_group(group_id, members(app, group_id))
    assert stored_group_ids() == set(LOOK_ALIKES)
    for group_id in LOOK_ALIKES:
        assert restored_members(backend, group_id) == [f"{group_id}|part-0", f"{group_id}|part-1"]
        assert GroupResultModel.objects.get_group(group_id).group_id == group_id
    backend.delete_group("ABC ")  # no such group
    assert stored_group_ids() == set(LOOK_ALIKES)
    backend.delete_group("ABC")
    assert stored_group_ids() == set(LOOK_ALIKES) - {"ABC"}
    assert restored_members(backend, "ABC") is None
    assert restored_members(backend, "abc") == ["abc|part-0", "abc|part-1"]


@pytest.mark.django_db
@hypothesis_settings
@given(pair=look_alike_pairs())
def test_look_alike_group_ids_are_different_groups(app: Any, backend: Any, pair: tuple[str, str]) -> None:
    """Any pair a lenient collation equates: each group restores its own members."""
    first, second = fresh_pair(pair)
    backend.save_group(first, members(app, first))
    backend.save_group(second, members(app, second))
    assert restored_members(backend, first) == [f"{first}|part-0", f"{first}|part-1"]
    assert restored_members(backend, second) == [f"{second}|part-0", f"{second}|part-1"]
    backend.delete_group(second)
    assert restored_members(backend, second) is None
    assert restored_members(backend, first) == [f"{first}|part-0", f"{first}|part-1"]


# -- chord counters ---------------------------------------------------------------------------------


def counts(*group_ids: str) -> dict[str, int]:
    """The counters of ``group_ids`` (default: the look-alikes), matched in Python."""
    wanted = set(group_ids or LOOK_ALIKES)
    rows = ChordCounter.objects.values_list("group_id", "count")
    return {group_id: count for group_id, count in rows if group_id in wanted}


# Counters are written on a connection of their own (committed), hence a transactional test.
@pytest.mark.django_db(transaction=True)
def test_each_look_alike_chord_keeps_its_own_counter() -> None:
    """A chord's parts count on its own counter only; a merged counter would fire callbacks early."""
    for number, group_id in enumerate(LOOK_ALIKES):
        ChordCounter.objects.start(group_id, json.dumps([]), 3 + number)
    assert counts() == {"abc": 3, "ABC": 4, "abc ": 5, "\u00e0bc": 6}
    # The same part id counts once per chord, not once for all of them.
    for group_id in LOOK_ALIKES:
        assert ChordCounter.objects.part_done(group_id, "part-1") is PartOutcome.COUNTED
    assert ChordCounter.objects.part_done("ABC", "part-1") is PartOutcome.ALREADY
    assert counts() == {"abc": 2, "ABC": 3, "abc ": 4, "\u00e0bc": 5}
    # No counter under "ABC " (the one recorded for the missing chord is its own row).
    assert ChordCounter.objects.part_done("ABC ", "part-2") is PartOutcome.NO_COUNTER
    ChordCounter.objects.start("ABC", json.dumps([]), 9)  # applied again: only that counter restarts
    assert counts() == {"abc": 2, "ABC": 9, "abc ": 4, "\u00e0bc": 5}


@pytest.mark.django_db(transaction=True)
@settings(max_examples=15, deadline=None)
@given(pair=look_alike_pairs())
def test_look_alike_chord_ids_count_apart(pair: tuple[str, str]) -> None:
    """Any pair a lenient collation equates: the last part of one chord does not complete the other."""
    first, second = fresh_pair(pair)
    ChordCounter.objects.start(first, json.dumps([]), 1)
    ChordCounter.objects.start(second, json.dumps([]), 2)
    assert ChordCounter.objects.part_done(second, "p") is PartOutcome.COUNTED
    assert ChordCounter.objects.part_done(first, "p") is PartOutcome.LAST
    assert counts(first, second) == {first: 0, second: 1}


# -- the id prefix search (admin) ---------------------------------------------------------------------


@pytest.mark.engine("mysql")
@pytest.mark.django_db
def test_task_id_prefix_lookup_on_mysql_is_exact_and_uses_the_index() -> None:
    """``istartswith`` is a plain LIKE in the column's collation: binary after 0018, so exact.

    ``startswith`` would be ``LIKE BINARY``, which the index cannot serve.
    """
    for _ in range(200):
        TaskResult.objects.store_result("application/json", "utf-8", f"{uuid.uuid4()}", "1", states.SUCCESS)
    for task_id in LOOK_ALIKES:
        TaskResult.objects.store_result("application/json", "utf-8", f"{task_id}-tail", "1", states.SUCCESS)
    lookup = f"task_id__{engines.indexed_prefix_lookup(connection)}"
    found = TaskResult.objects.filter(**{lookup: "ABC"})
    assert list(found.values_list("task_id", flat=True)) == ["ABC-tail"]
    sql, params = found.values("task_id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        names = [column[0] for column in cursor.description]
        plan = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    assert [step["key"] for step in plan] == ["task_id"], plan


def test_exact_collation_prefers_binary_collations_that_do_not_pad() -> None:
    """The collation 0018 picks, for the servers and charsets sites run."""
    mariadb_utf8mb4 = ["utf8mb4_general_ci", "utf8mb4_bin", "utf8mb4_nopad_bin", "utf8mb4_unicode_ci"]
    mysql8_utf8mb4 = ["utf8mb4_0900_ai_ci", "utf8mb4_0900_bin", "utf8mb4_bin", "utf8mb4_general_ci"]
    mysql57_utf8mb4 = ["utf8mb4_general_ci", "utf8mb4_bin", "utf8mb4_unicode_ci"]
    assert engines.exact_collation("utf8mb4", mariadb_utf8mb4) == ("utf8mb4_nopad_bin", False)
    assert engines.exact_collation("utf8mb4", mysql8_utf8mb4) == ("utf8mb4_0900_bin", False)
    # MySQL 5.7 has only PAD SPACE binary collations: "abc " still equals "abc" there.
    assert engines.exact_collation("utf8mb4", mysql57_utf8mb4) == ("utf8mb4_bin", True)
    # utf8mb3 columns: MariaDB >= 10.6 lists utf8mb3_*, older servers utf8_*.
    assert engines.exact_collation("utf8mb3", ["utf8mb3_general_ci", "utf8mb3_nopad_bin"]) == (
        "utf8mb3_nopad_bin",
        False,
    )
    assert engines.exact_collation("utf8mb3", ["utf8_general_ci", "utf8_bin", "utf8_nopad_bin"]) == (
        "utf8_nopad_bin",
        False,
    )
    assert engines.exact_collation("utf8mb3", ["utf8mb3_general_ci", "utf8mb3_bin"]) == ("utf8mb3_bin", True)
    assert engines.exact_collation("latin1", ["latin1_swedish_ci", "latin1_bin", "latin1_nopad_bin"]) == (
        "latin1_nopad_bin",
        False,
    )
    assert engines.exact_collation("utf8mb4", ["utf8mb4_general_ci"]) is None


@pytest.mark.django_db
def test_id_columns_of_the_test_database_compare_exactly() -> None:
    """What the behaviour above rests on: no statement is left to run on the migrated database."""
    for model, field in ((TaskResult, "task_id"), (GroupResultModel, "group_id"), (ChordCounter, "group_id")):
        assert engines.exact_id_column_sql(connection, model._meta.db_table, field) == []
        undo = engines.default_id_column_sql(connection, model._meta.db_table, field)
        assert len(undo) == (1 if ENGINE == "mysql" else 0)
