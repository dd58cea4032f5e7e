"""System checks W001-W004: database checks, for the aliases the results use."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from io import StringIO

import pytest
from django.apps import apps
from django.core import checks
from django.core.management import call_command
from django.db import connections
from django.db.utils import load_backend
from django.test import override_settings

from django_celery_results import engines
from django_celery_results.checks import (
    IndexedColumn,
    check_results_databases,
    indexed_text_columns,
    key_length_issues,
    key_length_warnings,
)
from django_celery_results.models import ID_MAX_LENGTH
from tests.settings import ENGINE
from tests.support.routers import ResultsRouter, extra_connections_closed  # noqa: F401

#: Engines whose REPEATABLE READ transactions read from one snapshot.
SNAPSHOT_ENGINES = ("mysql", "postgresql")


def ids(issues: list[checks.CheckMessage]) -> list[tuple[str | None, object]]:
    return [(issue.id, issue.obj) for issue in issues]


def routed(**kwargs: object) -> override_settings:
    return override_settings(DATABASE_ROUTERS=[ResultsRouter(**kwargs)])  # type: ignore[arg-type]


def test_registered_as_a_database_check() -> None:
    registered = checks.registry.registry.get_checks()
    assert check_results_databases in registered
    assert checks.Tags.database in check_results_databases.tags


def test_plain_check_touches_no_database() -> None:
    # No django_db mark: any query here would fail the test.
    assert check_results_databases(databases=None) == []
    assert not [i for i in checks.run_checks() if (i.id or "").startswith("django_celery_results")]


@pytest.mark.django_db(databases=["default"])
def test_default_test_settings_are_clean() -> None:
    assert check_results_databases(databases=["default"]) == []


@pytest.mark.django_db(databases=["default", "repeatable"])
def test_w001_when_results_are_read_at_repeatable_read() -> None:
    with routed(read="repeatable"):
        issues = check_results_databases(databases=["default", "repeatable"])
    if ENGINE in SNAPSHOT_ENGINES:
        assert ids(issues) == [("django_celery_results.W001", "repeatable")]
        assert "REPEATABLE READ" in issues[0].msg
        expected = '"read committed"' if ENGINE == "mysql" else "READ_COMMITTED"
        assert expected in str(issues[0].hint)
    else:
        # SQLite has no snapshot isolation to configure.
        assert issues == []


@pytest.mark.django_db(databases=["default", "repeatable"])
def test_w001_only_for_the_alias_results_are_read_from() -> None:
    # Without a router, results are read from "default": "repeatable" may hold
    # the tables (W002 and W003 look at it) but nobody polls through it.
    assert check_results_databases(databases=["repeatable"]) == []
    with routed(read="default", write="repeatable"):
        assert check_results_databases(databases=["repeatable"]) == []


@pytest.mark.django_db(databases=["default", "repeatable"])
def test_other_apps_checks_do_not_run_ours() -> None:
    with routed(read="repeatable"):
        assert (
            check_results_databases(
                app_configs=[apps.get_app_config("auth")],
                databases=["repeatable"],
            )
            == []
        )


@pytest.mark.django_db(databases=["default", "repeatable"])
def test_check_command_with_database_option() -> None:
    out, err = StringIO(), StringIO()
    with routed(read="repeatable"):
        call_command("check", "--database", "repeatable", stdout=out, stderr=err)
    assert ("django_celery_results.W001" in err.getvalue()) == (ENGINE in SNAPSHOT_ENGINES)


@pytest.mark.django_db(databases=["default", "repeatable"])
def test_checks_run_before_migrate() -> None:
    out, err = StringIO(), StringIO()
    with routed(read="repeatable"):
        call_command(
            "migrate",
            database="repeatable",
            plan=True,
            skip_checks=False,
            stdout=out,
            stderr=err,
        )
    assert ("django_celery_results.W001" in err.getvalue()) == (ENGINE in SNAPSHOT_ENGINES)


@pytest.mark.django_db(databases=["default", "lax"])
def test_w003_when_results_are_written_without_strict_mode() -> None:
    with routed(write="lax"):
        issues = check_results_databases(databases=["default", "lax"])
    if ENGINE == "mysql":
        assert ids(issues) == [("django_celery_results.W003", "lax")]
        assert "init_command" in str(issues[0].hint)
        assert "SET sql_mode='STRICT_TRANS_TABLES'" in str(issues[0].hint)
    else:
        # PostgreSQL always rejects over-long values; SQLite has no sql_mode.
        assert issues == []


@pytest.mark.django_db(databases=["default", "lax"])
def test_w003_only_for_aliases_results_are_written_to() -> None:
    assert check_results_databases(databases=["lax"]) == []


@pytest.fixture
def unreachable_alias() -> Iterator[str]:
    """An alias whose server refuses connections (SQLite: a file that cannot be opened)."""
    alias = "dcr_unreachable"
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    if ENGINE == "sqlite":
        settings_dict["NAME"] = "/nonexistent-dcr-dir/results.db"
    else:
        settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", "1"
    connections[alias] = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)
    try:
        yield alias
    finally:
        connections[alias].close()
        del connections[alias]


@pytest.mark.django_db(databases=["default"])
def test_unreachable_server_gives_an_info_not_a_crash(unreachable_alias: str) -> None:
    with routed(read=unreachable_alias, write=unreachable_alias):
        issues = check_results_databases(databases=[unreachable_alias])
    if ENGINE == "sqlite":
        # Nothing to ask SQLite, so nothing is opened.
        assert issues == []
    else:
        assert ids(issues) == [("django_celery_results.I001", unreachable_alias)]
        assert issues[0].level == checks.INFO


# -- W002: the decision, fed with any server's figures ---------------------------------


@pytest.mark.parametrize(
    ("storage_engine", "row_format", "page_size", "large_prefix", "limit"),
    [
        ("InnoDB", "DYNAMIC", 16384, None, 3072),
        ("InnoDB", "Compressed", 16384, True, 3072),
        ("InnoDB", "DYNAMIC", 16384, False, 767),
        ("InnoDB", "COMPACT", 16384, None, 767),
        ("InnoDB", "Redundant", 65536, None, 767),
        ("InnoDB", "DYNAMIC", 8192, None, 1536),
        ("InnoDB", "DYNAMIC", 4096, None, 768),
        ("MyISAM", "Dynamic", 16384, None, 1000),
        ("MEMORY", "Fixed", 16384, None, None),
    ],
)
def test_max_key_bytes(
    storage_engine: str,
    row_format: str,
    page_size: int,
    large_prefix: bool | None,
    limit: int | None,
) -> None:
    assert engines.max_key_bytes(storage_engine, row_format, page_size, large_prefix) == limit


def test_indexed_text_columns_follow_the_models() -> None:
    found = {(c.table, c.column): c.max_length for c in indexed_text_columns()}
    assert found == {
        ("django_celery_results_chordcounter", "group_id"): ID_MAX_LENGTH,
        ("django_celery_results_groupresult", "group_id"): ID_MAX_LENGTH,
        ("django_celery_results_taskresult", "periodic_task_name"): 255,
        ("django_celery_results_taskresult", "status"): 50,
        ("django_celery_results_taskresult", "task_id"): ID_MAX_LENGTH,
        ("django_celery_results_taskresult", "task_name"): ID_MAX_LENGTH,
        ("django_celery_results_taskresult", "worker"): 100,
    }


def limits_for_all(limit: engines.KeyLimits | None) -> dict[str, engines.KeyLimits | None]:
    return {c.table: limit for c in indexed_text_columns()}


COMPACT_UTF8MB4 = engines.KeyLimits(767, 4, "COMPACT", "InnoDB")


def test_w002_for_255_characters_of_utf8mb4_in_767_bytes() -> None:
    columns = [IndexedColumn("t", "task_id", 255), IndexedColumn("t", "worker", 100)]
    issues = key_length_warnings("default", {"t": COMPACT_UTF8MB4}, columns)
    assert ids(issues) == [("django_celery_results.W002", "default")]
    assert "t.task_id needs 1020 bytes" in issues[0].msg
    assert "worker" not in issues[0].msg
    assert "DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = 191" in str(issues[0].hint)


def test_no_w002_for_191_characters() -> None:
    columns = [IndexedColumn("t", "task_id", 191), IndexedColumn("t", "group_id", 191)]
    assert key_length_warnings("default", {"t": COMPACT_UTF8MB4}, columns) == []


def test_w002_names_the_fixed_length_periodic_task_name() -> None:
    # The setting cannot shorten periodic_task_name (255, indexed): 191 is not enough.
    columns = [IndexedColumn("t", "task_id", 191), IndexedColumn("t", "periodic_task_name", 255)]
    issues = key_length_warnings("default", {"t": COMPACT_UTF8MB4}, columns)
    assert len(issues) == 1
    assert "periodic_task_name" in issues[0].msg and "task_id" not in issues[0].msg
    assert "ROW_FORMAT=DYNAMIC" in str(issues[0].hint)
    assert "TASK_ID_MAX_LENGTH" not in str(issues[0].hint)


@pytest.mark.parametrize(
    ("limits", "warns", "fits"),
    [
        (engines.KeyLimits(3072, 4, "DYNAMIC", "InnoDB"), False, None),
        (engines.KeyLimits(767, 3, "COMPACT", "InnoDB"), False, None),  # utf8mb3: 765 bytes
        (engines.KeyLimits(767, 1, "COMPACT", "InnoDB"), False, None),  # latin1
        (engines.KeyLimits(1000, 4, "Dynamic", "MyISAM"), True, 250),
        (COMPACT_UTF8MB4, True, 191),
        (None, False, None),  # PostgreSQL, SQLite
    ],
)
def test_w002_decision_with_the_models(
    limits: engines.KeyLimits | None,
    warns: bool,
    fits: int | None,
) -> None:
    # The test settings keep the default length, 255.
    assert ID_MAX_LENGTH == 255
    issues = key_length_warnings("default", limits_for_all(limits), indexed_text_columns())
    assert bool(issues) == warns
    if issues:
        assert f"DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = {fits}" in str(issues[0].hint)
        assert "periodic_task_name has a fixed length" in str(issues[0].hint)


@pytest.mark.engine("mysql")
@pytest.mark.django_db(databases=["default"])
def test_w002_with_the_real_server_variables() -> None:
    # The server creates DYNAMIC tables: 3072 bytes, enough for 255 x 4.
    assert key_length_issues("default") == []
    limits = engines.key_limits(connections["default"], "django_celery_results_taskresult")
    assert limits is not None and limits.max_key_bytes == 3072 and limits.bytes_per_char == 4
    # The same server and database, were the tables COMPACT: 767 bytes.
    issues = key_length_issues("default", row_format="COMPACT")
    assert ids(issues) == [("django_celery_results.W002", "default")]
    assert "the limit is 767 bytes" in issues[0].msg
    assert "django_celery_results_taskresult.task_id needs 1020 bytes" in issues[0].msg
    assert "DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = 191" in str(issues[0].hint)


@pytest.mark.engine("mysql")
@pytest.mark.django_db(databases=["default"])
def test_key_limits_of_a_table_still_to_be_created() -> None:
    limits = engines.key_limits(connections["default"], "dcr_no_such_table")
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT @@innodb_default_row_format")
        (default_format,) = cursor.fetchone()
    assert limits is not None and limits.row_format == default_format.upper()
    assert limits.bytes_per_char == 4  # the test database is utf8mb4


@pytest.mark.django_db(databases=["default"])
def test_w004_when_the_server_refuses_results_as_large_as_configured() -> None:
    limit = engines.statement_size_limit(connections["default"])
    if ENGINE != "mysql":
        assert limit is None  # no statement size limit near a result's size
        with override_settings(DJANGO_CELERY_RESULTS={"MAX_RESULT_SIZE": 2**40}):
            assert check_results_databases(databases=["default"]) == []
        return
    assert limit is not None
    with override_settings(DJANGO_CELERY_RESULTS={"MAX_RESULT_SIZE": limit + 1}):
        issues = check_results_databases(databases=["default"])
    assert ids(issues) == [("django_celery_results.W004", "default")]
    assert str(limit) in issues[0].msg and "max_allowed_packet" in str(issues[0].hint)
    with override_settings(DJANGO_CELERY_RESULTS={"MAX_RESULT_SIZE": limit}):
        assert check_results_databases(databases=["default"]) == []
