"""A Celery app configured the way Django projects do: from ``CELERY_*`` settings.

``celery -A tests.support.django_app worker`` (with no ``--pool``) runs the
pool that ``CELERY_WORKER_POOL`` in :mod:`tests.settings.pools` names.
"""

from __future__ import annotations

import os

from celery import Celery

from tests.support.workers import register_tasks

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings.pools")

app = Celery("tests-django-configured")
app.config_from_object("django.conf:settings", namespace="CELERY")
register_tasks(app)
