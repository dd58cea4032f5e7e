"""``DJANGO_CELERY_RESULTS = {"PENDING_ON_PUBLISH": True}`` with real brokers and a real worker.

The setting is on in this (the publishing) process only: a task sent while no
worker runs has a PENDING row at once, with its name and arguments; once a
worker starts, the same row moves on to SUCCESS.
"""

from __future__ import annotations

import pytest
from celery import states
from celery.result import AsyncResult

from tests.support.rows import assert_dates_in_order, assert_ran_on, decoded, rows
from tests.support.workers import WorkerStarter, nodename, other_queue, publishing_from

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_pending_row_from_publish_until_a_worker_runs_the_task(start_worker: WorkerStarter) -> None:
    with start_worker("publish", start=False) as worker:
        add = worker.tasks.add
        with publishing_from(worker.app):
            plain = add.delay(2, 3)
            routed = add.apply_async((4,), {"y": 5}, queue=other_queue(worker))
        unrecorded = add.delay(1, 1)  # the setting is off again

        assert not rows([unrecorded.id])
        pending = rows([plain.id, routed.id])
        for result, args, kwargs, queue in (
            (plain, "(2, 3)", "{}", worker.app.conf.task_default_queue),
            (routed, "(4,)", "{'y': 5}", other_queue(worker)),
        ):
            found = pending[result.id]
            assert (found.status, decoded(found.result), found.traceback) == (states.PENDING, None, None)
            assert found.task_name == "tests.support.workers.add"
            assert (decoded(found.task_args), decoded(found.task_kwargs)) == (args, kwargs)
            assert (found.worker, found.date_started, found.retries, found.queue) == (None, None, 0, queue)
            fresh = AsyncResult(result.id, app=worker.app)
            assert (fresh.state, fresh.name, fresh.args, fresh.kwargs) == (
                states.PENDING,
                "tests.support.workers.add",
                args,
                kwargs,
            )
            assert not fresh.ready()

        worker.start()

        assert worker.wait(plain).get(timeout=5) == 5
        assert worker.wait(routed).get(timeout=5) == 9
        assert worker.wait(unrecorded).get(timeout=5) == 2
        done = rows([plain.id, routed.id, unrecorded.id])
        for result, value, queue in (
            (plain, 5, worker.app.conf.task_default_queue),
            (routed, 9, other_queue(worker)),
        ):
            found = done[result.id]
            assert (found.status, decoded(found.result)) == (states.SUCCESS, value)
            assert found.id == pending[result.id].id  # the same row, updated
            assert found.date_created == pending[result.id].date_created
            assert_ran_on(found, worker, "tests.support.workers.add", queue=queue)
            assert_dates_in_order(found)
        assert plain.worker == nodename(worker)
        assert done[unrecorded.id].status == states.SUCCESS
