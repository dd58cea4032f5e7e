"""State precedence: ready states are never replaced by progress states, SUCCESS is final.

The rule is enforced inside the single upsert statement, so it holds on the
database whatever order the writes arrive in.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from celery import states
from celery import uuid as celery_uuid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_celery_results.engines import may_replace
from django_celery_results.models import TaskResult

pytestmark = pytest.mark.django_db(transaction=True)

STATES = [
    states.PENDING,
    states.RECEIVED,
    states.STARTED,
    states.RETRY,
    "PROGRESS",
    states.SUCCESS,
    states.FAILURE,
    states.REVOKED,
]


def _value(state: str) -> Any:
    return ValueError(state) if state in states.EXCEPTION_STATES else f"value-{state}"


def _store(backend: Any, task_id: str, state: str) -> None:
    backend.store_result(task_id, _value(state), state, traceback=f"tb-{state}")


def test_the_documented_rule() -> None:
    ready, unready = states.READY_STATES, [s for s in STATES if s not in states.READY_STATES]
    for stored, new in itertools.product(ready, unready):
        assert not may_replace(stored, new)
    for new in STATES:
        assert not may_replace(states.SUCCESS, new)
    assert may_replace(states.FAILURE, states.SUCCESS)
    assert may_replace(states.REVOKED, states.SUCCESS)
    assert may_replace(states.REVOKED, states.FAILURE)
    assert not may_replace(states.FAILURE, states.REVOKED)
    for stored, new in itertools.product(unready, STATES):
        assert may_replace(stored, new)


@pytest.mark.parametrize(("first", "second"), list(itertools.product(STATES, STATES)))
def test_every_pair_of_states(backend: Any, first: str, second: str) -> None:
    task_id = celery_uuid()
    _store(backend, task_id, first)
    _store(backend, task_id, second)
    winner = second if may_replace(first, second) else first
    row = TaskResult.objects.get(task_id=task_id)
    assert row.status == winner
    # The whole state moves together: result and traceback belong to the winner.
    assert row.traceback == f"tb-{winner}"
    assert backend.get_task_meta(task_id, cache=False)["status"] == winner


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(STATES), min_size=1, max_size=8))
def test_any_sequence_ends_in_the_state_the_rule_predicts(backend: Any, sequence: list[str]) -> None:
    task_id = celery_uuid()
    expected = sequence[0]
    for state in sequence:
        _store(backend, task_id, state)
        if may_replace(expected, state):
            expected = state
    assert TaskResult.objects.get(task_id=task_id).status == expected
