"""The admin of task results, groups and chords: read-only by default, fast on big tables.

``TaskResult``, ``GroupResult`` and ``ChordCounter`` are registered on the
default admin site with :class:`TaskResultAdmin`, :class:`GroupResultAdmin`
and :class:`ChordCounterAdmin`. To customise
them, import the class (which also makes sure ours is registered, whatever
the order of ``INSTALLED_APPS``), unregister, and register your own::

    from django.contrib import admin
    from django_celery_results.admin import TaskResultAdmin
    from django_celery_results.models import TaskResult

    admin.site.unregister(TaskResult)

    @admin.register(TaskResult)
    class MyTaskResultAdmin(TaskResultAdmin):
        list_per_page = 50

Editing
    Results are what workers reported; editing them in the admin falsifies
    history, so adding and changing are refused unless
    ``DJANGO_CELERY_RESULTS = {"ALLOW_EDITS": True}``. The setting is read on
    every request (:meth:`ResultAdmin.edits_allowed`). Deleting is *not* tied
    to that setting: users holding Django's delete permission may delete rows,
    as operators clean up results the same way ``result_expires`` does.

Actions
    *Terminate* asks workers to revoke the selected unfinished tasks with
    ``terminate=True``: offered to holders of ``change_taskresult``
    (whatever ``ALLOW_EDITS`` says: it stops work, it edits nothing).
    *Re-run* sends each selected task again with the same name and
    arguments under a new id: only for holders of the dedicated
    ``rerun_taskresult`` permission, and refused, with the reason, for rows
    whose arguments cannot be rebuilt exactly (:mod:`.rerun`). *Forget*
    calls the backend's ``forget`` and needs ``ALLOW_EDITS`` and the delete
    permission. The Celery app they go through is the module attribute
    :data:`celery_app`, read on each use: Celery's ``current_app`` unless a
    project (or a test, with ``mock.patch("django_celery_results.admin.celery_app")``)
    replaces it.

Pages
    Besides the changelists and change pages of task results, group results
    and chord counters, ``overview/`` (:mod:`.overview`) shows states,
    throughput, slow and failing tasks and what is stuck.

Scale
    Every query the changelist runs is bounded or uses an index:

    * ordering on ``-date_done`` (indexed), and no second ``COUNT(*)`` of the
      whole table (``show_full_result_count = False``); the paginator still
      counts the rows that match the current filters;
    * no ``SELECT DISTINCT``: the task name, worker, periodic task and state
      filters list the values found in the :attr:`RecentValuesFilter.sample_size`
      most recent rows (one query for all four). A value not in that sample can
      still be filtered on through search or the URL (``?task_name__exact=...``,
      the parameters upstream's filters used), and is listed while selected;
    * the date hierarchy offers the years, months or days between the oldest
      and newest matching row (one ``MIN``/``MAX`` query) instead of the exact
      set of dates (a ``DISTINCT`` over every matching row), so a link may
      lead to an empty period;
    * facet counts are off (``show_facets``): each would count over the table;
    * the runtime filter reads only the last day's rows, along ``date_done``.

    Search is a substring match over several text columns, as upstream's, and
    so scans the table; it runs only when someone searches.
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
