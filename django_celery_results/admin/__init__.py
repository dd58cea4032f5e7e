"""The admin of task results, groups and chords: read-only by default, fast on big tables.

:class:`TaskResultAdmin`, :class:`GroupResultAdmin` and :class:`ChordCounterAdmin`
are registered on the default site; the actions go through :data:`celery_app`.
What the pages show, editing, the actions, customising and the queries on big
tables: :doc:`/admin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celery import current_app

from .base import ResultAdmin, ResultChangeList
from .display import pretty_text
from .filters import RecentValuesFilter
from .groups import ChordCounterAdmin, GroupResultAdmin
from .tasks import TaskResultAdmin

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "ChordCounterAdmin",
    "GroupResultAdmin",
    "RecentValuesFilter",
    "ResultAdmin",
    "ResultChangeList",
    "TaskResultAdmin",
    "celery_app",
    "pretty_text",
]

#: The Celery app the actions (terminate, re-run, forget) go through. Celery's
#: ``current_app`` proxy by default, so it follows whichever app is current
#: when an action runs; assign your app here (or patch it in tests).
celery_app: Celery = current_app
