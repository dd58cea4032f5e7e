"""The admin of task and group results: read-only by default, built to stay fast on big tables.

``TaskResult`` and ``GroupResult`` are registered on the default admin site
with :class:`TaskResultAdmin` and :class:`GroupResultAdmin`. To customise
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

Terminating
    :meth:`TaskResultAdmin.terminate_tasks` asks workers to revoke the
    selected unfinished tasks with ``terminate=True``. It is offered to users
    holding ``django_celery_results.change_taskresult`` (whatever
    ``ALLOW_EDITS`` says: it stops work, it does not edit stored results) and
    never to view-only staff. The Celery app it broadcasts through is the
    module attribute :data:`celery_app`, read on each use: Celery's
    ``current_app`` unless a project (or a test, with
    ``mock.patch("django_celery_results.admin.celery_app")``) replaces it.

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
    * facet counts are off (``show_facets``): each would count over the table.

    Search is a substring match over several text columns, as upstream's, and
    so scans the table; it runs only when someone searches.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from celery import current_app, states
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_permission_codename
from django.db import connections
from django.db.models import Field, Max, Min, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from kombu.exceptions import OperationalError

from . import engines
from .codec import printable, unescape_text
from .conf import app_settings
from .models import GroupResult, TaskResult

if TYPE_CHECKING:
    from celery import Celery
    from django.contrib.admin.options import _FieldsetSpec as Fieldsets
else:
    Fieldsets = Any

__all__ = [
    "GroupResultAdmin",
    "RecentValuesFilter",
    "ResultAdmin",
    "ResultChangeList",
    "TaskResultAdmin",
    "celery_app",
    "pretty_text",
]

#: The Celery app whose control API the terminate action revokes tasks through.
#: Celery's ``current_app`` proxy by default, so it follows whichever app is
#: current when the action runs; assign your app here (or patch it in tests).
celery_app: Celery = current_app

#: The stored text of these encodings is base64 of binary data: never JSON.
BINARY_ENCODING = "binary"

#: States after which a task no longer runs; terminating it would do nothing.
FINISHED_STATES = frozenset({states.SUCCESS, states.FAILURE})

_WIDE = ("extrapretty", "wide")

#: Search terms that may be (the start of) a task id: looked up through its index.
TASK_ID_PREFIX = re.compile(r"[0-9a-fA-F-]{8,}")


def _label(name: str) -> Any:
    """The verbose name of a task result column: the labels users know from upstream."""
    field = TaskResult._meta.get_field(name)
    return field.verbose_name if isinstance(field, Field) else name


def pretty_text(text: str | None, *, json_text: bool, empty: str = "-") -> SafeString | str:
    """``text`` escaped inside ``<pre>``; indented first when ``json_text`` and it parses as JSON.

    Stored values are the serializer's text: JSON is hard to read on one line,
    and anything else (base64 pickle, ``repr`` text of old rows, tracebacks)
    is shown exactly as stored. Every character of ``text`` is escaped.
    """
    text = unescape_text(text)  # what the task stored, not its escaped storage form
    if text is None or text == "":
        return empty
    shown = text
    if json_text:
        try:
            shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            shown = text
    return format_html(
        '<pre class="dcr-pretty" style="white-space: pre-wrap; overflow-wrap: anywhere; '
        'margin: 0">{}</pre>',
        printable(shown),
    )


class ResultChangeList(ChangeList):
    """A changelist whose date hierarchy needs one ``MIN``/``MAX`` query, never a ``DISTINCT``."""

    def date_hierarchy_links(self) -> dict[str, Any]:
        """The context of ``admin/date_hierarchy.html``: back link and choices.

        Like Django's, it starts at the level where the matching rows differ
        (all in one year: months; all in one month: days), but it lists every
        period between the oldest and newest row rather than only those
        holding rows: finding those is a ``SELECT DISTINCT`` over every
        matching row on each page load.
        """
        field = self.date_hierarchy
        year_key, month_key, day_key = (f"{field}__{part}" for part in ("year", "month", "day"))
        year = self.params.get(year_key)
        month = self.params.get(month_key) if year else None
        day = self.params.get(day_key) if month else None

        def link(params: dict[str, Any]) -> str:
            return str(self.get_query_string(params, [f"{field}__"]))

        if year and month and day:
            moment = date(int(year), int(month), int(day))
            return {
                "show": True,
                "back": {
                    "link": link({year_key: year, month_key: month}),
                    "title": capfirst(date_format(moment, "YEAR_MONTH_FORMAT")),
                },
                "choices": [{"title": capfirst(date_format(moment, "MONTH_DAY_FORMAT"))}],
            }

        # Bounds of the rows the hierarchy alone selects (two index endpoints),
        # not of every matching row (a scan when filters or a search are on).
        dated = self.root_queryset
        if year:
            start = datetime(int(year), int(month) if month else 1, 1)
            end = (start + timedelta(days=32)).replace(day=1) if month else start.replace(year=start.year + 1)
            if settings.USE_TZ:
                start, end = timezone.make_aware(start), timezone.make_aware(end)
            dated = dated.filter(**{f"{field}__gte": start, f"{field}__lt": end})
        bounds = dated.aggregate(first=Min(field), last=Max(field))
        first, last = _local(bounds["first"]), _local(bounds["last"])
        if not year and first and last and first.year == last.year:
            year = str(first.year)
            if first.month == last.month:
                month = str(first.month)

        if year and month:
            y, m = int(year), int(month)
            days = range(first.day, last.day + 1) if first and last else range(0)
            return {
                "show": True,
                "back": {"link": link({year_key: year}), "title": str(year)},
                "choices": [
                    {
                        "link": link({year_key: year, month_key: month, day_key: d}),
                        "title": capfirst(date_format(date(y, m, d), "MONTH_DAY_FORMAT")),
                    }
                    for d in days
                ],
            }
        if year:
            y = int(year)
            months = range(first.month, last.month + 1) if first and last else range(0)
            return {
                "show": True,
                "back": {"link": link({}), "title": _("All dates")},
                "choices": [
                    {
                        "link": link({year_key: year, month_key: m}),
                        "title": capfirst(date_format(date(y, m, 1), "YEAR_MONTH_FORMAT")),
                    }
                    for m in months
                ],
            }
        years = range(first.year, last.year + 1) if first and last else range(0)
        return {
            "show": True,
            "back": None,
            "choices": [{"link": link({year_key: y}), "title": str(y)} for y in years],
        }


def _local(moment: datetime | None) -> datetime | None:
    """``moment`` in the current time zone, the one the hierarchy's filters use."""
    if moment is not None and timezone.is_aware(moment):
        return timezone.localtime(moment)
    return moment


class ResultAdmin(admin.ModelAdmin):
    """What the task and group result admins share: read-only by default, bounded queries.

    Subclasses give ``fieldsets`` (shown when read-only) and ``edit_fieldsets``
    with ``readonly_fields`` (used when ``ALLOW_EDITS`` is on).
    """

    edit_fieldsets: ClassVar[Fieldsets] = ()
    ordering = ("-date_done",)
    date_hierarchy = "date_done"
    # Counting the whole table again beside the filtered count is a full scan.
    show_full_result_count = False
    if hasattr(admin, "ShowFacets"):  # Django 5.0+
        # Each facet is a count over the matching rows; on a big table, slow.
        show_facets = admin.ShowFacets.NEVER

    def edits_allowed(self, request: HttpRequest) -> bool:
        """Whether results may be added and changed: ``DJANGO_CELERY_RESULTS["ALLOW_EDITS"]``.

        Read on each request so that changing settings (or ``override_settings``)
        takes effect without a restart; override to decide per request.
        """
        return app_settings.allow_edits

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Adding needs ``ALLOW_EDITS`` and the add permission: results come from workers."""
        return self.edits_allowed(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Changing needs ``ALLOW_EDITS`` and the change permission; else pages are view-only."""
        return self.edits_allowed(request) and super().has_change_permission(request, obj)

    # has_delete_permission is Django's own on purpose: see the module docstring.

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Fieldsets:
        """Raw, editable fields when edits are allowed; pretty-printed read-only ones otherwise."""
        return self.edit_fieldsets if self.edits_allowed(request) else self.fieldsets or ()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        """Every field shown, unless edits are allowed.

        Doing it here as well as in the permission hooks keeps pages read-only
        in subclasses that grant the change permission their own way.
        """
        if self.edits_allowed(request):
            return tuple(self.readonly_fields)
        return tuple(flatten_fieldsets(self.get_fieldsets(request, obj)))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """:class:`ResultChangeList`, whose date hierarchy needs no ``DISTINCT``."""
        return ResultChangeList

    def _pretty(self, obj: TaskResult | GroupResult, text: str | None) -> SafeString | str:
        return pretty_text(
            text,
            json_text=obj.content_encoding != BINARY_ENCODING,
            empty=self.get_empty_value_display(),
        )

    @admin.display(description=_label("result"))
    def pretty_result(self, obj: TaskResult | GroupResult) -> SafeString | str:
        """The result: JSON indented, anything else as stored; always escaped."""
        return self._pretty(obj, obj.result)


class RecentValuesFilter(admin.SimpleListFilter):
    """Filter on one column, listing the values found in the most recent rows.

    Listing every value of the column needs a ``SELECT DISTINCT`` over the
    whole table on every page load. The most recent :attr:`sample_size` rows
    (read once per request for all such filters, along ``date_done``'s index)
    hold the values people look for; the :attr:`max_choices` most frequent are
    listed. The query parameter is ``<column>__exact``, as upstream's filters
    used, so bookmarked URLs keep working, and a selected value is listed even
    when it is not in the sample.
    """

    #: The column filtered on; also names the query parameter.
    field_name: str = ""
    #: Values always listed, whatever the sample holds.
    fixed_choices: Iterable[str] = ()
    #: How many recent rows the choices are drawn from.
    sample_size = 1000
    #: The most frequent values listed at most.
    max_choices = 100

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.field_name:
            cls.parameter_name = f"{cls.field_name}__exact"
            if cls.title is None:
                cls.title = _label(cls.field_name)

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        counts: Counter[str] = Counter()
        for row in self.recent_rows(request, model_admin):
            value = row[self.field_name]
            if value is not None and value != "":
                counts[value] += 1
        values = {value for value, _count in counts.most_common(self.max_choices)}
        values.update(self.fixed_choices)
        selected = self.value()
        if selected is not None:
            values.add(selected)
        return [(value, value) for value in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.field_name: value})

    @classmethod
    def recent_rows(cls, request: HttpRequest, model_admin: Any) -> list[dict[str, Any]]:
        """The filtered columns of the most recent rows, read once per request."""
        cached: list[dict[str, Any]] | None = getattr(request, "_dcr_recent_rows", None)
        if cached is None:
            columns = [
                f.field_name for f in model_admin.get_list_filter(request)
                if isinstance(f, type) and issubclass(f, RecentValuesFilter) and f.field_name
            ]
            recent = model_admin.get_queryset(request).order_by("-date_done")
            cached = list(recent.values(*columns)[: cls.sample_size])
            request._dcr_recent_rows = cached  # type: ignore[attr-defined]
        return cached


class StatusFilter(RecentValuesFilter):
    """Task states: Celery's built-in ones and any custom state recently stored."""

    field_name = "status"
    fixed_choices = states.ALL_STATES


class PeriodicTaskNameFilter(RecentValuesFilter):
    """Periodic task (celery beat entry) names recently stored."""

    field_name = "periodic_task_name"


class TaskNameFilter(RecentValuesFilter):
    """Task names recently stored."""

    field_name = "task_name"


class WorkerFilter(RecentValuesFilter):
    """Worker host names recently stored."""

    field_name = "worker"


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@admin.register(TaskResult)
class TaskResultAdmin(ResultAdmin):
    """Admin of task results; see the module docstring for editing, terminating and scale."""

    list_display = ("task_id", "periodic_task_name", "task_name", "date_done", "status", "worker")
    list_filter = (StatusFilter, "date_done", PeriodicTaskNameFilter, TaskNameFilter, WorkerFilter)
    search_fields = (
        "task_name", "task_id", "status", "task_args", "task_kwargs", "periodic_task_name",
    )
    search_help_text = _(
        "Matches part of the task name, id, state, arguments or periodic task name."
    )
    actions = ["terminate_tasks"]
    fieldsets = (
        (None, {"fields": (
            "task_id", "task_name", "periodic_task_name", "status", "worker",
            "content_type", "content_encoding",
        ), "classes": _WIDE}),
        (_("Parameters"), {"fields": ("pretty_task_args", "pretty_task_kwargs"), "classes": _WIDE}),
        (_("Result"), {"fields": (
            "pretty_result", "date_created", "date_started", "date_done",
            "pretty_traceback", "pretty_meta",
        ), "classes": _WIDE}),
    )
    edit_fieldsets = (
        fieldsets[0],
        (_("Parameters"), {"fields": ("task_args", "task_kwargs"), "classes": _WIDE}),
        (_("Result"), {"fields": (
            "pretty_result", "date_created", "date_started", "date_done", "traceback", "pretty_meta",
        ), "classes": _WIDE}),
    )
    readonly_fields = ("date_created", "date_started", "date_done", "pretty_result", "pretty_meta")

    #: The signal workers send to the processes running terminated tasks.
    terminate_signal = "SIGTERM"
    #: Task ids per revoke broadcast, so that one message stays small.
    terminate_batch_size = 500

    @admin.display(description=_label("task_args"))
    def pretty_task_args(self, obj: TaskResult) -> SafeString | str:
        """Positional arguments: JSON indented, old ``repr`` text as stored; escaped."""
        return self._pretty(obj, obj.task_args)

    @admin.display(description=_label("task_kwargs"))
    def pretty_task_kwargs(self, obj: TaskResult) -> SafeString | str:
        """Keyword arguments: JSON indented, old ``repr`` text as stored; escaped."""
        return self._pretty(obj, obj.task_kwargs)

    @admin.display(description=_label("meta"))
    def pretty_meta(self, obj: TaskResult) -> SafeString | str:
        """Children and user metadata (``request.meta``): JSON indented; escaped."""
        return self._pretty(obj, obj.meta)

    @admin.display(description=_label("traceback"))
    def pretty_traceback(self, obj: TaskResult) -> SafeString | str:
        """The traceback, escaped, line breaks kept."""
        return pretty_text(obj.traceback, json_text=False, empty=self.get_empty_value_display())

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> Any:
        """A term that may start a task id is looked up through task_id's index first.

        The substring search over every search field scans the whole table; an
        id prefix found by the index answers in milliseconds on a million rows.
        """
        term = search_term.strip()
        if TASK_ID_PREFIX.fullmatch(term):
            lookup = f"task_id__{engines.indexed_prefix_lookup(connections[queryset.db])}"
            by_id = queryset.filter(**{lookup: term})
            if by_id.exists():
                return by_id, False
        return super().get_search_results(request, queryset, search_term)

    def has_terminate_permission(self, request: HttpRequest) -> bool:
        """Holding ``change_taskresult``, whatever ``ALLOW_EDITS`` says.

        Terminating stops work on the workers and leaves stored results to
        them, so it is not an edit; but it is more than viewing, so view-only
        staff never get it. No custom permission: that would need a migration.
        """
        codename = get_permission_codename("change", self.opts)
        return bool(request.user.has_perm(f"{self.opts.app_label}.{codename}"))

    @admin.action(description=_("Terminate selected tasks"), permissions=["terminate"])
    def terminate_tasks(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Revoke the selected unfinished tasks with ``terminate=True``.

        Tasks in SUCCESS or FAILURE have stopped; revoking them would only
        grow every worker's revoked set. Workers store REVOKED themselves.
        The app is the module's :data:`celery_app`, looked up now so that
        replacing or patching it takes effect.
        """
        task_ids = (
            queryset.exclude(status__in=FINISHED_STATES).order_by()
            .values_list("task_id", flat=True).iterator(chunk_size=self.terminate_batch_size)
        )
        control = celery_app.control
        sent = 0
        try:
            for chunk in _chunks(task_ids, self.terminate_batch_size):
                control.revoke(chunk, terminate=True, signal=self.terminate_signal)
                sent += len(chunk)
        except OperationalError as exc:
            self.message_user(
                request,
                _("Could not reach the broker after asking to terminate %(sent)d tasks: %(error)s")
                % {"sent": sent, "error": exc},
                messages.ERROR,
            )
            return
        if not sent:
            self.message_user(
                request, _("None of the selected tasks is unfinished; nothing to terminate."),
                messages.WARNING,
            )
            return
        self.message_user(
            request,
            ngettext(
                "Asked the workers to terminate %(count)d unfinished task.",
                "Asked the workers to terminate %(count)d unfinished tasks.",
                sent,
            ) % {"count": sent},
            messages.SUCCESS,
        )


@admin.register(GroupResult)
class GroupResultAdmin(ResultAdmin):
    """Admin of saved group results (``GroupResult.save()``)."""

    list_display = ("group_id", "date_done")
    list_filter = ("date_done",)
    search_fields = ("group_id",)
    fieldsets = (
        (None, {"fields": ("group_id", "content_type", "content_encoding"), "classes": _WIDE}),
        (_("Result"), {"fields": ("pretty_result", "date_created", "date_done"), "classes": _WIDE}),
    )
    edit_fieldsets = fieldsets
    readonly_fields = ("date_created", "date_done", "pretty_result")
