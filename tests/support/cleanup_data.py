"""The cleanup command's test data (old and fresh rows of every kind) and the checks run on two setups.

``tests/test_cleanup.py`` runs the checks directly, ``tests/topologies/test_pgbouncer.py`` through PgBouncer.
"""

from __future__ import annotations

import io
import re
from datetime import timedelta
from typing import Any

from celery import states
from django.core.management import call_command
from django.db import transaction

from django_celery_results.models import ChordCounter, GroupResult, TaskResult
from django_celery_results.utils import now

COMMAND = "celery_results_cleanup"

OLD = timedelta(days=3)
FRESH = timedelta(minutes=10)


# -- rows -------------------------------------------------------------------------------------


def add_tasks(
    prefix: str,
    count: int,
    age: timedelta,
    status: str = states.SUCCESS,
    task_name: str | None = "tests.add",
    chunk: int = 2000,
) -> list[str]:
    """``count`` task results ``age`` old (a second older per chunk), ids ``<prefix>:<n>``."""
    ids = [f"{prefix}:{n}" for n in range(count)]
    for start in range(0, count, chunk):
        part = ids[start : start + chunk]
        with transaction.atomic():
            TaskResult.objects.bulk_create(
                TaskResult(
                    task_id=task_id,
                    status=status,
                    task_name=task_name,
                    result="1",
                    content_type="application/json",
                    content_encoding="utf-8",
                )
                for task_id in part
            )
            TaskResult.objects.filter(task_id__in=part).update(
                date_done=now() - age - timedelta(seconds=start),
            )
    return ids


def add_groups(prefix: str, count: int, age: timedelta) -> list[str]:
    """``count`` group results ``age`` old, ids ``<prefix>:<n>``."""
    ids = [f"{prefix}:{n}" for n in range(count)]
    GroupResult.objects.bulk_create(
        GroupResult(group_id=group_id, result="[]", content_type="application/json", content_encoding="utf-8")
        for group_id in ids
    )
    GroupResult.objects.filter(group_id__in=ids).update(date_done=now() - age)
    return ids


def add_counters(prefix: str, count: int, age: timedelta | None, waiting: int = 0) -> list[str]:
    """Counters of completed chords ``age`` old (``waiting``: parts still expected); ``None``: undated."""
    ids = [f"{prefix}:{n}" for n in range(count)]
    ChordCounter.objects.bulk_create(
        ChordCounter(group_id=group_id, sub_tasks="[]", count=waiting) for group_id in ids
    )
    ChordCounter.objects.filter(group_id__in=ids).update(date_created=None if age is None else now() - age)
    return ids


#: Expired rows of the mixed data set, per prefix.
EXPIRED_TASKS = {"old": 6, "old-failed": 4, "old-mul": 3, "old-started": 2}


def mixed() -> dict[str, list[str]]:
    """Task results of several states and names, group results and chord counters, old and fresh."""
    return {
        "fresh": add_tasks("fresh", 5, FRESH),
        "old": add_tasks("old", 6, OLD),
        "old-failed": add_tasks("old-failed", 4, OLD, status=states.FAILURE),
        "old-mul": add_tasks("old-mul", 3, OLD, task_name="tests.mul"),
        "old-started": add_tasks("old-started", 2, OLD, status=states.STARTED, task_name="tests.mul"),
        "fresh-groups": add_groups("fresh-group", 2, FRESH),
        "old-groups": add_groups("old-group", 3, OLD),
        "fresh-counters": add_counters("fresh-chord", 2, FRESH),
        "old-counters": add_counters("old-chord", 4, OLD),
    }


def remaining() -> dict[str, set[str]]:
    """The ids left in the three tables."""
    return {
        "tasks": set(TaskResult.objects.values_list("task_id", flat=True)),
        "groups": set(GroupResult.objects.values_list("group_id", flat=True)),
        "counters": set(ChordCounter.objects.values_list("group_id", flat=True)),
    }


def fresh_only(rows: dict[str, list[str]]) -> dict[str, set[str]]:
    """What a cleanup of the mixed data set older than a day leaves."""
    return {
        "tasks": set(rows["fresh"]),
        "groups": set(rows["fresh-groups"]),
        "counters": set(rows["fresh-counters"]),
    }


def run(*args: str, **options: Any) -> str:
    """Run the command in this process; return what it wrote to stdout."""
    out = io.StringIO()
    call_command(COMMAND, *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def summary(text: str) -> str:
    """The output without its timing, ``(1.2 s)`` becoming ``(? s)``."""
    return re.sub(r"\(\d+\.\d s\)", "(? s)", text)


# -- checks run on two setups, each by a transactional test ------------------------------------


def check_dry_run_counts_and_changes_nothing() -> None:
    """A dry run over the mixed data set counts what is older than a day, and changes nothing."""
    mixed()
    undated = add_counters("undated", 1, None)
    before = remaining()

    out = run("--older-than=1d", "--dry-run")

    first = summary(out.splitlines()[0])
    assert first == (
        "Would delete 15 task results, 3 group results, 4 chord counters older than 1 day (? s)."
    ), first
    left = remaining()
    assert left == before, f"rows left {left} != rows before {before}"
    date_created = ChordCounter.objects.get(group_id=undated[0]).date_created
    assert date_created is None, date_created


def check_deletes_exactly_the_expired_rows() -> None:
    """A cleanup of the mixed data set older than a day deletes its old rows, and only those."""
    rows = mixed()

    out = run("--older-than=1d")

    assert summary(out) == (
        "Deleted 15 task results, 3 group results, 4 chord counters older than 1 day (? s).\n"
    ), out
    left, expected = remaining(), fresh_only(rows)
    assert left == expected, f"rows left {left} != fresh rows {expected}"
