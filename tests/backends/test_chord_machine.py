"""A hypothesis state machine counts chord parts against a plain model: once each, the last told once.

Parts arrive in any order, twice or never, with ids the chord's start wrote
ahead (MySQL/MariaDB) and ids it did not; the chord is resized and applied
again in between.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from django_celery_results.managers import PartOutcome
from django_celery_results.models import ChordCounter

#: Part ids: separators, wildcards and ids differing only in case are distinct parts.
IDS = ["p0", "p1", "P1", "a|b", "x%", "y_", "p 1"]

counters = ChordCounter.objects


class ChordMachine(RuleBasedStateMachine):
    """The model: the count left, the ids counted since the last start, and LASTs since it last waited."""

    def __init__(self) -> None:
        super().__init__()
        self.group_id = f"machine-{uuid.uuid4().hex}"
        self.started = False
        self.count = 0
        self.counted: set[str] = set()
        self.lasts = 0

    def teardown(self) -> None:
        counters.parts().filter(group_id=self.group_id).delete()
        counters.filter(group_id=self.group_id).delete()

    @rule(size=st.integers(1, 6), ahead=st.lists(st.sampled_from(IDS), max_size=6))
    def start(self, size: int, ahead: list[str]) -> None:
        counters.start(self.group_id, "[]", size, ahead)
        self.started, self.count, self.counted, self.lasts = True, size, set(), 0

    @precondition(lambda self: self.started)
    @rule(size=st.integers(0, 8))
    def resize(self, size: int) -> None:
        counters.resize(self.group_id, size)
        self.count = max(size - len(self.counted), 0)
        if self.count:
            self.lasts = 0  # a completed chord sized up waits again: its last part is told again

    @precondition(lambda self: self.started)
    @rule(part=st.sampled_from(IDS))
    def finish(self, part: str) -> None:
        outcome = counters.part_done(self.group_id, part)
        if part in self.counted or self.count == 0:
            assert outcome is PartOutcome.ALREADY, (part, outcome)
            return
        self.counted.add(part)
        self.count -= 1
        expected = PartOutcome.LAST if self.count == 0 else PartOutcome.COUNTED
        assert outcome is expected, (part, outcome)
        self.lasts += outcome is PartOutcome.LAST

    @invariant()
    def the_tables_hold_the_model(self) -> None:
        if not self.started:
            return
        assert counters.for_write().get(group_id=self.group_id).count == self.count
        rows = counters.parts().filter(group_id=self.group_id, counted=True)
        assert set(rows.values_list("task_id", flat=True)) == self.counted
        assert self.lasts <= 1


@pytest.mark.django_db(transaction=True)
def test_each_part_counts_once_and_the_last_is_told_once() -> None:
    run_state_machine_as_test(
        ChordMachine,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
