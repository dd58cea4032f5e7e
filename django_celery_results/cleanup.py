"""Deleting expired results: the one code path of ``backend.cleanup()`` and ``celery_results_cleanup``.

A :class:`Cleanup` says which rows go (older than a cutoff, optionally only
some task states or task names, with or without group results and chord
counters) and where (each model's write alias, or one alias given by the
caller). It counts them (``count()``, for dry runs) or deletes them a batch at
a time (``delete_batches()``), one short transaction per batch.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.utils.time import maybe_timedelta
from django.db import models
from django.utils import timezone

from . import engines
from .conf import app_settings
from .managers import AliasedManager, BatchSizer, ChordCounterManager, delete_oldest_first
from .models import ChordCounter, GroupResult, TaskResult

TASKS = "task results"
GROUPS = "group results"
CHORDS = "chord counters"
#: Chord counters named per statement at most when deleting them and their part rows.
CHORD_GROUPS_PER_BATCH = 500
#: The kinds of rows a cleanup deletes, in the order it deletes them.
KINDS = (TASKS, GROUPS, CHORDS)

#: The model and the date column the cutoff applies to, per kind (each column is indexed).
TABLES: dict[str, tuple[type[models.Model], str]] = {
    TASKS: (TaskResult, "date_done"),
    GROUPS: (GroupResult, "date_done"),
    CHORDS: (ChordCounter, "date_created"),
}


def manager_of(kind: str) -> AliasedManager[Any]:
    """The manager of ``kind``'s model, whose ``write_alias()`` is the one rule for picking the alias."""
    managers: dict[str, AliasedManager[Any]] = {
        TASKS: TaskResult.objects,
        GROUPS: GroupResult.objects,
        CHORDS: ChordCounter.objects,
    }
    return managers[kind]


@dataclass(frozen=True)
class Cleanup:
    """Which rows a cleanup removes, and where.

    ``statuses`` and ``task_names`` narrow the task results only: group
    results and chord counters have neither, so ``groups`` and ``chords``
    say whether they are cleaned at all. A completed chord counter older than
    the cutoff goes; one still waiting for parts only once it is also older
    than ``WAITING_CHORD_EXPIRES``. ``database``, when given, is the only
    alias any query of the cleanup runs on (for every table); without it each
    table's write alias from the routers is used.
    """

    before: datetime
    statuses: tuple[str, ...] = ()
    task_names: tuple[str, ...] = ()
    groups: bool = True
    chords: bool = True
    batch_size: int | None = None
    database: str | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of rows this cleanup touches."""
        wanted = {TASKS: True, GROUPS: self.groups, CHORDS: self.chords}
        return tuple(kind for kind in KINDS if wanted[kind])

    def alias(self, kind: str) -> str:
        """Where the rows of ``kind`` are deleted: ``database``, else the write alias (never a replica)."""
        manager: AliasedManager[Any] = manager_of(kind).db_manager(self.database)
        return manager.write_alias()

    def rows(self, kind: str) -> models.QuerySet[Any]:
        """The rows of ``kind`` this cleanup deletes."""
        alias = self.alias(kind)
        if kind == CHORDS:
            manager: ChordCounterManager = ChordCounter.objects.db_manager(alias)
            return manager.expired(self.before)
        results = TaskResult.objects if kind == TASKS else GroupResult.objects
        selected: models.QuerySet[Any] = results.db_manager(alias).get_queryset().done_before(self.before)
        if kind == TASKS and self.statuses:
            selected = engines.filter_exactly(selected, "status", self.statuses)
        if kind == TASKS and self.task_names:
            selected = engines.filter_exactly(selected, "task_name", self.task_names)
        return selected

    def count(self) -> dict[str, int]:
        """How many rows of each kind a run would delete now (one COUNT per table)."""
        return {kind: self.rows(kind).count() if kind in self.kinds else 0 for kind in KINDS}

    def delete_batches(self) -> Generator[tuple[str, int], None, None]:
        """Delete the rows, yielding ``(kind, rows deleted)`` after each batch commits.

        Stopping the iteration between two batches stops the cleanup there:
        what was yielded is deleted, nothing else is.
        """
        size = self.batch_size or app_settings.cleanup_batch_size
        for kind in self.kinds:
            sizer = BatchSizer(size)  # one per table: their rows cost differently
            if kind == CHORDS:
                # Counters inserted by older code carry no date: their clock starts now.
                ChordCounter.objects.db_manager(self.alias(kind)).dateless().update(
                    date_created=timezone.now()
                )
                yield from self._delete_chords(sizer)
                continue
            for deleted in delete_oldest_first(self.rows(kind), TABLES[kind][1], sizer):
                yield kind, deleted

    def _delete_chords(self, sizer: BatchSizer) -> Generator[tuple[str, int], None, None]:
        """Delete expired counters ``size`` at a time, each batch followed by its part rows.

        A batch's group ids are read first; its counters go in short DELETEs
        (re-checked: a chord applied again meanwhile stays), then the part rows
        of those groups that no longer have a counter, ``size`` rows per short
        DELETE, so no transaction grows with a chord's size. The ids are listed
        in the statements :data:`CHORD_GROUPS_PER_BATCH` at a time (SQLite caps
        the parameters of one statement).
        """
        alias = self.alias(CHORDS)
        counters = ChordCounter.objects.db_manager(alias)
        date_field = TABLES[CHORDS][1]
        while True:
            size = sizer.size
            groups = list(self.rows(CHORDS).order_by(date_field).values_list("group_id", flat=True)[:size])
            for start in range(0, len(groups), CHORD_GROUPS_PER_BATCH):
                chunk = groups[start : start + CHORD_GROUPS_PER_BATCH]
                batch = self.rows(CHORDS).filter(group_id__in=chunk)
                deleted = sum(delete_oldest_first(batch, date_field, sizer))
                # Listed, not a subquery: delete_oldest_first compiles on the alias the rows name.
                kept = set(counters.for_write().filter(group_id__in=chunk).values_list("group_id", flat=True))
                gone = [group_id for group_id in chunk if group_id not in kept]
                if gone:
                    parts = counters.parts(alias).filter(group_id__in=gone)
                    for _ in delete_oldest_first(parts, "id", sizer):
                        pass
                if deleted:
                    yield CHORDS, deleted
            if len(groups) < size:
                return

    def delete(self) -> dict[str, int]:
        """Delete every row this cleanup selects; return how many went per kind."""
        deleted = dict.fromkeys(KINDS, 0)
        for kind, count in self.delete_batches():
            deleted[kind] += count
        return deleted


def delete_expired_results(
    expires: timedelta | float | int,
    batch_size: int | None = None,
) -> dict[str, int]:
    """Delete task results, group results and chord counters older than ``expires``.

    What ``DatabaseBackend.cleanup()`` runs; the ``celery_results_cleanup``
    command runs the same :class:`Cleanup`. Returns the rows deleted per kind.
    """
    return Cleanup(before=timezone.now() - maybe_timedelta(expires), batch_size=batch_size).delete()
