"""Django settings of worker processes started by :mod:`tests.support.workers`.

The test settings (on the database the test process hands over), plus a
FileBasedCache in the test's temporary folder, shared by both processes for
``django-cache``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests import settings as _base
from tests.support.workers import ENV_CACHE_DIR, SHARED_CACHE, shared_cache

globals().update({name: value for name, value in vars(_base).items() if name.isupper()})

if ENV_CACHE_DIR not in os.environ:
    raise RuntimeError(f"{ENV_CACHE_DIR} is not set: start workers through tests.support.workers")

CACHES = {**_base.CACHES, SHARED_CACHE: shared_cache(Path(os.environ[ENV_CACHE_DIR]))}
