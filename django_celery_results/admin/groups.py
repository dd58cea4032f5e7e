"""Groups and chords you can follow: members with progress, chord counters with their age."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from celery import states
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from ..models import ChordCounter, GroupResult, TaskResult
from . import display, related
from .base import WIDE, ResultAdmin, label
from .filters import ChordAgeFilter
from .tasks import by_id_url, find_by_id

#: Ids per ``IN (...)`` when reading members' states: small statements on every engine.
STATES_BATCH = 500


def members_table(refs: list[related.Ref], empty: str) -> SafeString | str:
    """Progress over every member, then a table of them: state, id, name, runtime, end."""
    ids = list(related.task_ids(refs))
    if not ids:
        return empty
    rows: dict[str, TaskResult] = {}
    for start in range(0, len(ids), STATES_BATCH):
        batch = ids[start : start + STATES_BATCH]
        found = TaskResult.objects.filter(task_id__in=batch).only(
            "task_id",
            "task_name",
            "status",
            "date_created",
            "date_started",
            "date_done",
        )
        rows.update((row.task_id, row) for row in found)
    counts = Counter(rows[i].status if i in rows else states.PENDING for i in ids)
    done = sum(n for state, n in counts.items() if state in states.READY_STATES)
    failed = counts[states.FAILURE]
    progress = format_html(
        '<p class="dcr-progress"><progress max="{}" value="{}"></progress> {}</p>',
        len(ids),
        done,
        _("%(done)d / %(total)d done, %(failed)d failed")
        % {"done": done, "total": len(ids), "failed": failed},
    )
    lines = []
    for task_id in ids:
        row = rows.get(task_id)
        lines.append(
            (
                display.state_badge(row.status if row else states.PENDING),
                by_id_url("task", task_id),
                task_id,
                (row.task_name or "") if row else "",
                display.duration_text(display.between(row.date_started, row.date_done))
                if row and row.status in states.READY_STATES
                else "",
                display.moment_html(row.date_done, "") if row and row.status in states.READY_STATES else "",
            )
        )
    table = format_html(
        '<table class="dcr-members"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>'
        "</tr></thead><tbody>{}</tbody></table>",
        label(TaskResult, "status"),
        label(TaskResult, "task_id"),
        label(TaskResult, "task_name"),
        _("Runtime"),
        label(TaskResult, "date_done"),
        format_html_join(
            "",
            '<tr><td>{}</td><td><a href="{}"><code>{}</code></a></td><td>{}</td><td>{}</td><td>{}</td></tr>',
            lines,
        ),
    )
    return format_html("{}{}", progress, table)


@admin.register(GroupResult)
class GroupResultAdmin(ResultAdmin):
    """Admin of saved group results (``GroupResult.save()``), with their members and progress."""

    list_display = ("group_id", "date_done")
    list_filter = ("date_done",)
    search_fields = ("group_id",)
    fieldsets = (
        (None, {"fields": ("group_id", "content_type", "content_encoding"), "classes": WIDE}),
        (_("Members"), {"fields": ("members",), "classes": WIDE}),
        (
            _("Result"),
            {"fields": ("pretty_result", "date_created_moment", "date_done_moment"), "classes": WIDE},
        ),
    )
    edit_fieldsets = (
        (None, {"fields": ("group_id", "content_type", "content_encoding"), "classes": WIDE}),
        (_("Result"), {"fields": ("pretty_result", "date_created", "date_done"), "classes": WIDE}),
    )
    readonly_fields = ("date_created", "date_done", "pretty_result")

    @admin.display(description=_("Members"))
    def members(self, obj: GroupResult) -> SafeString | str:
        """Each member with its state and runtime, and how many are done (one query per 500 members)."""
        return members_table(related.members_of(obj.content_type, obj.result), self.get_empty_value_display())

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts
        return [
            path(
                "by-id/<path:group_id>/",
                self.admin_site.admin_view(self.by_id_view),
                name=f"{opts.app_label}_{opts.model_name}_by_id",
            ),
            *super().get_urls(),
        ]

    def by_id_view(self, request: HttpRequest, group_id: str) -> HttpResponse:
        return find_by_id(self, request, "group_id", group_id)


@admin.register(ChordCounter)
class ChordCounterAdmin(ResultAdmin):
    """Chords still waiting for their header: always read-only; old ones are stuck.

    A completed chord's counter stays at zero parts expected until
    ``cleanup()``; the others are chords in flight or that never completed. The
    :class:`~django_celery_results.admin.filters.ChordAgeFilter` finds the
    latter through the index on ``date_created``.
    """

    list_display = ("group_id", "parts_expected", "age", "date_created_moment")
    list_filter = (ChordAgeFilter,)
    search_fields = ("group_id",)
    ordering = ("date_created",)
    date_hierarchy = None  # type: ignore[assignment]
    fieldsets = (
        (None, {"fields": ("group_id", "parts_expected", "age", "date_created_moment"), "classes": WIDE}),
        (_("Header"), {"fields": ("header",), "classes": WIDE}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # counters are the chord protocol's state; writing them breaks chords

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("group_id", "parts_expected", "age", "date_created_moment", "header")

    @admin.display(description=_("Parts still expected"), ordering="count")
    def parts_expected(self, obj: ChordCounter) -> int:
        """Header parts that have not finished: the body is sent when this reaches 0."""
        return int(obj.count)

    @admin.display(description=_("Age"), ordering="date_created")
    def age(self, obj: ChordCounter) -> str:
        """How long ago the chord was applied."""
        created: datetime | None = obj.date_created
        return timesince(created, timezone.now(), depth=2) if created else ""

    @admin.display(description=_("Header parts"))
    def header(self, obj: ChordCounter) -> SafeString | str:
        """The header's parts with their states, and how many are done."""
        return members_table(related.parts_of(obj.sub_tasks), self.get_empty_value_display())
