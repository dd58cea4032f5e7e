"""Deleting expired results: shared by ``backend.cleanup()`` and the management command."""

from __future__ import annotations

from datetime import timedelta

from django.db import router

from .models import ChordCounter, GroupResult, TaskResult


def delete_expired_results(
    expires: timedelta | float | int, batch_size: int | None = None,
) -> dict[str, int]:
    """Delete task and group results older than ``expires``, then orphaned chord counters.

    Everything runs on the write alias in short batches. Returns the number
    of rows deleted per table.
    """
    deleted = {
        "task results": TaskResult.objects.delete_expired(expires, batch_size),
        "group results": GroupResult.objects.delete_expired(expires, batch_size),
    }
    deleted["chord counters"] = delete_orphaned_chord_counters(batch_size)
    return deleted


def delete_orphaned_chord_counters(batch_size: int | None = None) -> int:
    """Delete counters none of whose header parts still has a result row.

    A counter outlives its chord when a part is lost; once every part's
    result has expired, nothing will ever complete it.
    """
    from .managers import delete_in_batches

    alias = router.db_for_write(ChordCounter)
    orphan_ids = []
    for counter in ChordCounter.objects.using(alias).only("pk", "sub_tasks").iterator():
        part_ids = [part_id for part_id in _part_ids(counter.sub_tasks)]
        if not TaskResult.objects.using(alias).filter(task_id__in=part_ids).exists():
            orphan_ids.append(counter.pk)
    return delete_in_batches(ChordCounter.objects.using(alias).filter(pk__in=orphan_ids), batch_size)


def _part_ids(sub_tasks: str) -> list[str]:
    import json

    ids: list[str] = []

    def walk(item: object) -> None:
        # A result tuple is ((task_id, parent), ...) or, for a nested group,
        # ((group_id, parent), [member tuples]).
        if isinstance(item, (list, tuple)) and item:
            head = item[0]
            if isinstance(head, (list, tuple)) and head and isinstance(head[0], str):
                ids.append(head[0])
            if len(item) > 1 and isinstance(item[1], list):
                for member in item[1]:
                    walk(member)

    for entry in json.loads(sub_tasks):
        walk(entry)
    return ids
