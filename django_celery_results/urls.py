"""URLs of the JSON views: ``task/done/<id>/``, ``task/status/<id>/``, ``group/...``.

The id-first forms (``<id>/done/``...) are deprecated and served while
``DJANGO_CELERY_RESULTS_ID_FIRST_URLS`` is on (the default, as upstream).
"""

from __future__ import annotations

import warnings

from django.urls import URLPattern, path, register_converter
from django.urls.converters import get_converters

from . import views
from .conf import app_settings


class TaskIdConverter:
    """Celery ids: letters, digits, ``-``, ``_`` and ``.`` (not only UUIDs)."""

    regex = r"[\w\-\.]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


if "task_pattern" not in get_converters():  # the module may be imported more than once
    register_converter(TaskIdConverter, "task_pattern")

noun_first: list[URLPattern] = [
    path("task/done/<task_pattern:task_id>/", views.is_task_successful, name="celery-is_task_successful"),
    path("task/status/<task_pattern:task_id>/", views.task_status, name="celery-task_status"),
    path("group/done/<task_pattern:group_id>/", views.is_group_successful, name="celery-is_group_successful"),
    path("group/status/<task_pattern:group_id>/", views.group_status, name="celery-group_status"),
]

id_first: list[URLPattern] = [
    path("<task_pattern:task_id>/done/", views.is_task_successful, name="celery-is_task_successful"),
    path("<task_pattern:task_id>/status/", views.task_status, name="celery-task_status"),
    path("<task_pattern:group_id>/group/done/", views.is_group_successful, name="celery-is_group_successful"),
    path("<task_pattern:group_id>/group/status/", views.group_status, name="celery-group_status"),
]

urlpatterns: list[URLPattern] = noun_first
if app_settings.id_first_urls:
    warnings.warn(
        "The id-first result URLs (<id>/done/, <id>/status/...) are deprecated; use "
        "task/done/<id>/ and friends, and set DJANGO_CELERY_RESULTS_ID_FIRST_URLS = False.",
        DeprecationWarning,
        stacklevel=2,
    )
    # Listed first so that reverse() of the shared names yields the noun-first
    # URLs (Django prefers the pattern defined last). No path matches both forms.
    urlpatterns = id_first + noun_first
