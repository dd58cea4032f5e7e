"""Concurrent writers in separate OS processes: no lost or overwritten states, chords fire once."""

from __future__ import annotations

import json
import random
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from celery import states
from celery import uuid as celery_uuid
from django.db import transaction

from django_celery_results.engines import state_rank
from django_celery_results.managers import PartOutcome
from django_celery_results.models import ChordCounter, TaskResult
from tests.support.apps import filesystem_app, make_app
from tests.support.brokers import published_to_folder
from tests.support.lock_waits import wait_for_a_lock_waiter
from tests.support.processes import run_in_processes
from tests.support.race_targets import finish_parts, resize_chord, value_of, write_states
from tests.support.requests import chord_part

pytestmark = pytest.mark.django_db(transaction=True)

PROCESSES = 4
RACED_STATES = [states.STARTED, states.RETRY, states.SUCCESS, states.REVOKED, states.FAILURE]


def test_interleaved_state_writes_end_in_the_highest_precedence_state() -> None:
    rng = random.Random(7)
    written: dict[str, set[str]] = defaultdict(set)
    plans: list[list[tuple[str, str]]] = [[] for _ in range(PROCESSES)]
    for index in range(150):
        task_id = f"race-{index}"
        for state in rng.sample(RACED_STATES, rng.randint(2, len(RACED_STATES))):
            process = rng.randrange(PROCESSES)
            plans[process].append((task_id, state))
            written[task_id].add(state)

    errors = run_in_processes(write_states, [(plan, seed) for seed, plan in enumerate(plans)])

    assert errors == [{}] * PROCESSES  # no IntegrityError, no deadlock, nothing else
    rows = {row.task_id: row for row in TaskResult.objects.filter(task_id__startswith="race-")}
    assert set(rows) == set(written)  # no lost row
    for task_id, candidates in written.items():
        row = rows[task_id]
        best = max(state_rank(s) for s in candidates)
        if best:
            assert state_rank(row.status) == best, (task_id, candidates, row.status)
        else:
            assert row.status in candidates
        # The result belongs to the state that won (never a mix of two writes).
        assert str(value_of(row.status, task_id)) in row.result
        assert row.traceback == f"tb {row.status}"


@pytest.mark.parametrize("round_", range(3))
def test_chord_of_500_parts_with_duplicates_fires_once(tmp_path: Path, round_: int) -> None:
    app = filesystem_app(tmp_path)
    rng = random.Random(round_)
    group_id = celery_uuid()
    parts = [f"{group_id}-{index}" for index in range(500)]
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    # As Celery applies a chord whose header holds a nested group: the header's
    # results are its leaves, and set_chord_size gives the leaf count.
    app.backend.apply_chord((group_id, [app.AsyncResult(p) for p in parts[:450]]), callback)
    app.backend.set_chord_size(group_id, 500)
    ChordCounter.objects.filter(group_id=group_id).update(
        sub_tasks=json.dumps([[[p, None], None] for p in parts])
    )

    deliveries = parts + rng.sample(parts, 50)  # 10% delivered twice
    rng.shuffle(deliveries)
    slices = [deliveries[i::PROCESSES] for i in range(PROCESSES)]
    counted = run_in_processes(
        finish_parts,
        [(str(tmp_path), group_id, dict(callback), s, round_ * 10 + i) for i, s in enumerate(slices)],
    )

    assert sum(counted) == 550
    messages = published_to_folder(tmp_path)
    assert len(messages) == 1
    assert messages[0].decode()[0] == [list(range(500))]
    assert ChordCounter.objects.get(group_id=group_id).count == 0


def test_chord_with_a_failing_part_marks_the_callback_failed(tmp_path: Path) -> None:
    app = filesystem_app(tmp_path)
    group_id = celery_uuid()
    parts = [f"{group_id}-{index}" for index in range(40)]
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    app.backend.apply_chord((group_id, [app.AsyncResult(p) for p in parts]), callback)
    failing = chord_part(parts[7], group_id, callback)
    app.backend.mark_as_failure(
        parts[7], KeyError("lost"), traceback="tb", request=failing, call_errbacks=False
    )
    others = [p for p in parts if p != parts[7]]

    run_in_processes(
        finish_parts,
        [(str(tmp_path), group_id, dict(callback), others[i::PROCESSES], i) for i in range(PROCESSES)],
    )

    assert published_to_folder(tmp_path) == []
    outcome = app.AsyncResult(callback.id)
    assert outcome.state == states.FAILURE
    assert parts[7] in str(outcome.result)


def test_set_chord_size_racing_a_part_keeps_its_decrement() -> None:
    """Celery sizes the chord while the first parts already finish on workers.

    Here a part commits while ``set_chord_size`` (another process) waits for
    the counter: the size must count that part, or the chord waits forever.
    """
    app = make_app()
    group_id = celery_uuid()
    parts = [f"{group_id}-{index}" for index in range(3)]
    callback = app.signature("proj.tasks.collect", task_id=celery_uuid())
    app.backend.apply_chord((group_id, [app.AsyncResult(p) for p in parts]), callback)
    sized: list[Any] = []

    with transaction.atomic():
        ChordCounter.objects.select_for_update().get(group_id=group_id)  # the part's lock, held
        assert ChordCounter.objects.part_done(group_id, parts[0]) is PartOutcome.COUNTED
        resizing = threading.Thread(
            target=lambda: sized.extend(run_in_processes(resize_chord, [(group_id, 3)])),
        )
        resizing.start()
        wait_for_a_lock_waiter()
    resizing.join(timeout=120)

    assert sized == [2]  # three parts, one of them counted
    for task_id in parts[1:]:
        ChordCounter.objects.part_done(group_id, task_id)
    assert ChordCounter.objects.get(group_id=group_id).count == 0
