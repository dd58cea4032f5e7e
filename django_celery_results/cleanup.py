"""Deleting expired results: shared by ``backend.cleanup()`` and the management command."""

from __future__ import annotations

from datetime import timedelta

from celery.utils.time import maybe_timedelta

from .managers import delete_in_batches
from .models import ChordCounter, GroupResult, TaskResult
from .utils import now


def delete_expired_results(
    expires: timedelta | float | int, batch_size: int | None = None,
) -> dict[str, int]:
    """Delete task results, group results and chord counters older than ``expires``.

    Everything runs on the write alias in short batches. A chord counter
    older than ``result_expires`` belongs to a chord that completed or was
    abandoned (a part was lost): its header's results are expiring with it.
    Returns the number of rows deleted per table.
    """
    before = now() - maybe_timedelta(expires)
    counters = ChordCounter.objects
    # Counters inserted by older code carry no date: start their clock now.
    counters.dateless().update(date_created=now())
    return {
        "task results": TaskResult.objects.delete_expired(expires, batch_size),
        "group results": GroupResult.objects.delete_expired(expires, batch_size),
        "chord counters": delete_in_batches(counters.created_before(before), batch_size),
    }
