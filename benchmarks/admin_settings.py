"""Django settings of the ``admin`` figure: the admin site on the scratch database ``dcr_bench_admin``.

The other figures' settings (:mod:`benchmarks.settings`) plus what the admin
needs: auth, sessions, messages, templates and a URL conf. The database is
another scratch database than the other figures' ``dcr_bench``, so that the
million rows of this figure never meet a run of the others; the benchmark
creates it, migrates it and drops it.
"""

from __future__ import annotations

from typing import Any

from .settings import *  # noqa: F403 (every setting of the other figures, then these)
from .settings import BASE_DIR, ENGINE, database

SCRATCH_NAME = "dcr_bench_admin"
SQLITE_PATH = BASE_DIR / ".cache" / f"{SCRATCH_NAME}.sqlite3"


def admin_database(engine: str) -> dict[str, Any]:
    """``database(engine)`` renamed to ``dcr_bench_admin`` (a file of that name for SQLite)."""
    entry = database(engine)
    name = str(SQLITE_PATH) if engine == "sqlite" else SCRATCH_NAME
    entry["NAME"] = name
    entry["TEST"] = {**entry.get("TEST", {}), "NAME": name}
    return entry


DATABASES = {"default": admin_database(ENGINE)}

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
ROOT_URLCONF = "benchmarks.admin_urls"
STATIC_URL = "/static/"
# Django's test Client sends ``Host: testserver``; the test runner would allow it, this script must.
ALLOWED_HOSTS = ["testserver"]
