"""Test settings: the engine comes from ``DCR_TEST_DB`` (sqlite, postgresql or mysql).

Host, port, user and password follow the usual variables of each engine's
tools (``PGHOST``/``PGPORT``/``PGUSER``/``PGPASSWORD``,
``MYSQL_HOST``/``MYSQL_TCP_PORT``/``MYSQL_USER``/``MYSQL_PWD``) and default to
the local services of our development machines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ENGINE = os.environ.get("DCR_TEST_DB", "sqlite").strip().lower() or "sqlite"
ENGINES = ("sqlite", "postgresql", "mysql")
if ENGINE not in ENGINES:
    raise RuntimeError(f"DCR_TEST_DB must be one of {', '.join(ENGINES)}; got {ENGINE!r}")

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
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


DATABASES = {"default": database(ENGINE)}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
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
