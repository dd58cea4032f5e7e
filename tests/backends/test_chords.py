"""Chord parts counted as rows (``ChordPart``): any task id works, each part counts once, at a constant cost.

The part rows replaced a growing ``counted_parts`` text searched with LIKE,
which lost callbacks for ids holding ``|``, ``%`` or ``_`` and, on SQLite,
for ids differing only in case.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import states
from celery import uuid as new_id
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from django_celery_results import cleanup, engines
from django_celery_results.managers import PartOutcome
from django_celery_results.models import CHORD_PART_UNIQUE, ChordCounter, ChordPart
from django_celery_results.utils import now
from tests.support.apps import filesystem_app
from tests.support.brokers import published_to_folder
from tests.support.processes import run_in_processes
from tests.support.race_targets import finish_parts
from tests.support.requests import chord_part
from tests.support.scratch import migrate_ours, scratch, scratch_access  # noqa: F401 (fixtures)
from tests.support.statements import STATEMENTS_PER_PART, planner_prefers_indexes  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

#: Ids the LIKE-based counting lost: separators, wildcards, case and trailing-space look-alikes.
AWKWARD_IDS = [
    "a|b",
    "|lead",
    "trail|",
    "||",
    "50%",
    "%",
    "a_b",
    "_",
    "Case",
    "case",
    "CASE",
    "abc",
    "abc ",
    "back\\slash",
    "quote'",
    "ünïcode",
]

counters = ChordCounter.objects


def start(group_id: str, size: int, part_ids: Sequence[str] = ()) -> None:
    counters.start(group_id, "[]", size, part_ids)


def parts_of(group_id: str) -> set[str]:
    return set(counters.parts().filter(group_id=group_id).values_list("task_id", flat=True))


@pytest.fixture
def callbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Group ids whose callback the backend sent (``fire_callback`` calls)."""
    from django_celery_results.backends import database

    fired: list[str] = []
    monkeypatch.setattr(
        database,
        "fire_callback",
        lambda app, callback, counter: fired.append(counter.group_id),
    )
    return fired


# -- semantics -------------------------------------------------------------------------


def test_any_task_id_is_a_part_and_the_chord_completes_once(app: Any, callbacks: list[str]) -> None:
    group_id = new_id()
    body = app.signature("tests.chord_callback")
    app.backend.apply_chord((group_id, [app.AsyncResult(p) for p in AWKWARD_IDS]), body)
    for task_id in AWKWARD_IDS:
        request = chord_part(task_id, group_id, dict(body), task="tests.part")
        app.backend.on_chord_part_return(request, states.SUCCESS, 1)
        app.backend.on_chord_part_return(request, states.SUCCESS, 1)  # redelivered
    assert callbacks == [group_id]
    assert counters.get(group_id=group_id).count == 0
    assert parts_of(group_id) == set(AWKWARD_IDS)


def test_each_awkward_id_counts_once_and_separately() -> None:
    group_id = new_id()
    start(group_id, len(AWKWARD_IDS))
    outcomes = [counters.part_done(group_id, task_id) for task_id in AWKWARD_IDS]
    assert outcomes == [PartOutcome.COUNTED] * (len(AWKWARD_IDS) - 1) + [PartOutcome.LAST]
    assert {counters.part_done(group_id, task_id) for task_id in AWKWARD_IDS} == {PartOutcome.ALREADY}


def test_duplicates_count_once_and_last_is_told_once() -> None:
    group_id = new_id()
    start(group_id, 3)
    assert counters.part_done(group_id, "p1") is PartOutcome.COUNTED
    assert counters.part_done(group_id, "p1") is PartOutcome.ALREADY
    assert counters.get(group_id=group_id).count == 2
    assert counters.part_done(group_id, "p2") is PartOutcome.COUNTED
    assert counters.part_done(group_id, "p3") is PartOutcome.LAST
    assert counters.part_done(group_id, "p3") is PartOutcome.ALREADY
    # A part beyond the header, after completion: ignored, and leaves no row.
    assert counters.part_done(group_id, "p4") is PartOutcome.ALREADY
    assert counters.get(group_id=group_id).count == 0
    assert parts_of(group_id) == {"p1", "p2", "p3"}


def test_no_counter_is_told_once_and_leaves_no_part_rows() -> None:
    group_id = new_id()
    assert counters.part_done(group_id, "p1") is PartOutcome.NO_COUNTER
    assert counters.part_done(group_id, "p2") is PartOutcome.ALREADY
    assert counters.part_done(group_id, "p1") is PartOutcome.ALREADY
    assert parts_of(group_id) == set()


def test_resize_counts_the_parts_already_counted() -> None:
    group_id = new_id()
    start(group_id, 3)
    for task_id in ("p1", "p2"):
        counters.part_done(group_id, task_id)
    counters.resize(group_id, 5)
    assert counters.get(group_id=group_id).count == 3
    counters.resize(group_id, 1)  # fewer than already counted: nothing left to wait for
    assert counters.get(group_id=group_id).count == 0
    counters.resize(group_id, 4)
    assert [counters.part_done(group_id, p) for p in ("p2", "p3", "p4")] == [
        PartOutcome.ALREADY,
        PartOutcome.COUNTED,
        PartOutcome.LAST,
    ]


def test_applying_a_group_id_again_resets_its_parts() -> None:
    group_id = new_id()
    start(group_id, 2)
    counters.part_done(group_id, "p1")
    counters.part_done(group_id, "p2")
    start(group_id, 2)
    assert parts_of(group_id) == set()
    assert counters.part_done(group_id, "p1") is PartOutcome.COUNTED
    assert counters.part_done(group_id, "p2") is PartOutcome.LAST


def test_counted_parts_text_is_no_longer_written() -> None:
    group_id = new_id()
    start(group_id, 2)
    counters.part_done(group_id, "p1")
    assert counters.get(group_id=group_id).counted_parts == "|"


def test_cleanup_removes_the_parts_of_the_counters_it_removes() -> None:
    old, fresh = new_id(), new_id()
    for group_id in (old, fresh):
        start(group_id, 3)
        for task_id in ("p1", "p2", "p3"):
            counters.part_done(group_id, task_id)
    counters.filter(group_id=old).update(date_created=now() - timedelta(days=3))
    deleted = cleanup.Cleanup(before=now() - timedelta(days=1), batch_size=2).delete()
    assert deleted[cleanup.CHORDS] == 1
    assert not counters.filter(group_id=old).exists()
    assert parts_of(old) == set()
    assert parts_of(fresh) == {"p1", "p2", "p3"}


# -- structure ---------------------------------------------------------------------------


def test_a_part_that_is_not_the_last_costs_a_fixed_number_of_statements() -> None:
    group_id = new_id()
    start(group_id, 200, [f"part-{index}" for index in range(200)])
    sent = []
    for index in range(150):
        with CaptureQueriesContext(connections[counters.write_alias()]) as queries:
            assert counters.part_done(group_id, f"part-{index}") is PartOutcome.COUNTED
        sent.append([q["sql"] for q in queries.captured_queries])
    expected = STATEMENTS_PER_PART[connection.vendor]
    assert {len(s) for s in sent} == {expected}, sent[0]
    # The same statements whatever the number of parts already counted.
    assert [q.replace("part-149", "part-0") for q in sent[-1]] == sent[0]
    with CaptureQueriesContext(connection) as queries:
        assert counters.part_done(group_id, "part-0") is PartOutcome.ALREADY
    # A duplicate: PostgreSQL still one statement; SQLite its transaction's insert only (no
    # decrement); MySQL/MariaDB the flip, the insert and the flip again, then whether the counter exists.
    duplicate = {"postgresql": 1, "sqlite": expected - 1, "mysql": 4}[connection.vendor]
    assert len(queries.captured_queries) == duplicate, queries.captured_queries


def test_parts_not_written_ahead_count_once_each() -> None:
    # A header with nested groups, or a chord started by code before 0021: no row ahead.
    group_id = new_id()
    start(group_id, 3, ["p1"])
    outcomes = [counters.part_done(group_id, p) for p in ("p2", "p1", "p2", "p3", "p3")]
    assert outcomes == [
        PartOutcome.COUNTED,
        PartOutcome.COUNTED,
        PartOutcome.ALREADY,
        PartOutcome.LAST,
        PartOutcome.ALREADY,
    ]
    assert set(
        counters.parts().filter(group_id=group_id, counted=True).values_list("task_id", flat=True)
    ) == {
        "p1",
        "p2",
        "p3",
    }


@pytest.mark.skipif(
    not engines.prepares_chord_parts(connection),
    reason="only engines writing part rows ahead leave one uncounted",
)
def test_a_part_row_left_uncounted_is_counted_by_the_redelivery() -> None:
    # What a crash between writing a part's row and flipping it leaves (no row ahead).
    group_id = new_id()
    start(group_id, 2)
    ChordPart.objects.create(group_id=group_id, task_id="p1", counted=False)
    counters.resize(group_id, 2)
    assert counters.get(group_id=group_id).count == 2
    assert counters.part_done(group_id, "p1") is PartOutcome.COUNTED
    assert counters.part_done(group_id, "p1") is PartOutcome.ALREADY
    assert counters.part_done(group_id, "p2") is PartOutcome.LAST


def test_rows_written_ahead_are_not_counted_as_finished() -> None:
    group_id = new_id()
    start(group_id, 4, ["p1", "p2", "p3", "p4", "p1"])
    written = {"mysql": {"p1", "p2", "p3", "p4"}}.get(connection.vendor, set())
    assert parts_of(group_id) == written
    assert counters.part_done(group_id, "p1") is PartOutcome.COUNTED
    counters.resize(group_id, 4)
    assert counters.get(group_id=group_id).count == 3
    start(group_id, 2, ["q1", "q2"])  # applied again: the old rows go, the new ones are written
    assert parts_of(group_id) == ({"q1", "q2"} if written else set())
    # Any id counts, written ahead or not: p1 is one of the two parts now.
    assert [counters.part_done(group_id, p) for p in ("p1", "q1", "q2")] == [
        PartOutcome.COUNTED,
        PartOutcome.LAST,
        PartOutcome.ALREADY,
    ]


def _plan(sql: str, params: list[Any]) -> str:
    prefix = "EXPLAIN QUERY PLAN" if connection.vendor == "sqlite" else "EXPLAIN"
    with connection.cursor() as cursor:
        cursor.execute(f"{prefix} {sql}", params)
        return "\n".join(" | ".join(map(str, row)) for row in cursor.fetchall())


def _unique_index_names() -> set[str]:
    """Names the engine gives the (group_id, task_id) unique index (SQLite: an automatic index)."""
    if connection.vendor != "sqlite":
        return {CHORD_PART_UNIQUE}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = %s",
            [ChordPart._meta.db_table],
        )
        return {str(row[0]) for row in cursor.fetchall()}


def test_part_lookups_go_through_the_unique_index(planner_prefers_indexes: None) -> None:  # noqa: F811
    for _ in range(20):
        group_id = new_id()
        ChordPart.objects.bulk_create(ChordPart(group_id=group_id, task_id=f"t{i}") for i in range(100))
    names = _unique_index_names()
    qn = connection.ops.quote_name
    table = qn(ChordPart._meta.db_table)
    lookups = [
        (f"SELECT 1 FROM {table} WHERE {qn('group_id')} = %s AND {qn('task_id')} = %s", [group_id, "t5"]),
        # resize's subquery, start's and cleanup's deletes select a group's parts.
        (f"SELECT COUNT({qn('id')}) FROM {table} WHERE {qn('group_id')} = %s", [group_id]),
    ]
    for sql, params in lookups:
        plan = _plan(sql, params)
        assert any(name in plan for name in names), plan
    if connection.vendor == "mysql":
        from django_celery_results.engines.chords import _flip_part_mysql

        waiting = new_id()
        start(waiting, 3, ["t1", "t2", "t3"])
        sql = _flip_part_mysql(ChordCounter._meta.db_table, ChordPart._meta.db_table)
        plan = _plan(sql, [waiting, "t2"])
        assert CHORD_PART_UNIQUE in plan, plan
    if connection.vendor == "postgresql":
        from django_celery_results.engines.chords import _count_part_postgresql

        sql = _count_part_postgresql(ChordCounter._meta.db_table, ChordPart._meta.db_table)
        plan = _plan(sql, [group_id, "t5", group_id, group_id, group_id])
        assert f"Conflict Arbiter Indexes: {CHORD_PART_UNIQUE}" in plan, plan


# -- real processes -----------------------------------------------------------------------


def test_processes_finishing_awkward_parts_with_duplicates_fire_once(tmp_path: Path) -> None:
    app = filesystem_app(tmp_path)
    group_id = new_id()
    # Look-alikes differing in case and holding LIKE's wildcards and the old separator.
    parts = [f"{stem}-{index}" for index in range(60) for stem in ("Part|%", "part|%", "PART_x")]
    callback = app.signature("proj.tasks.collect", task_id=new_id())
    app.backend.apply_chord((group_id, [app.AsyncResult(p) for p in parts]), callback)
    rng = random.Random(3)
    deliveries = parts + rng.sample(parts, 40)
    rng.shuffle(deliveries)
    slices = [deliveries[i::4] for i in range(4)]

    arguments = [(str(tmp_path), group_id, dict(callback), s, i) for i, s in enumerate(slices)]
    run_in_processes(finish_parts, arguments)

    assert len(published_to_folder(tmp_path)) == 1
    assert counters.get(group_id=group_id).count == 0
    assert parts_of(group_id) == set(parts)


# -- the migration ----------------------------------------------------------------------------


@pytest.fixture
def at_0018(scratch: Any, scratch_access: None) -> Iterator[str]:  # noqa: F811
    alias = scratch.create("chordparts")
    migrate_ours(alias, "0018_exact_ids_on_mysql")
    yield alias


def test_migration_moves_counted_parts_into_part_rows(at_0018: str) -> None:
    alias = at_0018
    conn = connections[alias]
    qn = conn.ops.quote_name
    table = ChordCounter._meta.db_table
    moment = conn.ops.adapt_datetimefield_value(now())
    with conn.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {qn(table)} ({qn('group_id')}, {qn('sub_tasks')}, {qn('count')}, "
            f"{qn('counted_parts')}, {qn('date_created')}) "
            "VALUES (%s, '[]', 5, %s, %s), (%s, '[]', 2, '|', %s)",
            ["in-flight", "|a|b|A|y%||a|", moment, "fresh", moment],
        )

    migrate_ours(alias)

    moved = ChordPart.objects.using(alias).filter(group_id="in-flight").values_list("task_id", flat=True)
    assert sorted(moved) == ["A", "a", "b", "y%"]
    assert set(ChordCounter.objects.using(alias).values_list("counted_parts", flat=True)) == {"|"}
    in_flight = ChordCounter.objects.db_manager(alias)
    assert in_flight.part_done("in-flight", "a") is PartOutcome.ALREADY
    assert in_flight.part_done("in-flight", "c") is PartOutcome.COUNTED

    migrate_ours(alias, "0018_exact_ids_on_mysql")
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT {qn('counted_parts')} FROM {qn(table)} WHERE {qn('group_id')} = 'in-flight'")
        text = cursor.fetchone()[0]
    assert set(text.strip("|").split("|")) == {"a", "b", "A", "y%", "c"}


# -- the key length check (W002) ------------------------------------------------------------


def test_w002_covers_the_two_column_part_key() -> None:
    from django_celery_results import engines
    from django_celery_results.checks import IndexedColumn, chord_part_key_columns, key_length_warnings

    table = ChordPart._meta.db_table
    assert IndexedColumn(table, "group_id, task_id", 2 * 255, columns=2) in chord_part_key_columns()
    dynamic = engines.KeyLimits(3072, 4, "DYNAMIC", "InnoDB")
    wide = [IndexedColumn(table, "group_id, task_id", 2 * 500, columns=2)]
    issues = key_length_warnings("default", {table: dynamic}, wide)
    assert len(issues) == 1 and "needs 4000 bytes" in issues[0].msg
    assert "DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = 384" in str(issues[0].hint)
    # COMPACT bounds each column to 767 bytes, but the whole key to 3072.
    compact = engines.KeyLimits(767, 4, "COMPACT", "InnoDB")
    narrow = [IndexedColumn(table, "group_id, task_id", 2 * 191, columns=2)]
    assert key_length_warnings("default", {table: compact}, narrow) == []
    assert key_length_warnings("default", {table: dynamic}, chord_part_key_columns()) == []


# -- the last part's join -------------------------------------------------------------


def test_the_header_join_equals_celerys_join_for_plain_and_nested_headers(app: Any) -> None:
    """The last part joins a plain header by ids; a header holding a group goes through Celery's join."""
    from celery.result import GroupResult as CeleryGroupResult
    from celery.result import result_from_tuple

    from django_celery_results.backends.database import plain_task_ids

    ids = [new_id() for _ in range(5)]
    for i, task_id in enumerate(ids):
        app.backend.mark_as_done(task_id, {"part": i})
    plain = [[[task_id, None], None] for task_id in ids]
    nested = [plain[0], [[new_id(), None], plain[1:3]], *plain[3:]]
    assert plain_task_ids(plain) == ids
    assert plain_task_ids(nested) is None
    expected = CeleryGroupResult(new_id(), [result_from_tuple(item, app=app) for item in plain], app=app)
    assert app.backend.join_header(ids, timeout=5) == expected.join_native(timeout=5)
    # Duplicated ids keep their places, as in Celery's join.
    repeated = app.backend.join_header([ids[1], ids[0], ids[1]], timeout=5)
    assert repeated == [{"part": 1}, {"part": 0}, {"part": 1}]


def test_the_header_join_raises_the_failed_parts_exception(app: Any) -> None:
    ids = [new_id() for _ in range(3)]
    app.backend.mark_as_done(ids[0], 1)
    app.backend.mark_as_failure(ids[1], KeyError("bad part"))
    app.backend.mark_as_done(ids[2], 3)
    with pytest.raises(KeyError, match="bad part"):
        app.backend.join_header(ids, timeout=5)
