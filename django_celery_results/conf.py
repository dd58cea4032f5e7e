"""The package's settings, read from Django's settings each time they are used.

Nothing here is read at import time: tests and sites may change settings
after this module is imported (``override_settings``), and the values must
follow.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.utils.time import maybe_timedelta
from django.conf import settings

DEFAULT_TASK_ID_MAX_LENGTH = 255
DEFAULT_WAITING_CHORD_EXPIRES = 7 * 24 * 3600
DEFAULT_MAX_RESULT_SIZE = 4 * 1024 * 1024


class AppSettings:
    """Typed access to every setting this package reads."""

    @property
    def _options(self) -> dict[str, Any]:
        return dict(getattr(settings, "DJANGO_CELERY_RESULTS", None) or {})

    @property
    def task_id_max_length(self) -> int:
        """``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH``: length of task/group id and task name.

        It shapes the schema (column lengths), so it is read when models and
        migrations are loaded; 191 suits MySQL servers with a 767-byte key limit.
        """
        return int(
            getattr(settings, "DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH", DEFAULT_TASK_ID_MAX_LENGTH)
        )

    @property
    def allow_edits(self) -> bool:
        """``DJANGO_CELERY_RESULTS["ALLOW_EDITS"]``: the admin may change results."""
        return bool(self._options.get("ALLOW_EDITS", False))

    @property
    def public_views(self) -> bool:
        """``DJANGO_CELERY_RESULTS["PUBLIC_VIEWS"]``: serve the JSON views to anonymous users.

        Off by default: results can hold private data. Upstream served them to anyone.
        """
        return bool(self._options.get("PUBLIC_VIEWS", False))

    @property
    def pending_on_publish(self) -> bool:
        """``DJANGO_CELERY_RESULTS["PENDING_ON_PUBLISH"]``: store a PENDING row when a task is sent."""
        return bool(self._options.get("PENDING_ON_PUBLISH", False))

    @property
    def id_first_urls(self) -> bool:
        """``DJANGO_CELERY_RESULTS_ID_FIRST_URLS``: also serve the deprecated ``<id>/done/`` URLs."""
        return bool(getattr(settings, "DJANGO_CELERY_RESULTS_ID_FIRST_URLS", True))

    @property
    def cleanup_batch_size(self) -> int:
        """``DJANGO_CELERY_RESULTS["CLEANUP_BATCH_SIZE"]``: rows deleted per short transaction."""
        return int(self._options.get("CLEANUP_BATCH_SIZE", 1000))

    @property
    def waiting_chord_expires(self) -> timedelta:
        """``DJANGO_CELERY_RESULTS["WAITING_CHORD_EXPIRES"]``: age (seconds) at which a chord still
        waiting for parts is given up and its counter cleaned (default 7 days).

        Longer than ``result_expires``: a chord may rightly run for longer than
        its results are kept, and without its counter it can never complete.
        """
        return maybe_timedelta(self._options.get("WAITING_CHORD_EXPIRES", DEFAULT_WAITING_CHORD_EXPIRES))

    @property
    def max_result_size(self) -> int:
        """``DJANGO_CELERY_RESULTS["MAX_RESULT_SIZE"]``: bytes a stored result may take (default 4 MiB).

        Only read by system check W004, which compares it with MySQL's ``max_allowed_packet``.
        """
        return int(self._options.get("MAX_RESULT_SIZE", DEFAULT_MAX_RESULT_SIZE))


app_settings = AppSettings()
