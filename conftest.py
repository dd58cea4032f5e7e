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


def pytest_report_header(config: pytest.Config) -> str:
    import django

    django.setup()
    try:
        with _database_unblocked(config):
            return f"database: {_server_description()}"
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
