"""A hypothesis state machine drives the backend against a plain in-memory model of its rules."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from celery import states
from celery.result import AsyncResult, GroupResult
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from django_celery_results.engines import may_replace
from django_celery_results.models import GroupResult as GroupResultModel
from django_celery_results.models import TaskResult
from tests.support.apps import make_app
from tests.support.strategies import json_values

STATES = [
    states.PENDING,
    states.STARTED,
    states.RETRY,
    "PROGRESS",
    states.SUCCESS,
    states.FAILURE,
    states.REVOKED,
]


class BackendMachine(RuleBasedStateMachine):
    """The model: task id -> (state, value), group id -> member ids, and which rows are old."""

    def __init__(self) -> None:
        super().__init__()
        self.app = make_app(result_expires=timedelta(hours=1))
        self.backend = self.app.backend
        self.prefix = uuid.uuid4().hex[:8]  # examples share the database: keep apart
        self.tasks: dict[str, tuple[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        self.old: set[str] = set()

    def teardown(self) -> None:
        TaskResult.objects.filter(task_id__startswith=self.prefix).delete()
        GroupResultModel.objects.filter(group_id__startswith=self.prefix).delete()
        self.app.close()

    def _id(self, number: int) -> str:
        return f"{self.prefix}-t{number}"

    @rule(number=st.integers(0, 3), state=st.sampled_from(STATES), value=json_values)
    def store(self, number: int, state: str, value: Any) -> None:
        task_id = self._id(number)
        stored = ValueError(str(value)) if state in states.EXCEPTION_STATES else value
        self.backend.store_result(task_id, stored, state, traceback="tb")
        current = self.tasks.get(task_id)
        if current is None or may_replace(current[0], state):
            self.tasks[task_id] = (state, value)
            self.old.discard(task_id)
        self.get(number)

    @rule(number=st.integers(0, 3))
    def get(self, number: int) -> None:
        task_id = self._id(number)
        meta = self.backend.get_task_meta(task_id, cache=False)
        if task_id not in self.tasks:
            assert meta["status"] == states.PENDING and meta["result"] is None
            return
        state, value = self.tasks[task_id]
        assert meta["status"] == state
        if state in states.EXCEPTION_STATES:
            assert isinstance(meta["result"], ValueError) and meta["result"].args == (str(value),)
        else:
            assert meta["result"] == value

    @rule(number=st.integers(0, 3))
    def forget(self, number: int) -> None:
        task_id = self._id(number)
        self.backend.forget(task_id)
        self.tasks.pop(task_id, None)
        self.old.discard(task_id)

    @rule(number=st.integers(0, 2), members=st.lists(st.integers(0, 3), max_size=4))
    def save_group(self, number: int, members: list[int]) -> None:
        group_id = f"{self.prefix}-g{number}"
        ids = [self._id(m) for m in members]
        self.backend.save_group(group_id, GroupResult(group_id, [AsyncResult(i) for i in ids]))
        self.groups[group_id] = ids
        self.old.discard(group_id)

    @rule(number=st.integers(0, 2))
    def restore_group(self, number: int) -> None:
        group_id = f"{self.prefix}-g{number}"
        restored = self.backend.restore_group(group_id, cache=False)
        if group_id in self.groups:
            assert [r.id for r in restored.results] == self.groups[group_id]
        else:
            assert restored is None

    @rule(number=st.integers(0, 2))
    def delete_group(self, number: int) -> None:
        group_id = f"{self.prefix}-g{number}"
        self.backend.delete_group(group_id)
        self.groups.pop(group_id, None)
        self.old.discard(group_id)

    @precondition(lambda self: bool(self.tasks) or bool(self.groups))
    @rule(data=st.data())
    def age(self, data: st.DataObject) -> None:
        """Make one row older than result_expires."""
        name = data.draw(st.sampled_from(sorted([*self.tasks, *self.groups])))
        past = timezone.now() - timedelta(days=2)
        TaskResult.objects.filter(task_id=name).update(date_done=past)
        GroupResultModel.objects.filter(group_id=name).update(date_done=past)
        self.old.add(name)

    @rule()
    def cleanup(self) -> None:
        self.backend.cleanup()
        for name in self.old:
            self.tasks.pop(name, None)
            self.groups.pop(name, None)
        self.old.clear()

    @invariant()
    def rows_match_the_model(self) -> None:
        stored = set(
            TaskResult.objects.filter(task_id__startswith=self.prefix).values_list("task_id", flat=True)
        )
        assert stored == set(self.tasks)
        saved = set(
            GroupResultModel.objects.filter(group_id__startswith=self.prefix).values_list(
                "group_id", flat=True
            )
        )
        assert saved == set(self.groups)


@pytest.mark.django_db(transaction=True)
def test_backend_follows_its_rules() -> None:
    run_state_machine_as_test(
        BackendMachine,
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
