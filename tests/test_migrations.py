"""The migration safety net: a site running upstream 2.6.0 can switch to us and ``migrate``.

Four promises of the drop-in contract (COMPAT.md), checked on the engine the
run uses:

1. Our models and migrations agree (``makemigrations --check``), with the
   default id length and with ``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH=191``.
2. A fresh database migrated by us to upstream's last step (0014) has exactly
   the installed base's schema, as each engine's catalog reports it
   (``tests/compat/``, captured after upstream's migrations): tables, column
   types, nullability, defaults, column order, primary/unique/check
   constraints, index names and definitions. Our own later migrations may
   only add to it (column order is then not compared: SQLite rebuilds tables).
3. A database at any upstream migration (0001..0014, plus the duplicate indexes
   of the 2.1.0 release of 0009), migrated forward by us, has exactly that
   schema at 0014 and exactly the fresh one at our last migration, and keeps
   its rows (0006 dates rows that predate it by their completion date).
4. Rows written by upstream's backend read back identically through ours, and
   the reverse (with the deliberate divergences listed in that test).
5. Our 0018 makes the id columns compare exactly on MySQL/MariaDB (binary
   collation), keeps their rows and definitions, and reverses cleanly; it is a
   no-op on the other engines.

Upstream only ever runs in a subprocess (``tests/support/upstream.py``); scratch
databases (``tests/support/scratch.py``) are named ``dcr_mig_<pid>_<step>`` and
dropped at the end; ``tests/support/schema.py`` reads and compares the schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from django.db import IntegrityError, connections

from tests.settings import ENGINE
from tests.support import upstream
from tests.support.schema import (
    APP,
    CHORD_TABLE,
    GROUP_TABLE,
    ID_COLUMNS,
    TASK_TABLE,
    Catalog,
    assert_same_schema,
    installed_catalog,
    live_catalog,
    schema_differences,
)
from tests.support.scratch import (  # noqa: F401 (fixtures: scratch, scratch_access)
    ScratchDatabases,
    child_settings,
    migrate_ours,
    scratch,
    scratch_access,
)

#: Upstream's migrations, in order: a site may have stopped at any of them.
UPSTREAM_STEPS = (
    "0001_initial",
    "0002_add_task_name_args_kwargs",
    "0003_auto_20181106_1101",
    "0004_auto_20190516_0412",
    "0005_taskresult_worker",
    "0006_taskresult_date_created",
    "0007_remove_taskresult_hidden",
    "0008_chordcounter",
    "0009_groupresult",
    "0010_remove_duplicate_indices",
    "0011_taskresult_periodic_task_name",
    "0012_taskresult_date_started",
    "0013_taskresult_django_cele_periodi_1993cf_idx",
    "0014_alter_taskresult_status",
)
#: The original 0009 of release 2.1.0 created these (duplicates of the unique
#: constraints); the 0009 released later does not, and 0010 drops them.
DUPLICATE_INDEXES = {
    "django_cele_group_i_299b0d_idx": (CHORD_TABLE, "group_id"),
    "django_cele_group_i_3cddec_idx": (GROUP_TABLE, "group_id"),
    "django_cele_task_id_7f8fca_idx": (TASK_TABLE, "task_id"),
}
#: The starting points of the upgrade test: every upstream step, and 2.1.0's 0009.
STARTS = {step[:4]: step for step in UPSTREAM_STEPS} | {"0009-2.1.0": "0009_groupresult"}


# -- the oracle, the installed schema, rows compared --------------------------------


@pytest.fixture(scope="session")
def upstream_root() -> Path:
    """The unpacked upstream wheel; the tests fail (never skip) when it cannot be had."""
    try:
        return upstream.upstream_root()
    except upstream.UpstreamUnavailable as exc:
        reason = str(exc)
    pytest.fail(f"upstream django-celery-results is needed as the oracle: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def compat_catalog() -> Catalog:
    """The installed base's schema on this engine (``tests/compat``)."""
    return installed_catalog()


def nested_differences(actual: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    """``item.key: actual != expected`` for each differing value of two dicts of dicts."""
    differences = []
    for item in sorted(set(actual) | set(expected)):
        if item not in actual or item not in expected:
            differences.append(f"{item}: {'missing' if item not in actual else 'not expected'}")
            continue
        for key in sorted(set(actual[item]) | set(expected[item])):
            if actual[item].get(key) != expected[item].get(key):
                differences.append(f"{item}.{key}: {actual[item].get(key)!r} != {expected[item].get(key)!r}")
    return differences


# -- 1. models and migrations agree --------------------------------------------------


@pytest.mark.parametrize("max_length", [None, 191], ids=["default", "191"])
def test_makemigrations_finds_no_changes(max_length: int | None) -> None:
    """``makemigrations --check``: a change in models not mirrored by a migration fails here.

    A subprocess because the id length is read when models load.
    """
    env = {"DCR_MIG_TASK_ID_MAX_LENGTH": str(max_length)} if max_length else {}
    answer = upstream.run_child("makemigrations-check", {}, package="ours", env=env)
    assert not answer["changes"], f"makemigrations would write a migration:\n{answer['output']}"
    assert answer["task_id_max_length"] == (max_length or 255)


def test_migration_names_extend_upstreams(upstream_root: Path) -> None:
    """Sites have upstream's names recorded in ``django_migrations``; ours must start with the same."""
    theirs = sorted(p.stem for p in (upstream_root / APP / "migrations").glob("0*.py"))
    ours = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / APP / "migrations").glob("0*.py"))
    assert theirs == list(UPSTREAM_STEPS)
    assert ours[: len(theirs)] == theirs


def test_child_imports_upstream(upstream_root: Path) -> None:
    """The oracle really is upstream 2.6.0, not our editable install."""
    answer = upstream.run_child("whoami")
    assert Path(answer["origin"]) == upstream_root / APP / "__init__.py"
    assert answer["version"] == upstream.UPSTREAM_VERSION


# -- 2. a fresh database -------------------------------------------------------------------


LAST_UPSTREAM = UPSTREAM_STEPS[-1]


@dataclass
class FreshSchemas:
    """Catalogs of a fresh database migrated by us, at upstream's last step and at our leaf."""

    at_last_upstream: Catalog
    at_leaf: Catalog


@pytest.fixture(scope="module")
def fresh(scratch: ScratchDatabases, django_db_blocker: Any) -> FreshSchemas:  # noqa: F811
    with django_db_blocker.unblock():
        alias = scratch.create("fresh")
        assert migrate_ours(alias, LAST_UPSTREAM) == list(UPSTREAM_STEPS)
        at_last_upstream = live_catalog(alias)
        migrate_ours(alias)
        return FreshSchemas(at_last_upstream, live_catalog(alias))


def test_fresh_schema_is_the_installed_base(fresh: FreshSchemas, compat_catalog: Catalog) -> None:
    """Up to upstream's last step exactly the installed schema; our later migrations only add to it."""
    differences = schema_differences(fresh.at_last_upstream, compat_catalog)
    assert not differences, "at upstream's last step (ours != installed):\n" + "\n".join(differences)
    differences = schema_differences(fresh.at_leaf, compat_catalog, additions=True)
    assert not differences, "at our last migration (ours != installed):\n" + "\n".join(differences)


# -- 3. upgrading a database at each upstream step --------------------------------------------

UTC = timezone.utc
DONE = datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _task_rows(tag: str) -> list[dict[str, Any]]:
    """Task rows with a value for every column any upstream step had."""
    base = {
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "hidden": False,
        "task_name": "tests.add",
        "task_args": '"(2, 3)"',
        "task_kwargs": '"{}"',
        "worker": "worker1@example.com",
        "periodic_task_name": "every-minute",
        "meta": '{"children": []}',
    }
    return [
        {
            **base,
            "task_id": f"{tag}-success",
            "status": "SUCCESS",
            "result": '{"sum": 5}',
            "traceback": None,
            "date_done": DONE,
            "date_created": DONE - timedelta(seconds=3),
            "date_started": DONE - timedelta(seconds=2),
        },
        {
            **base,
            "task_id": f"{tag}-failure",
            "status": "FAILURE",
            "hidden": True,
            "result": '{"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}',
            "traceback": "Traceback (most recent call last):\nValueError: boom\n",
            "date_done": DONE + timedelta(days=1),
            "date_created": DONE,
            "date_started": None,
        },
    ]


def _other_rows(tag: str) -> dict[str, list[dict[str, Any]]]:
    return {
        CHORD_TABLE: [{"group_id": f"{tag}-chord", "sub_tasks": '[[["a", null], null]]', "count": 2}],
        GROUP_TABLE: [
            {
                "group_id": f"{tag}-group",
                "date_created": DONE,
                "date_done": DONE + timedelta(minutes=1),
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "result": '["g", [[["a", null], null]]]',
            }
        ],
    }


def _insert(alias: str, table: str, rows: list[dict[str, Any]]) -> list[str]:
    """Insert ``rows`` with plain SQL into the columns the table has at this step; return them."""
    connection = connections[alias]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        columns = [
            c.name for c in connection.introspection.get_table_description(cursor, table) if c.name != "id"
        ]
        unknown = set(columns) - set(rows[0])
        assert not unknown, f"{table} has columns the test rows do not cover: {unknown}"
        for row in rows:
            values = [
                connection.ops.adapt_datetimefield_value(row[c]) if isinstance(row[c], datetime) else row[c]
                for c in columns
            ]
            cursor.execute(
                f"INSERT INTO {qn(table)} ({', '.join(qn(c) for c in columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})",
                values,
            )
    return columns


def _expected(rows: list[dict[str, Any]], stored: list[str], fields: list[str]) -> list[dict[str, Any]]:
    """What ``fields`` of the rows must hold after our migrations: stored values kept, new columns NULL.

    Rows that existed before 0006 get their completion date as creation date.
    """
    expected = []
    for row in rows:
        values = {field: row[field] if field in stored else None for field in fields}
        if "date_created" in fields and "date_created" not in stored:
            values["date_created"] = row["date_done"]
        expected.append(values)
    return expected


def _row_key(row: dict[str, Any]) -> str:
    return str(row.get("task_id") or row.get("group_id"))


def _index_names(alias: str) -> set[str]:
    """Names of the indexes and constraints on the app's tables, by Django's introspection."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        return {
            name
            for table in (TASK_TABLE, GROUP_TABLE, CHORD_TABLE)
            for name in connection.introspection.get_constraints(cursor, table)
        }


@pytest.fixture(scope="module")
def upstream_databases(
    scratch: ScratchDatabases,  # noqa: F811
    upstream_root: Path,
    django_db_blocker: Any,
) -> dict[str, str]:
    """One scratch database per starting point, migrated by upstream to it (one subprocess for all)."""
    with django_db_blocker.unblock():
        aliases = {start: scratch.create(f"at_{start}") for start in STARTS}
    jobs = [{"database": aliases[start], "target": target} for start, target in STARTS.items()]
    answer = upstream.run_child(
        "migrate", {"jobs": jobs}, databases=scratch.child_databases(list(aliases.values()))
    )
    for start, target in STARTS.items():
        applied = answer["applied"][aliases[start]]
        assert applied == list(UPSTREAM_STEPS[: UPSTREAM_STEPS.index(target) + 1]), start
    return aliases


@pytest.mark.usefixtures("scratch_access")
@pytest.mark.parametrize("start", list(STARTS))
def test_upgrade_from_upstream(
    start: str,
    upstream_databases: dict[str, str],
    compat_catalog: Catalog,
    fresh: FreshSchemas,
) -> None:
    """A site at upstream step ``start`` runs our ``migrate``: installed schema, rows intact."""
    from django_celery_results.models import ChordCounter, GroupResult, TaskResult

    alias = upstream_databases[start]
    connection = connections[alias]
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
    written = {TASK_TABLE: _task_rows(start)} | _other_rows(start)
    stored = {table: _insert(alias, table, rows) for table, rows in written.items() if table in tables}
    if start == "0009-2.1.0":
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            for name, (table, column) in DUPLICATE_INDEXES.items():
                cursor.execute(f"CREATE INDEX {qn(name)} ON {qn(table)} ({qn(column)})")
        assert set(DUPLICATE_INDEXES) <= _index_names(alias)

    remaining = list(UPSTREAM_STEPS[UPSTREAM_STEPS.index(STARTS[start]) + 1 :])
    assert migrate_ours(alias, LAST_UPSTREAM) == remaining
    assert_same_schema(alias, compat_catalog)
    if start == "0009-2.1.0":
        assert not set(DUPLICATE_INDEXES) & _index_names(alias), "our 0010 must drop 2.1.0's duplicates"
    migrate_ours(alias)
    assert_same_schema(alias, fresh.at_leaf)

    # Upstream's columns keep their values; columns of our own later migrations are not compared.
    for model in (TaskResult, GroupResult, ChordCounter):
        table = model._meta.db_table
        upstream_columns = compat_catalog.column_order[table]
        fields = [
            f.attname
            for f in model._meta.concrete_fields
            if f.column in upstream_columns and f.attname != "id"
        ]
        rows = model.objects.using(alias).values(*fields)
        expected = _expected(written[table], stored[table], fields) if table in stored else []
        differences = nested_differences(
            {_row_key(row): row for row in rows}, {_row_key(row): row for row in expected}
        )
        assert not differences, f"{table} rows (migrated != expected):\n" + "\n".join(differences)


# -- 4. rows written by one package, read by the other ------------------------------------------


@pytest.fixture
def celery_apps() -> Iterator[list[Any]]:
    """Celery apps made by a test, closed after it."""
    apps: list[Any] = []
    yield apps
    for app in apps:
        app.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("extended", [True, False], ids=["extended", "plain"])
@pytest.mark.parametrize("serializer", ["json", "pickle"])
@pytest.mark.parametrize("writer", ["upstream", "ours"])
def test_results_read_back_identically(
    writer: str,
    serializer: str,
    extended: bool,
    upstream_root: Path,
    celery_apps: list[Any],
) -> None:
    """``get_task_meta``/``restore_group`` agree whichever package wrote the rows.

    Committed rows (a transactional test) so that the subprocess sees ours and
    we see its. Summaries are compared as JSON (repr keeps tuples and sets).
    """
    from django.db import connection

    tag = f"{writer}-{serializer}-{'ext' if extended else 'plain'}"
    scenario = {"tag": tag, "serializer": serializer, "extended": extended}
    databases = {"default": child_settings(connection.settings_dict)}

    def our_app() -> Any:
        celery_apps.append(upstream.make_app(serializer, extended))
        return celery_apps[-1]

    if writer == "upstream":
        theirs = upstream.run_child("write-results", {"scenarios": [scenario]}, databases=databases)
        ours = upstream.read_results(our_app(), tag)
    else:
        upstream.write_results(our_app(), tag, serializer)
        ours = upstream.read_results(our_app(), tag)
        theirs = upstream.run_child("read-results", {"scenarios": [scenario]}, databases=databases)
    theirs = theirs["summaries"][tag]

    assert_written_values(ours, tag, writer, serializer, extended)
    expected = {item: dict(summary) for item, summary in theirs.items()}
    for item in upstream.task_ids(tag):
        # Ours also returns Celery's own key for the task name (read by AsyncResult.name);
        # upstream's meta has only task_name.
        expected[item]["name"] = theirs[item]["task_name"]
    # Deliberate divergence (tests/backends/test_database.py asserts it): ours follows Celery's
    # backend contract, date_done only for ready states; upstream returns the row's
    # date_done (time of the last update) for PROGRESS as well.
    assert theirs["progress"]["date_done"] != "None"
    expected["progress"]["date_done"] = "None"
    differences = nested_differences(ours, expected)
    assert not differences, "ours and upstream read the rows differently (ours != expected):\n" + "\n".join(
        differences
    )


def assert_written_values(
    summary: dict[str, Any], tag: str, writer: str, serializer: str, extended: bool
) -> None:
    """The values :func:`upstream.write_results` stored, as a reader must report them.

    Comparing two readers is not enough: both could report nothing.
    """
    describe = upstream.describe

    def if_extended(value: Any) -> Any:
        return describe(value if extended else None)

    success, failure, progress = summary["success"], summary["failure"], summary["progress"]
    assert success["status"] == describe("SUCCESS")
    assert success["result"] == describe(upstream.success_value(serializer))
    assert f"{tag}-child" in success["children"]
    assert (success["task_name"], success["args"], success["kwargs"], success["worker"]) == (
        if_extended("tests.add"),
        if_extended("(2, 3)"),
        if_extended("{'z': 1}"),
        if_extended("worker1@example.com"),
    )
    assert success["date_done"] != "None"
    assert failure["status"] == describe("FAILURE")
    assert failure["result"] == {"exception": "builtins.ValueError", "args": repr(("boom \u2717",))}
    assert (failure["args"], failure["kwargs"]) == (if_extended([1]), if_extended({"b": 2}))
    if writer == "ours" or extended:
        assert failure["traceback"] == describe(upstream.TRACEBACK)
    # else: upstream's own bug, not asserted: without result_extended its
    # _get_extended_properties() resets the traceback to None before storing.
    assert progress["status"] == describe("PROGRESS")
    assert progress["result"] == describe({"done": 3, "total": 7})
    assert progress["user_meta"] == {key: describe(value) for key, value in upstream.USER_META.items()}
    assert summary["group"]["id"] == upstream.group_id(tag)
    assert f"{tag}-success" in summary["group"]["members"] and f"{tag}-failure" in summary["group"]["members"]


# -- 5. exact ids on MySQL/MariaDB (0018) -----------------------------------------------------

EXACT_IDS = "0018_exact_ids_on_mysql"
BEFORE_EXACT_IDS = "0017_bigint_primary_keys"
#: What MariaDB (and MySQL 8, through utf8mb4_0900_bin) compares utf8mb4 ids with after 0018.
EXACT_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")


def _rows_at_0017(tag: str) -> dict[str, list[dict[str, Any]]]:
    """Rows for every column the three tables have at 0017 (the later columns filled too)."""
    tasks = [{**row, "retries": 1, "queue": "celery"} for row in _task_rows(tag)]
    others = _other_rows(tag)
    chords = [{**row, "counted_parts": "|", "date_created": DONE} for row in others[CHORD_TABLE]]
    return {TASK_TABLE: tasks, GROUP_TABLE: others[GROUP_TABLE], CHORD_TABLE: chords}


def _look_alikes(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """Copies of ``rows`` under ids that differ only in case, a trailing space or an accent."""
    variants = (str.upper, lambda value: value + " ", lambda value: value.replace("e", "\u00e9", 1))
    return [{**row, column: variant(row[column])} for row in rows for variant in variants]


def _all_rows(alias: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the three tables, in primary key order, as the driver returns them."""
    connection = connections[alias]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        rows = {}
        for table in (TASK_TABLE, GROUP_TABLE, CHORD_TABLE):
            cursor.execute(f"SELECT * FROM {qn(table)} ORDER BY {qn('id')}")
            rows[table] = list(cursor.fetchall())
    return rows


def _id_collations(alias: str) -> dict[str, str]:
    """``table.column`` -> collation of the three id columns (MySQL/MariaDB), and each table's default."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLLATION_NAME, t.TABLE_COLLATION "
            "FROM information_schema.COLUMNS c JOIN information_schema.TABLES t "
            "ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
            "WHERE c.TABLE_SCHEMA = DATABASE() AND c.COLUMN_NAME IN ('task_id', 'group_id')"
        )
        found = {}
        for table, column, collation, default in cursor.fetchall():
            found[f"{table}.{column}"] = collation
            found[f"{table} default"] = default
    return found


@pytest.mark.usefixtures("scratch_access")
def test_exact_ids_migration_keeps_rows_and_makes_look_alike_ids_distinct(scratch: ScratchDatabases) -> None:  # noqa: F811
    """A database holding rows at 0017 migrates to 0018 and back: rows intact, ids exact in between."""
    from django_celery_results import engines

    alias = scratch.create("exact_ids")
    migrate_ours(alias, BEFORE_EXACT_IDS)
    written = _rows_at_0017("exact")
    for table, rows in written.items():
        _insert(alias, table, rows)
    id_of = {TASK_TABLE: "task_id", GROUP_TABLE: "group_id", CHORD_TABLE: "group_id"}
    if ENGINE == "mysql":
        # The trap 0018 removes: the default collation makes "EXACT-SUCCESS" the same key.
        with pytest.raises(IntegrityError):
            _insert(alias, TASK_TABLE, _look_alikes(written[TASK_TABLE][:1], "task_id")[:1])
    before_catalog, before_rows = live_catalog(alias), _all_rows(alias)
    qn = connections[alias].ops.quote_name
    with connections[alias].cursor() as cursor:
        last_ids = {}
        for table in written:
            cursor.execute(f"SELECT MAX({qn('id')}) FROM {qn(table)}")
            last_ids[table] = cursor.fetchone()[0]

    assert migrate_ours(alias, EXACT_IDS) == [EXACT_IDS]
    assert _all_rows(alias) == before_rows
    after_catalog = live_catalog(alias)
    if ENGINE == "mysql":
        collations = _id_collations(alias)
        defaults = {collations[f"{table} default"] for table, _ in ID_COLUMNS}
        assert defaults == {"utf8mb4_general_ci"}, "the tables' own collation must not change"
        chosen = {collations[f"{table}.{column}"] for table, column in ID_COLUMNS}
        assert len(chosen) == 1 and chosen <= set(EXACT_COLLATIONS), collations
        # Only the three id columns changed, and only by their collation.
        changed = {line.split(":")[0] for line in schema_differences(after_catalog, before_catalog)}
        assert changed == {f"{table} columns {column}" for table, column in ID_COLUMNS}
        for table, column in ID_COLUMNS:
            definition = after_catalog.tables[table]["columns"][column]
            named = f" CHARACTER SET utf8mb4 COLLATE {next(iter(chosen))}"
            assert named in definition
            assert definition.replace(named, "") == before_catalog.tables[table]["columns"][column]
    else:
        assert schema_differences(after_catalog, before_catalog) == []
        for table, column in ID_COLUMNS:
            assert engines.exact_id_column_sql(connections[alias], table, column) == []
            assert engines.default_id_column_sql(connections[alias], table, column) == []

    # Ids that differ in case, a trailing space or an accent now coexist, on every engine.
    for table, rows in written.items():
        _insert(alias, table, _look_alikes(rows, id_of[table]))
    with_look_alikes = _all_rows(alias)
    for table, rows in written.items():
        assert len(with_look_alikes[table]) == 4 * len(rows)

    if ENGINE == "mysql":
        # Back to the default collation would merge them: the server refuses, nothing is lost.
        with pytest.raises(IntegrityError):
            migrate_ours(alias, BEFORE_EXACT_IDS)
        assert _all_rows(alias) == with_look_alikes
        assert set(_id_collations(alias)[f"{table}.{column}"] for table, column in ID_COLUMNS) <= set(
            EXACT_COLLATIONS
        )
    with connections[alias].cursor() as cursor:
        for table in written:
            cursor.execute(f"DELETE FROM {qn(table)} WHERE {qn('id')} > %s", [last_ids[table]])
    assert _all_rows(alias) == before_rows

    migrate_ours(alias, BEFORE_EXACT_IDS)
    assert _all_rows(alias) == before_rows
    assert schema_differences(live_catalog(alias), before_catalog) == [], "0018 reversed must be 0017"


def _column(alias: str, table: str, column: str) -> tuple[str, ...]:
    """Type, nullability, charset, collation and comment of one column, from information_schema."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_COMMENT "
            "FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = %s",
            [table, column],
        )
        return tuple(cursor.fetchone())


@pytest.mark.engine("mysql")
@pytest.mark.usefixtures("scratch_access")
def test_exact_id_column_keeps_everything_but_the_collation(scratch: ScratchDatabases) -> None:  # noqa: F811
    """Length, nullability, charset and comment are read from the server, not assumed.

    A 191-character id (``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = 191``) in
    utf8mb3, unlike its utf8mb4 table, with a comment holding quotes and a
    ``%``; and a nullable column.
    """
    from django_celery_results import engines

    alias = scratch.create("id_columns")
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE ids_probe (id bigint AUTO_INCREMENT PRIMARY KEY, "
            "task_id varchar(191) CHARACTER SET utf8mb3 NOT NULL COMMENT 'it''s 100% the id', "
            "group_id varchar(64) NULL, UNIQUE KEY (task_id)) "
            "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
        )
    before = {column: _column(alias, "ids_probe", column) for column in ("task_id", "group_id")}
    assert before["task_id"][2:4] == ("utf8mb3", "utf8mb3_general_ci")
    if connection.mysql_is_mariadb:
        # MariaDB's utf8mb3 and utf8mb4 both have a binary collation that does not pad.
        exact = {"task_id": "utf8mb3_nopad_bin", "group_id": "utf8mb4_nopad_bin"}
    else:
        # MySQL 8: utf8mb4_0900_bin does not pad; utf8mb3 only has the padding utf8mb3_bin.
        exact = {"task_id": "utf8mb3_bin", "group_id": "utf8mb4_0900_bin"}
    for column, collation in exact.items():
        statements = engines.exact_id_column_sql(connection, "ids_probe", column)
        assert len(statements) == 1
        with connection.cursor() as cursor:
            cursor.execute(statements[0])
        after = _column(alias, "ids_probe", column)
        assert after[3] == collation
        assert after[:3] + after[4:] == before[column][:3] + before[column][4:]
        assert engines.exact_id_column_sql(connection, "ids_probe", column) == [], "already exact"
    with connection.cursor() as cursor:
        # A padding collation (MySQL's utf8mb3_bin) still equates "abc " with "abc".
        look_alikes = ["abc", "ABC", "\u00e0bc"] + (["abc "] if connection.mysql_is_mariadb else [])
        cursor.executemany("INSERT INTO ids_probe (task_id) VALUES (%s)", [[value] for value in look_alikes])
        cursor.execute("SELECT COUNT(*) FROM ids_probe WHERE task_id = 'abc'")
        assert cursor.fetchone() == (1,)
        cursor.execute("DELETE FROM ids_probe WHERE task_id <> 'abc'")

    # Back: the table's default, or for a column of another charset that charset's default.
    for column in ("task_id", "group_id"):
        for sql in engines.default_id_column_sql(connection, "ids_probe", column):
            with connection.cursor() as cursor:
                cursor.execute(sql)
        assert _column(alias, "ids_probe", column) == before[column]
        assert engines.default_id_column_sql(connection, "ids_probe", column) == []
