"""Everything through a real PgBouncer in transaction pooling mode, started by the tests.

For this module the ``default`` alias (the test process, race processes and
the real worker alike) reaches the test database through PgBouncer, with the
settings Django documents for transaction pooling
(``DISABLE_SERVER_SIDE_CURSORS``); every consecutive transaction may run on
another server connection, so no session state can be relied on. Tests of
the backend contract, races, chords and cleanup from the other modules run
again here, beside a real worker's. LISTEN cannot work through transaction
pooling: a waiting ``get()`` falls back to polling, logs it once and never
hangs, unless ``DJANGO_CELERY_RESULTS["LISTEN_DATABASE"]`` names a direct alias.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery import chord, group, states
from django.db import connections
from django.test import override_settings

from django_celery_results import notify
from tests.backends.test_chords import test_processes_finishing_awkward_parts_with_duplicates_fire_once
from tests.backends.test_database import (  # the contract, again through the pooler
    configured,
    test_chord_sends_callback_once_with_all_results,
    test_chord_with_failing_part_marks_callback_failed,
    test_cleanup_deletes_expired_results_groups_and_counters,
    test_every_state_is_stored_and_read_back,
    test_forget_deletes_the_row,
    test_groups_save_restore_delete,
)
from tests.races.test_concurrent_writers import (
    test_interleaved_state_writes_end_in_the_highest_precedence_state,
)
from tests.support.cleanup_data import (
    check_deletes_exactly_the_expired_rows,
    check_dry_run_counts_and_changes_nothing,
)
from tests.support.observe import row_in
from tests.support.servers import PgBouncer, pgbouncer
from tests.support.workers import Worker, running_worker

__all__ = [
    "configured",
    "test_chord_sends_callback_once_with_all_results",
    "test_chord_with_failing_part_marks_callback_failed",
    "test_cleanup_deletes_expired_results_groups_and_counters",
    "test_every_state_is_stored_and_read_back",
    "test_forget_deletes_the_row",
    "test_groups_save_restore_delete",
    "test_interleaved_state_writes_end_in_the_highest_precedence_state",
    "test_processes_finishing_awkward_parts_with_duplicates_fire_once",
]

pytestmark = [pytest.mark.engine("postgresql"), pytest.mark.django_db(transaction=True)]

#: A direct (not pooled) alias of the same test database, from the test settings.
DIRECT_ALIAS = "second"


# The cleanup command's checks, through the pooler (tests/test_cleanup.py runs them directly).


def test_deletes_exactly_the_expired_rows() -> None:
    check_deletes_exactly_the_expired_rows()


def test_dry_run_counts_and_changes_nothing() -> None:
    check_dry_run_counts_and_changes_nothing()


@pytest.fixture(scope="module", autouse=True)
def bouncer(django_db_setup: Any, django_db_blocker: Any) -> Iterator[PgBouncer]:
    """PgBouncer in front of the test server; ``default`` goes through it for the whole module."""
    entry = connections["default"].settings_dict  # the very dict of settings.DATABASES
    saved = {key: entry.get(key) for key in ("HOST", "PORT", "DISABLE_SERVER_SIDE_CURSORS")}
    port, host = int(entry["PORT"] or 5432), str(entry["HOST"] or "127.0.0.1")
    with pgbouncer(upstream_port=port, upstream_host=host) as started:
        with django_db_blocker.unblock():
            connections["default"].close()
            notify.close_all()
        entry.update({"HOST": "127.0.0.1", "PORT": str(started.port), "DISABLE_SERVER_SIDE_CURSORS": True})
        try:
            yield started
        finally:
            with django_db_blocker.unblock():
                connections["default"].close()
                notify.close_all()
            entry.update(saved)
            notify._deaf_aliases.discard("default")
    assert "ERROR" not in started.log(), started.log_tail()


def test_the_default_alias_goes_through_the_pooler(bouncer: PgBouncer) -> None:
    """Two transactions in a row land on different server sessions: transaction pooling is on."""
    from django.db import connection

    assert connection.settings_dict["PORT"] == str(bouncer.port)
    seen = set()
    holders = []
    for _ in range(3):
        # Each client of the pool runs its statement while another client holds a transaction open.
        holder = connections.create_connection("default")
        holder.ensure_connection()
        holder.connection.execute("BEGIN")
        holder.connection.execute("SELECT pg_backend_pid()")
        holders.append(holder)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            seen.add(cursor.fetchone()[0])
    for holder in holders:
        holder.close()
    assert len(seen) > 1


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, bouncer: PgBouncer) -> Iterator[Worker]:
    with running_worker(tmp_path_factory.mktemp("bouncer"), concurrency=2) as started:
        assert started.environment()  # the worker's database is the pooled one
        yield started


def test_a_real_worker_stores_every_state_through_the_pooler(worker: Worker, bouncer: PgBouncer) -> None:
    tasks = worker.tasks
    done, failed = tasks.add.delay(1, 2), tasks.fail.delay("pooled")
    joined = group(tasks.add.s(i, i) for i in range(5)).apply_async()
    chorded = chord([tasks.add.s(i, 1) for i in range(4)], tasks.total.s()).apply_async()

    assert done.get(timeout=30) == 3
    with pytest.raises(ValueError, match="pooled"):
        failed.get(timeout=30)
    assert joined.join_native(timeout=30) == [0, 2, 4, 6, 8]
    assert chorded.get(timeout=30) == 10
    assert row_in(done.id, states.SUCCESS).task_name == "tests.support.workers.add"


def wait_time(worker: Worker, seconds: float = 1.0) -> float:
    """How long a ``get()`` of a task that ends ``seconds`` after it is sent waits past that moment."""
    result = worker.tasks.sleep.delay(seconds)
    row_in(result.id, states.STARTED)
    result.get(timeout=30)
    row = row_in(result.id, states.SUCCESS)
    return time.time() - row.date_done.timestamp()


def test_get_falls_back_to_polling_logs_it_once_and_never_hangs(
    worker: Worker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    notify._deaf_aliases.discard("default")
    with caplog.at_level(logging.WARNING, logger="django_celery_results.notify"):
        late = [wait_time(worker) for _ in range(3)]

    assert "default" in notify._deaf_aliases
    warnings = [r for r in caplog.records if "No notification reaches a LISTEN" in r.getMessage()]
    assert len(warnings) == 1
    # Polling backs off to the 0.5 s interval of get(): never much later than that.
    assert max(late) < 1.5, late


def test_the_first_wait_polls_while_its_listener_probes(worker: Worker) -> None:
    """A process's first ``get()`` is not held until its listener is found deaf: it polls meanwhile."""
    notify._deaf_aliases.discard("default")
    result = worker.tasks.sleep.delay(0.2)
    row_in(result.id, states.STARTED)
    started = time.monotonic()
    assert result.get(timeout=30) == 0.2

    assert time.monotonic() - started < notify.PROBE_TIMEOUT * 0.7


@pytest.mark.django_db(transaction=True, databases=["default", DIRECT_ALIAS])
def test_a_direct_listen_database_wakes_get_at_once(worker: Worker) -> None:
    with override_settings(DJANGO_CELERY_RESULTS={"LISTEN_DATABASE": DIRECT_ALIAS}):
        late = sorted(wait_time(worker) for _ in range(3))

    assert DIRECT_ALIAS not in notify._deaf_aliases
    # Woken by the notification, not by a poll: well under the polling interval.
    assert late[1] < 0.25, late


def test_many_waiting_threads_all_return(worker: Worker) -> None:
    """Without LISTEN, 8 threads waiting at once all get their result (each polls on its own connection)."""
    results = [worker.tasks.add.delay(i, i) for i in range(8)]
    got: dict[int, Any] = {}

    def wait(index: int) -> None:
        try:
            got[index] = results[index].get(timeout=30)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wait, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert got == {i: 2 * i for i in range(8)}
    assert json.loads(row_in(results[-1].id, states.SUCCESS).result) == 14
