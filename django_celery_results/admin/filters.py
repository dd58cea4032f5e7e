"""List filters that stay fast on big tables: no ``SELECT DISTINCT``, no unbounded scans."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from celery import states
from django.contrib import admin
from django.db.models import DurationField, ExpressionWrapper, F, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..models import ChordCounter, TaskResult
from .base import label


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
                cls.title = label(TaskResult, cls.field_name)

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

    def queryset(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> QuerySet[TaskResult]:
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.field_name: value})

    @classmethod
    def recent_rows(cls, request: HttpRequest, model_admin: Any) -> list[dict[str, Any]]:
        """The filtered columns of the most recent rows, read once per request."""
        cached: list[dict[str, Any]] | None = getattr(request, "_dcr_recent_rows", None)
        if cached is None:
            columns = [
                f.field_name
                for f in model_admin.get_list_filter(request)
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


class QueueFilter(RecentValuesFilter):
    """Queues recently stored; the rows of the last day only.

    No index starts with ``queue`` (one more index would slow every write), so
    the rows are read along ``date_done``'s index over :attr:`window` only, as
    the runtime filter does: one day of rows, however big the table.
    """

    field_name = "queue"
    title = _("queue (last day)")
    window = timedelta(days=1)

    def queryset(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> QuerySet[TaskResult]:
        value = self.value()
        if value is None:
            return queryset
        recent: QuerySet[TaskResult] = queryset.filter(
            queue=value,
            date_done__gte=timezone.now() - self.window,
        )
        return recent


#: Thresholds offered by the duration filters: (query value, seconds, label).
THRESHOLDS = (
    ("1s", 1, _("1 second")),
    ("10s", 10, _("10 seconds")),
    ("1m", 60, _("1 minute")),
    ("10m", 600, _("10 minutes")),
    ("1h", 3600, _("1 hour")),
    ("1d", 86400, _("1 day")),
    ("1w", 7 * 86400, _("1 week")),
)
_SECONDS = {key: seconds for key, seconds, _label in THRESHOLDS}


class SlowFilter(admin.SimpleListFilter):
    """Finished tasks whose runtime (``date_done - date_started``) was above a threshold, in the last day.

    No index holds a runtime, so the rows are read along ``date_done``'s
    index over :attr:`window` only: the filter costs one day of rows, however
    big the table.
    """

    title = _("runtime (last day)")
    parameter_name = "slower_than"
    window = timedelta(days=1)

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            (key, _("over %(threshold)s") % {"threshold": text})
            for key, seconds, text in THRESHOLDS
            if seconds <= 3600
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> QuerySet[TaskResult]:
        seconds = _SECONDS.get(self.value() or "")
        if seconds is None:
            return queryset
        runtime = ExpressionWrapper(F("date_done") - F("date_started"), output_field=DurationField())
        slow: QuerySet[TaskResult] = (
            queryset.filter(date_done__gte=timezone.now() - self.window)
            .alias(runtime=runtime)
            .filter(
                status__in=states.READY_STATES,
                date_started__isnull=False,
                runtime__gt=timedelta(seconds=seconds),
            )
        )
        return slow


class ChordAgeFilter(admin.SimpleListFilter):
    """Chords applied longer ago than a threshold and still waiting: stuck ones.

    A completed chord's counter stays, at zero, until ``cleanup()`` (so that a
    part delivered twice is still ignored): only counters above zero wait.
    Served by the index on ``date_created``.
    """

    title = _("waiting for longer than")
    parameter_name = "older_than"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(key, text) for key, seconds, text in THRESHOLDS if seconds >= 60]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ChordCounter]) -> QuerySet[ChordCounter]:
        seconds = _SECONDS.get(self.value() or "")
        if seconds is None:
            return queryset
        stuck: QuerySet[ChordCounter] = queryset.filter(
            date_created__lt=timezone.now() - timedelta(seconds=seconds),
            count__gt=0,
        )
        return stuck
