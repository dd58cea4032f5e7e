"""Throw-away databases on the run's engine, for tests that migrate schemas away from the test database.

Import the fixtures into the test module: ``from tests.support.scratch import scratch, scratch_access``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from tests.settings import ENGINE, database
from tests.support.schema import APP


def child_settings(settings_dict: dict[str, Any]) -> dict[str, Any]:
    """The part of a connection's settings a subprocess needs (JSON-able)."""
    keys = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
    return {key: settings_dict[key] for key in keys if key in settings_dict}


class ScratchDatabases:
    """Throw-away databases on the test run's engine, each with its own connection alias.

    On PostgreSQL each is a schema of one scratch database (the connection's
    ``search_path`` points at it): dropping a used database waits for a
    checkpoint, about half a second each, while dropping a schema is instant.
    The schema catalogue (:mod:`tests.support.schema`) reads ``current_schema()``,
    so nothing else changes.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.prefix = f"dcr_mig_{os.getpid()}"
        self.aliases: list[str] = []
        self.pg_database: str | None = None

    def _register(self, alias: str, settings_dict: dict[str, Any]) -> None:
        # configure_settings() fills in the keys Django expects (AUTOCOMMIT, TIME_ZONE...).
        configured = connections.configure_settings(
            {"default": connections.settings["default"], alias: settings_dict}
        )
        connections.settings[alias] = configured[alias]

    def _settings(self, name: str) -> dict[str, Any]:
        settings_dict = {key: value for key, value in database(ENGINE, name).items() if key != "TEST"}
        settings_dict["NAME"] = str(self.directory / f"{name}.sqlite3") if ENGINE == "sqlite" else name
        return settings_dict

    def _postgresql_database(self) -> str:
        """The one PostgreSQL database holding the scratch schemas, created on first use."""
        if self.pg_database is None:
            self._register(self.prefix, self._settings(self.prefix))
            with connections[self.prefix]._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{self.prefix}"')
                # template0: nobody is ever connected to it, so concurrent runs cannot block the copy.
                cursor.execute(f"CREATE DATABASE \"{self.prefix}\" TEMPLATE template0 ENCODING 'UTF8'")
            self.pg_database = self.prefix
        return self.pg_database

    def create(self, tag: str) -> str:
        """Create (or recreate) scratch database ``dcr_mig_<pid>_<tag>``; return its alias."""
        name = f"{self.prefix}_{re.sub(r'[^0-9a-z]', '_', tag.lower())}"
        settings_dict = self._settings(name)
        if ENGINE == "postgresql":
            settings_dict["NAME"] = self._postgresql_database()
            settings_dict["OPTIONS"] = {
                **settings_dict.get("OPTIONS", {}),
                "options": f"-c search_path={name}",
            }
        self._register(name, settings_dict)
        self.aliases.append(name)
        self._drop(name)
        if ENGINE == "postgresql":
            with connections[self.prefix].cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA "{name}"')
        elif ENGINE == "mysql":
            with connections[name]._nodb_cursor() as cursor:
                # The charset and collation the installed base's schema was captured with.
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        return name

    def child_databases(self, aliases: list[str]) -> dict[str, Any]:
        """``DATABASES`` for a subprocess reaching ``aliases`` (default: unused in-memory SQLite)."""
        databases: dict[str, Any] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
        databases.update({alias: child_settings(connections.settings[alias]) for alias in aliases})
        return databases

    def _drop(self, alias: str) -> None:
        connection = connections[alias]
        connection.close()
        if ENGINE == "sqlite":
            Path(connection.settings_dict["NAME"]).unlink(missing_ok=True)
        elif ENGINE == "postgresql":
            with connections[self.prefix].cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{alias}" CASCADE')
        else:
            with connection._nodb_cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{alias}`")

    def _forget(self, alias: str) -> None:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]

    def drop_all(self) -> None:
        """Drop every database created here and forget its alias."""
        while self.aliases:
            alias = self.aliases.pop()
            self._drop(alias)
            self._forget(alias)
        if self.pg_database is not None:
            connection = connections[self.pg_database]
            connection.close()
            with connection._nodb_cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{self.pg_database}"')
            self._forget(self.pg_database)
            self.pg_database = None


@pytest.fixture(scope="module")
def scratch(django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchDatabases]:
    """Scratch databases of the importing module, dropped at its end (fixtures using it unblock access)."""
    databases = ScratchDatabases(tmp_path_factory.mktemp("dcr_mig"))
    try:
        yield databases
    finally:
        with django_db_blocker.unblock():
            databases.drop_all()


@pytest.fixture
def scratch_access(django_db_blocker: Any) -> Iterator[None]:
    """Database access for tests that use scratch aliases only (never the test database)."""
    with django_db_blocker.unblock():
        yield


def migrate_ours(alias: str, target: str | None = None) -> list[str]:
    """Apply our migrations of this app on ``alias`` (to ``target``, else its leaf); return their names.

    The executor, not the ``migrate`` command: no post-migrate signals for the
    other installed apps, whose tables scratch databases do not have.
    """
    executor = MigrationExecutor(connections[alias])
    executor.loader.check_consistent_history(connections[alias])
    targets = [(APP, target)] if target else executor.loader.graph.leaf_nodes(APP)
    plan = executor.migration_plan(targets)
    executor.migrate(targets, plan=plan)
    return [migration.name for migration, backwards in plan if not backwards]
