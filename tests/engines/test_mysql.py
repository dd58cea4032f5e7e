"""MySQL/MariaDB traps: isolation level, index key length, silent truncation.

The over-long value tests run on every engine: the guarantee (nothing is
truncated, nothing else is touched) is the same everywhere; on MySQL/MariaDB
they also run through a session with ``sql_mode = ''``, which would truncate.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import states
from celery.app.task import Context
from celery.result import AsyncResult
from celery.result import GroupResult as CeleryGroupResult
from django.db import DataError, OperationalError, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.state import ModelState, ProjectState
from django.db.utils import load_backend
from django.test import override_settings

from django_celery_results import engines
from django_celery_results.exceptions import ValueTooLong
from django_celery_results.managers import TxIsolationWarning
from django_celery_results.models import ID_MAX_LENGTH, ChordCounter, GroupResult, TaskResult
from django_celery_results.values import ELLIPSIS
from tests.support.requests import task_request
from tests.support.routers import ResultsRouter, extra_connections_closed  # noqa: F401

# -- which variable holds the isolation level -------------------------------------


class FakeCursor:
    def __init__(self, executed: list[str]) -> None:
        self.executed = executed

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, sql: str, params: Any = None) -> None:
        self.executed.append(sql)

    def fetchone(self) -> tuple[str]:
        return ("REPEATABLE-READ",)


class FakeMySQLConnection:
    vendor = "mysql"

    def __init__(self, mariadb: bool, version: tuple[int, ...]) -> None:
        self.mysql_is_mariadb = mariadb
        self.mysql_version = version
        self.executed: list[str] = []

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.executed)


@pytest.mark.parametrize(
    ("mariadb", "version", "variable"),
    [
        (False, (8, 0, 11), "transaction_isolation"),
        (False, (8, 4, 3), "transaction_isolation"),
        (True, (10, 5, 0), "tx_isolation"),
        (True, (10, 11, 19), "tx_isolation"),
        (True, (11, 0, 6), "tx_isolation"),
        (True, (11, 1, 0), "transaction_isolation"),
        (True, (11, 4, 2), "transaction_isolation"),
    ],
)
def test_isolation_variable_per_server(mariadb: bool, version: tuple[int, ...], variable: str) -> None:
    fake = FakeMySQLConnection(mariadb, version)
    assert engines.isolation_level(fake) == "REPEATABLE-READ"  # type: ignore[arg-type]
    assert fake.executed == [f"SELECT @@SESSION.{variable}"]


@pytest.mark.engine("mysql")
@pytest.mark.django_db(databases=["default", "repeatable"])
def test_isolation_level_on_the_real_server() -> None:
    assert engines.isolation_level(connections["default"]) == "READ-COMMITTED"
    assert engines.isolation_level(connections["repeatable"]) == "REPEATABLE-READ"


@pytest.mark.engine("mysql")
@pytest.mark.django_db(databases=["default", "repeatable"])
@pytest.mark.parametrize("model", [TaskResult, GroupResult])
def test_warns_only_at_repeatable_read(model: type[models.Model]) -> None:
    manager: Any = model._default_manager
    with pytest.warns(TxIsolationWarning, match="repeatable-read"):
        manager.db_manager("repeatable").warn_if_repeatable_read()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manager.warn_if_repeatable_read()  # reads go to "default": READ COMMITTED
        manager.db_manager("default").warn_if_repeatable_read()


@pytest.mark.engine("mysql")
@pytest.mark.django_db(databases=["default", "repeatable"])
def test_warning_follows_the_read_router() -> None:
    with (
        override_settings(DATABASE_ROUTERS=[ResultsRouter(read="repeatable")]),
        pytest.warns(TxIsolationWarning),
    ):
        TaskResult.objects.warn_if_repeatable_read()


# -- index key length on a real server ------------------------------------------------


@pytest.fixture
def keys_db(django_db_blocker: Any) -> Iterator[BaseDatabaseWrapper]:
    """A connection to a scratch utf8mb4 database, dropped afterwards."""
    name = f"dcr_eng_keys_{os.getpid()}"
    base = copy.deepcopy(connections["default"].settings_dict)
    backend = load_backend(base["ENGINE"])
    with django_db_blocker.unblock():
        server = backend.DatabaseWrapper({**base, "NAME": ""}, "dcr_eng_server")
        with server.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        scratch = backend.DatabaseWrapper({**base, "NAME": name}, "dcr_eng_keys")
        try:
            yield scratch
        finally:
            scratch.close()
            with server.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            server.close()


#: Columns the installed base (upstream 2.6.0) does not have.
NEWER_COLUMNS = ("queue", "retries")


def task_result_model(id_length: int, periodic_length: int = 255) -> type[models.Model]:
    """The installed base's TaskResult, with another ``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH``.

    Our newer columns are left out: in a COMPACT table they also push the
    row past InnoDB's 8126-byte limit (error 1118), which is not the trap
    shown here.
    """
    state = ModelState.from_model(TaskResult)
    for name in NEWER_COLUMNS:
        state.fields.pop(name, None)
    lengths = {"task_id": id_length, "task_name": id_length, "periodic_task_name": periodic_length}
    for name, length in lengths.items():
        _, _, args, kwargs = state.fields[name].deconstruct()
        state.fields[name] = models.CharField(*args, **{**kwargs, "max_length": length})
    project = ProjectState()
    project.add_model(state)
    return project.apps.get_model("django_celery_results", "taskresult")


def create_table_sql(
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    row_format: str,
) -> list[str]:
    """The statements ``migrate`` would run, the CREATE TABLE given an explicit row format.

    ``innodb_default_row_format`` is global only, so the format goes into the statement.
    """
    with connection.schema_editor(collect_sql=True) as editor:
        editor.create_model(model)
    statements = [sql.rstrip(";") for sql in editor.collected_sql]
    assert statements[0].startswith("CREATE TABLE")
    statements[0] += f" ROW_FORMAT={row_format}"
    return statements


def run_until_failure(connection: BaseDatabaseWrapper, statements: list[str]) -> str | None:
    """Run the statements in order; return the one the server refused (``None``: all ran)."""
    with connection.cursor() as cursor:
        for sql in statements:
            try:
                cursor.execute(sql)
            except OperationalError as exc:
                assert exc.args[0] == 1709, exc  # Index column size too large
                return sql
    return None


@pytest.mark.engine("mysql")
def test_255_characters_of_utf8mb4_cannot_be_indexed_in_compact_tables(
    keys_db: BaseDatabaseWrapper,
) -> None:
    statements = create_table_sql(keys_db, task_result_model(255), "COMPACT")
    refused = run_until_failure(keys_db, statements)
    # The unique task_id (1020 bytes) is declared in the CREATE TABLE itself.
    assert refused is statements[0]
    assert "`task_id` varchar(255) NOT NULL UNIQUE" in refused


@pytest.mark.engine("mysql")
def test_191_characters_fit_but_periodic_task_name_does_not(keys_db: BaseDatabaseWrapper) -> None:
    statements = create_table_sql(keys_db, task_result_model(191), "COMPACT")
    refused = run_until_failure(keys_db, statements)
    # task_id, task_name (191 x 4 = 764 bytes) are fine; periodic_task_name keeps
    # 255 characters whatever the setting says, and is indexed.
    assert refused is not None and refused.startswith("CREATE INDEX")
    assert "(`periodic_task_name`)" in refused


@pytest.mark.engine("mysql")
def test_191_characters_fit_in_compact_tables(keys_db: BaseDatabaseWrapper) -> None:
    statements = create_table_sql(keys_db, task_result_model(191, periodic_length=191), "COMPACT")
    assert run_until_failure(keys_db, statements) is None
    with keys_db.cursor() as cursor:
        cursor.execute(
            "SELECT ROW_FORMAT FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'django_celery_results_taskresult'"
        )
        assert cursor.fetchone() == ("Compact",)
    # Now the table exists, its own format decides.
    limits = engines.key_limits(keys_db, "django_celery_results_taskresult")
    assert limits == engines.KeyLimits(767, 4, "COMPACT", "InnoDB")


@pytest.mark.engine("mysql")
def test_255_characters_fit_in_dynamic_tables(keys_db: BaseDatabaseWrapper) -> None:
    statements = create_table_sql(keys_db, task_result_model(255), "DYNAMIC")
    assert run_until_failure(keys_db, statements) is None


# -- over-long values -------------------------------------------------------------------

#: (field, column length, request attribute that carries it).
#: Descriptive columns: (field, limit, request attribute). Over-long values are shortened visibly.
DESCRIPTIVE_FIELDS = [
    ("task_name", ID_MAX_LENGTH, "task"),
    ("worker", 100, "hostname"),
    ("periodic_task_name", 255, "periodic_task_name"),
]


def all_rows() -> list[dict[str, Any]]:
    return list(TaskResult.objects.using("default").order_by("pk").values())


@contextmanager
def writes_through(alias: str) -> Iterator[None]:
    with override_settings(DATABASE_ROUTERS=[ResultsRouter(read=alias, write=alias)]):
        yield


@pytest.mark.engine("mysql")
@pytest.mark.django_db(databases=["default", "lax"], transaction=True)
def test_the_lax_session_really_truncates() -> None:
    """Without the length check, the ``lax`` session would store a shortened value."""
    table = TaskResult._meta.db_table
    sql = (
        f"INSERT INTO {table} (task_id, status, content_type, content_encoding, worker, "
        "date_created, date_done) VALUES (%s, 'SUCCESS', 'application/json', 'utf-8', %s, NOW(), NOW())"
    )
    with connections["lax"].cursor() as cursor:
        cursor.execute(sql, ["lax-1", "w" * 150])
    assert len(TaskResult.objects.get(task_id="lax-1").worker) == 100
    with pytest.raises(DataError), connections["default"].cursor() as cursor:
        cursor.execute(sql, ["strict-1", "w" * 150])


def request_for(task_id: str, **overrides: str) -> Context:
    return task_request(task_id, **{"periodic_task_name": "every-minute", "children": [], **overrides})


def victim_and_bystander() -> list[dict[str, Any]]:
    """The row a truncated task id would land on (still running), and another; all rows after."""
    TaskResult.objects.store_result("application/json", "utf-8", "t" * ID_MAX_LENGTH, None, states.STARTED)
    TaskResult.objects.store_result(
        "application/json",
        "utf-8",
        "bystander",
        '"kept"',
        states.SUCCESS,
        worker="celery@b",
    )
    return all_rows()


@pytest.mark.django_db(databases=["default", "lax"], transaction=True)
@pytest.mark.parametrize("alias", ["default", "lax"])
def test_over_long_task_ids_are_refused_not_truncated(backend: Any, alias: str) -> None:
    before = victim_and_bystander()
    over_long = "t" * (ID_MAX_LENGTH + 1)
    with writes_through(alias):
        with pytest.raises(ValueTooLong) as raised:
            TaskResult.objects.store_result("application/json", "utf-8", over_long, "42", states.SUCCESS)
        # A worker's store of such a task logs the refusal and stores nothing (it must keep running).
        backend.store_result(over_long, 42, states.SUCCESS, request=request_for(over_long))
    error = raised.value
    assert (error.field, error.max_length, error.length) == ("task_id", ID_MAX_LENGTH, ID_MAX_LENGTH + 1)
    assert "task_id" in str(error) and str(ID_MAX_LENGTH) in str(error)
    assert all_rows() == before


@pytest.mark.django_db(databases=["default", "lax"], transaction=True)
@pytest.mark.parametrize("alias", ["default", "lax"])
@pytest.mark.parametrize("via", ["backend", "manager"])
@pytest.mark.parametrize(("field", "limit", "attribute"), DESCRIPTIVE_FIELDS)
def test_over_long_descriptions_are_shortened_not_truncated_by_the_server(
    backend: Any,
    alias: str,
    via: str,
    field: str,
    limit: int,
    attribute: str,
) -> None:
    before = victim_and_bystander()
    over_long = "x" * (limit + 1)
    with writes_through(alias):
        if via == "backend":
            request = request_for("new-task", **{attribute: over_long})
            backend.store_result("new-task", 42, states.SUCCESS, request=request)
        else:
            values = {"task_name": "tests.add", "worker": "celery@host", "periodic_task_name": "p"}
            TaskResult.objects.store_result(
                "application/json",
                "utf-8",
                "new-task",
                "42",
                states.SUCCESS,
                **{**values, field: over_long},
            )
    stored = TaskResult.objects.using("default").get(task_id="new-task")
    assert getattr(stored, field) == "x" * (limit - 1) + ELLIPSIS
    assert stored.status == states.SUCCESS
    assert [row for row in all_rows() if row["task_id"] != "new-task"] == before


@pytest.mark.django_db(databases=["default", "lax"], transaction=True)
@pytest.mark.parametrize("alias", ["default", "lax"])
def test_over_long_group_ids_are_refused(backend: Any, app: Any, alias: str) -> None:
    group_id = "g" * (ID_MAX_LENGTH + 1)
    header = CeleryGroupResult(group_id, [AsyncResult("part-1", app=app)], app=app)
    with writes_through(alias):
        with pytest.raises(ValueTooLong) as raised:
            backend.save_group(group_id, header)
        assert raised.value.field == "group_id"
        with pytest.raises(ValueTooLong):
            backend.apply_chord(header, app.signature("tests.callback"))
    assert not GroupResult.objects.using("default").exists()
    assert not ChordCounter.objects.using("default").exists()


@pytest.mark.django_db(databases=["default"], transaction=True)
def test_values_at_the_limit_are_stored_whole(backend: Any) -> None:
    task_id = "i" * ID_MAX_LENGTH
    request = request_for(task_id, task="n" * ID_MAX_LENGTH, hostname="h" * 100, periodic_task_name="p" * 255)
    backend.store_result(task_id, 1, states.SUCCESS, request=request)
    row = TaskResult.objects.get(task_id=task_id)
    assert (row.task_name, row.worker, row.periodic_task_name) == (
        "n" * ID_MAX_LENGTH,
        "h" * 100,
        "p" * 255,
    )
