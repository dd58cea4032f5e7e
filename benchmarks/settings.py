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
    """The ``DATABASES["default"]`` entry: the test settings' server, the scratch database."""
    from tests.settings import database as test_database

    entry = test_database(engine)
    if engine == "sqlite":
        # A file, not memory: the processes of the chord and latency figures share it.
        entry.update(NAME=str(SQLITE_PATH), TEST={"NAME": str(SQLITE_PATH)})
    else:
        entry.update(NAME=SCRATCH_NAME, TEST={**entry.get("TEST", {}), "NAME": SCRATCH_NAME})
    return entry


#: ``direct`` is the same database; only the ``latency_pooler`` figure uses it,
#: as the alias waiting ``get()`` calls LISTEN on while ``default`` is pooled.
DATABASES = {"default": database(ENGINE), "direct": database(ENGINE)}

#: Set for the processes the ``latency_pooler`` figure starts: the port of a
#: PgBouncer (transaction pooling) in front of the server, which ``default``
#: then goes through, with the setting Django documents for such poolers.
POOLER_PORT = os.environ.get("DCR_BENCH_POOLER_PORT")
if POOLER_PORT:
    DATABASES["default"].update(PORT=POOLER_PORT, DISABLE_SERVER_SIDE_CURSORS=True)
