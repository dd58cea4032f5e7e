"""Test settings: the engine comes from ``DCR_TEST_DB`` (sqlite, postgresql or mysql).

Host, port, user and password follow the usual variables of each engine's
tools (``PGHOST``/``PGPORT``/``PGUSER``/``PGPASSWORD``,
``MYSQL_HOST``/``MYSQL_TCP_PORT``/``MYSQL_USER``/``MYSQL_PWD``) and default to
the local services of our development machines.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.support import ROOT

ENGINE = os.environ.get("DCR_TEST_DB", "sqlite").strip().lower() or "sqlite"
ENGINES = ("sqlite", "postgresql", "mysql")
if ENGINE not in ENGINES:
    raise RuntimeError(f"DCR_TEST_DB must be one of {', '.join(ENGINES)}; got {ENGINE!r}")

BASE_DIR = ROOT
# SQLite files (and other scratch state) live here; a fresh clone has no such folder.
(BASE_DIR / ".cache").mkdir(exist_ok=True)
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.support.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
STATIC_URL = "/static/"


def database(engine: str, name: str = "test") -> dict[str, Any]:
    """The ``DATABASES`` entry for one engine."""
    if engine == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", name),
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": os.environ.get("DCR_TEST_DB_NAME", "test_dcr")},
        }
    if engine == "mysql":
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": os.environ.get("MYSQL_DATABASE", name),
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PWD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_TCP_PORT", "3306"),
            "OPTIONS": {
                "charset": "utf8mb4",
                # Strict mode makes over-long values fail instead of truncating;
                # READ COMMITTED lets a poller see results as soon as they commit.
                "init_command": "SET sql_mode='STRICT_ALL_TABLES'",
                "isolation_level": "read committed",
            },
            "TEST": {
                "NAME": os.environ.get("DCR_TEST_DB_NAME", "test_dcr"),
                "CHARSET": "utf8mb4",
                "COLLATION": "utf8mb4_general_ci",
            },
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BASE_DIR / ".cache" / "tests.sqlite3"),
        # A file, not memory: worker processes and concurrent tests share it.
        "TEST": {"NAME": str(BASE_DIR / ".cache" / f"test_{os.environ.get('DCR_TEST_DB_NAME', 'dcr')}.db")},
        "OPTIONS": {"timeout": 30},
    }


def mirror(engine: str, **options: Any) -> dict[str, Any]:
    """Another connection to the default test database, with its own session ``options``."""
    entry = database(engine)
    entry["OPTIONS"] = {**entry.get("OPTIONS", {}), **options}
    entry["TEST"] = {"MIRROR": "default"}
    return entry


def other_database(engine: str) -> dict[str, Any]:
    """A second test database (created only for tests that name the ``other`` alias)."""
    entry = database(engine)
    base = os.environ.get("DCR_TEST_DB_NAME", "test_dcr" if engine != "sqlite" else "dcr")
    if engine == "sqlite":
        entry["NAME"] = str(BASE_DIR / ".cache" / "tests_other.sqlite3")
        entry["TEST"] = {"NAME": str(BASE_DIR / ".cache" / f"test_{base}_other.db")}
    else:
        entry["TEST"] = {**entry["TEST"], "NAME": f"{base}_other"}
    # A database of its own, so it can be set up for tests that do not name "default" (which
    # Django otherwise makes every alias depend on).
    entry["TEST"]["DEPENDENCIES"] = []
    return entry


def _read_only(engine: str) -> dict[str, Any]:
    """Session options that make every write through the connection fail."""
    if engine == "postgresql":
        return {"options": "-c default_transaction_read_only=on"}
    if engine == "mysql":
        return {"init_command": "SET SESSION TRANSACTION READ ONLY"}
    return {}  # SQLite: set on connect, below (its init_command option needs Django >= 5.1)


def _repeatable_read(engine: str) -> dict[str, Any]:
    """Session options for REPEATABLE READ (SQLite has no such setting)."""
    if engine == "postgresql":
        from django.db.backends.postgresql.psycopg_any import IsolationLevel

        return {"isolation_level": IsolationLevel.REPEATABLE_READ}
    if engine == "mysql":
        return {"isolation_level": "repeatable read"}
    return {}


if ENGINE == "sqlite":
    from django.db.backends.signals import connection_created

    def _replica_read_only(sender: Any, connection: Any, **kwargs: Any) -> None:
        """SQLite's read-only session for the ``replica`` alias, on every Django version."""
        if connection.alias == "replica":
            with connection.cursor() as cursor:
                cursor.execute("PRAGMA query_only = ON")

    connection_created.connect(_replica_read_only, weak=False, dispatch_uid="dcr-replica-read-only")


DATABASES = {
    "default": database(ENGINE),
    # Extra aliases for the routing, visibility and checks tests (tests/support/routers.py);
    # a test reaches one only by naming it in ``databases``.
    # A read replica: the same database through a read-only session.
    "replica": mirror(ENGINE, **_read_only(ENGINE)),
    # A plain second connection to the same database.
    "second": mirror(ENGINE),
    # A session that truncates over-long values instead of failing (MySQL/MariaDB).
    "lax": mirror(ENGINE, **({"init_command": "SET sql_mode=''"} if ENGINE == "mysql" else {})),
    # A session whose transactions read from one snapshot.
    "repeatable": mirror(ENGINE, **_repeatable_read(ENGINE)),
    # Results kept in a database of their own.
    "other": other_database(ENGINE),
}
# A child process of a test: the databases its parent handed over (tests/support/processes.py).
if _handed_over := os.environ.get("DCR_CHILD_DATABASES"):
    DATABASES = json.loads(_handed_over)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # The admin's CSS and JS, served by the browser suite's live server.
    "django.contrib.staticfiles",
    "django_celery_results",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "results": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "results"},
}

CELERY_RESULT_BACKEND = "django-db"
