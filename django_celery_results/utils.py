"""``now()``, the installed base's public helper (the package itself reads Django's ``timezone.now()``)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone


def now() -> datetime:
    """Return the current time: aware and in the current time zone when ``USE_TZ`` is on."""
    if getattr(settings, "USE_TZ", False):
        return timezone.localtime(timezone.now())
    return timezone.now()
