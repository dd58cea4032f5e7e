"""The task result admin: states at a glance, runtimes, related tasks, and its actions."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from celery import states
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from kombu.exceptions import OperationalError

from .. import engines
from ..codec import JSON, Codec, printable, unescape_text
from ..models import ChordCounter, TaskResult
from . import display, related
from .base import WIDE, ResultAdmin, label
from .filters import (
    PeriodicTaskNameFilter,
    QueueFilter,
    SlowFilter,
    StatusFilter,
    TaskNameFilter,
    WorkerFilter,
)
from .rerun import NotReconstructible, call_of

if TYPE_CHECKING:
    from celery import Celery
    from django.utils.functional import _StrOrPromise as StrOrPromise

#: States after which a task no longer runs; terminating it would do nothing.
FINISHED_STATES = frozenset({states.SUCCESS, states.FAILURE})

#: Search terms that may be (the start of) a task id: looked up through its index.
TASK_ID_PREFIX = re.compile(r"[0-9a-fA-F-]{8,}")


def celery_app() -> Celery:
    """The package's :data:`django_celery_results.admin.celery_app`, read now so patching it works."""
    return sys.modules["django_celery_results.admin"].celery_app


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def by_id_url(kind: str, ident: str) -> str:
    """The admin URL that finds the stored row of a task (``kind="task"``) or group by its id."""
    name = "taskresult" if kind == "task" else "groupresult"
    return reverse(f"admin:django_celery_results_{name}_by_id", args=[ident])


def id_item(what: StrOrPromise, kind: str, ident: str) -> SafeString:
    """One list item: what ``ident`` is, and the id linking to its stored row."""
    return format_html('<li>{} <a href="{}"><code>{}</code></a></li>', what, by_id_url(kind, ident), ident)


def refs_html(refs: list[related.Ref], empty: str) -> SafeString | str:
    """Links to the tasks and groups ``refs`` name (nested members under their group)."""
    if not refs:
        return empty
    items = []
    for ref in refs:
        if ref.members is None:
            items.append(id_item(_("task"), "task", ref.id))
        else:
            items.append(
                format_html(
                    '<li>{} <a href="{}"><code>{}</code></a> ({})<ul>{}</ul></li>',
                    _("group"),
                    by_id_url("group", ref.id),
                    ref.id,
                    ngettext("%(n)d member", "%(n)d members", len(ref.members)) % {"n": len(ref.members)},
                    refs_html(list(ref.members), ""),
                )
            )
    return format_html('<ul class="dcr-refs">{}</ul>', format_html_join("", "{}", ((i,) for i in items)))


def find_by_id(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    field: str,
    ident: str,
) -> HttpResponse:
    """Redirect to the change page of the row whose ``field`` is ``ident``, or back with a message."""
    opts = model_admin.opts
    if not model_admin.has_view_or_change_permission(request):
        return HttpResponseRedirect(reverse("admin:index"))
    pk = model_admin.get_queryset(request).filter(**{field: ident}).values_list("pk", flat=True).first()
    info = (opts.app_label, opts.model_name)
    if pk is None:
        model_admin.message_user(
            request,
            _("No stored result has the id %(id)s.") % {"id": ident},
            messages.WARNING,
        )
        return HttpResponseRedirect(reverse("admin:{}_{}_changelist".format(*info)))
    return HttpResponseRedirect(reverse("admin:{}_{}_change".format(*info), args=[pk]))


@admin.register(TaskResult)
class TaskResultAdmin(ResultAdmin):
    """Admin of task results; see :mod:`django_celery_results.admin` for editing, actions and scale."""

    # Two lines per cell (name over id, runtime over waiting, worker over queue):
    # the list fits 1280 px beside Django's navigation and filter sidebars.
    list_display = (
        "state_and_retries",
        "task",
        "date_done_moment",
        "durations",
        "worker_and_queue",
        "periodic_task_name",
    )
    list_display_links = None  # the task cell holds the links; the rest stays selectable
    optional_columns = ("durations", "worker_and_queue", "periodic_task_name")
    list_filter = (
        StatusFilter,
        "date_done",
        SlowFilter,
        PeriodicTaskNameFilter,
        TaskNameFilter,
        WorkerFilter,
        QueueFilter,
    )
    search_fields = (
        "task_name",
        "task_id",
        "status",
        "task_args",
        "task_kwargs",
        "periodic_task_name",
    )
    search_help_text = _(
        "Matches part of the task name, id, state, arguments or periodic task name; "
        "the start of a task id is looked up through its index."
    )
    actions = ["terminate_tasks", "rerun_tasks", "forget_results"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "task_id",
                    "status_badge",
                    "task_name_and_runs",
                    "worker",
                    "queue",
                    "retries",
                    "periodic_task_name",
                    "content_type",
                    "content_encoding",
                ),
                "classes": WIDE,
            },
        ),
        (
            _("Timing"),
            {
                "fields": (
                    "date_created_moment",
                    "date_started_moment",
                    "date_done_moment",
                    "waiting",
                    "runtime",
                    "total_time",
                ),
                "classes": WIDE,
            },
        ),
        (_("Parameters"), {"fields": ("pretty_task_args", "pretty_task_kwargs"), "classes": WIDE}),
        (_("Result"), {"fields": ("pretty_result", "pretty_traceback", "pretty_meta"), "classes": WIDE}),
        (_("Related"), {"fields": ("lineage", "children"), "classes": WIDE}),
    )
    edit_fieldsets = (
        (
            None,
            {
                "fields": (
                    "task_id",
                    "task_name",
                    "periodic_task_name",
                    "status",
                    "worker",
                    "content_type",
                    "content_encoding",
                ),
                "classes": WIDE,
            },
        ),
        (_("Parameters"), {"fields": ("task_args", "task_kwargs"), "classes": WIDE}),
        (
            _("Result"),
            {
                "fields": (
                    "pretty_result",
                    "date_created",
                    "date_started",
                    "date_done",
                    "traceback",
                    "pretty_meta",
                ),
                "classes": WIDE,
            },
        ),
    )
    readonly_fields = ("date_created", "date_started", "date_done", "pretty_result", "pretty_meta")

    #: The signal workers send to the processes running terminated tasks.
    terminate_signal = "SIGTERM"
    #: Task ids per revoke broadcast, so that one message stays small.
    terminate_batch_size = 500
    #: Rows one re-run or forget may act on: more is a mistake, or a job for code.
    action_limit = 1000

    # -- columns ------------------------------------------------------------

    def column_filled(self, name: str, row: Any) -> bool:
        if name == "durations":
            return row.date_started is not None
        if name == "worker_and_queue":
            return bool(row.worker or row.queue)
        return super().column_filled(name, row)

    @admin.display(description=label(TaskResult, "status"), ordering="status")
    def state_and_retries(self, obj: TaskResult) -> SafeString:
        """The state's badge, and how many retries it took when there were any."""
        if not obj.retries:
            return display.state_badge(obj.status)
        retries = ngettext("%(n)d retry", "%(n)d retries", obj.retries) % {"n": obj.retries}
        return format_html('{}<small class="dcr-sub">{}</small>', display.state_badge(obj.status), retries)

    @admin.display(description=label(TaskResult, "task_name"), ordering="task_name")
    def task(self, obj: TaskResult) -> SafeString:
        """The task name over the start of its id; both link to the task, the id can be copied."""
        url = reverse("admin:django_celery_results_taskresult_change", args=[obj.pk])
        return format_html(
            '<a class="dcr-name" href="{}">{}</a><span class="dcr-sub">{}</span>',
            url,
            display.breakable(unescape_text(obj.task_name) or self.get_empty_value_display()),
            display.short_id_html(obj.task_id, url),
        )

    @admin.display(description=_("Runtime (waiting)"))
    def durations(self, obj: TaskResult) -> SafeString:
        """How long it ran, over how long it waited for a worker."""
        waited = self.waiting(obj)
        return format_html(
            "{}{}",
            self.runtime(obj) or "-",
            format_html('<small class="dcr-sub">{}</small>', _("waited %(time)s") % {"time": waited})
            if waited
            else "",
        )

    @admin.display(description=label(TaskResult, "worker"), ordering="worker")
    def worker_and_queue(self, obj: TaskResult) -> SafeString:
        """The worker's host name over the queue the task came from."""
        queue = unescape_text(obj.queue)
        return format_html(
            "{}{}",
            display.breakable(unescape_text(obj.worker) or "-"),
            format_html('<small class="dcr-sub">{}</small>', _("queue %(name)s") % {"name": queue})
            if queue
            else "",
        )

    @admin.display(description=label(TaskResult, "status"), ordering="status")
    def status_badge(self, obj: TaskResult) -> SafeString:
        """The state as a badge: colour, a mark and the name."""
        return display.state_badge(obj.status)

    @admin.display(description=label(TaskResult, "date_started"))
    def date_started_moment(self, obj: TaskResult) -> SafeString | str:
        return display.moment_html(obj.date_started, self.get_empty_value_display())

    @admin.display(description=_("Runtime"))
    def runtime(self, obj: TaskResult) -> str:
        """From the start to the latest state (``date_done - date_started``): how long it ran."""
        if obj.status not in states.READY_STATES:
            return ""  # still running or waiting: date_done is only the latest update
        return display.duration_text(display.between(obj.date_started, obj.date_done))

    @admin.display(description=_("Waiting"))
    def waiting(self, obj: TaskResult) -> str:
        """From the first stored state to the start (``date_started - date_created``): time in the queue."""
        return display.duration_text(display.between(obj.date_created, obj.date_started))

    @admin.display(description=_("Total"))
    def total_time(self, obj: TaskResult) -> str:
        """From the first stored state to the latest (``date_done - date_created``)."""
        return display.duration_text(display.between(obj.date_created, obj.date_done))

    @admin.display(description=label(TaskResult, "task_name"))
    def task_name_and_runs(self, obj: TaskResult) -> SafeString | str:
        """The task name, linking to the other runs of the same task."""
        name = unescape_text(obj.task_name)
        if not name:
            return self.get_empty_value_display()
        url = reverse("admin:django_celery_results_taskresult_changelist")
        return format_html(
            '<code>{}</code> <a href="{}?{}">{}</a>',
            name,
            url,
            urlencode({"task_name__exact": name}),
            _("other runs of this task"),
        )

    # -- values ---------------------------------------------------------------

    def _arguments(self, obj: TaskResult, text: str | None) -> SafeString | str:
        """Arguments as readable values: a stored description as plain text, JSON values indented."""
        empty = self.get_empty_value_display()
        if obj.content_type != JSON:
            return self._pretty(obj, text)  # never decoded here (pickle would run code)
        value = Codec("json", [JSON]).decode_lenient(obj.content_type, obj.content_encoding, text)
        if value is None:
            return empty
        if isinstance(value, str):  # Celery's argsrepr/kwargsrepr: a description, shown as is
            return format_html('<pre class="dcr-pretty dcr-repr">{}</pre>', printable(value))
        return display.json_value_html(value)

    @admin.display(description=label(TaskResult, "task_args"))
    def pretty_task_args(self, obj: TaskResult) -> SafeString | str:
        """Positional arguments: the stored description, or JSON values indented; escaped."""
        return self._arguments(obj, obj.task_args)

    @admin.display(description=label(TaskResult, "task_kwargs"))
    def pretty_task_kwargs(self, obj: TaskResult) -> SafeString | str:
        """Keyword arguments: the stored description, or JSON values indented; escaped."""
        return self._arguments(obj, obj.task_kwargs)

    @admin.display(description=label(TaskResult, "meta"))
    def pretty_meta(self, obj: TaskResult) -> SafeString | str:
        """Children and user metadata (``request.meta``): JSON indented; escaped."""
        return self._pretty(obj, obj.meta)

    @admin.display(description=label(TaskResult, "traceback"))
    def pretty_traceback(self, obj: TaskResult) -> SafeString | str:
        """The traceback, escaped, its last line (the exception) highlighted."""
        return display.traceback_html(obj.traceback, self.get_empty_value_display())

    @admin.display(description=_("Belongs to"))
    def lineage(self, obj: TaskResult) -> SafeString | str:
        """The task that sent this one, its group, and the group's chord if it has one (one query)."""
        group_id, parent_id = related.lineage_of(obj.content_type, obj.meta)
        items = []
        if parent_id:
            items.append(id_item(_("sent by task"), "task", parent_id))
        if group_id:
            items.append(id_item(_("group"), "group", group_id))
            counter = ChordCounter.objects.filter(group_id=group_id).values_list("pk", "count").first()
            if counter is not None:
                pk, expected = counter
                items.append(
                    format_html(
                        '<li>{} <a href="{}">{}</a></li>',
                        _("chord of this group:"),
                        reverse("admin:django_celery_results_chordcounter_change", args=[pk]),
                        ngettext("%(n)d part still expected", "%(n)d parts still expected", expected)
                        % {"n": expected}
                        if expected
                        else _("every part done"),
                    )
                )
        if not items:
            return self.get_empty_value_display()
        return format_html('<ul class="dcr-refs">{}</ul>', format_html_join("", "{}", ((i,) for i in items)))

    @admin.display(description=_("Children"))
    def children(self, obj: TaskResult) -> SafeString | str:
        """Links to the tasks and groups this task started (from its ``meta``)."""
        return refs_html(related.children_of(obj.content_type, obj.meta), self.get_empty_value_display())

    # -- pages ----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        """Adds ``by-id/<task id>/`` (links between tasks need no query) and the overview page."""
        from .overview import OverviewView

        opts = self.opts
        prefix = f"{opts.app_label}_{opts.model_name}"
        return [
            path(
                "by-id/<path:task_id>/",
                self.admin_site.admin_view(self.by_id_view),
                name=f"{prefix}_by_id",
            ),
            path(
                "overview/",
                self.admin_site.admin_view(OverviewView.as_view(model_admin=self)),
                name=f"{prefix}_overview",
            ),
            *super().get_urls(),
        ]

    def by_id_view(self, request: HttpRequest, task_id: str) -> HttpResponse:
        return find_by_id(self, request, "task_id", task_id)

    def get_search_results(
        self,
        request: HttpRequest,
        queryset: QuerySet[TaskResult],
        search_term: str,
    ) -> Any:
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

    # -- actions --------------------------------------------------------------

    def has_terminate_permission(self, request: HttpRequest) -> bool:
        """Holding ``change_taskresult``, whatever ``ALLOW_EDITS`` says.

        Terminating stops work on the workers and leaves stored results to
        them, so it is not an edit; but it is more than viewing, so view-only
        staff never get it.
        """
        codename = get_permission_codename("change", self.opts)
        return bool(request.user.has_perm(f"{self.opts.app_label}.{codename}"))

    def has_rerun_permission(self, request: HttpRequest) -> bool:
        """Holding the dedicated ``rerun_taskresult``: re-running repeats side effects."""
        return bool(request.user.has_perm(f"{self.opts.app_label}.rerun_taskresult"))

    def has_forget_permission(self, request: HttpRequest) -> bool:
        """Edits allowed and the delete permission: forgetting removes what workers stored."""
        return self.edits_allowed(request) and self.has_delete_permission(request)

    def _too_many(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> bool:
        if queryset.order_by()[: self.action_limit + 1].count() <= self.action_limit:
            return False
        self.message_user(
            request,
            _("Select at most %(limit)d tasks for this action.") % {"limit": self.action_limit},
            messages.ERROR,
        )
        return True

    @admin.action(description=_("Terminate selected tasks"), permissions=["terminate"])
    def terminate_tasks(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
        """Revoke the selected unfinished tasks with ``terminate=True``.

        Tasks in SUCCESS or FAILURE have stopped; revoking them would only
        grow every worker's revoked set. Workers store REVOKED themselves.
        """
        task_ids = (
            queryset.exclude(status__in=FINISHED_STATES)
            .order_by()
            .values_list("task_id", flat=True)
            .iterator(chunk_size=self.terminate_batch_size)
        )
        control = celery_app().control
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
                request,
                _("None of the selected tasks is unfinished; nothing to terminate."),
                messages.WARNING,
            )
            return
        self.message_user(
            request,
            ngettext(
                "Asked the workers to terminate %(count)d unfinished task.",
                "Asked the workers to terminate %(count)d unfinished tasks.",
                sent,
            )
            % {"count": sent},
            messages.SUCCESS,
        )

    @admin.action(description=_("Re-run selected tasks"), permissions=["rerun"])
    def rerun_tasks(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
        """Send each selected task again: same name and arguments, a new task id.

        Rows whose arguments cannot be rebuilt exactly (not stored, cut by
        ``saferepr``, masked by ``argsrepr``, not JSON) are refused, each with
        its reason; the others are sent. Routing follows the app's settings.
        """
        if self._too_many(request, queryset):
            return
        app = celery_app()
        limits = (app.amqp.argsrepr_maxsize, app.amqp.kwargsrepr_maxsize)
        sent: list[tuple[str, str]] = []
        columns = ("task_id", "task_name", "task_args", "task_kwargs", "content_type", "content_encoding")
        for row in queryset.order_by("date_done").only(*columns):
            try:
                call = call_of(row, *limits)
            except NotReconstructible as reason:
                self.message_user(
                    request,
                    _("Not re-run %(id)s: %(reason)s.") % {"id": row.task_id, "reason": reason},
                    messages.ERROR,
                )
                continue
            try:
                new = app.send_task(call.name, args=call.args, kwargs=call.kwargs)
            except OperationalError as exc:
                self.message_user(
                    request,
                    _("Could not reach the broker after re-running %(sent)d tasks: %(error)s")
                    % {"sent": len(sent), "error": exc},
                    messages.ERROR,
                )
                break
            sent.append((row.task_id, new.id))
        if sent:
            self.message_user(
                request,
                ngettext(
                    "Re-ran %(count)d task: %(pairs)s.",
                    "Re-ran %(count)d tasks: %(pairs)s.",
                    len(sent),
                )
                % {"count": len(sent), "pairs": ", ".join(f"{old} \u2192 {new}" for old, new in sent)},
                messages.SUCCESS,
            )

    @admin.action(description=_("Forget selected results"), permissions=["forget"])
    def forget_results(self, request: HttpRequest, queryset: QuerySet[TaskResult]) -> None:
        """The backend's ``forget`` for each selected task: its stored result is removed."""
        if self._too_many(request, queryset):
            return
        app = celery_app()
        ids = list(queryset.order_by().values_list("task_id", flat=True))
        for task_id in ids:
            app.AsyncResult(task_id).forget()
        self.message_user(
            request,
            ngettext("Forgot %(count)d result.", "Forgot %(count)d results.", len(ids)) % {"count": len(ids)},
            messages.SUCCESS,
        )
