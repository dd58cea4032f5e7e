"""Results from the moment a task is sent (opt-in).

With ``DJANGO_CELERY_RESULTS = {"PENDING_ON_PUBLISH": True}`` each published
task gets a PENDING row (with its name and arguments when ``result_extended``
is on), so queued and lost tasks show in the admin. The row is inserted only
if the task has none yet: a worker that was faster keeps its state.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from celery import current_app
from celery.signals import after_task_publish

from .conf import app_settings


def store_pending_on_publish(
    sender: str | None = None,
    body: Any = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **kwargs: Any,
) -> None:
    """``after_task_publish`` receiver: one INSERT (ignored if the row exists) per sent task."""
    if not app_settings.pending_on_publish:
        return
    from .backends.database import DatabaseBackend

    backend = current_app.backend
    if not isinstance(backend, DatabaseBackend):
        return
    # Task protocol 2 keeps the task's identity in the headers; protocol 1 in the body.
    info = headers if headers and "id" in headers else (body if isinstance(body, dict) else {})
    task_id = info.get("id")
    if not task_id or info.get("ignore_result"):
        return  # a task whose result is never stored would stay PENDING for good
    request = SimpleNamespace(
        task=info.get("task", sender),
        argsrepr=info.get("argsrepr"),
        kwargsrepr=info.get("kwargsrepr"),
        args=info.get("args"),
        kwargs=info.get("kwargs"),
        hostname=None,
        periodic_task_name=info.get("periodic_task_name"),
        retries=info.get("retries"),
        delivery_info={"routing_key": routing_key},
        meta=None,
    )
    backend.store_pending(task_id, request)


def connect() -> None:
    """Connect the receivers (from ``AppConfig.ready()``); they check the setting when called."""
    after_task_publish.connect(store_pending_on_publish, dispatch_uid="django_celery_results.pending")
