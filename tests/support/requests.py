"""Requests as a worker hands them to the backend (``celery.app.task.Context``)."""

from __future__ import annotations

from typing import Any

from celery.app.task import Context

#: What a worker's request carries with ``result_extended`` (the fields the backend stores).
EXTENDED_FIELDS: dict[str, Any] = {
    "task": "proj.tasks.add",
    "args": [2, 3],
    "kwargs": {"z": 1},
    "argsrepr": "(2, 3)",
    "kwargsrepr": "{'z': 1}",
    "hostname": "celery@worker1",
    "delivery_info": {"routing_key": "celery"},
    "retries": 0,
}


def task_request(task_id: str, **fields: Any) -> Context:
    """The request of task ``task_id``: :data:`EXTENDED_FIELDS`, with ``fields`` added or replaced."""
    return Context({**EXTENDED_FIELDS, "id": task_id, **fields})


def chord_part(task_id: str, group_id: str, callback: Any, task: str = "proj.part") -> Context:
    """The request of one part of a chord: its group, and the chord's callback signature."""
    return Context(id=task_id, group=group_id, chord=callback, task=task, delivery_info={})
