"""The ``admin`` figure: the task-result admin over a million rows, through real requests.

Runs alone, on its own scratch database ``dcr_bench_admin``
(:mod:`benchmarks.admin_settings`)::

    .venv/bin/python benchmarks/run.py --engine postgresql --only admin

1. Fills the task table in bulk: ``COPY`` on PostgreSQL, multi-row
   ``INSERT`` batches on MariaDB/MySQL and SQLite. Rows come in ``date_done``
   order, as a live table grows, over the last 30 days, with ~50 task names
   (a few frequent, many rare), 10 workers, states mostly SUCCESS, and one row
   in ten sent by one of 12 periodic tasks. Seeded: every run writes the same
   rows (dates relative to now).
2. Refreshes the planner's statistics: ``VACUUM (ANALYZE)`` on PostgreSQL (the
   state autovacuum leaves a table in after a bulk load: statistics and the
   visibility map), ``ANALYZE TABLE`` on MariaDB, ``ANALYZE`` on SQLite.
3. Logs a superuser in with Django's test Client (the whole request: URL
   resolving, middleware, session and user, the admin view, the template)
   and requests the changelist, page 2, each list filter, date hierarchy
   drill-downs, a search for a task id prefix and a change page. Each request
   is made once untimed, then 5 times timed (the figure is the median), then
   once more with its SQL captured (the query count, and each query's time).
   The overview page and the runtime and stuck-chord filters are among them.

A request whose median is over 1 s is flagged (``met`` NO), and the plan of
its slowest query (``EXPLAIN ANALYZE`` on PostgreSQL, ``ANALYZE`` on MariaDB)
goes to stderr and into the figure's details.
"""

from __future__ import annotations

import random
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from celery import states
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_celery_results.models import TaskResult

from .figures import Figure
from .measure import ms

#: Rows of the full figure (``--quick``: a tenth).
ROWS = 1_000_000
#: Timed requests per URL; the figure is their median.
TIMED = 5
#: The issue's limit per request.
LIMIT_SECONDS = 1.0
#: How long the fill may take (the brief: about 3 minutes per engine).
FILL_TARGET_SECONDS = 180.0
#: How far back the rows' ``date_done`` go.
SPAN = timedelta(days=30)
SEED = 20261124
#: Requests timed for reference, with no limit: a search for text scans the table by design
#: (``TaskResultAdmin``'s docstring), however it is written.
REFERENCE_ONLY = frozenset({"search_text"})

TABLE = TaskResult._meta.db_table
COLUMNS = (
    "task_id",
    "periodic_task_name",
    "task_name",
    "task_args",
    "task_kwargs",
    "status",
    "worker",
    "content_type",
    "content_encoding",
    "result",
    "date_created",
    "date_started",
    "date_done",
    "retries",
    "queue",
    "traceback",
    "meta",
)

_AREAS = ("billing", "mail", "reports", "search", "media", "accounts", "sync", "exports", "alerts", "audit")
_VERBS = ("run", "send", "build", "refresh", "cleanup")
#: 50 task names; the first is the most frequent (weights fall as 1/rank, Zipf-like).
TASK_NAMES = tuple(f"proj.{area}.tasks.{verb}" for verb in _VERBS for area in _AREAS)
NAME_WEIGHTS = tuple(1 / rank for rank in range(1, len(TASK_NAMES) + 1))
WORKERS = tuple(f"celery@worker-{i:02d}.prod.internal" for i in range(1, 11))
#: Workers are not all alike: the first ones take more tasks.
WORKER_WEIGHTS = (16, 14, 12, 11, 10, 9, 8, 8, 6, 6)
PERIODIC_NAMES = tuple(
    f"{area}-{when}"
    for area, when in zip((*_AREAS, "backups", "metrics"), ("hourly", "nightly") * 6, strict=True)
)
#: Share of rows sent by celery beat.
PERIODIC_SHARE = 0.1
STATUS_WEIGHTS = {
    states.SUCCESS: 90.0,
    states.FAILURE: 4.0,
    states.STARTED: 2.0,
    states.RETRY: 1.5,
    states.REVOKED: 1.5,
    states.PENDING: 1.0,
}
QUEUES = ("celery", "default", "reports")
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/.venv/lib/python3.11/site-packages/celery/app/trace.py", line 477, in trace_task\n'
    "    R = retval = fun(*args, **kwargs)\n"
    '  File "/app/proj/tasks.py", line 88, in run\n'
    '    raise ValueError(f"bad input {n}")\n'
    "ValueError: bad input {n}\n"
)


@dataclass(frozen=True)
class Picks:
    """Values the requests filter and search on, chosen from the rows written."""

    common_name: str
    rare_name: str
    worker: str
    periodic_name: str
    task_id_prefix: str
    #: Part of some task names, as someone would search for.
    text: str
    year: int
    month: int
    day: date
    last_week: datetime
    tomorrow: datetime


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the rows ------------------------------------------------------------------------


def generate_rows(count: int, now: datetime, seed: int = SEED) -> Iterator[tuple[Any, ...]]:
    """``count`` task results in :data:`COLUMNS` order, oldest first, ``date_done`` over :data:`SPAN`.

    Dates are aware UTC datetimes.
    """
    rng = random.Random(seed)
    names = rng.choices(TASK_NAMES, weights=NAME_WEIGHTS, k=count)
    workers = rng.choices(WORKERS, weights=WORKER_WEIGHTS, k=count)
    statuses = rng.choices(tuple(STATUS_WEIGHTS), weights=tuple(STATUS_WEIGHTS.values()), k=count)
    start = now - SPAN
    step = SPAN.total_seconds() / count
    random_float, random_bits, randrange = rng.random, rng.getrandbits, rng.randrange
    ready = states.READY_STATES
    for i in range(count):
        status = statuses[i]
        n = randrange(100_000)
        done = start + timedelta(seconds=step * (i + random_float()))
        created = done - timedelta(seconds=0.05 + random_float() * 30)
        periodic = PERIODIC_NAMES[n % len(PERIODIC_NAMES)] if random_float() < PERIODIC_SHARE else None
        if status == states.SUCCESS:
            result = f'{{"processed": {n}, "ok": true}}'
            traceback = None
        elif status == states.FAILURE:
            result = (
                f'{{"exc_type": "ValueError", "exc_message": ["bad input {n}"], "exc_module": "builtins"}}'
            )
            traceback = TRACEBACK.replace("{n}", str(n))
        elif status == states.REVOKED:
            result = (
                '{"exc_type": "TaskRevokedError", "exc_message": ["revoked"], '
                '"exc_module": "celery.exceptions"}'
            )
            traceback = None
        else:
            result, traceback = None, None
        yield (
            str(uuid.UUID(int=random_bits(128), version=4)),
            periodic,
            names[i],
            f'[{n}, "acct-{n % 977:04d}"]',
            f'{{"batch": {n % 50}, "dry_run": false}}',
            status,
            None if status == states.PENDING else workers[i],
            "application/json",
            "utf-8",
            result,
            created,
            None if status == states.PENDING else created + timedelta(milliseconds=20),
            done,
            (1 + n % 3) if status == states.RETRY else (0 if status in ready else None),
            QUEUES[n % len(QUEUES)],
            traceback,
            '{"children": []}' if status in ready else None,
        )


def _batches(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(count: int, now: datetime) -> None:
    """Write ``count`` rows in bulk, then refresh the planner's statistics."""
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in COLUMNS)
    rows = generate_rows(count, now)
    if connection.vendor == "postgresql":
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {qn(TABLE)} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        log("filled; VACUUM (ANALYZE) ...")
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {qn(TABLE)}")
        return
    # MySQLdb's executemany sends one multi-row INSERT per batch (up to max_allowed_packet).
    sql = f"INSERT INTO {qn(TABLE)} ({columns}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    naive = connection.vendor == "mysql"  # the columns are DATETIME in UTC: no tzinfo
    for batch in _batches(rows, 5000):
        if naive:
            batch = [(*r[:10], *(d and d.replace(tzinfo=None) for d in r[10:13]), *r[13:]) for r in batch]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, batch)
    log("filled; ANALYZE ...")
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(f"ANALYZE TABLE {qn(TABLE)}")
            cursor.fetchall()
        else:
            cursor.execute(f"ANALYZE {qn(TABLE)}")


def picks(count: int, now: datetime) -> Picks:
    """What the requests filter on: rows' values, and the month and day holding most rows."""
    days = [(now - SPAN + timedelta(days=d)).date() for d in range(1, SPAN.days)]
    month_days = Counter((d.year, d.month) for d in days)
    (year, month), _n = month_days.most_common(1)[0]
    in_month = [d for d in days if (d.year, d.month) == (year, month)]
    middle = TaskResult.objects.order_by("-date_done").values_list("task_id", flat=True)[count // 2]
    today = datetime(now.year, now.month, now.day, tzinfo=timezone.utc)
    return Picks(
        common_name=TASK_NAMES[0],
        rare_name=TASK_NAMES[-1],
        worker=WORKERS[3],
        periodic_name=PERIODIC_NAMES[0],
        task_id_prefix=middle[:8],
        text="reports.tasks",
        year=year,
        month=month,
        day=in_month[len(in_month) // 2],
        last_week=today - timedelta(days=7),
        tomorrow=today + timedelta(days=1),
    )


# -- the requests ----------------------------------------------------------------------


def requests(chosen: Picks, change_pk: int) -> list[tuple[str, str, dict[str, str]]]:
    """``(label, path, query)`` of each request timed."""
    changelist = reverse("admin:django_celery_results_taskresult_changelist")
    change = reverse("admin:django_celery_results_taskresult_change", args=[change_pk])
    overview = reverse("admin:django_celery_results_taskresult_overview")
    chords = reverse("admin:django_celery_results_chordcounter_changelist")
    year, month, day = str(chosen.year), str(chosen.month), str(chosen.day.day)
    return [
        ("changelist", changelist, {}),
        ("page_2", changelist, {"p": "1"}),
        ("status_success", changelist, {"status__exact": states.SUCCESS}),
        ("status_failure", changelist, {"status__exact": states.FAILURE}),
        ("task_name_common", changelist, {"task_name__exact": chosen.common_name}),
        ("task_name_rare", changelist, {"task_name__exact": chosen.rare_name}),
        ("worker", changelist, {"worker__exact": chosen.worker}),
        ("periodic_task_name", changelist, {"periodic_task_name__exact": chosen.periodic_name}),
        ("failure_on_worker", changelist, {"status__exact": states.FAILURE, "worker__exact": chosen.worker}),
        (
            "date_past_7_days",
            changelist,
            {"date_done__gte": str(chosen.last_week), "date_done__lt": str(chosen.tomorrow)},
        ),
        ("date_year", changelist, {"date_done__year": year}),
        ("date_month", changelist, {"date_done__year": year, "date_done__month": month}),
        ("date_day", changelist, {"date_done__year": year, "date_done__month": month, "date_done__day": day}),
        ("search_task_id", changelist, {"q": chosen.task_id_prefix}),
        ("search_text", changelist, {"q": chosen.text}),
        ("change_page", change, {}),
        ("slow_over_10s", changelist, {"slower_than": "10s"}),
        ("queue_last_day", changelist, {"queue__exact": QUEUES[-1]}),
        ("overview", overview, {}),
        ("stuck_chords", chords, {"older_than": "1h"}),
    ]


_ROWS_SHOWN = re.compile(r'name="_selected_action"')
_MATCHING = re.compile(r'<p class="paginator">.*?(\d+)\s+task results?\b', re.DOTALL)


def _page_facts(content: str) -> dict[str, Any]:
    """Rows on the page and the matching row count the paginator shows (changelists only)."""
    matching = _MATCHING.search(content)
    return {
        "rows_shown": len(_ROWS_SHOWN.findall(content)),
        "rows_matching": int(matching.group(1)) if matching else None,
    }


def _get(client: Client, path: str, query: dict[str, str]) -> Any:
    response = client.get(path, query)
    if response.status_code != 200:
        raise AssertionError(f"GET {path} {query}: HTTP {response.status_code}")
    return response


def explain(sql: str) -> str:
    """The executed plan of ``sql`` (PostgreSQL, MariaDB) or its plan (MySQL, SQLite)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
            return "\n".join(row[0] for row in cursor.fetchall())
        if connection.vendor == "mysql":
            verb = "ANALYZE" if getattr(connection, "mysql_is_mariadb", False) else "EXPLAIN ANALYZE"
            cursor.execute(f"{verb} {sql}")
            names = [column[0] for column in cursor.description]
            return "\n".join(
                " | ".join(f"{n}={v}" for n, v in zip(names, row, strict=True) if v is not None)
                for row in cursor.fetchall()
            )
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


def measure(client: Client, label: str, path: str, query: dict[str, str]) -> Figure:
    """One request: an untimed one, :data:`TIMED` timed ones, one with its SQL captured."""
    first = time.perf_counter()
    _get(client, path, query)
    first = time.perf_counter() - first
    seconds = []
    for _ in range(TIMED):
        start = time.perf_counter()
        _get(client, path, query)
        seconds.append(time.perf_counter() - start)
    with CaptureQueriesContext(connection) as captured:
        response = _get(client, path, query)
    queries = [(float(q["time"]), q["sql"]) for q in captured.captured_queries]
    median = statistics.median(seconds)
    slow = median > LIMIT_SECONDS
    limited = label not in REFERENCE_ONLY
    slowest_time, slowest_sql = max(queries) if queries else (0.0, "")
    details: dict[str, Any] = {
        "url": path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""),
        "ms": [ms(s) for s in seconds],
        "first_ms": ms(first),
        "sql_ms": round(sum(t for t, _sql in queries) * 1000, 1),
        "queries": [{"ms": round(t * 1000, 1), "sql": sql[:160]} for t, sql in queries],
    }
    if path.endswith("/taskresult/"):  # a changelist
        details.update(_page_facts(response.content.decode()))
    note = ""
    if slow:
        plan = explain(slowest_sql)
        details["slowest_plan"] = plan
        note = (
            f"{'' if limited else 'reference, '}over {LIMIT_SECONDS:g} s; slowest query "
            f"{slowest_time * 1000:.0f} ms: {slowest_sql[:160]}"
        )
        log(
            f"{label}: {ms(median)} ms, over the limit; slowest query ({slowest_time * 1000:.0f} ms):\n"
            f"{slowest_sql}\n{plan}"
        )
    log(
        f"{label}: median {ms(median)} ms, {len(queries)} queries (SQL {details['sql_ms']} ms, "
        f"slowest {slowest_time * 1000:.0f} ms){'  OVER 1 s' if slow and limited else ''}"
    )
    return Figure(
        name=f"admin_{label}",
        unit=f"ms (median of {TIMED})",
        ours=ms(median),
        statements=f"{len(queries)} queries",
        target=f"< {LIMIT_SECONDS * 1000:g} ms" if limited else "(reference: substring search scans)",
        met=not slow if limited else None,
        note=note,
        details=details,
    )


def admin(rows: int = ROWS) -> list[Figure]:
    """Fill ``rows`` task results, then time the admin's pages over them."""
    from django.contrib.auth import get_user_model

    now = datetime.now(timezone.utc).replace(microsecond=0)
    log(f"filling {rows} task results ({connection.vendor}) ...")
    start = time.perf_counter()
    fill(rows, now)
    fill_seconds = time.perf_counter() - start
    stored = TaskResult.objects.count()
    if stored != rows:
        raise AssertionError(f"the fill stored {stored} rows, not {rows}")
    log(f"{rows} rows written and analyzed in {fill_seconds:.1f}s")
    figures = [
        Figure(
            name="admin_fill",
            unit=f"s ({rows} rows)",
            ours=round(fill_seconds, 1),
            target=f"< {FILL_TARGET_SECONDS:g} s",
            met=fill_seconds < FILL_TARGET_SECONDS,
            note="bulk load and statistics: "
            + (
                "COPY, VACUUM (ANALYZE)"
                if connection.vendor == "postgresql"
                else "multi-row INSERTs of 5,000 rows, ANALYZE"
            ),
            details={"rows": rows, "table_bytes": table_bytes()},
        )
    ]

    chosen = picks(rows, now)
    change_pk = TaskResult.objects.only("pk").get(task_id__startswith=chosen.task_id_prefix).pk
    user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", None)
    client = Client()
    client.force_login(user)
    for label, path, query in requests(chosen, change_pk):
        figures.append(measure(client, label, path, query))
    return figures


def table_bytes() -> int | None:
    """Size on disk of the task table with its indexes (PostgreSQL, MariaDB)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_total_relation_size(%s)", [TABLE])
            return int(cursor.fetchone()[0])
        if connection.vendor == "mysql":
            cursor.execute(
                "SELECT data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                [TABLE],
            )
            return int(cursor.fetchone()[0])
    return None
