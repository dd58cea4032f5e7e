"""What the child processes of the race tests do (importable by ``spawn``)."""

from __future__ import annotations

import random
from typing import Any

from celery import states

from tests.support.requests import chord_part


def _app(broker_dir: str | None = None) -> Any:
    from tests.support.apps import filesystem_app, make_app

    if broker_dir is None:
        return make_app()
    return filesystem_app(broker_dir)


def value_of(state: str, task_id: str) -> Any:
    return ValueError(f"{state}:{task_id}") if state in states.EXCEPTION_STATES else f"{state}:{task_id}"


def write_states(plan: list[tuple[str, str]], seed: int) -> dict[str, int]:
    """Store each (task id, state) of ``plan`` in a shuffled order; count errors by type."""
    backend = _app().backend
    rng = random.Random(seed)
    order = list(plan)
    rng.shuffle(order)
    errors: dict[str, int] = {}
    for task_id, state in order:
        try:
            backend.store_result(task_id, value_of(state, task_id), state, traceback=f"tb {state}")
        except Exception as exc:  # counted: the test requires zero
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
    return errors


def finish_parts(broker_dir: str, group_id: str, callback: dict, parts: list[str], seed: int) -> int:
    """Report each part of ``parts`` as finished (in a shuffled order), as a worker would."""
    app = _app(broker_dir)
    rng = random.Random(seed)
    order = list(parts)
    rng.shuffle(order)
    for task_id in order:
        request = chord_part(task_id, group_id, callback)
        app.backend.mark_as_done(task_id, int(task_id.rsplit("-", 1)[1]), request=request)
    return len(order)


def resize_chord(group_id: str, size: int) -> int:
    """Tell the chord its size (``set_chord_size``); the counter's count afterwards."""
    from django_celery_results.models import ChordCounter

    _app().backend.set_chord_size(group_id, size)
    return ChordCounter.objects.get(group_id=group_id).count
