"""Django settings of worker processes started by :mod:`tests.workers`.

The test settings, with two changes passed in by the starting test: the
database is the test database the test process uses (its connection settings,
JSON in ``DCR_WORKER_DATABASE``), and a FileBasedCache in the test's temporary
folder is shared by both processes for ``django-cache``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests import settings as _base
from tests.workers import ENV_CACHE_DIR, ENV_DATABASE, SHARED_CACHE, shared_cache

globals().update({name: value for name, value in vars(_base).items() if name.isupper()})

if ENV_DATABASE not in os.environ:
    raise RuntimeError(f"{ENV_DATABASE} is not set: start workers through tests.workers")

DATABASES = {"default": json.loads(os.environ[ENV_DATABASE])}
CACHES = {**_base.CACHES, SHARED_CACHE: shared_cache(Path(os.environ[ENV_CACHE_DIR]))}
