"""JSON views of task and group states.

Who may read them is ``DJANGO_CELERY_RESULTS["VIEWS_ACCESS"]`` (logged-in users
by default; ``PUBLIC_VIEWS`` is the older switch), decided before anything is
read, so a refused request cannot learn which ids exist. A refusal answers 403
JSON with the reason, a setting that names no usable rule too (and is logged);
a request without ``user`` (no ``AuthenticationMiddleware``) is anonymous.
Tracebacks are shown to staff only. Unknown ids, and ids no row can have,
answer 404. Every answer is strict JSON (docs/getting-started.rst, "JSON status
views"): non-finite floats become strings, and a stored row that cannot be read
answers 200 with ``"result": null`` and an ``error``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps
from textwrap import shorten
from typing import Any

from celery import current_app, states
from celery.exceptions import SecurityError
from celery.result import GroupResult
from celery.utils import get_full_cls_name
from django.apps import apps
from django.http import HttpRequest, JsonResponse
from kombu.exceptions import KombuError
from kombu.utils.encoding import safe_repr

from .conf import InvalidSetting, app_settings
from .exceptions import StorageRefused

logger = logging.getLogger(__name__)

View = Callable[..., JsonResponse]

#: What reading a stored task or group raises when its content is bad: text that does
#: not decode or a content type ``accept_content`` refuses (kombu), a failure whose
#: exception cannot be rebuilt (no ``exc_type``, not a mapping, not an exception class).
UNREADABLE = (KombuError, SecurityError, TypeError, ValueError)

#: Longest ``error`` text: a reason, however long the exception's message (which may quote the content).
REASON_WIDTH = 200


#: The ``error`` of a 403 answer, by cause.
ANONYMOUS = "authentication required"
NOT_STAFF = "staff access required"
DENIED = "access denied"
RULE_FAILED = "access rule failed"
MISCONFIGURED = "results access is misconfigured"


class _NoAuthUser:
    """The anonymous user of a site without ``django.contrib.auth``."""

    is_authenticated = False
    is_anonymous = True
    is_active = False
    is_staff = False


def _anonymous() -> Any:
    if apps.is_installed("django.contrib.auth"):
        from django.contrib.auth.models import AnonymousUser

        return AnonymousUser()
    return _NoAuthUser()


def _refusal(request: HttpRequest, kind: str, ident: str) -> str | None:
    """Why ``request`` may not see the ``kind`` (``"task"``/``"group"``) ``ident``; None when it may."""
    try:
        rule = app_settings.views_access
    except InvalidSetting as error:
        logger.error("The JSON result views refuse every request: %s", error)
        return MISCONFIGURED
    if callable(rule):
        try:
            allowed = rule(request, kind, ident)
        except Exception:  # the site's code: refuse, and keep its traceback in the log
            logger.exception("The VIEWS_ACCESS rule failed for %s %r; the request is refused", kind, ident)
            return RULE_FAILED
        return None if allowed else DENIED
    if rule == "public":
        return None
    user = request.user
    if not user.is_authenticated:
        return ANONYMOUS
    if rule == "staff" and not (user.is_active and user.is_staff):
        return NOT_STAFF
    return None


def results_access(kind: str) -> Callable[[View], View]:
    """Refuse (403 JSON, with the reason) requests ``VIEWS_ACCESS`` does not let see the ``kind`` asked for.

    The view's one argument is the task or group id. Runs before the view, so
    existence is never looked up for a refused request.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: str, **kwargs: str) -> JsonResponse:
            if not hasattr(request, "user"):
                request.user = _anonymous()
            ident = args[0] if args else kwargs[f"{kind}_id"]
            reason = _refusal(request, kind, ident)
            if reason is not None:
                return JsonResponse({"error": reason, "id": ident}, status=403)
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def _json_safe(value: Any) -> Any:
    """``value`` as strict JSON carries it: JSON's own encoding, then its non-finite numbers as strings.

    ``inf``, ``-inf`` and ``nan``, at any depth, become ``"Infinity"``,
    ``"-Infinity"`` and ``"NaN"``; a value JSON cannot encode at all becomes its ``repr``.
    """
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return safe_repr(value)
    # json.dumps writes non-finite floats as the bare words Infinity, -Infinity and NaN.
    return json.loads(text, parse_constant=str)


def _reason(error: Exception) -> str:
    """One short line for the ``error`` of a row that cannot be read."""
    detail = f"{type(error).__name__}: {error}"
    return shorten(f"stored result cannot be read ({detail})", REASON_WIDTH, placeholder="...)")


def _stored_status(task_id: str) -> str | None:
    """The status column of an unreadable row; None where the status is inside the content (cache)."""
    model = getattr(current_app.backend, "TaskModel", None)
    if model is None:
        return None
    rows = model._default_manager.filter(task_id=task_id).values_list("status", flat=True)
    status: str | None = rows.first()
    return status


def _meta(task_id: str) -> dict[str, Any]:
    """The task's meta from the backend; for a row that cannot be read, its stored status and an ``error``."""
    try:
        meta: dict[str, Any] = current_app.backend.get_task_meta(task_id)
    except StorageRefused:
        # Only a group member's id gets here: no row can have it, so it is PENDING as Celery says.
        return {"status": states.PENDING, "result": None}
    except UNREADABLE as error:
        logger.warning("Task %r: its stored result cannot be read", task_id, exc_info=True)
        return {"status": _stored_status(task_id), "result": None, "error": _reason(error)}
    return meta


def _outcome(meta: dict[str, Any]) -> dict[str, Any]:
    """``status`` and the JSON-safe ``result`` (a ``repr`` for an exception), or the ``error``."""
    status, value = meta["status"], meta["result"]
    if "error" in meta:
        return {"status": status, "result": None, "error": meta["error"]}
    shown = safe_repr(value) if status in states.EXCEPTION_STATES else _json_safe(value)
    return {"status": status, "result": shown}


def _executed(task_id: str) -> dict[str, Any]:
    """``{"id", "executed"}`` from the status alone, so an unreadable SUCCESS row still counts as run."""
    meta = _meta(task_id)
    answer = {"id": task_id, "executed": meta["status"] == states.SUCCESS}
    return {**answer, "error": meta["error"]} if "error" in meta else answer


def _task_known(task_id: str) -> bool:
    """Whether the configured result backend (django-db or django-cache) holds ``task_id``."""
    backend = current_app.backend
    if not hasattr(backend, "task_result_exists"):  # django-cache: an unreadable entry is known too
        known: bool = _meta(task_id)["status"] != states.PENDING
        return known
    try:
        return bool(backend.task_result_exists(task_id))
    except StorageRefused:
        return False


def _not_found(kind: str, ident: str) -> JsonResponse:
    return JsonResponse({"error": f"unknown {kind} id", "id": ident}, status=404)


def _may_see_tracebacks(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_staff", False))


@results_access("task")
def is_task_successful(request: HttpRequest, task_id: str) -> JsonResponse:
    """``{"task": {"id": ..., "executed": bool}}``."""
    if not _task_known(task_id):
        return _not_found("task", task_id)
    return JsonResponse({"task": _executed(task_id)})


@results_access("task")
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    """``{"task": {"id", "status", "result"}}``, plus ``exc`` (and ``traceback`` for staff) on failure."""
    if not _task_known(task_id):
        return _not_found("task", task_id)
    meta = _meta(task_id)
    data = {"id": task_id, **_outcome(meta)}
    if data["status"] in states.EXCEPTION_STATES and "error" not in data:
        data["exc"] = get_full_cls_name(type(meta["result"]))
        if _may_see_tracebacks(request):
            data["traceback"] = meta.get("traceback")
    return JsonResponse({"task": data})


def _group_answer(group_id: str, member: Callable[[str], dict[str, Any]]) -> JsonResponse:
    """``{"group": {"id", "results": [member(id) for each member]}}``; 404 when no group is saved."""
    try:
        group = GroupResult.restore(group_id, app=current_app)
    except StorageRefused:
        group = None
    except UNREADABLE as error:
        logger.warning("Group %r: its stored result cannot be read", group_id, exc_info=True)
        return JsonResponse({"group": {"id": group_id, "results": None, "error": _reason(error)}})
    if group is None:
        return _not_found("group", group_id)
    return JsonResponse({"group": {"id": group_id, "results": [member(r.id) for r in group.results]}})


@results_access("group")
def is_group_successful(request: HttpRequest, group_id: str) -> JsonResponse:
    """``{"group": {"id", "results": [{"id", "executed"}]}}``."""
    return _group_answer(group_id, _executed)


@results_access("group")
def group_status(request: HttpRequest, group_id: str) -> JsonResponse:
    """``{"group": {"id", "results": [{"id", "result", "status"}]}}``."""
    return _group_answer(group_id, lambda task_id: {"id": task_id, **_outcome(_meta(task_id))})
