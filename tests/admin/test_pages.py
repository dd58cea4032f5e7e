"""The admin's pages: list columns, the task page, groups, chords, re-run and forget, escaping."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from html import unescape
from typing import Any
from uuid import uuid4

import pytest
from celery import Celery, states
from celery.app.task import Context
from celery.utils.saferepr import saferepr
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_celery_results import admin as results_admin
from django_celery_results.admin.rerun import NotReconstructible, call_of
from django_celery_results.models import ChordCounter, GroupResult, TaskResult
from tests.support.brokers import drain

pytestmark = pytest.mark.django_db

TASKS = "admin:django_celery_results_taskresult"
GROUPS = "admin:django_celery_results_groupresult"
CHORDS = "admin:django_celery_results_chordcounter"
XSS = "<script>alert('pwned')</script>"
ESCAPED_XSS = "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;"


def task(task_id: str | None = None, *, date_done: datetime | None = None, **values: Any) -> TaskResult:
    """A stored task result; the ``auto_now`` dates are set after saving when given."""
    dates = {name: values.pop(name) for name in ("date_created",) if name in values}
    fields: dict[str, Any] = {
        "task_id": task_id or str(uuid4()),
        "status": states.SUCCESS,
        "task_name": "proj.tasks.add",
        "content_type": "application/json",
        "content_encoding": "utf-8",
        "result": "3",
        "task_args": json.dumps("(1, 2)"),
        "task_kwargs": json.dumps("{}"),
        "meta": '{"children": []}',
    }
    fields.update(values)
    row = TaskResult.objects.create(**fields)
    if date_done is not None:
        dates["date_done"] = date_done
    if dates:
        TaskResult.objects.filter(pk=row.pk).update(**dates)
        row.refresh_from_db()
    return row


def page(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def ago(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)


# -- the task list ---------------------------------------------------------------------


def test_list_shows_state_badges_runtimes_seconds_and_a_copyable_short_id(admin_client: Client) -> None:
    done = timezone.now().replace(microsecond=0) - timedelta(minutes=3)
    row = task(
        status=states.FAILURE,
        worker="celery@w1",
        queue="reports",
        retries=2,
        date_started=done - timedelta(seconds=4.5),
        date_created=done - timedelta(seconds=64.5),
        date_done=done,
    )
    text = page(admin_client.get(reverse(f"{TASKS}_changelist")))
    assert re.search(r'class="dcr-badge dcr-badge-failure">.*?FAILURE</span>', text)
    # The id is shortened in the link; whole in its title and in the copy button.
    assert f">{row.task_id[:8]}\u2026</a>" in text
    assert f'title="{row.task_id}"' in text and f'data-copy="{row.task_id}"' in text
    local = timezone.localtime(done)
    assert local.strftime("%Y-%m-%d %H:%M:%S") in text
    assert "3\xa0minutes ago" in unescape(text)
    fresh = task(worker="celery@w1")
    TaskResult.objects.filter(pk=fresh.pk).update(date_done=timezone.now() - timedelta(seconds=12))
    assert re.search(r"1[2-9] s ago", page(admin_client.get(reverse(f"{TASKS}_changelist"))))
    assert '4.5 s<small class="dcr-sub">waited 1 min</small>' in text  # runtime over waiting
    assert 'celery@<wbr>w1<small class="dcr-sub">queue reports</small>' in text
    assert '<small class="dcr-sub">2 retries</small>' in text


def test_columns_empty_on_the_whole_page_are_not_shown(admin_client: Client) -> None:
    task(worker=None)
    bare = admin_client.get(reverse(f"{TASKS}_changelist")).context["cl"]
    assert list(bare.list_display) == ["action_checkbox", "state_and_retries", "task", "date_done_moment"]
    task(queue="celery", periodic_task_name="nightly", date_started=timezone.now())
    full = admin_client.get(reverse(f"{TASKS}_changelist")).context["cl"]
    assert list(full.list_display) == [
        "action_checkbox",
        "state_and_retries",
        "task",
        "date_done_moment",
        "durations",
        "worker_and_queue",
        "periodic_task_name",
    ]


def test_runtime_filter_selects_slow_tasks_of_the_last_day(admin_client: Client) -> None:
    slow = task(date_started=ago(minutes=5), date_done=ago(seconds=1))
    task(date_started=ago(seconds=2), date_done=ago(seconds=1))  # fast
    task(date_started=ago(days=3), date_done=ago(days=2))  # slow, but not in the last day
    task(status=states.STARTED, date_started=ago(hours=1))  # no runtime yet
    cl = admin_client.get(reverse(f"{TASKS}_changelist"), {"slower_than": "1m"}).context["cl"]
    assert [row.pk for row in cl.result_list] == [slow.pk]
    unfiltered = admin_client.get(reverse(f"{TASKS}_changelist"), {"slower_than": "bogus"}).context["cl"]
    assert len(unfiltered.result_list) == 4


# -- the task page -----------------------------------------------------------------------


def test_task_page_shows_values_durations_and_the_raised_line(admin_client: Client) -> None:
    created = timezone.now() - timedelta(minutes=10)
    row = task(
        status=states.FAILURE,
        task_args=json.dumps("(1, 'two')"),
        task_kwargs=json.dumps({"deep": [1, {"x": 2}]}),
        result=json.dumps({"exc_type": "ValueError", "exc_message": ["boom"]}),
        traceback='Traceback (most recent call last):\n  File "t.py", line 1\nValueError: boom\n',
        date_created=created,
        date_started=created + timedelta(seconds=30),
    )
    TaskResult.objects.filter(pk=row.pk).update(date_done=created + timedelta(seconds=90))
    text = page(admin_client.get(reverse(f"{TASKS}_change", args=[row.pk])))
    # The argsrepr text as written, not a quoted JSON string; JSON values indented.
    assert '<pre class="dcr-pretty dcr-repr">(1, &#x27;two&#x27;)</pre>' in text
    assert '"deep": [\n    1,' in unescape(text)
    assert '"exc_type": "ValueError"' in unescape(text)
    assert '<mark class="dcr-exception">ValueError: boom</mark>' in text
    for duration in (">30.0 s<", ">1 min<", ">1 min 30 s<"):  # waiting, runtime, total
        assert duration in text
    others = reverse(f"{TASKS}_changelist") + "?task_name__exact=proj.tasks.add"
    assert f'href="{others}"' in text


def test_task_page_links_children_and_groups_through_by_id_pages(admin_client: Client) -> None:
    child, member = task(), task()
    group = GroupResult.objects.create(
        group_id="g-1",
        content_type="application/json",
        content_encoding="utf-8",
        result=json.dumps([["g-1", None], [[[member.task_id, None], None]]]),
    )
    parent = task(
        meta=json.dumps(
            {
                "children": [
                    [[child.task_id, None], None],
                    [["g-1", None], [[[member.task_id, None], None]]],
                ]
            }
        )
    )
    text = page(admin_client.get(reverse(f"{TASKS}_change", args=[parent.pk])))
    child_link = reverse(f"{TASKS}_by_id", args=[child.task_id])
    group_link = reverse(f"{GROUPS}_by_id", args=["g-1"])
    assert f'href="{child_link}"' in text and f'href="{group_link}"' in text
    assert admin_client.get(child_link)["Location"] == reverse(f"{TASKS}_change", args=[child.pk])
    assert admin_client.get(group_link)["Location"] == reverse(f"{GROUPS}_change", args=[group.pk])
    missing = admin_client.get(reverse(f"{TASKS}_by_id", args=["nope"]), follow=True)
    assert "No stored result has the id nope." in page(missing)


def test_task_page_links_its_sender_its_group_and_the_chord_still_waiting(
    admin_client: Client,
    backend: Any,
) -> None:
    """What Celery's request says (``group``, ``parent_id``) is stored by the backend, then followed."""
    sender, member = task(), str(uuid4())
    backend.store_result(
        member, 3, states.SUCCESS, request=Context(id=member, group="g-lineage", parent_id=sender.task_id)
    )
    row = TaskResult.objects.get(task_id=member)
    counter = ChordCounter.objects.create(group_id="g-lineage", sub_tasks="[]", count=2)
    url = reverse(f"{TASKS}_change", args=[row.pk])

    text = page(admin_client.get(url))
    assert f'href="{reverse(f"{TASKS}_by_id", args=[sender.task_id])}"' in text
    assert f'href="{reverse(f"{GROUPS}_by_id", args=["g-lineage"])}"' in text
    assert f'href="{reverse(f"{CHORDS}_change", args=[counter.pk])}">2 parts still expected</a>' in text

    ChordCounter.objects.filter(pk=counter.pk).update(count=0)  # completed, kept until cleanup()
    assert f'href="{reverse(f"{CHORDS}_change", args=[counter.pk])}">every part done</a>' in page(
        admin_client.get(url)
    )
    counter.delete()  # cleaned up: the group is still linked, no chord is
    text = page(admin_client.get(url))
    assert f'href="{reverse(f"{GROUPS}_by_id", args=["g-lineage"])}"' in text
    assert f'href="{reverse(f"{CHORDS}_change", args=[counter.pk])}"' not in text


# -- groups and chords -------------------------------------------------------------------


def test_group_page_lists_members_with_progress(admin_client: Client) -> None:
    ok = task(date_started=ago(seconds=3), date_done=ago(seconds=1))
    failed = task(status=states.FAILURE)
    running = task(status=states.STARTED)
    never_stored = str(uuid4())
    members = [[[m, None], None] for m in (ok.task_id, failed.task_id, running.task_id, never_stored)]
    group = GroupResult.objects.create(
        group_id="g-2",
        content_type="application/json",
        content_encoding="utf-8",
        result=json.dumps([["g-2", None], members]),
    )
    text = page(admin_client.get(reverse(f"{GROUPS}_change", args=[group.pk])))
    assert '<progress max="4" value="2">' in text
    assert "2 / 4 done, 1 failed" in text
    for member in (ok.task_id, failed.task_id, running.task_id, never_stored):
        assert f'href="{reverse(f"{TASKS}_by_id", args=[member])}"' in text
    assert text.count("dcr-badge-pending") == 1  # the member with no row yet
    assert ">2.0 s<" in text


@pytest.mark.parametrize(("members", "reads"), [(3, 1), (500, 1), (501, 2)])
def test_a_group_page_reads_member_states_500_ids_at_a_time(
    admin_client: Client,
    members: int,
    reads: int,
) -> None:
    ids = [str(uuid4()) for _ in range(members)]
    TaskResult.objects.bulk_create(
        [
            TaskResult(
                task_id=i, status=states.SUCCESS, content_type="application/json", content_encoding="utf-8"
            )
            for i in ids
        ],
        batch_size=250,
    )
    group = GroupResult.objects.create(
        group_id="g-many",
        content_type="application/json",
        content_encoding="utf-8",
        result=json.dumps([["g-many", None], [[[i, None], None] for i in ids]]),
    )
    with CaptureQueriesContext(connection) as captured:
        text = page(admin_client.get(reverse(f"{GROUPS}_change", args=[group.pk])))
    table = TaskResult._meta.db_table
    assert len([q for q in captured.captured_queries if table in q["sql"]]) == reads
    assert f"{members} / {members} done, 0 failed" in text


def test_chord_counters_are_read_only_and_stuck_ones_filterable(
    admin_client: Client,
    allow_edits: Any,
) -> None:
    allow_edits(True)
    fresh = ChordCounter.objects.create(group_id="fresh", sub_tasks="[]", count=3)
    stuck = ChordCounter.objects.create(
        group_id="stuck",
        sub_tasks=json.dumps([[["part-1", None], None]]),
        count=1,
    )
    # A chord that completed two days ago: its counter stays at zero until cleanup(), not stuck.
    done = ChordCounter.objects.create(group_id="done", sub_tasks="[]", count=0)
    ChordCounter.objects.filter(pk=stuck.pk).update(date_created=ago(days=2))
    ChordCounter.objects.filter(pk=done.pk).update(date_created=ago(days=3))
    cl = admin_client.get(reverse(f"{CHORDS}_changelist"), {"older_than": "1d"}).context["cl"]
    assert [c.group_id for c in cl.result_list] == ["stuck"]
    everything = admin_client.get(reverse(f"{CHORDS}_changelist")).context["cl"]
    assert [c.group_id for c in everything.result_list] == ["done", "stuck", "fresh"]  # oldest first
    text = page(admin_client.get(reverse(f"{CHORDS}_change", args=[stuck.pk])))
    assert "0 / 1 done, 0 failed" in text and "2\xa0days" in unescape(text)
    assert admin_client.post(reverse(f"{CHORDS}_change", args=[fresh.pk]), {"count": 0}).status_code == 403
    assert admin_client.get(reverse(f"{CHORDS}_add")).status_code == 403


@pytest.fixture
def allow_edits(settings: Any) -> Callable[[bool], None]:
    def switch(on: bool) -> None:
        settings.DJANGO_CELERY_RESULTS = {"ALLOW_EDITS": on}

    return switch


# -- re-run ------------------------------------------------------------------------------


LIMITS = (1024, 1024)


def stored(args: str | None, kwargs: str | None = '"{}"', **values: Any) -> TaskResult:
    fields = {
        "task_id": "t",
        "task_name": "proj.add",
        "content_type": "application/json",
        "content_encoding": "utf-8",
        **values,
    }
    return TaskResult(task_args=args, task_kwargs=kwargs, **fields)


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        (json.dumps("(1, 'a', [2, 3])"), json.dumps("{'b': None}"), ([1, "a", [2, 3]], {"b": None})),
        (json.dumps([1, {"x": "y"}]), json.dumps({"k": 1.5}), ([1, {"x": "y"}], {"k": 1.5})),
        (json.dumps("()"), json.dumps("{}"), ([], {})),
    ],
)
def test_calls_are_rebuilt_from_reprs_and_json(args: str, kwargs: str, expected: tuple[Any, Any]) -> None:
    call = call_of(stored(args, kwargs), *LIMITS)
    assert (call.name, call.args, call.kwargs) == ("proj.add", *expected)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (stored(None), "were not stored"),
        (stored(json.dumps(saferepr(("x" * 2000,), 1024))), "may have cut them"),
        (stored(json.dumps("(<masked>,)")), "not Python literals"),
        (stored(json.dumps(saferepr(([[[[1]]]],), 1024))), "shortened or masked"),  # saferepr's [...]
        (stored(json.dumps("({1, 2},)")), "shortened or masked"),  # a set: not what was sent
        (stored(json.dumps("(1, 2)"), content_type="application/x-python-serialize"), "only JSON rows"),
        (stored("not json"), "cannot be decoded"),
        (stored(json.dumps("(1,)"), task_name=None), "task name was not stored"),
        (stored(json.dumps("{'a': 1}")), "not a sequence"),
    ],
)
def test_calls_that_cannot_be_rebuilt_exactly_are_refused(row: TaskResult, reason: str) -> None:
    with pytest.raises(NotReconstructible, match=reason):
        call_of(row, *LIMITS)


@pytest.fixture
def memory_app(celery_app_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Celery:
    """The app the admin's actions go through: an in-memory broker and this package's backend."""
    app = celery_app_factory()
    monkeypatch.setattr(results_admin, "celery_app", app)
    return app


def actions(client: Client) -> set[str]:
    """The actions the changelist offers to ``client``'s user."""
    form = client.get(reverse(f"{TASKS}_changelist")).context["action_form"]
    return set() if form is None else {name for name, _label in form.fields["action"].choices}


def act(client: Client, action: str, *rows: TaskResult) -> Any:
    return client.post(
        reverse(f"{TASKS}_changelist"),
        {"action": action, "_selected_action": [r.pk for r in rows]},
        follow=True,
    )


def test_rerun_sends_the_same_call_under_a_new_id_and_refuses_the_rest(
    staff: Any,
    memory_app: Celery,
) -> None:
    exact = task(task_name="proj.mul", task_args=json.dumps("(6, 7)"), task_kwargs=json.dumps("{'z': [1]}"))
    masked = task(task_args=json.dumps("(<secret>,)"))
    viewer = staff("view_taskresult")
    assert "rerun_tasks" not in actions(viewer)
    assert "rerun_tasks" not in actions(staff("view_taskresult", "change_taskresult"))

    operator = staff("view_taskresult", "rerun_taskresult")
    text = page(act(operator, "rerun_tasks", exact, masked))
    assert f"Not re-run {masked.task_id}: the stored arguments are not Python literals" in text
    sent = drain(memory_app.connection_for_read())
    assert len(sent) == 1
    headers, (args, kwargs, _embed) = sent[0].headers, sent[0].decode()
    assert (headers["task"], args, kwargs) == ("proj.mul", [6, 7], {"z": [1]})
    assert headers["id"] != exact.task_id
    assert f"Re-ran 1 task: {exact.task_id} \u2192 {headers['id']}." in unescape(text)


def test_forget_needs_edits_allowed_and_removes_through_the_backend(
    staff: Any,
    memory_app: Celery,
    allow_edits: Any,
) -> None:
    keep, gone = task(), task()
    cleaner = staff("view_taskresult", "delete_taskresult")
    assert "forget_results" not in actions(cleaner)
    allow_edits(True)
    assert "Forgot 1 result." in page(act(cleaner, "forget_results", gone))
    assert list(TaskResult.objects.values_list("pk", flat=True)) == [keep.pk]


# -- escaping ----------------------------------------------------------------------------


def test_markup_stored_in_every_field_is_inert_on_every_page(admin_client: Client) -> None:
    markup = {
        "task_id": f"id-{XSS}",
        "task_name": XSS,
        "periodic_task_name": XSS,
        "worker": XSS,
        "queue": XSS,
        "status": XSS,
        "result": json.dumps([XSS]),
        "traceback": f"Traceback\n{XSS}",
        "task_args": json.dumps(f"('{XSS}',)"),
        "task_kwargs": json.dumps({"k": XSS}),
        "meta": json.dumps(
            {"children": [[[XSS, None], None]], "note": XSS, "group_id": f"c-{XSS}", "parent_id": XSS}
        ),
        "content_type": "application/json",
        "content_encoding": "utf-8",
    }
    row = task(**markup, date_started=ago(minutes=2), date_created=ago(minutes=3))
    TaskResult.objects.filter(pk=row.pk).update(date_done=ago(minutes=1))
    group = GroupResult.objects.create(
        group_id=f"g-{XSS}",
        content_type="application/json",
        content_encoding="utf-8",
        result=json.dumps([[f"g-{XSS}", None], [[[row.task_id, None], None]]]),
    )
    chord = ChordCounter.objects.create(
        group_id=f"c-{XSS}",
        sub_tasks=json.dumps([[[row.task_id, None], None]]),
        count=1,
    )
    ChordCounter.objects.filter(pk=chord.pk).update(date_created=ago(days=1))
    TaskResult.objects.create(
        task_id=f"p-{XSS}",
        task_name=XSS,
        status=states.PENDING,
        content_type="application/json",
        content_encoding="utf-8",
    )
    urls = [
        reverse(f"{TASKS}_changelist"),
        reverse(f"{TASKS}_changelist") + "?q=script",
        reverse(f"{TASKS}_change", args=[row.pk]),
        reverse(f"{GROUPS}_changelist"),
        reverse(f"{GROUPS}_change", args=[group.pk]),
        reverse(f"{CHORDS}_changelist"),
        reverse(f"{CHORDS}_change", args=[chord.pk]),
        reverse(f"{TASKS}_overview"),
    ]
    for url in urls:
        text = page(admin_client.get(url))
        assert "<script>alert" not in text, url
        assert ESCAPED_XSS in text, url
    change = page(admin_client.get(reverse(f"{TASKS}_change", args=[row.pk])))
    # id, name, periodic, worker, queue, state, args, kwargs, result, traceback, meta (twice), child
    assert change.count(ESCAPED_XSS) >= 12
