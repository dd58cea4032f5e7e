"""Django settings of the processes :mod:`tests.test_faults` starts.

The test settings with a single database: the ``DATABASES`` entry, as JSON
in ``DCR_FAULT_DATABASE``, of a throw-away server from :mod:`tests.disposable`.
"""

from __future__ import annotations

import json
import os

from tests import settings as _base

ENV_DATABASE = "DCR_FAULT_DATABASE"

globals().update({name: value for name, value in vars(_base).items() if name.isupper()})

if ENV_DATABASE not in os.environ:
    raise RuntimeError(f"{ENV_DATABASE} is not set: these settings are for tests.test_faults processes")

DATABASES = {"default": json.loads(os.environ[ENV_DATABASE])}
