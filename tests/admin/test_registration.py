"""The admin: registration, read-only by default, escaping, the terminate action, bounded queries."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from html import unescape
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl
from uuid import uuid4

import pytest
from celery import Celery, current_app, states
from celery import _state as celery_state
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from kombu import Queue
from kombu.exceptions import OperationalError

from django_celery_results import admin as results_admin
from django_celery_results.admin import (
    GroupResultAdmin,
    RecentValuesFilter,
    TaskResultAdmin,
    pretty_text,
)
from django_celery_results.models import ChordCounter, GroupResult, TaskResult

pytestmark = pytest.mark.django_db

XSS = "<script>alert('pwned')</script>"
ESCAPED_XSS = "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;"
TASKS = "admin:django_celery_results_taskresult"
GROUPS = "admin:django_celery_results_groupresult"


def task(
    task_id: str | None = None,
    *,
    date_done: datetime | None = None,
    **values: Any,
) -> TaskResult:
    """A stored task result; ``date_done`` is set after saving (the column is ``auto_now``)."""
    fields: dict[str, Any] = {
        "task_id": task_id or str(uuid4()),
        "status": states.SUCCESS,
        "task_name": "proj.tasks.add",
        "worker": "celery@w1",
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "result": "3",
        "task_args": "[1, 2]",
        "task_kwargs": "{}",
        "meta": '{"children": []}',
    }
    fields.update(values)
    row = TaskResult.objects.create(**fields)
    if date_done is not None:
        TaskResult.objects.filter(pk=row.pk).update(date_done=date_done)
        row.refresh_from_db()
    return row


def at(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, 12, tzinfo=timezone.utc)


@pytest.fixture
def allow_edits(settings: Any) -> Callable[[bool], None]:
    def switch(on: bool) -> None:
        settings.DJANGO_CELERY_RESULTS = {"ALLOW_EDITS": on}

    return switch


def task_admin() -> TaskResultAdmin:
    model_admin = admin.site._registry[TaskResult]
    assert isinstance(model_admin, TaskResultAdmin)
    return model_admin


def action_names(response: Any) -> set[str]:
    form = response.context["action_form"]
    return set() if form is None else {name for name, _label in form.fields["action"].choices}


def html(response: Any) -> str:
    return response.content.decode()


# -- registration and configuration ------------------------------------------------------


def test_models_are_registered_with_the_public_admin_classes() -> None:
    assert type(admin.site._registry[TaskResult]) is TaskResultAdmin
    assert type(admin.site._registry[GroupResult]) is GroupResultAdmin


def test_changelist_columns_filters_search_and_hierarchy(admin_client: Client) -> None:
    task(periodic_task_name="nightly", queue="celery", date_started=datetime.now(timezone.utc))
    response = admin_client.get(reverse(f"{TASKS}_changelist"))
    assert response.status_code == 200
    cl = response.context["cl"]
    assert list(cl.list_display) == [
        "action_checkbox",
        "state_and_retries",
        "task",
        "date_done_moment",
        "durations",
        "worker_and_queue",
        "periodic_task_name",
    ]
    # The parameters upstream's filters used, so bookmarked URLs keep working.
    assert [getattr(spec, "parameter_name", None) or spec.field_path for spec in cl.filter_specs] == [
        "status__exact",
        "date_done",
        "slower_than",
        "periodic_task_name__exact",
        "task_name__exact",
        "worker__exact",
        "queue__exact",
    ]
    assert set(cl.search_fields) == {
        "task_name",
        "task_id",
        "status",
        "task_args",
        "task_kwargs",
        "periodic_task_name",
    }
    assert cl.date_hierarchy == "date_done"
    assert cl.get_ordering(response.wsgi_request, cl.root_queryset)[0] == "-date_done"


def test_group_changelist_columns_search_and_hierarchy(admin_client: Client) -> None:
    GroupResult.objects.create(
        group_id="g-1", content_type="application/json", content_encoding="utf-8", result="[]"
    )
    response = admin_client.get(reverse(f"{GROUPS}_changelist"), {"q": "g-1"})
    cl = response.context["cl"]
    assert list(cl.list_display) == ["action_checkbox", "group_id", "date_done"]
    assert [spec.field_path for spec in cl.filter_specs] == ["date_done"]
    assert list(cl.search_fields) == ["group_id"]
    assert cl.date_hierarchy == "date_done"
    assert [g.group_id for g in cl.result_list] == ["g-1"]


# -- read-only unless ALLOW_EDITS ---------------------------------------------------------


def test_read_only_by_default_even_for_superusers(admin_client: Client) -> None:
    row = task(task_name="proj.original")
    change = reverse(f"{TASKS}_change", args=[row.pk])

    response = admin_client.get(change)
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="task_name"' not in html(response)
    assert "proj.original" in html(response)

    posted = admin_client.post(change, {"task_name": "proj.forged"})
    assert posted.status_code == 403
    row.refresh_from_db()
    assert row.task_name == "proj.original"
    assert admin_client.get(reverse(f"{TASKS}_add")).status_code == 403
    assert admin_client.get(reverse(f"{GROUPS}_add")).status_code == 403


def test_allow_edits_is_read_on_each_request(admin_client: Client, allow_edits: Any) -> None:
    row = task(task_name="proj.original", traceback="old")
    change = reverse(f"{TASKS}_change", args=[row.pk])

    allow_edits(True)
    page = html(admin_client.get(change))
    assert 'name="task_name"' in page
    assert 'name="traceback"' in page
    # The result and meta are what Celery stored: never editable.
    assert 'name="result"' not in page
    assert 'name="meta"' not in page
    assert admin_client.get(reverse(f"{TASKS}_add")).status_code == 200
    posted = admin_client.post(
        change,
        {
            "task_id": row.task_id,
            "task_name": "proj.renamed",
            "periodic_task_name": "p",
            "status": states.FAILURE,
            "worker": "celery@w2",
            "content_type": "application/json",
            "content_encoding": "utf-8",
            "task_args": "[]",
            "task_kwargs": "{}",
            "traceback": "new",
        },
    )
    assert posted.status_code == 302, posted.context["adminform"].form.errors
    row.refresh_from_db()
    assert (row.task_name, row.status, row.traceback) == ("proj.renamed", states.FAILURE, "new")
    assert row.result == "3"

    allow_edits(False)
    assert 'name="task_name"' not in html(admin_client.get(change))
    assert admin_client.post(change, {"task_name": "x"}).status_code == 403


def test_readonly_fields_cover_every_shown_field_unless_edits_allowed(
    rf: Any,
    admin_user: Any,
    allow_edits: Any,
) -> None:
    request = rf.get("/")
    request.user = admin_user

    def shown(model_admin: Any) -> set[str]:
        return {name for _title, opts in model_admin.get_fieldsets(request) for name in opts["fields"]}

    for model_admin in (task_admin(), admin.site._registry[GroupResult], admin.site._registry[ChordCounter]):
        assert set(model_admin.get_readonly_fields(request)) == shown(model_admin)
        allow_edits(True)
        if model_admin.has_change_permission(request):
            assert set(model_admin.get_readonly_fields(request)) < shown(model_admin)
        else:  # chord counters are the chord protocol's state: never editable
            assert set(model_admin.get_readonly_fields(request)) == shown(model_admin)
        allow_edits(False)


def test_delete_is_allowed_to_holders_of_the_delete_permission(staff: Any) -> None:
    keep, drop = task(), task()
    viewer = staff("view_taskresult")
    assert viewer.post(reverse(f"{TASKS}_delete", args=[keep.pk]), {"post": "yes"}).status_code == 403
    assert "delete_selected" not in action_names(viewer.get(reverse(f"{TASKS}_changelist")))

    cleaner = staff("view_taskresult", "delete_taskresult")
    assert "delete_selected" in action_names(cleaner.get(reverse(f"{TASKS}_changelist")))
    response = cleaner.post(reverse(f"{TASKS}_delete", args=[drop.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert list(TaskResult.objects.values_list("pk", flat=True)) == [keep.pk]


# -- escaping and pretty-printing ---------------------------------------------------------


def test_user_data_is_escaped_on_the_change_page(admin_client: Client) -> None:
    row = task(
        task_name=XSS,
        worker=XSS,
        periodic_task_name=XSS,
        status=states.FAILURE,
        result=json.dumps({"exc_message": [XSS]}),
        traceback=f"Traceback:\n  {XSS}",
        meta=json.dumps({"children": [], "note": XSS}),
        task_args=json.dumps([XSS]),
        task_kwargs=json.dumps({"k": XSS}),
    )
    page = html(admin_client.get(reverse(f"{TASKS}_change", args=[row.pk])))
    assert "<script>alert" not in page
    # name, worker, periodic task, result, traceback, meta, args, kwargs (+ title, breadcrumbs)
    assert page.count(ESCAPED_XSS) >= 8


def test_a_traceback_stored_escaped_shows_as_the_task_raised_it(admin_client: Client, backend: Any) -> None:
    # A lone surrogate (a file name through os.fsdecode) and a NUL: stored escaped, shown as raised.
    backend.mark_as_failure("odd-tb", ValueError("caf\udce9"), traceback=f"Traceback:\n  caf\udce9\x00 {XSS}")
    row = TaskResult.objects.get(task_id="odd-tb")
    page = html(admin_client.get(reverse(f"{TASKS}_change", args=[row.pk])))
    assert "dcr-esc:" not in page and "<script>alert" not in page
    # Characters a page cannot carry are shown as their escapes; the rest as raised, escaped.
    assert f"caf\\udce9\\x00 {ESCAPED_XSS}" in page


def test_user_data_is_escaped_on_the_changelist(admin_client: Client) -> None:
    task(task_name=XSS, worker=XSS, periodic_task_name=XSS, status=XSS)
    page = html(admin_client.get(reverse(f"{TASKS}_changelist")))
    assert "<script>alert" not in page
    # three columns and their three filters, status column and filter
    assert page.count(ESCAPED_XSS) >= 8


def test_group_result_is_escaped_and_pretty_printed(admin_client: Client) -> None:
    group = GroupResult.objects.create(
        group_id="g-xss",
        content_type="application/json",
        content_encoding="utf-8",
        result=json.dumps([[[XSS, None], None]]),
    )
    page = html(admin_client.get(reverse(f"{GROUPS}_change", args=[group.pk])))
    assert "<script>alert" not in page
    assert f"[\n  [\n    [\n      &quot;{ESCAPED_XSS}&quot;,\n      null" in page
    assert "<script>alert" not in html(admin_client.get(reverse(f"{GROUPS}_changelist")))


def test_json_is_indented_and_other_text_shown_as_stored(admin_client: Client) -> None:
    as_json = task(result='{"a": 1, "b": [true]}', task_kwargs='{"x": "y"}')
    # "1e10" is valid base64 and valid JSON: binary content must not be reformatted.
    pickled = task(
        content_type="application/x-python-serialize",
        content_encoding="binary",
        result="1e10",
        task_args="(1, 2)",
    )

    page = html(admin_client.get(reverse(f"{TASKS}_change", args=[as_json.pk])))
    assert "{\n  &quot;a&quot;: 1,\n  &quot;b&quot;: [\n    true\n  ]\n}</pre>" in page
    assert "{\n  &quot;x&quot;: &quot;y&quot;\n}</pre>" in page

    page = html(admin_client.get(reverse(f"{TASKS}_change", args=[pickled.pk])))
    assert '">1e10</pre>' in page
    assert "10000000000" not in page
    assert '">(1, 2)</pre>' in page


@pytest.mark.parametrize(
    ("text", "json_text", "expected"),
    [
        ('{"a":[1]}', True, "{\n  &quot;a&quot;: [\n    1\n  ]\n}"),
        ('"é"', True, "&quot;é&quot;"),
        ("(1, {'a': 2})", True, "(1, {&#x27;a&#x27;: 2})"),
        ("[" * 100_000, True, "[" * 100_000),  # too deep for json: shown as stored
        ('{"a":1}', False, "{&quot;a&quot;:1}"),
        (f"line 1\n{XSS}", False, f"line 1\n{ESCAPED_XSS}"),
    ],
)
def test_pretty_text(text: str, json_text: bool, expected: str) -> None:
    shown = pretty_text(text, json_text=json_text)
    assert shown.startswith("<pre ")
    assert shown.endswith(f">{expected}</pre>")


@pytest.mark.parametrize("empty", [None, ""])
def test_pretty_text_of_nothing_is_the_empty_marker(empty: str | None) -> None:
    assert pretty_text(empty, json_text=True, empty="(none)") == "(none)"


# -- the terminate action -----------------------------------------------------------------


class Listener:
    """Reads the control messages one Celery app publishes, from its in-memory broker.

    A queue bound to the app's own mailbox exchange receives the app's
    broadcasts only: apps with another ``control_exchange`` publish elsewhere.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.queue = Queue(f"dcr-admin-{uuid4().hex}", app.control.mailbox.exchange, auto_delete=False)
        with app.connection_for_write() as conn:
            self.queue(conn.default_channel).declare()

    def __call__(self) -> list[dict[str, Any]]:
        """The messages published since the last call."""
        messages = []
        with self.app.connection_for_read() as conn:
            bound = self.queue(conn.default_channel)
            while (message := bound.get(no_ack=True)) is not None:
                messages.append(message.payload)
        return messages

    def close(self) -> None:
        with self.app.connection_for_write() as conn:
            self.queue(conn.default_channel).delete()


@pytest.fixture
def listener(celery_app_factory: Any) -> Iterator[Callable[[str], Listener]]:
    """Make a memory-broker app whose broadcasts go to its own ``control_exchange``, and listen to it."""
    made: list[Listener] = []

    def listen(control_exchange: str) -> Listener:
        made.append(Listener(celery_app_factory(control_exchange=control_exchange)))
        return made[-1]

    yield listen
    for one in made:
        one.close()


@pytest.fixture
def broadcasts(listener: Callable[[str], Listener], monkeypatch: pytest.MonkeyPatch) -> Listener:
    """The control messages of the app the admin uses (``django_celery_results.admin.celery_app``)."""
    listening = listener("dcr-admin")
    monkeypatch.setattr(results_admin, "celery_app", listening.app)
    return listening


def terminate(client: Client, *rows: TaskResult) -> Any:
    return client.post(
        reverse(f"{TASKS}_changelist"),
        {"action": "terminate_tasks", "_selected_action": [r.pk for r in rows]},
        follow=True,
    )


def test_view_only_staff_are_never_offered_terminate(staff: Any, broadcasts: Any) -> None:
    running = task(status=states.STARTED)
    viewer = staff("view_taskresult")
    response = viewer.get(reverse(f"{TASKS}_changelist"))
    assert response.status_code == 200
    assert "terminate_tasks" not in action_names(response)
    assert "terminate_tasks" not in html(response)

    terminate(viewer, running)
    assert broadcasts() == []


def test_terminate_revokes_the_selected_unfinished_tasks(staff: Any, broadcasts: Any) -> None:
    started, retrying = task(status=states.STARTED), task(status=states.RETRY)
    finished, other = task(status=states.SUCCESS), task(status=states.STARTED)
    # The change permission is enough, although ALLOW_EDITS is off.
    operator = staff("view_taskresult", "change_taskresult")
    assert "terminate_tasks" in action_names(operator.get(reverse(f"{TASKS}_changelist")))

    response = terminate(operator, started, retrying, finished)
    assert "terminate 2 unfinished tasks" in html(response)
    [message] = broadcasts()
    assert message["method"] == "revoke"
    assert message["destination"] is None
    assert sorted(message["arguments"]["task_id"]) == sorted([started.task_id, retrying.task_id])
    assert other.task_id not in message["arguments"]["task_id"]
    assert message["arguments"]["terminate"] is True
    assert message["arguments"]["signal"] == "SIGTERM"


def test_terminate_sends_batches_and_warns_when_nothing_is_unfinished(
    admin_client: Client,
    broadcasts: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(task_admin(), "terminate_batch_size", 2)
    rows = [task(status=states.STARTED) for _ in range(3)]
    terminate(admin_client, *rows)
    sent = [m["arguments"]["task_id"] for m in broadcasts()]
    assert sorted(len(ids) for ids in sent) == [1, 2]
    assert sorted(i for ids in sent for i in ids) == sorted(r.task_id for r in rows)

    response = terminate(admin_client, task(status=states.SUCCESS), task(status=states.FAILURE))
    assert "nothing to terminate" in html(response)
    assert broadcasts() == []


def test_terminate_reports_an_unreachable_broker(
    admin_client: Client,
    broadcasts: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(broadcasts.app.control, "revoke", unreachable)
    response = terminate(admin_client, task(status=states.STARTED))
    assert response.status_code == 200
    assert "Could not reach the broker" in html(response)
    assert "connection refused" in html(response)


def test_the_module_app_is_celerys_current_app_proxy_by_default() -> None:
    assert results_admin.celery_app is current_app
    assert "celery_app" in results_admin.__all__


def revoked_ids(messages: list[dict[str, Any]]) -> list[str]:
    """The task ids of the revoke broadcasts among ``messages``, in order."""
    return [i for m in messages if m["method"] == "revoke" for i in m["arguments"]["task_id"]]


def test_patching_the_module_app_sends_the_revoke_through_that_app(
    admin_client: Client,
    listener: Callable[[str], Listener],
) -> None:
    site, other = listener("site"), listener("other")
    running = task(status=states.STARTED)

    with mock.patch("django_celery_results.admin.celery_app", site.app):
        response = terminate(admin_client, running)

    assert "terminate 1 unfinished task." in html(response)
    [message] = site()
    assert message["method"] == "revoke"
    assert message["arguments"]["task_id"] == [running.task_id]
    assert message["arguments"]["terminate"] is True
    assert other() == []


def test_the_app_is_read_when_the_action_runs(
    admin_client: Client,
    listener: Callable[[str], Listener],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replacing the attribute after the admin is registered redirects the next action."""
    first, second = listener("first"), listener("second")
    rows = [task(status=states.STARTED) for _ in range(2)]

    monkeypatch.setattr(results_admin, "celery_app", first.app)
    terminate(admin_client, rows[0])
    monkeypatch.setattr(results_admin, "celery_app", second.app)
    terminate(admin_client, rows[1])

    assert revoked_ids(first()) == [rows[0].task_id]
    assert revoked_ids(second()) == [rows[1].task_id]


def test_by_default_the_app_current_when_the_action_runs_is_used(
    admin_client: Client,
    listener: Callable[[str], Listener],
) -> None:
    project, other = listener("project"), listener("other")
    running = task(status=states.STARTED)
    previous = celery_state.get_current_app()
    project.app.set_current()
    try:
        terminate(admin_client, running)
    finally:
        celery_state._set_current_app(previous)

    assert revoked_ids(project()) == [running.task_id]
    assert other() == []


# -- filters ------------------------------------------------------------------------------


def filter_choices(response: Any, parameter: str) -> list[str]:
    [spec] = [
        s for s in response.context["cl"].filter_specs if getattr(s, "parameter_name", None) == parameter
    ]
    return [value for value, _label in spec.lookup_choices]


def test_filter_choices_come_from_the_most_recent_rows(
    admin_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RecentValuesFilter, "sample_size", 3)
    old = task(task_name="proj.old", worker="celery@old", status="PROGRESS", date_done=at(2020))
    for name in ("proj.a", "proj.b", "proj.a"):
        task(task_name=name, periodic_task_name=f"beat-{name}", worker="celery@w1")
    changelist = reverse(f"{TASKS}_changelist")

    response = admin_client.get(changelist)
    assert filter_choices(response, "task_name__exact") == ["proj.a", "proj.b"]
    assert filter_choices(response, "periodic_task_name__exact") == ["beat-proj.a", "beat-proj.b"]
    assert filter_choices(response, "worker__exact") == ["celery@w1"]
    assert filter_choices(response, "status__exact") == sorted(states.ALL_STATES)

    # A value outside the sample is still filtered on, and listed while selected.
    response = admin_client.get(changelist, {"task_name__exact": "proj.old", "status__exact": "PROGRESS"})
    assert "proj.old" in filter_choices(response, "task_name__exact")
    assert "PROGRESS" in filter_choices(response, "status__exact")
    assert [r.pk for r in response.context["cl"].result_list] == [old.pk]


def test_filter_lists_the_most_frequent_values_only(
    admin_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RecentValuesFilter, "max_choices", 1)
    for name in ("proj.rare", "proj.common", "proj.common"):
        task(task_name=name, status="PROGRESS")
    response = admin_client.get(reverse(f"{TASKS}_changelist"))
    assert filter_choices(response, "task_name__exact") == ["proj.common"]
    # Custom states seen recently join Celery's.
    assert filter_choices(response, "status__exact") == sorted({*states.ALL_STATES, "PROGRESS"})


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": states.FAILURE}, {"failed"}),
        ({"task_name__exact": "proj.mul"}, {"mul"}),
        ({"worker__exact": "celery@w2"}, {"failed"}),
        ({"periodic_task_name__exact": "nightly"}, {"beat"}),
        ({"q": "nightly"}, {"beat"}),
        ({"q": "secret-arg"}, {"mul"}),
        ({"q": "kwarg-value"}, {"failed"}),
        ({"q": "beat-task"}, {"beat"}),
        ({"q": "failure"}, {"failed"}),
        ({"date_done__year": "2023"}, {"mul"}),
    ],
)
def test_filters_and_search_select_rows(
    admin_client: Client,
    params: dict[str, str],
    expected: set[str],
) -> None:
    task("failed", status=states.FAILURE, worker="celery@w2", task_kwargs='{"k": "kwarg-value"}')
    task("mul", task_name="proj.mul", task_args='["secret-arg"]', date_done=at(2023, 3))
    task("beat-task-id", periodic_task_name="nightly")
    response = admin_client.get(reverse(f"{TASKS}_changelist"), params)
    assert response.status_code == 200
    found = {r.task_id for r in response.context["cl"].result_list}
    assert found == {"beat-task-id" if e == "beat" else e for e in expected}


def test_queue_filter_lists_recent_queues_and_selects_the_last_days_rows(admin_client: Client) -> None:
    """No index leads with ``queue``: the filter reads one day of rows along ``date_done``'s index."""
    recent = task(queue="reports")
    task(queue="celery")
    task(queue="reports", date_done=datetime.now(timezone.utc) - timedelta(days=2))  # outside the day
    changelist = reverse(f"{TASKS}_changelist")

    assert filter_choices(admin_client.get(changelist), "queue__exact") == ["celery", "reports"]
    response = admin_client.get(changelist, {"queue__exact": "reports"})
    assert [r.pk for r in response.context["cl"].result_list] == [recent.pk]
    title = [
        spec.title
        for spec in response.context["cl"].filter_specs
        if getattr(spec, "parameter_name", None) == "queue__exact"
    ]
    assert title == ["queue (last day)"]


# -- date hierarchy -----------------------------------------------------------------------


def hierarchy(response: Any) -> list[tuple[dict[str, str], str]]:
    """``(query, text)`` of each link in the date hierarchy's bar."""
    [nav] = re.findall(r'<nav class="toplinks">(.*?)</nav>', html(response), re.DOTALL)
    return [
        (dict(parse_qsl(unescape(href).lstrip("?"))), unescape(text))
        for href, text in re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', nav)
    ]


def test_date_hierarchy_drills_down_between_the_oldest_and_newest_rows(admin_client: Client) -> None:
    task(date_done=at(2022, 5, 10))
    task(date_done=at(2024, 2, 3))
    task(date_done=at(2024, 4, 9))
    changelist = reverse(f"{TASKS}_changelist")

    years = hierarchy(admin_client.get(changelist))
    assert years == [({"date_done__year": str(y)}, str(y)) for y in (2022, 2023, 2024)]

    months = hierarchy(admin_client.get(changelist, {"date_done__year": 2024}))
    assert months[0] == ({}, "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK} All dates")
    assert months[1:] == [
        ({"date_done__year": "2024", "date_done__month": str(m)}, f"{name} 2024")
        for m, name in ((2, "February"), (3, "March"), (4, "April"))
    ]

    days = hierarchy(admin_client.get(changelist, {"date_done__year": 2024, "date_done__month": 2}))
    assert days[1:] == [
        ({"date_done__year": "2024", "date_done__month": "2", "date_done__day": "3"}, "February 3"),
    ]

    response = admin_client.get(
        changelist,
        {"date_done__year": 2024, "date_done__month": 4, "date_done__day": 9},
    )
    assert hierarchy(response) == [
        (
            {"date_done__year": "2024", "date_done__month": "4"},
            "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK} April 2024",
        ),
    ]
    assert response.context["cl"].result_count == 1


def test_date_hierarchy_starts_at_the_level_where_rows_differ(admin_client: Client) -> None:
    task(date_done=at(2024, 6, 2))
    task(date_done=at(2024, 6, 4))
    links = hierarchy(admin_client.get(reverse(f"{TASKS}_changelist")))
    assert [text.lstrip("\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK} ") for _q, text in links] == [
        "2024",
        "June 2",
        "June 3",
        "June 4",
    ]


# -- admin at scale -----------------------------------------------------------------------

# session, user, recent values for the filters, MIN/MAX for the date hierarchy,
# the paginator's count of the matching rows, the page of rows.
CHANGELIST_QUERIES = 6


@pytest.mark.parametrize("rows", [5, 50, 150])
def test_changelist_queries_are_few_and_never_distinct(admin_client: Client, rows: int) -> None:
    TaskResult.objects.bulk_create(
        [
            TaskResult(
                task_id=f"t-{i}",
                task_name=f"proj.t{i % 7}",
                worker=f"celery@w{i % 3}",
                periodic_task_name=f"beat-{i % 2}",
                status=states.SUCCESS,
                content_type="application/json",
                content_encoding="utf-8",
                result="1",
            )
            for i in range(rows)
        ]
    )
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(reverse(f"{TASKS}_changelist"))
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == min(rows, 100)
    sql = [q["sql"].upper() for q in ctx.captured_queries]
    assert len(sql) == CHANGELIST_QUERIES, "\n".join(sql)
    assert not [s for s in sql if "DISTINCT" in s]
    assert len([s for s in sql if "COUNT(" in s]) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"date_done__year": "2024"},
        {"date_done__year": "2024", "date_done__month": "2"},
        {"status__exact": "SUCCESS", "task_name__exact": "proj.tasks.add", "worker__exact": "celery@w1"},
        {"q": "proj", "periodic_task_name__exact": "nightly"},
        {"o": "3", "p": "1"},
    ],
)
def test_filtered_changelists_never_select_distinct(admin_client: Client, params: dict[str, str]) -> None:
    for i in range(120):
        task(f"t-{i}", periodic_task_name="nightly", date_done=at(2024, 2, 1 + i % 20))
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(reverse(f"{TASKS}_changelist"), params)
    assert response.status_code == 200
    assert response.context["cl"].result_count > 0
    assert not [q["sql"] for q in ctx.captured_queries if "DISTINCT" in q["sql"].upper()]


@pytest.mark.parametrize("params", [{}, {"date_done__year": "2024"}, {"q": "g-1"}])
def test_group_changelist_never_selects_distinct(admin_client: Client, params: dict[str, str]) -> None:
    for i in range(30):
        group = GroupResult.objects.create(
            group_id=f"g-{i}", content_type="application/json", content_encoding="utf-8", result="[]"
        )
        GroupResult.objects.filter(pk=group.pk).update(date_done=at(2023 + i % 2, 1 + i % 12))
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(reverse(f"{GROUPS}_changelist"), params)
    assert response.status_code == 200
    assert response.context["cl"].result_count > 0
    assert not [q["sql"] for q in ctx.captured_queries if "DISTINCT" in q["sql"].upper()]


@pytest.mark.django_db
def test_search_by_task_id_prefix_finds_the_task(admin_client: Any) -> None:
    """A term that looks like the start of a task id goes through the task_id index."""
    from django_celery_results.models import TaskResult

    for task_id in ("3f2a9c1e-aaaa-4bbb-8ccc-000000000001", "77777777-aaaa-4bbb-8ccc-000000000002"):
        TaskResult.objects.store_result("application/json", "utf-8", task_id, "1", "SUCCESS")
    response = admin_client.get("/admin/django_celery_results/taskresult/", {"q": "3f2a9c1e-aa"})
    assert response.status_code == 200
    assert "3f2a9c1e-aaaa-4bbb-8ccc-000000000001" in response.content.decode()
    assert "77777777-aaaa" not in response.content.decode()
    # A term that is no id prefix still searches the other fields.
    TaskResult.objects.filter(task_id__startswith="7777").update(task_name="proj.reports.nightly")
    found = admin_client.get("/admin/django_celery_results/taskresult/", {"q": "nightly"})
    assert "77777777-aaaa" in found.content.decode()
