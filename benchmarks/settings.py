"""Django settings of the benchmark: one scratch database named ``dcr_bench``.

The engine comes from ``DCR_BENCH_ENGINE`` (set by ``benchmarks/run.py`` from
``--engine``, and inherited by the processes it starts). Servers are those of
the test settings (the same ``PG*``/``MYSQL_*`` variables), but the database
is always ``dcr_bench``: the benchmark creates it, migrates it and drops it,
and never touches another database's tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

ENGINE = os.environ.get("DCR_BENCH_ENGINE", "sqlite")
ENGINES = ("sqlite", "postgresql", "mysql")
if ENGINE not in ENGINES:
    raise RuntimeError(f"DCR_BENCH_ENGINE must be one of {', '.join(ENGINES)}; got {ENGINE!r}")

BASE_DIR = Path(__file__).resolve().parent.parent
SCRATCH_NAME = "dcr_bench"
SQLITE_PATH = BASE_DIR / ".cache" / f"{SCRATCH_NAME}.sqlite3"

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django_celery_results"]


def database(engine: str) -> dict[str, Any]:
    """The ``DATABASES["default"]`` entry: the scratch database on ``engine``'s server."""
    if engine == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": SCRATCH_NAME,
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": SCRATCH_NAME},
        }
    if engine == "mysql":
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": SCRATCH_NAME,
            "USER": os.environ.get("MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MYSQL_PWD", ""),
            "HOST": os.environ.get("MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MYSQL_TCP_PORT", "3306"),
            "OPTIONS": {
                "charset": "utf8mb4",
                "init_command": "SET sql_mode='STRICT_ALL_TABLES'",
                "isolation_level": "read committed",
            },
            "TEST": {"NAME": SCRATCH_NAME, "CHARSET": "utf8mb4", "COLLATION": "utf8mb4_general_ci"},
        }
    # A file, not memory: the processes of the chord and latency figures share it.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(SQLITE_PATH),
        "TEST": {"NAME": str(SQLITE_PATH)},
        "OPTIONS": {"timeout": 30},
    }


DATABASES = {"default": database(ENGINE)}
