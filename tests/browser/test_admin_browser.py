"""An operator's tour of the admin in a real Chromium, with tasks run by a real worker.

One story, in the order someone investigating would go: log in, read the
list, filter it, find a task by the start of its id, open a success, a
failure and a group, look at the overview, then re-run a task and terminate
a running one. Each page is saved as a screenshot, and must fit 1280 px.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import group, states
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from django_celery_results import admin as results_admin
from django_celery_results.models import ChordCounter, GroupResult, TaskResult
from tests.support.workers import Worker, running_worker

pytestmark = [
    pytest.mark.engine("postgresql"),
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "browse-the-admin"


def wait_for(task_id: str, *wanted: str, timeout: float = 30) -> TaskResult:
    """The row of ``task_id`` once the worker has stored one of the ``wanted`` states."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = TaskResult.objects.filter(task_id=task_id).first()
        if row is not None and row.status in wanted:
            return row
        time.sleep(0.1)
    raise AssertionError(f"{task_id} did not reach {wanted} in {timeout:.0f}s")


def shoot(page: Any, folder: Path, name: str) -> None:
    """Save the page, and check it fits the window's width (no horizontal scroll)."""
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{name}: {widths[0]} px wide in a {widths[1]} px window"
    # The changelist's table scrolls inside its own box (div.results) rather than the page.
    boxes = page.evaluate(
        "Array.from(document.querySelectorAll('.results, .dcr-card, fieldset'))"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.className + ' ' + e.scrollWidth)"
    )
    assert not boxes, f"{name}: scrolls sideways inside {boxes}"


def select_and_run(page: Any, row_text: str, action: str) -> str:
    """Tick the row holding ``row_text``, run ``action``; the messages shown after."""
    page.locator("#result_list tbody tr", has_text=row_text).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    # The action's page, once its messages are shown (read too early, the list was empty once in CI).
    shown = page.locator("ul.messagelist")
    expect(shown).to_have_text(re.compile(r"\S"))
    return str(shown.inner_text())


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with running_worker(tmp_path, concurrency=2) as started:
        # The admin's actions go through the app that talks to this worker.
        monkeypatch.setattr(results_admin, "celery_app", started.app)
        yield started


def test_an_operator_follows_tasks_through_the_admin(
    page: Any,
    live_server: Any,
    worker: Worker,
    django_user_model: Any,
    screenshots: Path,
) -> None:
    tasks = worker.tasks
    success = tasks.add.delay(2, 3)
    assert success.get(timeout=30) == 5
    failure = worker.wait(tasks.fail.delay("boom"))
    members = group(tasks.add.s(i, i) for i in range(3)).apply_async()
    members.save()
    assert members.get(timeout=30) == [0, 2, 4]
    running = tasks.sleep.delay(120)
    wait_for(running.id, states.STARTED)
    django_user_model.objects.create_superuser("operator", "op@example.com", PASSWORD)
    url = live_server.url

    # Log in.
    page.goto(url + reverse("admin:login"))
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(url + reverse("admin:index"))

    # The list: one badge per row, states readable as text.
    changelist = url + reverse("admin:django_celery_results_taskresult_changelist")
    page.goto(changelist)
    expect(page.locator("#result_list tbody tr")).to_have_count(6)
    assert page.locator(".dcr-badge-failure").inner_text().strip().endswith("FAILURE")
    expect(page.locator(".dcr-badge-started")).to_have_count(1)
    shoot(page, screenshots, "task-list")

    # Filter on a state.
    page.locator("#changelist-filter a", has_text=states.FAILURE).first.click()
    page.wait_for_url(re.compile(r"status__exact=FAILURE"))
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    shoot(page, screenshots, "task-list-failures")

    # Search by the start of an id, open the success.
    page.goto(changelist)
    page.fill("#searchbar", success.id[:10])
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r"\?q="))
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    # The whole id is one click away, though only its start is shown.
    page.locator("#result_list button.dcr-copy").click()
    expect(page.locator("#result_list button.dcr-copied")).to_have_count(1)
    assert page.evaluate("navigator.clipboard.readText()") == success.id
    page.locator("#result_list a.dcr-id").click()
    page.wait_for_url(re.compile(r"/change/$"))
    expect(page.locator(".dcr-badge-success")).to_have_count(1)
    assert page.locator(".field-pretty_task_args pre").inner_text() == "(2, 3)"
    shoot(page, screenshots, "task-success")

    # The failure: its exception's line stands out.
    page.goto(url + reverse("admin:django_celery_results_taskresult_by_id", args=[failure.id]))
    assert page.locator("mark.dcr-exception").inner_text() == "ValueError: boom"
    shoot(page, screenshots, "task-failure")

    # The group: its members and progress.
    saved = GroupResult.objects.get(group_id=members.id)
    page.goto(url + reverse("admin:django_celery_results_groupresult_change", args=[saved.pk]))
    assert page.locator(".dcr-progress").inner_text().strip() == "3 / 3 done, 0 failed"
    expect(page.locator("table.dcr-members tbody tr")).to_have_count(3)
    shoot(page, screenshots, "group")

    # Chords: one applied two hours ago, its header never finished.
    part = str(uuid.uuid4())
    stuck = ChordCounter.objects.create(
        group_id=str(uuid.uuid4()),
        sub_tasks=json.dumps([[[part, None], None]]),
        count=1,
    )
    ChordCounter.objects.filter(pk=stuck.pk).update(date_created=timezone.now() - timedelta(hours=2))
    page.goto(url + reverse("admin:django_celery_results_chordcounter_changelist"))
    page.locator("#changelist-filter a", has_text="1 hour").click()
    page.wait_for_url(re.compile(r"older_than=1h"))
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    shoot(page, screenshots, "stuck-chords")

    # The overview, from the list's tools.
    page.goto(changelist)
    page.click("text=Overview")
    expect(page.locator("svg.dcr-chart rect.dcr-bar")).to_have_count(24)
    assert "tests.support.workers.add" in page.locator("table.dcr-tasks").inner_text()
    assert running.id[:8] in page.locator("table.dcr-unfinished").inner_text()
    assert stuck.group_id in page.locator("table.dcr-stuck").inner_text()
    shoot(page, screenshots, "overview")

    # Re-run the success: the same call under a new id, run by the worker.
    page.goto(changelist)
    shown = select_and_run(page, success.id[:8], "rerun_tasks")
    new_id = re.search(rf"{success.id} \u2192 ([0-9a-f-]{{36}})", shown)
    assert new_id, shown
    rerun = wait_for(new_id.group(1), states.SUCCESS)
    assert (rerun.task_name, rerun.result) == ("tests.support.workers.add", "5")

    # Terminate the running task: the worker stores REVOKED.
    page.goto(changelist)
    shown = select_and_run(page, running.id[:8], "terminate_tasks")
    assert "Asked the workers to terminate 1 unfinished task." in shown
    wait_for(running.id, states.REVOKED)
    page.goto(changelist)
    expect(page.locator(".dcr-badge-revoked")).to_have_count(1)
    shoot(page, screenshots, "task-list-after-actions")
