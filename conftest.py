"""Project-wide pytest setup: which engine the run uses, and failing when it is unreachable."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def _server_description() -> str:
    """``"<engine> <version>"`` of the server the test settings point at; raises when unreachable."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("select sqlite_version()")
            return f"sqlite {cursor.fetchone()[0]}"
        if connection.vendor == "postgresql":
            cursor.execute("show server_version")
            return f"postgresql {cursor.fetchone()[0].split()[0]}"
        cursor.execute("select version()")
        version = cursor.fetchone()[0]
        kind = "mariadb" if "mariadb" in version.lower() else "mysql"
        return f"mysql ({kind}) {version.split('-')[0]}"


def _database_unblocked(config: pytest.Config) -> Any:
    """pytest-django blocks database access outside tests; the header may look."""
    try:
        from pytest_django.plugin import blocking_manager_key
    except ImportError:  # pytest-django < 4.7
        return contextlib.nullcontext()
    return config.stash[blocking_manager_key].unblock()


#: Where pytest_report_header leaves the server description for the JUnit report.
SERVER_KEY = pytest.StashKey[str]()


def pytest_report_header(config: pytest.Config) -> str:
    import django

    django.setup()
    try:
        with _database_unblocked(config):
            config.stash[SERVER_KEY] = _server_description()
            return f"database: {config.stash[SERVER_KEY]}"
    except Exception as exc:
        engine = os.environ.get("DCR_TEST_DB", "sqlite")
        raise pytest.UsageError(
            f"DCR_TEST_DB={engine}: the database server is unreachable ({exc}). "
            "Start it (see README, 'Running the tests') or choose another engine."
        ) from exc


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect tests marked ``engine(...)`` for another engine; they are listed, not silently skipped."""
    from tests.settings import ENGINE

    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker("engine")
        if marker is None or ENGINE in marker.args:
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _versions(config: pytest.Config) -> dict[str, str]:
    """What a cell of the compatibility matrix is made of (MATRIX.md reads it from the JUnit report)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from django.db import connection

    found = {"python": platform.python_version(), "server": config.stash.get(SERVER_KEY, "")}
    for name in ("django", "celery", "kombu"):
        found[name] = version(name)
    if connection.vendor == "postgresql":
        driver = connection.Database.__name__  # type: ignore[attr-defined]
        found["driver"] = f"{driver} {version('psycopg2-binary' if driver == 'psycopg2' else 'psycopg')}"
    elif connection.vendor == "mysql":
        found["driver"] = f"mysqlclient {version('mysqlclient')}"
    else:
        import sqlite3

        found["driver"] = f"sqlite3 (SQLite {sqlite3.sqlite_version})"
    with contextlib.suppress(PackageNotFoundError):
        found["package"] = version("django-celery-results")
    chosen = list(config.args) if config.args_source == pytest.Config.ArgsSource.ARGS else []
    chosen += [f"-k {config.option.keyword}"] * bool(config.option.keyword)
    chosen += [f"-m {config.option.markexpr}"] * bool(config.option.markexpr)
    found["selection"] = " ".join(chosen) or "full suite"
    return found


@pytest.fixture(scope="session", autouse=True)
def _matrix_cell(
    request: pytest.FixtureRequest,
    record_testsuite_property: Any,
    django_db_blocker: Any,
) -> None:
    if SERVER_KEY not in request.config.stash:  # no header (-q, --no-header): ask the server now
        with django_db_blocker.unblock():
            request.config.stash[SERVER_KEY] = _server_description()
    for name, value in _versions(request.config).items():
        record_testsuite_property(name, value)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """pytest's exit status in the JUnit report too: an interrupted run is no result (dev.py reads it)."""
    from _pytest.junitxml import xml_key

    report = session.config.stash.get(xml_key, None)
    if report is not None:
        report.add_global_property("exitstatus", str(int(exitstatus)))
