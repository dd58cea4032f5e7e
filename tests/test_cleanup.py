"""``manage.py celery_results_cleanup``: what it deletes, how it reports, and how it stops.

Rows are made old by writing them and then moving their date back: the date
columns are ``auto_now``/``auto_now_add``, so they cannot be set on insert.
The rows, the mixed data set and the checks also run through PgBouncer are in
``tests/support/cleanup_data.py``.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery import Celery, states
from celery import _state as celery_state
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_celery_results import cleanup, managers
from django_celery_results.management.commands.celery_results_cleanup import (
    Command,
    describe_age,
    parse_age,
)
from django_celery_results.models import ChordCounter, GroupResult, TaskResult
from django_celery_results.utils import now
from tests.support.cleanup_data import (
    COMMAND,
    EXPIRED_TASKS,
    FRESH,
    OLD,
    add_counters,
    add_groups,
    add_tasks,
    check_deletes_exactly_the_expired_rows,
    check_dry_run_counts_and_changes_nothing,
    fresh_only,
    mixed,
    remaining,
    run,
    summary,
)
from tests.support.processes import child_environ, run_python
from tests.support.routers import ResultsRouter, extra_connections_closed  # noqa: F401

db = pytest.mark.django_db(transaction=True)


# -- running the command ----------------------------------------------------------------------


def run_both(*args: str, **options: Any) -> tuple[str, str]:
    """Run the command in this process; return what it wrote to stdout and to stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(COMMAND, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def refused(*args: str, **options: Any) -> str:
    """Run the command expecting a refusal before any query; return its message."""
    with CaptureQueriesContext(connection) as captured, pytest.raises(CommandError) as raised:
        run(*args, **options)
    assert captured.captured_queries == []
    return str(raised.value)


def deletes_tasks(sql: str) -> bool:
    """Whether ``sql`` is a batch of the task results table."""
    table = connection.ops.quote_name(TaskResult._meta.db_table)
    return re.search(rf"\bDELETE FROM {re.escape(table)}", sql, re.IGNORECASE) is not None


def deletes(captured: CaptureQueriesContext) -> list[str]:
    """The DELETE statements on the task results table (one per batch, including a last, short one)."""
    return [q["sql"] for q in captured.captured_queries if deletes_tasks(q["sql"])]


# -- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        (" 7d ", timedelta(days=7)),
        ("0s", timedelta(0)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(days=7), "7 days"),
        (timedelta(days=1, hours=12), "1 day 12 hours"),
        (timedelta(seconds=90), "1 minute 30 seconds"),
        (timedelta(0), "0 seconds"),
        (timedelta(seconds=1.5), "1.5 seconds"),
    ],
)
def test_ages_in_words(age: timedelta, text: str) -> None:
    assert describe_age(age) == text


@db
@pytest.mark.parametrize(
    "text",
    [
        "7",
        "7x",
        "d",
        "-1d",
        "1.5d",
        "7 days",
        "7D",
        "1h1d",
        "",
        "99999999999d",
        "999999d",
    ],
)
def test_a_bad_duration_is_a_command_error(text: str) -> None:
    add_tasks("old", 1, OLD)
    with pytest.raises(CommandError, match="Invalid --older-than"):
        run(f"--older-than={text}")
    assert TaskResult.objects.count() == 1


BATCH_SIZE_RANGE = "it must be a whole number from 1 to 1,000,000."


@db
@pytest.mark.parametrize("size", ["0", "-5", "1000001", "99999999999999999999"])
def test_a_batch_size_out_of_range_is_refused_before_any_query(size: str) -> None:
    add_tasks("old", 3, OLD)

    with CaptureQueriesContext(connection) as captured, pytest.raises(CommandError) as raised:
        run("--older-than=1d", f"--batch-size={size}")

    assert str(raised.value) == f"Invalid --batch-size {int(size)}: {BATCH_SIZE_RANGE}"
    assert captured.captured_queries == []
    assert TaskResult.objects.count() == 3


@db
@pytest.mark.parametrize(("setting", "shown"), [(10**20, " 100000000000000000000"), (0, " 0"), ("many", "")])
def test_a_batch_size_setting_out_of_range_is_refused_by_name(setting: Any, shown: str) -> None:
    add_tasks("old", 3, OLD)

    with (
        override_settings(DJANGO_CELERY_RESULTS={"CLEANUP_BATCH_SIZE": setting}),
        CaptureQueriesContext(connection) as captured,
        pytest.raises(CommandError) as raised,
    ):
        run("--older-than=1d")

    setting_name = 'DJANGO_CELERY_RESULTS["CLEANUP_BATCH_SIZE"]'
    assert str(raised.value) == f"Invalid {setting_name}{shown}: {BATCH_SIZE_RANGE}"
    assert captured.captured_queries == []
    assert TaskResult.objects.count() == 3


@given(size=st.integers())
def test_batch_sizes_are_accepted_exactly_from_one_to_a_million(size: int) -> None:
    if 1 <= size <= 1_000_000:
        assert Command().batch_size(size) == size
        assert Command().batch_size(str(size)) == size
    else:
        with pytest.raises(CommandError, match=re.escape(BATCH_SIZE_RANGE)):
            Command().batch_size(size)


@db
def test_the_largest_batch_size_deletes_in_one_statement() -> None:
    add_tasks("old", 25, OLD)
    with CaptureQueriesContext(connection) as captured:
        run("--older-than=1d", "--batch-size=1000000")
    assert len(deletes(captured)) == 1
    assert TaskResult.objects.count() == 0


# -- what goes ------------------------------------------------------------------------------------


@db
def test_dry_run_counts_and_changes_nothing() -> None:
    check_dry_run_counts_and_changes_nothing()


@db
def test_deletes_exactly_the_expired_rows() -> None:
    check_deletes_exactly_the_expired_rows()


@db
def test_the_boundary_is_the_age() -> None:
    add_tasks("older", 1, timedelta(hours=12, minutes=1))
    kept = add_tasks("younger", 1, timedelta(hours=11, minutes=59))
    assert "Deleted 1 task result," in run("--older-than=12h")
    assert remaining()["tasks"] == set(kept)


@db
@pytest.mark.parametrize(
    ("args", "gone", "filters"),
    [
        (
            ["--status=FAILURE", "--status=STARTED"],
            ["old-failed", "old-started"],
            "status FAILURE or STARTED",
        ),
        (["--task-name=tests.mul"], ["old-mul", "old-started"], "task name tests.mul"),
        (
            ["--task-name=tests.add", "--status=FAILURE"],
            ["old-failed"],
            "status FAILURE; task name tests.add",
        ),
        (["--task-name=tests.none"], [], "task name tests.none"),
    ],
)
def test_filters_select_task_results_and_keep_groups_and_counters(
    args: list[str],
    gone: list[str],
    filters: str,
) -> None:
    rows = mixed()
    before = remaining()

    out = run("--older-than=1d", *args)

    count = sum(EXPIRED_TASKS[prefix] for prefix in gone)
    assert summary(out) == (
        "Keeping group results and chord counters: --status and --task-name select task results only "
        "(add --include-groups or --include-chords to clean them too).\n"
        f"Deleted {count} task result{'' if count == 1 else 's'} ({filters}) older than 1 day (? s).\n"
    )
    after = remaining()
    assert after["tasks"] == before["tasks"] - {task_id for prefix in gone for task_id in rows[prefix]}
    assert (after["groups"], after["counters"]) == (before["groups"], before["counters"])


@db
@pytest.mark.parametrize(
    ("args", "groups_go", "counters_go"),
    [
        ([], True, True),
        (["--no-include-groups"], False, True),
        (["--no-include-chords"], True, False),
        (["--no-include-groups", "--no-include-chords"], False, False),
        (["--status=FAILURE"], False, False),
        (["--status=FAILURE", "--include-groups"], True, False),
        (["--task-name=tests.add", "--include-chords"], False, True),
        (["--task-name=tests.add", "--include-groups", "--include-chords"], True, True),
    ],
)
def test_groups_and_chords_flags(args: list[str], groups_go: bool, counters_go: bool) -> None:
    rows = mixed()

    out = run("--older-than=1d", *args)

    after = remaining()
    assert after["groups"] == set(rows["fresh-groups"] + ([] if groups_go else rows["old-groups"]))
    assert after["counters"] == set(rows["fresh-counters"] + ([] if counters_go else rows["old-counters"]))
    line = out.splitlines()[-1]
    assert ("3 group results" in line) is groups_go
    assert ("4 chord counters" in line) is counters_go


@db
def test_flags_also_work_as_call_command_keywords() -> None:
    rows = mixed()
    run(older_than="1d", status=[states.FAILURE], include_groups=True)
    assert remaining()["groups"] == set(rows["fresh-groups"])
    assert len(remaining()["tasks"]) == 5 + 15 - 4


@db
@pytest.mark.parametrize(
    ("args", "stored"),
    [
        (["--status=SUCCESS"], "success"),
        (["--status=SUCCESS "], states.SUCCESS),
        (["--task-name=TESTS.ADD"], states.SUCCESS),
        (["--task-name=tests.add "], states.SUCCESS),
    ],
)
def test_filters_are_exact_on_every_engine(args: list[str], stored: str) -> None:
    """MySQL's default collations ignore case and trailing spaces; the filters do not."""
    add_tasks("old", 2, OLD, status=stored)
    assert "Deleted 0 task results" in run("--older-than=1d", *args)
    assert TaskResult.objects.count() == 2


# -- states ---------------------------------------------------------------------------------------

CUSTOM_STATES_HINT = "a custom state is accepted when written in upper case."


@db
@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("success", "Unknown --status 'success': states are case-sensitive. Did you mean --status SUCCESS?"),
        ("Failure", "Unknown --status 'Failure': states are case-sensitive. Did you mean --status FAILURE?"),
        (
            "sucess",
            "Unknown --status 'sucess': did you mean SUCCESS? "
            "(A custom state is accepted when written in upper case.)",
        ),
        (
            "success ",
            "Unknown --status 'success ': did you mean SUCCESS? "
            "(A custom state is accepted when written in upper case.)",
        ),
        (
            "progress",
            "Unknown --status 'progress': Celery's states are FAILURE, PENDING, RECEIVED, RETRY, "
            f"REVOKED, STARTED, SUCCESS; {CUSTOM_STATES_HINT}",
        ),
        (
            "",
            "Unknown --status '': Celery's states are FAILURE, PENDING, RECEIVED, RETRY, "
            f"REVOKED, STARTED, SUCCESS; {CUSTOM_STATES_HINT}",
        ),
    ],
)
def test_a_state_not_in_upper_case_is_refused_with_a_suggestion(state: str, message: str) -> None:
    add_tasks("old", 2, OLD, status=states.SUCCESS)
    add_tasks("old-lower", 1, OLD, status=state)  # even stored so, it is not selectable
    assert refused("--older-than=1d", f"--status={state}") == message
    assert refused("--older-than=1d", "--status=FAILURE", f"--status={state}", verbosity=0) == message
    assert TaskResult.objects.count() == 3


@db
def test_a_custom_state_in_upper_case_is_cleaned_with_a_note() -> None:
    gone = add_tasks("old-progress", 2, OLD, status="PROGRESS")
    kept = add_tasks("old", 3, OLD) + add_tasks("fresh-progress", 1, FRESH, status="PROGRESS")

    out, err = run_both("--older-than=1d", "--status=PROGRESS")

    assert err == (
        "Note: PROGRESS is not a built-in Celery state; only task results stored with exactly this "
        "state match.\n"
    )
    assert "Deleted 2 task results (status PROGRESS)" in out
    assert remaining()["tasks"] == set(kept)
    assert not set(gone) & remaining()["tasks"]


@db
def test_a_custom_state_close_to_a_built_in_one_gets_a_did_you_mean() -> None:
    add_tasks("old", 2, OLD)

    out, err = run_both("--older-than=1d", "--status=SUCESS", "--status=SUCCESS")

    assert err == (
        "Note: SUCESS is not a built-in Celery state (did you mean SUCCESS?); only task results stored "
        "with exactly this state match.\n"
    )
    assert "Deleted 2 task results (status SUCESS or SUCCESS)" in out


@db
def test_built_in_states_pass_without_a_note() -> None:
    add_tasks("old", 1, OLD)
    args = [f"--status={state}" for state in sorted(states.ALL_STATES)]
    out, err = run_both("--older-than=1d", *args)
    assert err == ""
    assert "Deleted 1 task result (status FAILURE or PENDING or RECEIVED" in out


# -- ages under a minute --------------------------------------------------------------------------

UNDER_A_MINUTE = (
    "Refusing an age under a minute without --force: older than {age} ({origin}) also reaches tasks "
    "still queued or running, whose results are dated by their latest state. Pass --force to delete "
    "them anyway."
)


@db
@pytest.mark.parametrize(("text", "age"), [("30s", "30 seconds"), ("59s", "59 seconds"), ("0s", "0 seconds")])
def test_an_age_under_a_minute_needs_force(text: str, age: str) -> None:
    mixed()
    add_tasks("running", 1, timedelta(seconds=1), status=states.STARTED)
    before = remaining()

    message = refused(f"--older-than={text}", verbosity=0)

    assert message == UNDER_A_MINUTE.format(age=age, origin="--older-than")
    assert remaining() == before


@db
def test_with_force_an_age_under_a_minute_deletes() -> None:
    gone = add_tasks("started-45s-ago", 1, timedelta(seconds=45), status=states.STARTED)
    kept = add_tasks("started-2s-ago", 1, timedelta(seconds=2), status=states.STARTED)

    out = run("--older-than", "30s", "--force")

    assert "Deleted 1 task result, 0 group results, 0 chord counters older than 30 seconds" in out
    assert remaining()["tasks"] == set(kept)
    assert not set(gone) & remaining()["tasks"]


@db
def test_a_minute_exactly_needs_no_force() -> None:
    add_tasks("old", 2, timedelta(minutes=5))
    assert "Deleted 2 task results" in run("--older-than=1m")
    assert TaskResult.objects.count() == 0


@db
def test_a_dry_run_under_a_minute_counts_and_notes_that_force_is_needed() -> None:
    add_tasks("old", 2, timedelta(minutes=5))

    out, err = run_both("--older-than=30s", "--dry-run")

    assert summary(out).splitlines()[0] == (
        "Would delete 2 task results, 0 group results, 0 chord counters older than 30 seconds (? s)."
    )
    assert err == "Note: older than 30 seconds is under a minute: the cleanup itself needs --force.\n"
    assert TaskResult.objects.count() == 2
    assert run_both("--older-than=30s", "--dry-run", "--force")[1] == ""


# -- values starting with a minus sign -------------------------------------------------------------

NEGATIVE_AGE = (
    "Invalid --older-than {text!r}: an age cannot be negative; use a number and a unit: s, m, h, d or w "
    "(e.g. 90s, 30m, 12h, 7d, 2w, or 1d12h)."
)


@db
@pytest.mark.parametrize(
    "args",
    [
        ["--older-than", "-5"],
        ["--older-than", "-5d"],
        ["--older-than", "-1d12h"],
        ["--older-than", "-.5d"],
        ["--older", "-2w"],
        ["--older-than=-5d"],
        ["--dry-run", "--older-than", "-5d"],
    ],
)
def test_a_negative_age_gets_the_commands_own_error(args: list[str]) -> None:
    add_tasks("old", 2, OLD)
    assert refused(*args) == NEGATIVE_AGE.format(text=args[-1].removeprefix("--older-than="))
    assert TaskResult.objects.count() == 2


@db
@pytest.mark.parametrize(("value", "shown"), [("-1", "-1"), ("-5", "-5"), ("-1_000", "-1000")])
def test_a_negative_batch_size_gets_the_commands_own_error(value: str, shown: str) -> None:
    add_tasks("old", 2, OLD)
    for args in (["--batch-size", value], ["--batch", value]):
        assert refused("--older-than=1d", *args) == f"Invalid --batch-size {shown}: {BATCH_SIZE_RANGE}"
    assert TaskResult.objects.count() == 2


@db
def test_an_option_after_older_than_is_still_not_taken_as_its_value() -> None:
    add_tasks("old", 2, OLD)
    assert refused("--older-than", "--dry-run") == "Error: argument --older-than: expected one argument"
    assert refused("--older-than", "-v", "2") == "Error: argument --older-than: expected one argument"
    assert TaskResult.objects.count() == 2


# -- dry-run breakdown -----------------------------------------------------------------------------


@db
def test_dry_run_breaks_the_task_results_down_by_state_and_task_name() -> None:
    mixed()
    before = remaining()

    with CaptureQueriesContext(connection) as captured:
        out = run("--older-than=1d", "--dry-run")

    assert summary(out) == (
        "Would delete 15 task results, 3 group results, 4 chord counters older than 1 day (? s).\n"
        "Task results by state:\n"
        "   9  SUCCESS\n"
        "   4  FAILURE\n"
        "   2  STARTED\n"
        "Task results by task name:\n"
        "  10  tests.add\n"
        "   5  tests.mul\n"
    )
    assert remaining() == before
    sql = [q["sql"] for q in captured.captured_queries]
    assert len(sql) == 5  # a COUNT per table, then the two breakdowns
    grouped = [q for q in sql if "GROUP BY" in q.upper()]
    assert len(grouped) == 2
    by_state, by_name = grouped
    date_done = connection.ops.quote_name("date_done")
    for query in grouped:
        assert f"{date_done} <" in query  # the expired rows only, through the date index
    # What each groups by is what it selects beside the count (engines may write GROUP BY 1;
    # Django < 5.0 selects the column without an alias).
    assert re.fullmatch(r"SELECT \S+status\S*( AS \S+)?, COUNT\(\*\) AS \S+", by_state.split(" FROM ")[0])
    assert "LIMIT" not in by_state.upper()
    assert re.fullmatch(r"SELECT \S+task_name\S*( AS \S+)?, COUNT\(\*\) AS \S+", by_name.split(" FROM ")[0])
    assert re.search(r"ORDER BY .*DESC.*LIMIT 10$", by_name, re.IGNORECASE)


@db
def test_dry_run_lists_the_ten_most_frequent_task_names_and_the_rest() -> None:
    for n in range(12):  # tests.t00 has 12 rows, ..., tests.t11 has 1
        add_tasks(f"old-{n}", 12 - n, OLD, task_name=f"tests.t{n:02}")
    add_tasks("old-unnamed", 1, OLD, task_name=None)
    add_tasks("fresh", 50, FRESH, task_name="tests.fresh")

    out = run("--older-than=1d", "--dry-run")

    lines = out.splitlines()
    assert lines[0].startswith("Would delete 79 task results,")
    assert lines[1:3] == ["Task results by state:", "  79  SUCCESS"]
    assert lines[3:] == [
        "Task results by task name (the 10 most frequent):",
        *(f"  {12 - n:>2}  tests.t{n:02}" for n in range(10)),
        "   4  (other task names)",  # tests.t10, tests.t11 and the unnamed row
    ]


@db
def test_dry_run_breakdown_follows_the_filters() -> None:
    mixed()
    out = run("--older-than=1d", "--dry-run", "--status=FAILURE", "--status=STARTED")
    assert summary(out).splitlines()[-7:] == [
        "Would delete 6 task results (status FAILURE or STARTED) older than 1 day (? s).",
        "Task results by state:",
        "  4  FAILURE",
        "  2  STARTED",
        "Task results by task name:",
        "  4  tests.add",
        "  2  tests.mul",
    ]


@db
@pytest.mark.parametrize(("args", "verbosity"), [(["--older-than=30d"], 1), (["--older-than=1d"], 0)])
def test_no_breakdown_when_nothing_would_go_or_quiet(args: list[str], verbosity: int) -> None:
    mixed()
    with CaptureQueriesContext(connection) as captured:
        out = run("--dry-run", *args, verbosity=verbosity)
    assert len(out.splitlines()) == verbosity
    assert not [q for q in captured.captured_queries if "GROUP BY" in q["sql"].upper()]


# -- batches ----------------------------------------------------------------------------------------


@db
@pytest.mark.parametrize(
    ("args", "options", "statements"),
    [
        (["--batch-size=7"], {}, 4),
        ([], {"CLEANUP_BATCH_SIZE": 10}, 3),
        ([], {}, 1),
        # A batch that finds no row past its size knows it is the last: no empty one follows.
        (["--batch-size=25"], {}, 1),
        (["--batch-size=24"], {}, 2),
        (["--batch-size=1"], {}, 25),
    ],
)
def test_batch_size_is_honoured(args: list[str], options: dict[str, int], statements: int) -> None:
    add_tasks("old", 25, OLD)
    kept = add_tasks("fresh", 3, FRESH)

    with override_settings(DJANGO_CELERY_RESULTS=options), CaptureQueriesContext(connection) as captured:
        run("--older-than=1d", *args)

    assert len(deletes(captured)) == statements
    assert remaining()["tasks"] == set(kept)


@db
def test_batches_go_oldest_first() -> None:
    for hours in (30, 50, 40):
        add_tasks(f"age-{hours}", 1, timedelta(hours=hours))
    left: list[set[str]] = []

    with connection.execute_wrapper(on_delete(lambda n: left.append(remaining()["tasks"]))):
        run("--older-than=1d", "--batch-size=1")

    # Batches of one; the third finds no row after its own and is the last.
    assert left == [{"age-30:0", "age-40:0"}, {"age-30:0"}, set()]


@db
@pytest.mark.engine("postgresql")
def test_each_batch_alone_reads_by_index_and_commits_without_waiting_for_the_flush() -> None:
    """PostgreSQL: the batch's own settings hold inside each batch, and the session's come back after."""
    add_tasks("old", 5, OLD)

    def settings_now() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('enable_sort'), current_setting('synchronous_commit')")
            sort, commit = cursor.fetchone()
        return sort, commit

    session = settings_now()
    inside: list[tuple[str, str]] = []

    with connection.execute_wrapper(on_delete(lambda n: inside.append(settings_now()))):
        run("--older-than=1d", "--batch-size=2")

    assert inside == [("off", "off")] * 3  # batches of 2, 2 and 1
    assert settings_now() == session != ("off", "off")


@db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hours=st.lists(st.integers(min_value=0, max_value=7), max_size=40),
    size=st.integers(min_value=1, max_value=12),
)
def test_batches_take_exactly_the_selection_oldest_first_whatever_dates_rows_share(
    hours: list[int], size: int
) -> None:
    """Rows share dates at random, in runs shorter and longer than a batch; rows of hour 4 on stay."""
    TaskResult.objects.all().delete()
    for hour, count in Counter(hours).items():
        add_tasks(f"h{hour}", count, timedelta(days=10, hours=-hour), chunk=count)
    dated = dict(TaskResult.objects.values_list("task_id", "date_done"))
    selected = TaskResult.objects.filter(date_done__lt=now() - timedelta(days=10, hours=-3.5))
    expected = set(selected.values_list("task_id", flat=True))
    gone: set[str] = set()

    for deleted in managers.delete_oldest_first(selected, "date_done", size):
        batch = set(dated) - set(TaskResult.objects.values_list("task_id", flat=True)) - gone
        assert 1 <= len(batch) == deleted <= size
        assert batch <= expected
        still_expired = expected - gone - batch
        if still_expired:
            assert max(dated[t] for t in batch) <= min(dated[t] for t in still_expired)
        gone |= batch

    assert gone == expected


@db
@pytest.mark.skipif(connection.vendor != "sqlite", reason="counts SQLite's virtual machine steps")
def test_each_batch_walks_its_own_rows_not_every_expired_row_left() -> None:
    """The work of a batch's DELETE does not depend on how many expired rows are still left after it."""
    add_tasks("old", 20_000, OLD, chunk=40)
    steps: list[int] = []

    def counted(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not deletes_tasks(sql):
            return execute(sql, params, many, context)
        ticks = [0]
        raw = connection.connection
        raw.set_progress_handler(lambda: ticks.__setitem__(0, ticks[0] + 1) or 0, 100)
        try:
            return execute(sql, params, many, context)
        finally:
            raw.set_progress_handler(None, 100)
            steps.append(ticks[0])

    with connection.execute_wrapper(counted):
        run("--older-than=1d", "--batch-size=100")

    assert len(steps) >= 200 and TaskResult.objects.count() == 0
    # The first batch leaves 19,900 expired rows, the last but one almost none: both cost the same.
    full = steps[:-1]
    assert max(full) <= 2 * min(full), steps


# -- output -----------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@db
def test_progress_on_a_terminal_only() -> None:
    add_tasks("old", 20, OLD)
    add_groups("old-group", 2, OLD)
    terminal = Terminal()

    call_command(COMMAND, "--older-than=1d", "--batch-size=10", stdout=terminal)

    lines = terminal.getvalue().split("\n")
    assert lines[0].split("\r")[1:] == [
        "Deleting expired results: 0/22 rows (0%)",
        "Deleting expired results: 10/22 rows (45%)",
        "Deleting expired results: 20/22 rows (90%)",
        "Deleting expired results: 22/22 rows (100%)",
    ]
    assert summary(lines[1]) == (
        "Deleted 20 task results, 2 group results, 0 chord counters older than 1 day (? s)."
    )
    assert lines[2:] == [""]


@db
def test_no_progress_when_not_a_terminal() -> None:
    add_tasks("old", 20, OLD)
    out = run("--older-than=1d", "--batch-size=10")
    assert "\r" not in out
    assert out.count("\n") == 1


@db
def test_quiet_at_verbosity_zero() -> None:
    mixed()
    assert run("--older-than=1d", "--status=FAILURE", verbosity=0) == ""
    terminal = Terminal()
    call_command(COMMAND, "--older-than=1d", verbosity=0, stdout=terminal)
    assert terminal.getvalue() == ""
    assert len(remaining()["tasks"]) == 5


@db
def test_verbose_run_says_what_and_where() -> None:
    out = run("--older-than=7d", verbosity=2)
    assert out.startswith(
        "Cleaning task results on 'default', group results on 'default', chord counters on 'default': "
        "older than 7 days (--older-than), before "
    )
    assert "batches sized to about 50 ms each." in out


# -- the default age --------------------------------------------------------------------------------


@pytest.fixture
def current_app() -> Iterator[Callable[..., Celery]]:
    """Make an app with the given configuration the current Celery app for the test."""
    previous = celery_state.get_current_app()
    made: list[Celery] = []

    def make(**conf: Any) -> Celery:
        app = Celery("project", set_as_current=False)
        app.conf.update(conf)
        app.set_current()
        made.append(app)
        return app

    yield make
    celery_state._set_current_app(previous)
    for app in made:
        app.close()


@db
def test_default_age_is_result_expires_of_the_current_app(current_app: Callable[..., Celery]) -> None:
    current_app(result_expires=timedelta(hours=1))
    gone = add_tasks("two-hours", 1, timedelta(hours=2))
    kept = add_tasks("half-hour", 1, timedelta(minutes=30))

    out = run(verbosity=2)

    assert "older than 1 hour (result_expires of the Celery app 'project')" in out
    assert "Deleted 1 task result, 0 group results, 0 chord counters older than 1 hour" in out
    assert remaining()["tasks"] == set(kept)
    assert not set(gone) & remaining()["tasks"]


@db
def test_result_expires_in_seconds(current_app: Callable[..., Celery]) -> None:
    current_app(result_expires=90)
    assert "older than 1 minute 30 seconds" in run()


@db
def test_celery_default_is_one_day(current_app: Callable[..., Celery]) -> None:
    current_app()
    add_tasks("two-days", 1, timedelta(days=2))
    kept = add_tasks("twenty-hours", 1, timedelta(hours=20))
    assert "older than 1 day" in run()
    assert remaining()["tasks"] == set(kept)


@db
@pytest.mark.parametrize("expires", [None, 0])
def test_results_that_never_expire_need_an_explicit_age(
    current_app: Callable[..., Celery],
    expires: int | None,
) -> None:
    current_app(result_expires=expires)
    add_tasks("ancient", 1, timedelta(days=3650))
    with pytest.raises(CommandError, match=r"never expire\. Pass --older-than"):
        run()
    assert TaskResult.objects.count() == 1
    assert "Deleted 1 task result" in run("--older-than=1w")


# -- databases ----------------------------------------------------------------------------------------


@db
def test_an_unknown_database_is_refused() -> None:
    with pytest.raises(CommandError, match="Unknown --database 'nowhere'"):
        run("--older-than=1d", "--database=nowhere")


@pytest.mark.django_db(databases=["default", "replica"], transaction=True)
def test_deletes_on_the_write_alias_never_the_replica() -> None:
    kept = add_tasks("fresh", 1, FRESH)
    add_tasks("old", 3, OLD)
    with (
        override_settings(DATABASE_ROUTERS=[ResultsRouter(read="replica", write="default")]),
        CaptureQueriesContext(connections["replica"]) as on_replica,
    ):
        out = run("--older-than=1d")
        with pytest.raises(CommandError, match="read replica is not cleaned"):
            run("--older-than=1d", "--database=replica")
        assert "Deleted 0 task results" in run("--older-than=1d", "--database=default")
    assert "Deleted 3 task results" in out
    assert on_replica.captured_queries == []
    assert remaining()["tasks"] == set(kept)


@db
def test_a_database_without_the_tables_is_refused() -> None:
    with (
        override_settings(DATABASE_ROUTERS=[ResultsRouter(tables=("other",))]),
        pytest.raises(CommandError, match="keep the task results table out of it"),
    ):
        run("--older-than=1d", "--database=default")


# -- stopping ----------------------------------------------------------------------------------------


def on_delete(action: Callable[[int], None]) -> Callable[..., Any]:
    """An execute wrapper calling ``action(n)`` after the n-th batch of task results has run."""
    seen = [0]

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if deletes_tasks(sql):
            seen[0] += 1
            action(seen[0])
        return result

    return wrapper


def interrupt(times: int) -> Callable[[int], None]:
    def action(n: int) -> None:
        if n == 1:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)  # let the handler run before the next signal

    return action


@db
def test_ctrl_c_stops_after_the_batch_in_flight() -> None:
    add_tasks("old", 25, OLD)
    handler = signal.getsignal(signal.SIGINT)

    with connection.execute_wrapper(on_delete(interrupt(1))), pytest.raises(CommandError) as raised:
        run("--older-than=1d", "--batch-size=10")

    assert raised.value.returncode == 130
    assert str(raised.value) == (
        "Interrupted by SIGINT (stopped between two batches): deleted 10 task results, 0 group results, "
        "0 chord counters older than 1 day so far. Run the command again to delete the rest."
    )
    assert TaskResult.objects.count() == 15
    assert signal.getsignal(signal.SIGINT) is handler


@db
def test_ctrl_c_before_the_first_batch_deletes_nothing() -> None:
    add_tasks("old", 5, OLD)
    sent: list[str] = []

    def interrupt_the_first_count(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        if "COUNT(" in sql.upper() and not sent:
            sent.append(sql)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        return result

    with connection.execute_wrapper(interrupt_the_first_count), pytest.raises(CommandError) as raised:
        call_command(COMMAND, "--older-than=1d", stdout=Terminal())  # a terminal: counts for the progress

    assert raised.value.returncode == 130
    assert "(stopped between two batches): deleted 0 task results" in str(raised.value)
    assert TaskResult.objects.count() == 5


@db
def test_a_second_ctrl_c_rolls_the_batch_in_flight_back() -> None:
    add_tasks("old", 25, OLD)
    # The second Ctrl-C acts through the handler found before the command: Python's own, as in a
    # shell (a test run earlier in the session may have left another one installed).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)

    try:
        with connection.execute_wrapper(on_delete(interrupt(2))), pytest.raises(CommandError) as raised:
            run("--older-than=1d", "--batch-size=10")
    finally:
        signal.signal(signal.SIGINT, outer)

    assert raised.value.returncode == 130
    assert "(the batch in flight was rolled back): deleted 0 task results" in str(raised.value)
    assert TaskResult.objects.count() == 25


@db
def test_a_database_error_reports_what_was_deleted() -> None:
    add_tasks("old", 25, OLD)

    def fail_second(n: int) -> None:
        if n == 2:
            raise DatabaseError("disk full")

    with connection.execute_wrapper(on_delete(fail_second)), pytest.raises(CommandError) as raised:
        run("--older-than=1d", "--batch-size=10")

    assert raised.value.returncode == 1
    assert str(raised.value) == (
        "Failed after deleting 10 task results, 0 group results, 0 chord counters older than 1 day: disk full"
    )
    assert TaskResult.objects.count() == 15


# -- a real process: exit status ----------------------------------------------------------------------

RUNNER = """
import os, signal, sys
import django
django.setup()
from django.core.management import execute_from_command_line
from django.db import connection

stop = os.environ.get("DCR_CLEANUP_SIGNAL")
def stop_after_first_delete(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    if stop and "DELETE FROM" in sql.upper():  # PostgreSQL's batch starts with WITH
        os.kill(os.getpid(), getattr(signal, stop))
    return result

with connection.execute_wrapper(stop_after_first_delete):
    execute_from_command_line(["manage.py", "celery_results_cleanup", *sys.argv[1:]])
"""


def cleanup_process(*args: str, stop: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command in a fresh interpreter on the test database; ``stop``: a signal sent mid-run."""
    env = {**os.environ, **child_environ()}
    if stop:
        env["DCR_CLEANUP_SIGNAL"] = stop
    return run_python(["-c", RUNNER, *args], env)


@db
def test_process_exits_zero_when_finished() -> None:
    add_tasks("old", 3, OLD)
    kept = add_tasks("fresh", 2, FRESH)

    done = cleanup_process("--older-than=1d")

    assert done.returncode == 0, done.stderr
    assert summary(done.stdout) == (
        "Deleted 3 task results, 0 group results, 0 chord counters older than 1 day (? s).\n"
    )
    assert remaining()["tasks"] == set(kept)


@db
def test_process_exits_non_zero_on_a_bad_duration() -> None:
    done = cleanup_process("--older-than=7x")
    assert done.returncode == 1
    assert "CommandError: Invalid --older-than '7x'" in done.stderr
    assert done.stdout == ""


@db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "-5d"], NEGATIVE_AGE.format(text="-5d")),
        (["--older-than=1d", "--batch-size", "-1"], f"Invalid --batch-size -1: {BATCH_SIZE_RANGE}"),
        (["--older-than", "30s"], UNDER_A_MINUTE.format(age="30 seconds", origin="--older-than")),
        (
            ["--older-than", "1d", "--status", "success"],
            "Unknown --status 'success': states are case-sensitive. Did you mean --status SUCCESS?",
        ),
    ],
)
def test_process_refusals_exit_one_with_the_commands_message(args: list[str], message: str) -> None:
    """Parsed from a real command line: the command's own error (exit 1), not argparse's (exit 2)."""
    add_tasks("old", 3, OLD)

    done = cleanup_process(*args)

    assert (done.returncode, done.stderr, done.stdout) == (1, f"CommandError: {message}\n", "")
    assert TaskResult.objects.count() == 3


@db
def test_process_refuses_a_huge_batch_size_without_a_driver_error() -> None:
    add_tasks("old", 3, OLD)

    done = cleanup_process("--older-than=1d", "--batch-size", "99999999999999999999")

    assert done.returncode == 1
    assert done.stderr == f"CommandError: Invalid --batch-size 99999999999999999999: {BATCH_SIZE_RANGE}\n"
    assert TaskResult.objects.count() == 3


@db
@pytest.mark.parametrize(("stop", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_process_stopped_by_a_signal_exits_128_plus_it(stop: str, status: int) -> None:
    add_tasks("old", 25, OLD)

    done = cleanup_process("--older-than=1d", "--batch-size=10", stop=stop)

    assert done.returncode == status, done.stderr
    assert f"Interrupted by {stop} (stopped between two batches): deleted 10 task results" in done.stderr
    assert TaskResult.objects.count() == 15


# -- the backend's cleanup runs the same code ---------------------------------------------------------


@db
def test_backend_cleanup_and_the_command_delete_the_same_rows(
    celery_app_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[cleanup.Cleanup] = []
    original = cleanup.Cleanup.delete_batches

    def spy(self: cleanup.Cleanup) -> Any:
        runs.append(self)
        return original(self)

    monkeypatch.setattr(cleanup.Cleanup, "delete_batches", spy)
    backend = celery_app_factory(result_expires=timedelta(days=1)).backend

    rows = mixed()
    backend.cleanup()
    by_backend = remaining()
    for model in (TaskResult, GroupResult, ChordCounter):
        model.objects.all().delete()
    mixed()
    run("--older-than=1d")
    by_command = remaining()

    assert by_backend == by_command == fresh_only(rows)
    assert len(runs) == 2
    assert abs(runs[0].before - runs[1].before) < timedelta(minutes=1)
    assert runs[0].kinds == runs[1].kinds == cleanup.KINDS


@db
def test_delete_expired_results_returns_counts_per_kind() -> None:
    mixed()
    assert cleanup.delete_expired_results(timedelta(days=1), batch_size=4) == {
        "task results": 15,
        "group results": 3,
        "chord counters": 4,
    }


# -- volume --------------------------------------------------------------------------------------------


ANALYZE = {"postgresql": "ANALYZE {}", "mysql": "ANALYZE TABLE {}", "sqlite": "ANALYZE {}"}
#: What each engine's plan says when it reads through the date_done index.
USES_DATE_DONE_INDEX = {
    "postgresql": r"Index (Only )?Scan using django_cele_date_do_f59aad_idx",
    "mysql": r"\bkey\W{1,8}django_cele_date_do_f59aad_idx",  # the key used, not a possible key
    "sqlite": r"USING (COVERING )?INDEX django_cele_date_do_f59aad_idx",
}


def batch_plan() -> str:
    """How the database reads the keys of a batch of expired task results (fresh statistics)."""
    with connection.cursor() as cursor:
        cursor.execute(
            ANALYZE[connection.vendor].format(connection.ops.quote_name(TaskResult._meta.db_table))
        )
        if connection.vendor == "mysql":
            cursor.fetchall()
    rows = cleanup.Cleanup(before=now() - timedelta(days=1)).rows(cleanup.TASKS)
    options = {"format": "JSON"} if connection.vendor == "mysql" else {}
    return managers.batch_end(rows, "date_done", 1000).explain(**options)


@db
def test_a_hundred_thousand_rows(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    add_tasks("old", 60_000, OLD)
    add_tasks("fresh", 40_000, FRESH)
    inserted = time.monotonic()

    assert summary(run("--older-than=1d", "--dry-run").splitlines()[0]) == (
        "Would delete 60000 task results, 0 group results, 0 chord counters older than 1 day (? s)."
    )
    assert TaskResult.objects.count() == 100_000
    counted = time.monotonic()
    plan = batch_plan()
    assert re.search(USES_DATE_DONE_INDEX[connection.vendor], plan), plan

    with CaptureQueriesContext(connection) as captured:
        out = run("--older-than=1d")
    deleted = time.monotonic()

    assert summary(out) == (
        "Deleted 60000 task results, 0 group results, 0 chord counters older than 1 day (? s).\n"
    )
    assert TaskResult.objects.count() == 40_000
    assert not TaskResult.objects.filter(task_id__startswith="old:").exists()
    # Batches sized to about 50 ms each: more than one, each bounded.
    assert len(deletes(captured)) >= 2
    # Memory stays flat: each read brings one date to the client, found at most a batch away.
    # (A batch inside one date's rows deletes by key, its ORDER BY inside the DELETE: not a read.)
    table = connection.ops.quote_name(TaskResult._meta.db_table)
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    reads = [sql for sql in selects if "ORDER BY" in sql and f"FROM {table}" in sql]
    assert len(reads) == len(deletes(captured)) + 1  # the oldest date, then each batch's end
    assert all(re.search(r"LIMIT 1\b", sql) for sql in reads), reads
    offsets = [int(m.group(1)) for sql in reads for m in [re.search(r"OFFSET (\d+)\b", sql)] if m]
    assert len(offsets) == len(reads) - 1
    assert all(managers.BatchSizer.smallest <= offset <= managers.BatchSizer.largest for offset in offsets)
    with capsys.disabled():
        print(
            f"\n100k rows on {connection.vendor}: insert {inserted - started:.1f} s, "
            f"dry run {counted - inserted:.1f} s, delete {deleted - counted:.1f} s"
        )


@db
def test_counters_of_chords_still_waiting_outlive_the_cutoff() -> None:
    completed = add_counters("completed", 2, OLD)
    waiting = add_counters("waiting", 3, OLD, waiting=2)
    abandoned = add_counters("abandoned", 1, timedelta(days=8), waiting=1)

    run("--older-than=1d")

    assert remaining()["counters"] == set(waiting)
    assert not set(completed + abandoned) & remaining()["counters"]
    with override_settings(DJANGO_CELERY_RESULTS={"WAITING_CHORD_EXPIRES": 2 * 24 * 3600}):
        run("--older-than=1d")
    assert remaining()["counters"] == set()


# -- batch sizes ------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.floats(min_value=1e-4, max_value=5.0), st.booleans()), max_size=40))
def test_adaptive_batches_stay_bounded_and_move_toward_50_ms(batches: list[tuple[float, bool]]) -> None:
    """Each batch is sized from the last full one: within bounds, at most halved or doubled."""
    sizer = managers.BatchSizer()
    for seconds, full in batches:
        before = sizer.size
        sizer.record(before if full else before - 1, seconds)
        if not full:
            assert sizer.size == before  # the last, short batch says nothing of the rate
            continue
        assert managers.BatchSizer.smallest <= sizer.size <= managers.BatchSizer.largest
        assert before // 2 <= sizer.size <= before * 2 or sizer.size == managers.BatchSizer.smallest
        if seconds > sizer.target:
            assert sizer.size <= before
        else:
            assert sizer.size >= before or sizer.size == managers.BatchSizer.largest


@given(st.integers(min_value=1, max_value=1_000_000), st.floats(min_value=1e-4, max_value=5.0))
def test_a_configured_batch_size_never_changes(size: int, seconds: float) -> None:
    sizer = managers.BatchSizer(size)
    sizer.record(size, seconds)
    assert sizer.size == size
