"""The admin overview: what it shows, who may see it, and that its queries are few and index-served."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from typing import Any
from uuid import uuid4

import pytest
from celery import states
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_celery_results.admin.overview import OverviewView
from django_celery_results.models import (
    CHORD_AGE_INDEX,
    TASK_DONE_STATE_INDEX,
    TASK_STATE_AGE_INDEX,
    ChordCounter,
    TaskResult,
)
from tests.support.statements import (
    BIG_TABLE_ROWS,
    DATE_DONE_INDEX,
    analyze,
    explain_text,
    indexes_used,
    insert_task_rows,
    planner_prefers_indexes,  # noqa: F401 (a fixture)
    statements,
)

pytestmark = pytest.mark.django_db

OVERVIEW = "admin:django_celery_results_taskresult_overview"
CHORD_TABLE = ChordCounter._meta.db_table


def task(
    status: str = states.SUCCESS,
    *,
    done_ago: timedelta,
    runtime: float | None = 1.0,
    name: str = "proj.a",
    created_ago: timedelta | None = None,
) -> TaskResult:
    now = timezone.now()
    done = now - done_ago
    row = TaskResult.objects.create(
        task_id=str(uuid4()),
        status=status,
        task_name=name,
        content_type="application/json",
        content_encoding="utf-8",
        result="1",
        date_started=None if runtime is None else done - timedelta(seconds=runtime),
    )
    TaskResult.objects.filter(pk=row.pk).update(date_done=done, date_created=now - (created_ago or done_ago))
    return row


def counts_table(text: str) -> dict[str, list[str]]:
    """State name -> the hour, day and week counts, as the page shows them."""
    section = text.split('<table class="dcr-counts">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r"<tr><td>(.*?)</tr>", section, re.DOTALL):
        state = re.search(r"</span> ([A-Z]+)</span>", row)
        if state:
            rows[state.group(1)] = [
                unescape(n).replace("\xa0", " ")
                for n in re.findall(r'<td class="dcr-number">(.*?)</td>', row)
            ]
    return rows


def test_overview_counts_states_per_period_and_ranks_tasks(admin_client: Client) -> None:
    task(done_ago=timedelta(minutes=5), runtime=1.0)
    task(done_ago=timedelta(minutes=30), runtime=3.0)
    task(states.FAILURE, done_ago=timedelta(hours=3), runtime=2.0)
    task(done_ago=timedelta(days=3), runtime=9.0, name="proj.b")
    task(done_ago=timedelta(days=10), name="proj.old")  # older than a week: not counted
    response = admin_client.get(reverse(OVERVIEW))
    text = response.content.decode()
    assert counts_table(text) == {"SUCCESS": ["2", "2", "3"], "FAILURE": ["0", "1", "1"]}
    tasks = text.split('<table class="dcr-tasks">', 1)[1].split("</table>", 1)[0]
    # Over the last day: proj.a ran 3 times, one failure; runtimes of finished runs 1, 2, 3 s.
    assert re.search(
        r"proj\.<wbr>a</a></td><td class=\"dcr-number\">3</td><td class=\"dcr-number\">33\.3 %</td>"
        r"<td class=\"dcr-number\">2\.0 s</td><td class=\"dcr-number\">2\.9 s</td>",
        tasks,
    ), tasks
    assert "proj.b" not in tasks and "proj.old" not in tasks


def test_overview_lists_the_oldest_unfinished_tasks_and_stuck_chords(admin_client: Client) -> None:
    recently = timedelta(minutes=1)
    started = task(states.STARTED, done_ago=recently, created_ago=timedelta(hours=5), runtime=None)
    pending = task(states.PENDING, done_ago=recently, created_ago=timedelta(hours=9), runtime=None)
    stuck = ChordCounter.objects.create(group_id="stuck-chord", sub_tasks="[]", count=2)
    completed = ChordCounter.objects.create(group_id="completed-chord", sub_tasks="[]", count=0)
    ChordCounter.objects.filter(pk__in=[stuck.pk, completed.pk]).update(
        date_created=timezone.now() - timedelta(hours=2)
    )
    ChordCounter.objects.create(group_id="young-chord", sub_tasks="[]", count=1)
    text = admin_client.get(reverse(OVERVIEW)).content.decode()
    unfinished = text.split('<table class="dcr-unfinished">', 1)[1].split("</table>", 1)[0]
    assert unfinished.index(pending.task_id) < unfinished.index(started.task_id)  # oldest first
    chords = text.split('<table class="dcr-stuck">', 1)[1].split("</table>", 1)[0]
    assert "stuck-chord" in chords and "young-chord" not in chords
    assert "completed-chord" not in chords  # kept at zero until cleanup(), not stuck


def test_counts_beyond_the_cap_are_marked_as_lower_bounds(
    admin_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(OverviewView, "COUNT_CAP", 3)
    for minutes in range(5):
        task(done_ago=timedelta(minutes=minutes + 1))
    text = admin_client.get(reverse(OVERVIEW)).content.decode()
    assert counts_table(text) == {"SUCCESS": ["3", "3", "\u2265 3"]}
    assert "Counted over the 3 most recent results of the week." in text


def test_the_chart_is_inline_svg_with_no_outside_resource(admin_client: Client) -> None:
    task(done_ago=timedelta(minutes=10))
    task(states.FAILURE, done_ago=timedelta(minutes=10))
    text = admin_client.get(reverse(OVERVIEW)).content.decode()
    svg = text.split('<svg class="dcr-chart"', 1)[1].split("</svg>", 1)[0]
    assert svg.count('class="dcr-bar"') == 24 and svg.count('class="dcr-bar-failed"') == 24
    assert ": 2 results, 1 failed</title>" in svg
    # No page resource from elsewhere: every script and stylesheet is served by the site.
    for src in re.findall(r'(?:src|href)="([^"]+)"', text):
        assert not re.match(r"(https?:)?//", src), src


def test_overview_works_without_time_zones(admin_client: Client, settings: Any) -> None:
    task(done_ago=timedelta(minutes=5))
    settings.USE_TZ = False
    text = admin_client.get(reverse(OVERVIEW)).content.decode()
    assert '<svg class="dcr-chart"' in text and "proj.<wbr>a" in text


def test_overview_needs_the_view_permission(django_user_model: Any) -> None:
    def client_of(*codenames: str) -> Client:
        user = django_user_model.objects.create_user(username=f"u-{uuid4().hex[:6]}", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client = Client()
        client.force_login(user)
        return client

    assert client_of().get(reverse(OVERVIEW)).status_code == 403
    assert client_of("view_taskresult").get(reverse(OVERVIEW)).status_code == 200
    index = client_of("view_taskresult").get(reverse("admin:app_list", args=["django_celery_results"]))
    assert reverse(OVERVIEW) in index.content.decode()
    assert Client().get(reverse(OVERVIEW)).status_code == 302  # to the login page


def overview_queries(client: Client) -> list[str]:
    return [
        sql
        for sql in statements(lambda: client.get(reverse(OVERVIEW)))
        if TaskResult._meta.db_table in sql or CHORD_TABLE in sql
    ]


def test_overview_queries_do_not_grow_with_the_rows(admin_client: Client) -> None:
    task(done_ago=timedelta(minutes=1))
    few = overview_queries(admin_client)
    for i in range(40):
        task(states.PENDING if i % 4 else states.FAILURE, done_ago=timedelta(hours=i), runtime=None)
        ChordCounter.objects.create(group_id=f"c-{i}", sub_tasks="[]", count=1)
    many = overview_queries(admin_client)
    # sample, counts, oldest PENDING, oldest STARTED, stuck chords
    assert len(few) == len(many) == 5, many


@pytest.mark.django_db(transaction=True)
def test_overview_queries_read_through_indexes(
    admin_client: Client,
    planner_prefers_indexes: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Caps well below the table's size, as on the tables this is about (a million rows).
    monkeypatch.setattr(OverviewView, "COUNT_CAP", BIG_TABLE_ROWS // 4)
    monkeypatch.setattr(OverviewView, "SAMPLE_SIZE", BIG_TABLE_ROWS // 20)
    insert_task_rows(expired=0, fresh=BIG_TABLE_ROWS)
    unfinished_rows = [
        TaskResult(
            task_id=str(uuid4()),
            status=states.PENDING if i % 2 else states.STARTED,
            content_type="application/json",
            content_encoding="utf-8",
        )
        for i in range(BIG_TABLE_ROWS // 10)
    ]
    TaskResult.objects.bulk_create(unfinished_rows, batch_size=500)
    for i in range(200 if connection.vendor == "mysql" else 20):
        ChordCounter.objects.create(group_id=f"chord-{i}", sub_tasks="[]", count=1)
    analyze()
    with connection.cursor() as cursor:
        verb = "ANALYZE TABLE" if connection.vendor == "mysql" else "ANALYZE"
        cursor.execute(f"{verb} {connection.ops.quote_name(CHORD_TABLE)}")
        if connection.vendor == "mysql":
            cursor.fetchall()
    sent = overview_queries(admin_client)
    sample, counts, *unfinished, chords = sent
    assert "GROUP BY" in counts.upper() and f"LIMIT {BIG_TABLE_ROWS // 20}" in sample.upper()
    by_date_done = {DATE_DONE_INDEX, TASK_DONE_STATE_INDEX}
    for sql in (counts, sample):
        assert by_date_done & set(indexes_used(sql)), f"{sql}\n{explain_text(sql)}"
    for sql in unfinished:
        assert TASK_STATE_AGE_INDEX in indexes_used(sql), f"{sql}\n{explain_text(sql)}"
    assert CHORD_AGE_INDEX in indexes_used(chords, CHORD_TABLE), f"{chords}\n{explain_text(chords)}"
