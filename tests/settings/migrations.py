"""Settings for the subprocesses of the migration tests (see ``tests/support/upstream.py``).

A subprocess runs either upstream's ``django_celery_results`` or ours, on
databases chosen by the parent test. Everything comes from the environment
so that one module serves every engine and every scratch database:

``DCR_CHILD_DATABASES`` (:data:`tests.support.processes.ENV_DATABASES`)
    JSON of the ``DATABASES`` setting (the parent passes its own connection
    settings, so both processes talk to the same database). Without it, an
    in-memory SQLite database: enough for ``makemigrations --check``.
``DCR_MIG_TASK_ID_MAX_LENGTH``
    When set, ``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH`` (it shapes the schema,
    so it has to be a setting of the process, not an ``override_settings``).

Only ``django_celery_results`` is installed: ``migrate`` then touches nothing
but its three tables and ``django_migrations``, which keeps the tests fast.
This module must not import ``django_celery_results``: the parent decides which
copy the subprocess imports through ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
from typing import Any

SECRET_KEY = "tests-only-not-secret"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django_celery_results"]

_databases = os.environ.get("DCR_CHILD_DATABASES")
DATABASES: dict[str, dict[str, Any]] = (
    json.loads(_databases)
    if _databases
    else {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
)

if os.environ.get("DCR_MIG_TASK_ID_MAX_LENGTH"):
    DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH = int(os.environ["DCR_MIG_TASK_ID_MAX_LENGTH"])
