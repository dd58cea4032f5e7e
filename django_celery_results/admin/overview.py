"""The overview page: states, throughput, slow and failing tasks, what is stuck; bounded queries.

Every query reads at most a fixed number of rows through an index:

* state counts over the last hour, day and week: the newest :attr:`COUNT_CAP`
  rows of the week, read from the ``(date_done, status)`` index alone and
  counted in the database (a count that reaches the cap is shown as "at least");
* the chart and the per-task table: the newest :attr:`SAMPLE_SIZE` rows of
  the last day along the same index, summarised here;
* the oldest PENDING and STARTED tasks: the first rows of the
  ``(status, date_created)`` index, per state;
* stuck chords: the oldest chord counters, through their ``date_created`` index.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from celery import states
from django.core.exceptions import PermissionDenied
from django.db import connections, router
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.views.generic import TemplateView

from ..models import ChordCounter, TaskResult
from . import display

#: The periods state counts cover, newest first: (key, length).
PERIODS = (("hour", timedelta(hours=1)), ("day", timedelta(days=1)), ("week", timedelta(days=7)))
#: States listed as "unfinished" with their oldest rows.
UNFINISHED = (states.PENDING, states.STARTED)


@dataclass
class TaskStats:
    """One task name's figures over the sample."""

    name: str
    runs: int = 0
    failures: int = 0
    runtimes: list[float] = field(default_factory=list)

    @property
    def failure_rate(self) -> str:
        return display.percent(self.failures, self.runs)

    def runtime_at(self, fraction: float) -> str:
        """The runtime ``fraction`` of the runs finished within (0.5: the median)."""
        if not self.runtimes:
            return ""
        if len(self.runtimes) == 1:
            return display.duration_text(timedelta(seconds=self.runtimes[0]))
        cuts = statistics.quantiles(self.runtimes, n=100, method="inclusive")
        return display.duration_text(timedelta(seconds=cuts[round(fraction * 100) - 1]))

    @property
    def name_html(self) -> SafeString:
        return display.breakable(self.name or "-")

    @property
    def median(self) -> str:
        return self.runtime_at(0.5)

    @property
    def p95(self) -> str:
        return self.runtime_at(0.95)


class OverviewView(TemplateView):
    """The overview, for users who may view task results."""

    template_name = "admin/django_celery_results/overview.html"
    model_admin: Any = None

    #: Rows of the last week counted at most, per page load.
    COUNT_CAP: ClassVar[int] = 200_000
    #: Newest rows of the last day the chart and the per-task table are drawn from.
    SAMPLE_SIZE: ClassVar[int] = 20_000
    #: Task names listed, by runs.
    TOP_TASKS: ClassVar[int] = 20
    #: Unfinished tasks and stuck chords listed.
    OLDEST: ClassVar[int] = 10
    #: A chord waiting for longer than this is listed as stuck.
    STUCK_AFTER: ClassVar[timedelta] = timedelta(hours=1)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        request = self.request
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        sample = self.sample(now)
        context = super().get_context_data(**kwargs)
        context.update(
            self.model_admin.admin_site.each_context(request),
            opts=TaskResult._meta,
            title=_("Celery results overview"),
            now=now,
            counts=self.state_counts(now),
            cap=self.COUNT_CAP,
            sample_size=len(sample),
            sample_capped=len(sample) >= self.SAMPLE_SIZE,
            sample_since=display.moment_html(sample[-1][4]) if sample else "",
            chart=throughput_chart(sample, now),
            tasks=self.task_stats(sample),
            unfinished=self.oldest_unfinished(),
            stuck=self.stuck_chords(now),
            stuck_after=display.duration_text(self.STUCK_AFTER),
            changelist=reverse("admin:django_celery_results_taskresult_changelist"),
            chords=reverse("admin:django_celery_results_chordcounter_changelist"),
            media=self.model_admin.media,
        )
        return context

    # -- the queries ------------------------------------------------------------

    def state_counts(self, now: datetime) -> list[dict[str, Any]]:
        """Rows per state in each period, from the newest :attr:`COUNT_CAP` rows of the week."""
        alias = router.db_for_read(TaskResult)
        connection = connections[alias]
        newest = (
            TaskResult.objects.using(alias)
            .filter(date_done__gte=now - PERIODS[-1][1])
            .order_by("-date_done")
            .values("status", "date_done")[: self.COUNT_CAP]
        )
        inner, params = newest.query.get_compiler(alias).as_sql()
        adapt = connection.ops.adapt_datetimefield_value
        sums = ", ".join(
            "SUM(CASE WHEN recent.date_done >= %s THEN 1 ELSE 0 END)" for _key, _span in PERIODS[:-1]
        )
        sql = f"SELECT recent.status, {sums}, COUNT(*) FROM ({inner}) recent GROUP BY recent.status"
        with connection.cursor() as cursor:
            cursor.execute(sql, [*(adapt(now - span) for _key, span in PERIODS[:-1]), *params])
            found = {status: [int(n or 0) for n in numbers] for status, *numbers in cursor.fetchall()}
        total = [sum(numbers[i] for numbers in found.values()) for i in range(len(PERIODS))]
        capped = total[-1] >= self.COUNT_CAP
        order = [
            s
            for s in (
                states.SUCCESS,
                states.FAILURE,
                states.STARTED,
                states.RETRY,
                states.REVOKED,
                states.PENDING,
            )
            if s in found
        ]
        order += sorted(set(found) - set(order))
        return [
            {
                "badge": display.state_badge(status),
                "link": "?" + urlencode({"status__exact": status}),
                "numbers": found[status],
                "capped": capped,
            }
            for status in order
        ]

    def sample(self, now: datetime) -> list[tuple[Any, ...]]:
        """The newest :attr:`SAMPLE_SIZE` rows of the last day: name, state and the three dates."""
        return list(
            TaskResult.objects.filter(date_done__gte=now - timedelta(days=1))
            .order_by("-date_done")
            .values_list("task_name", "status", "date_created", "date_started", "date_done")[
                : self.SAMPLE_SIZE
            ]
        )

    def task_stats(self, sample: list[tuple[Any, ...]]) -> list[TaskStats]:
        """Runs, failures and runtimes of the :attr:`TOP_TASKS` most frequent task names of the sample."""
        stats: dict[str, TaskStats] = {}
        for name, status, _created, started, done in sample:
            key = name or ""
            entry = stats.get(key) or stats.setdefault(key, TaskStats(key))
            entry.runs += 1
            if status == states.FAILURE:
                entry.failures += 1
            if status in states.READY_STATES and started is not None and done is not None and done >= started:
                entry.runtimes.append((done - started).total_seconds())
        return sorted(stats.values(), key=lambda entry: (-entry.runs, entry.name))[: self.TOP_TASKS]

    def oldest_unfinished(self) -> list[dict[str, Any]]:
        """The oldest PENDING and STARTED tasks (the first rows of the ``(status, date_created)`` index)."""
        rows: list[TaskResult] = []
        for status in UNFINISHED:
            rows += (
                TaskResult.objects.filter(status=status)
                .order_by("date_created")
                .only(
                    "pk",
                    "task_id",
                    "task_name",
                    "status",
                    "worker",
                    "date_created",
                )[: self.OLDEST]
            )
        rows.sort(key=lambda row: row.date_created)
        return [
            {
                "task": display.short_id_html(
                    row.task_id,
                    reverse("admin:django_celery_results_taskresult_change", args=[row.pk]),
                ),
                "task_name": display.breakable(row.task_name or "-"),
                "worker": display.breakable(row.worker or "-"),
                "status_badge": display.state_badge(row.status),
                "created_html": display.moment_html(row.date_created),
            }
            for row in rows[: self.OLDEST]
        ]

    def stuck_chords(self, now: datetime) -> list[dict[str, Any]]:
        """The oldest chords waiting for longer than :attr:`STUCK_AFTER` (completed ones count 0)."""
        chords = (
            ChordCounter.objects.filter(date_created__lt=now - self.STUCK_AFTER, count__gt=0)
            .order_by("date_created")
            .only("pk", "group_id", "count", "date_created")[: self.OLDEST]
        )
        return [
            {
                "pk": chord.pk,
                "group_id": chord.group_id,
                "count": chord.count,
                "created_html": display.moment_html(chord.date_created),
            }
            for chord in chords
        ]


#: The chart's drawing area, in SVG user units.
CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_BOTTOM = 480, 200, 40, 22


def throughput_chart(sample: list[tuple[Any, ...]], now: datetime) -> SafeString:
    """An inline SVG of results per hour over the last day, failures stacked in red: no script, no CDN."""
    hours = 24
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    totals: Counter[int] = Counter()
    failures: Counter[int] = Counter()
    for _name, status, _created, _started, done in sample:
        slot = hours - 1 - int((end - done).total_seconds() // 3600)
        if 0 <= slot < hours:
            totals[slot] += 1
            if status == states.FAILURE:
                failures[slot] += 1
    peak = max(totals.values(), default=0) or 1
    plot_w, plot_h = CHART_WIDTH - CHART_LEFT, CHART_HEIGHT - CHART_BOTTOM
    step = plot_w / hours
    bars = []
    for slot in range(hours):
        start = end - timedelta(hours=hours - slot)
        if timezone.is_aware(start):  # USE_TZ: hours on the site's clock
            start = timezone.localtime(start)
        x = CHART_LEFT + slot * step
        total_h = plot_h * totals[slot] / peak
        fail_h = plot_h * failures[slot] / peak
        tip = _("%(hour)s: %(total)d results, %(failed)d failed") % {
            "hour": date_format(start, "H:00"),
            "total": totals[slot],
            "failed": failures[slot],
        }
        bars.append(
            (
                f"{x + 1:.1f}",
                f"{plot_h - total_h:.1f}",
                f"{step - 2:.1f}",
                f"{total_h:.1f}",
                f"{plot_h - fail_h:.1f}",
                f"{fail_h:.1f}",
                tip,
                f"{x + step / 2:.1f}",
                date_format(start, "H") if slot % 3 == 0 else "",
                CHART_HEIGHT - 6,
            )
        )
    body = format_html_join(
        "",
        '<g><title>{6}</title><rect class="dcr-bar" x="{0}" y="{1}" width="{2}" height="{3}"/>'
        '<rect class="dcr-bar-failed" x="{0}" y="{4}" width="{2}" height="{5}"/>'
        '<text class="dcr-axis" x="{7}" y="{9}" text-anchor="middle">{8}</text></g>',
        bars,
    )
    return format_html(
        '<svg class="dcr-chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        '<text class="dcr-axis" x="{}" y="12" text-anchor="end">{}</text>'
        '<text class="dcr-axis" x="{}" y="{}" text-anchor="end">0</text>'
        '<line class="dcr-axis-line" x1="{}" y1="{}" x2="{}" y2="{}"/>{}</svg>',
        CHART_WIDTH,
        CHART_HEIGHT,
        _("Results and failures per hour over the last day"),
        CHART_LEFT - 6,
        peak,
        CHART_LEFT - 6,
        plot_h,
        CHART_LEFT,
        plot_h,
        CHART_WIDTH,
        plot_h,
        body,
    )
