"""JSON views of task and group states.

Only authenticated users see them unless ``DJANGO_CELERY_RESULTS["PUBLIC_VIEWS"]``
is on; tracebacks are shown to staff only. Unknown ids answer 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from celery import current_app, states
from celery.result import AsyncResult, GroupResult
from celery.utils import get_full_cls_name
from django.http import HttpRequest, JsonResponse
from kombu.utils.encoding import safe_repr

from .conf import app_settings

View = Callable[..., JsonResponse]


def results_access(view: View) -> View:
    """Answer 403 JSON to anonymous users unless the views are public."""

    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        if not app_settings.public_views and not request.user.is_authenticated:
            return JsonResponse({"error": "authentication required"}, status=403)
        return view(request, *args, **kwargs)

    return guarded


def _json_safe(value: Any) -> Any:
    """``value`` if JSON can carry it, else its safe ``repr``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return safe_repr(value)
    return value


def _task_known(task_id: str) -> bool:
    """Whether the configured result backend (django-db or django-cache) holds ``task_id``."""
    backend = current_app.backend
    if hasattr(backend, "task_result_exists"):
        return bool(backend.task_result_exists(task_id))
    return backend.get_task_meta(task_id)["status"] != states.PENDING  # Celery < 5.7


def _not_found(kind: str, ident: str) -> JsonResponse:
    return JsonResponse({"error": f"unknown {kind} id", "id": ident}, status=404)


def _may_see_tracebacks(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_staff", False))


@results_access
def is_task_successful(request: HttpRequest, task_id: str) -> JsonResponse:
    """``{"task": {"id": ..., "executed": bool}}``."""
    if not _task_known(task_id):
        return _not_found("task", task_id)
    return JsonResponse({"task": {"id": task_id, "executed": AsyncResult(task_id).successful()}})


@results_access
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    """``{"task": {"id", "status", "result"}}``, plus ``exc`` (and ``traceback`` for staff) on failure."""
    if not _task_known(task_id):
        return _not_found("task", task_id)
    result = AsyncResult(task_id)
    state, value = result.state, result.result
    data: dict[str, Any] = {"id": task_id, "status": state, "result": _json_safe(value)}
    if state in states.EXCEPTION_STATES:
        data["result"] = safe_repr(value)
        data["exc"] = get_full_cls_name(type(value))
        if _may_see_tracebacks(request):
            data["traceback"] = result.traceback
    return JsonResponse({"task": data})


def _restore(group_id: str) -> GroupResult | None:
    return GroupResult.restore(group_id)


@results_access
def is_group_successful(request: HttpRequest, group_id: str) -> JsonResponse:
    """``{"group": {"id", "results": [{"id", "executed"}]}}``."""
    group = _restore(group_id)
    if group is None:
        return _not_found("group", group_id)
    results = [{"id": r.id, "executed": r.successful()} for r in group.results]
    return JsonResponse({"group": {"id": group_id, "results": results}})


@results_access
def group_status(request: HttpRequest, group_id: str) -> JsonResponse:
    """``{"group": {"id", "results": [{"result", "status"}]}}``."""
    group = _restore(group_id)
    if group is None:
        return _not_found("group", group_id)
    results = []
    for member in group.results:
        value = member.result
        shown = safe_repr(value) if member.status in states.EXCEPTION_STATES else _json_safe(value)
        results.append({"id": member.id, "result": shown, "status": member.status})
    return JsonResponse({"group": {"id": group_id, "results": results}})
