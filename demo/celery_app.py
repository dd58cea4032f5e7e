"""The demo's Celery app: configuration from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

app = Celery("demo", include=["demo.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
