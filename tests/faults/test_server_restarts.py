"""Results stored while the database server restarts or crashes: real servers, real processes.

Two processes store task results through the ``django-db`` backend as a
worker's pool processes do (``backend.mark_as_done`` with the task's
request) into a throw-away server of :mod:`tests.support.disposable`, which the test
meanwhile restarts (fast shutdown, then start) or kills with SIGKILL and
starts again a moment later, as a supervisor would. The two processes hold
their connection in the two ways a worker may:

* ``fresh``: closed before and after every task by Celery's own Django fixup
  (``DjangoWorkerFixup.close_database``, Celery's default);
* ``kept``: kept across tasks (persistent connections) and dropped only when
  unusable, as Django does between requests.

With ``result_backend_always_retry`` every attempt must end up in the table
with its value and no error may reach the task. Without it every failed
attempt must be reported to the caller (attempts = acknowledged + errors)
and every acknowledged result must be in the table. Either way each error
met must be one :func:`~django_celery_results.engines.is_transient_error`
recognises, since retrying it is what survives the outage.

Each engine run of the suite (``DCR_TEST_DB``) runs its engine's tests once,
on a server of its own: the shared servers are never restarted. The figures
of each run are printed (``-s``) and recorded with ``record_property``.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from django_celery_results.engines import error_chain
from tests.support.disposable import DisposableServer, disposable_server
from tests.support.processes import child_environ, run_python

DATABASE = "dcr_fault"
TASK_NAME = "tests.faults.test_server_restarts.pair"

#: How each storing process holds its database connection (see the module docstring).
POLICIES = ("fresh", "kept")
#: Results each process stores before the fault, and again once the server is back.
WARM_UP = 20
AFTER = 20
#: A short pause between tasks, so that two processes do not starve the server of CPU.
PAUSE = 0.005
#: How long a killed server stays down before it is started again.
DOWNTIME = 2.0
#: Retries that outlast an outage of several seconds: up to 40 attempts, each
#: after a random pause of up to 0.2, 0.4, 0.8, then 1 s (Celery's full jitter).
ALWAYS_RETRY = {
    "result_backend_always_retry": True,
    "result_backend_max_retries": 40,
    "result_backend_base_sleep_between_retries_ms": 100,
    "result_backend_max_sleep_between_retries_ms": 1000,
}

ENGINES = [
    pytest.param("postgresql", marks=pytest.mark.engine("postgresql"), id="postgresql"),
    pytest.param("mysql", marks=pytest.mark.engine("mysql"), id="mysql"),
]


# -- In the storing processes ---------------------------------------------------


def describe(exc: BaseException) -> str:
    """``Outer <- driver.Error [code]: message``: the error raised and its innermost cause."""
    chain = list(error_chain(exc))
    inner = chain[-1]
    code = getattr(inner, "sqlstate", None)
    if code is None and inner.args and isinstance(inner.args[0], int):
        code = inner.args[0]
    message = inner.args[-1] if inner.args else ""
    message = " ".join(str(message).split())[:150]
    names = [f"{type(error).__module__}.{type(error).__qualname__}" for error in (chain[0], inner)]
    head = names[0] if inner is chain[0] else f"{names[0]} <- {names[1]}"
    return f"{head} [{code}]: {message}" if code is not None else f"{head}: {message}"


class RetryLog(logging.Handler):
    """Counts by error the retries Celery makes, and failures of ``on_backend_retryable_error``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retried: Counter[str] = Counter()
        self.hook_failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        text = describe(error) if error is not None else record.getMessage()
        if "on_backend_retryable_error" in str(record.msg):
            self.hook_failures.append(text)

    def count_retries(self, backend: Any) -> None:
        """Count what Celery asks ``exception_safe_to_retry`` about: every release asks before each
        retry (only Celery >= 5.7 also logs the retry)."""
        safe_to_retry = backend.exception_safe_to_retry

        def counting(exc: BaseException) -> bool:
            safe = bool(safe_to_retry(exc))
            if safe:
                self.retried[describe(exc)] += 1
            return safe

        backend.exception_safe_to_retry = counting


def store_results(
    database: dict[str, Any],
    prefix: str,
    index: int,
    always_retry: bool,
    stored_counts: Any,
    stop: Any,
    outcomes: Any,
) -> None:
    """Store results ``[index, n]`` for n = 1, 2... until ``stop``; put the tally on ``outcomes``."""
    try:
        outcomes.put(("ok", _store_results(database, prefix, index, always_retry, stored_counts, stop)))
    except BaseException:
        outcomes.put(("crashed", f"process {POLICIES[index]}:\n{traceback.format_exc()}"))
        raise


def _store_results(
    database: dict[str, Any], prefix: str, index: int, always_retry: bool, stored_counts: Any, stop: Any
) -> dict[str, Any]:
    os.environ.update(child_environ(databases={"default": database}))
    import django

    django.setup()
    from celery.app.task import Context
    from celery.fixups.django import DjangoWorkerFixup
    from django.db import connections

    from django_celery_results.engines import is_transient_error
    from tests.support.apps import make_app

    policy = POLICIES[index]
    app = make_app(
        name="dcr-faults",
        result_serializer="json",
        **(ALWAYS_RETRY if always_retry else {"result_backend_always_retry": False}),
    )
    backend = app.backend
    fixup = DjangoWorkerFixup(app)
    log = RetryLog()
    log.count_retries(backend)
    logging.getLogger("celery.backends.base").addHandler(log)
    stored: list[int] = []
    errors: Counter[str] = Counter()
    not_transient: list[str] = []
    attempts = 0
    while not stop.is_set():
        attempts += 1
        task_id = f"{prefix}-{index}-{attempts}"
        request = Context(
            id=task_id,
            task=TASK_NAME,
            args=[index, attempts],
            kwargs={},
            hostname=f"{policy}@dcr-faults",
            retries=0,
            is_eager=False,
            delivery_info={"exchange": "", "routing_key": "celery"},
        )
        if policy == "fresh":
            fixup.close_database()  # task_prerun
        try:
            backend.mark_as_done(task_id, [index, attempts], request=request)
        except Exception as exc:
            errors[describe(exc)] += 1
            if not is_transient_error(exc):
                not_transient.append(describe(exc))
        else:
            stored.append(attempts)
            stored_counts[index] = len(stored)
        if policy == "fresh":
            fixup.close_database()  # task_postrun
        else:
            for connection in connections.all(initialized_only=True):
                connection.close_if_unusable_or_obsolete()
        time.sleep(PAUSE)
    connections.close_all()
    return {
        "policy": policy,
        "attempts": attempts,
        "stored": stored,
        "errors": dict(errors),
        "retried": dict(log.retried),
        "hook_failures": log.hook_failures,
        "not_transient": not_transient,
    }


# -- In the test process -----------------------------------------------------------


@dataclass
class Writers:
    """The storing processes of one test, and what they share with it."""

    processes: list[Any]
    stored_counts: Any
    stop: Any
    outcomes: Any
    results: list[dict[str, Any]] = field(default_factory=list)

    def stored(self) -> list[int]:
        return list(self.stored_counts)

    def wait_until_stored(self, targets: list[int], timeout: float = 45) -> None:
        """Wait until process i has stored ``targets[i]`` results; fail if one died or it takes too long."""
        deadline = time.monotonic() + timeout
        while any(done < target for done, target in zip(self.stored(), targets, strict=True)):
            for process in self.processes:
                if not process.is_alive():
                    raise AssertionError(f"{process.name} exited early: {self._reports()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"stored {self.stored()} after {timeout:.0f}s, expected {targets}")
            time.sleep(0.02)

    def finish(self, timeout: float = 45) -> list[dict[str, Any]]:
        """Stop the processes and return their tallies, in :data:`POLICIES` order."""
        self.stop.set()
        reports = [self.outcomes.get(timeout=timeout) for _ in self.processes]
        crashed = [detail for status, detail in reports if status != "ok"]
        assert not crashed, "\n".join(crashed)
        self.results = sorted((detail for _, detail in reports), key=lambda r: POLICIES.index(r["policy"]))
        return self.results

    def _reports(self) -> list[Any]:
        found = []
        while not self.outcomes.empty():
            found.append(self.outcomes.get_nowait())
        return found


@contextmanager
def storing_processes(database: dict[str, Any], prefix: str, always_retry: bool) -> Iterator[Writers]:
    """One process per connection policy, storing results into ``database``; all ended on exit."""
    context = multiprocessing.get_context("spawn")
    stored_counts = context.Array("i", len(POLICIES), lock=False)
    stop, outcomes = context.Event(), context.Queue()
    processes = [
        context.Process(
            target=store_results,
            name=f"dcr-fault-{policy}",
            args=(database, prefix, index, always_retry, stored_counts, stop, outcomes),
        )
        for index, policy in enumerate(POLICIES)
    ]
    for process in processes:
        process.start()
    writers = Writers(processes, stored_counts, stop, outcomes)
    try:
        yield writers
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        outcomes.close()
        outcomes.join_thread()


def migrate(database: dict[str, Any]) -> None:
    """Create this app's tables in ``database``, with ``manage.py migrate`` in a child process."""
    env = {**os.environ, **child_environ(databases={"default": database})}
    completed = run_python(["-m", "django", "migrate", "django_celery_results", "--noinput", "-v", "0"], env)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def stored_rows(server: DisposableServer, prefix: str) -> dict[tuple[int, int], tuple[str, Any]]:
    """``(process index, n) -> (status, result)`` of the rows of ``prefix``, read by a new connection."""
    from django_celery_results.models import TaskResult

    connection = server.connect(DATABASE)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT task_id, status, result FROM {TaskResult._meta.db_table} WHERE task_id LIKE %s",
                [f"{prefix}-%"],
            )
            rows = cursor.fetchall()
    finally:
        connection.close()
    found = {}
    for task_id, status, result in rows:
        index, n = task_id[len(prefix) + 1 :].split("-")
        found[int(index), int(n)] = (status, json.loads(result) if result else None)
    return found


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[DisposableServer]:
    """A disposable server of the engine of this run, with the app's tables in :data:`DATABASE`."""
    with disposable_server(request.param) as started:
        started.create_database(DATABASE)
        migrate(started.database_settings(DATABASE))
        yield started


@pytest.fixture
def running_server(server: DisposableServer) -> DisposableServer:
    """The module's server, started again if a failed test left it down."""
    if not server.running():
        server.start()
    return server


def report(
    label: str,
    outage: float,
    results: list[dict[str, Any]],
    rows: dict[tuple[int, int], tuple[str, Any]],
    lost: int,
    in_doubt: int,
) -> dict[str, Any]:
    figures = {
        "processes": len(results),
        "attempts": sum(r["attempts"] for r in results),
        "acknowledged": sum(len(r["stored"]) for r in results),
        "errors": sum(sum(r["errors"].values()) for r in results),
        "retries": sum(sum(r["retried"].values()) for r in results),
        "rows": len(rows),
        "lost": lost,
        "in_doubt": in_doubt,
        "outage_s": round(outage, 2),
    }
    print(f"\n[{label}] " + " ".join(f"{key}={value}" for key, value in figures.items()))
    for result in results:
        print(
            f"  {result['policy']}: attempts={result['attempts']} acknowledged={len(result['stored'])} "
            f"errors={sum(result['errors'].values())} retries={sum(result['retried'].values())}"
        )
        for kind, count in sorted({**result["errors"], **result["retried"]}.items()):
            print(f"    {count:4d} x {kind}")
    return figures


@pytest.mark.parametrize("server", ENGINES, indirect=True)
@pytest.mark.parametrize("fault", ["restart", "kill"])
@pytest.mark.parametrize("always_retry", [True, False], ids=["always_retry", "no_retry"])
def test_results_stored_across_a_server_fault(
    running_server: DisposableServer,
    fault: str,
    always_retry: bool,
    record_property: Any,
) -> None:
    server = running_server
    mode = "always_retry" if always_retry else "no_retry"
    prefix = f"{fault}-{mode.replace('_', '')}-{uuid.uuid4().hex[:8]}"
    # Persistent connections: only Celery's fixup (``fresh``) or unusability (``kept``) closes them.
    database = {**server.database_settings(DATABASE), "CONN_MAX_AGE": None}

    with storing_processes(database, prefix, always_retry) as writers:
        writers.wait_until_stored([WARM_UP] * len(POLICIES), timeout=60)
        began = time.monotonic()
        if fault == "restart":
            server.restart()
        else:
            server.kill()
            time.sleep(DOWNTIME)
            server.start()
        outage = time.monotonic() - began
        writers.wait_until_stored([done + AFTER for done in writers.stored()])
        results = writers.finish()

    rows = stored_rows(server, prefix)
    attempted = {(i, n) for i, r in enumerate(results) for n in range(1, r["attempts"] + 1)}
    acknowledged = {(i, n) for i, r in enumerate(results) for n in r["stored"]}
    lost = acknowledged - rows.keys()
    in_doubt = rows.keys() - acknowledged  # reported as failed, yet committed before the connection broke
    figures = report(f"{server.engine} {fault} {mode}", outage, results, rows, len(lost), len(in_doubt))
    for key, value in figures.items():
        record_property(key, value)

    assert not rows.keys() - attempted, "rows for results never stored"
    wrong = {key: row for key, row in rows.items() if row != ("SUCCESS", list(key))}
    assert not wrong, f"rows with the wrong state or value: {sorted(wrong.items())[:5]}"
    assert not lost, f"acknowledged results missing: {sorted(lost)[:10]}"
    for result in results:
        errors = sum(result["errors"].values())
        assert result["attempts"] == len(result["stored"]) + errors, result["policy"]  # nothing silent
        assert not result["not_transient"], result["not_transient"]
        assert not result["hook_failures"], result["hook_failures"]
    if always_retry:
        assert figures["errors"] == 0, [r["errors"] for r in results]
        assert figures["rows"] == figures["attempts"] == figures["acknowledged"]
        assert figures["retries"] > 0, "the outage was never met: the test proved nothing"
    else:
        assert figures["retries"] == 0
        assert figures["errors"] > 0, "the outage was never met: the test proved nothing"
        assert figures["rows"] == figures["acknowledged"] + figures["in_doubt"]
