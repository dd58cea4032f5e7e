"""Django settings of a worker whose whole Celery configuration is ``CELERY_*`` settings.

The worker settings of :mod:`tests.settings.workers` (the test database, the
shared cache), plus the Celery settings a project would write, the pool among them.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.settings import workers as _base
from tests.support.workers import ENV_BROKER_DIR, broker_options

globals().update({name: value for name, value in vars(_base).items() if name.isupper()})

CELERY_WORKER_POOL = "threads"
CELERY_BROKER_URL = "filesystem://"
CELERY_BROKER_TRANSPORT = "tests.support.workers:AtomicFilesystemTransport"
CELERY_BROKER_TRANSPORT_OPTIONS = broker_options(Path(os.environ[ENV_BROKER_DIR]))
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
