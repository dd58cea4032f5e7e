"""Managers: every query on the three tables, on the alias the caller chose or else the routers'.

An explicit alias (``db_manager(alias)``, a queryset's ``using(alias)``, a
``using=`` argument) always wins; Django's routers decide only without one.
"""

from __future__ import annotations

import enum
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import cached_property, wraps
from typing import TYPE_CHECKING, Any, TypeVar

from celery import states
from celery.utils.time import maybe_timedelta
from django.conf import settings
from django.core.exceptions import FullResultSet
from django.db import IntegrityError, connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Case, Func, Subquery, Value, When
from django.db.models.functions import Coalesce, Concat, Greatest, Length, Substr
from django.utils import timezone

from . import engines
from .codec import META_COLUMNS, READY_COLUMNS
from .compiled import ReadCache
from .conf import app_settings
from .values import check_id, storable

if TYPE_CHECKING:
    # Named in annotations, and in string form by the generic manager bases below.
    from .models import ChordCounter, ChordPart, GroupResult, TaskResult

#: Part rows a chord's start writes ahead per INSERT (a header of 20,000 takes 20).
PARTS_AHEAD_PER_STATEMENT = 1000

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=models.Model)

W_ISOLATION_REP = (
    "Polling results with transaction isolation level 'repeatable-read' within the "
    "same transaction may give outdated results. Commit the transaction for each "
    "poll, or use READ COMMITTED for the connection that reads results."
)


class TxIsolationWarning(UserWarning):
    """The connection reading results runs at REPEATABLE READ and may see stale rows."""


def transaction_retry(max_retries: int = 1) -> Callable[[F], F]:
    """Retry the decorated database operation on transient errors only (the public managers' API).

    Lost connections, deadlocks and serialization failures are retried up to
    ``max_retries`` times (callers may pass ``exception_retry_count=``); any
    other error, e.g. ``DataError`` or ``IntegrityError``, is raised at once.
    The same test and the same reset as the backend gives Celery's retry
    (``exception_safe_to_retry``, ``on_backend_retryable_error``); the backend's
    own writes go through Celery's retry only.
    """

    def decorate(fun: F) -> F:
        @wraps(fun)
        def run(*args: Any, **kwargs: Any) -> Any:
            budget = kwargs.pop("exception_retry_count", max_retries)
            attempt = 0
            while True:
                try:
                    return fun(*args, **kwargs)
                except Exception as exc:
                    if attempt >= budget or not engines.is_transient_error(exc):
                        raise
                    attempt += 1
                    reset_connections(result_aliases())

        return run  # type: ignore[return-value]

    return decorate


def result_aliases() -> set[str]:
    """The aliases the routers give the results' tables, for reads and writes."""
    from .models import ChordCounter, ChordPart, GroupResult, TaskResult

    models_ = (TaskResult, GroupResult, ChordCounter, ChordPart)
    return {alias for model in models_ for alias in (router.db_for_write(model), router.db_for_read(model))}


def reset_connections(aliases: Iterable[str]) -> None:
    """Before a retry: close the connections of ``aliases`` outside a transaction; the next use reconnects.

    One inside a transaction is left to the transaction's owner: replacing it
    would lose the transaction's other writes.
    """
    for alias in aliases:
        connection = connections[alias]
        if not connection.in_atomic_block:
            connection.close()


class ResultQuerySet(models.QuerySet[M]):
    """Queries shared by task and group results."""

    def done_before(self, moment: datetime) -> ResultQuerySet[M]:
        """Rows whose latest write is older than ``moment``."""
        rows: ResultQuerySet[M] = self.filter(date_done__lt=moment)
        return rows


class AliasedManager(models.Manager[M]):
    """Base of the three managers: the one rule for the alias a write (or a must-be-fresh read) uses."""

    def write_alias(self, using: str | None = None) -> str:
        """``using``, else this manager's own alias (``db_manager()``), else the routers' write alias.

        The caller's choice always wins, so that no query strays to another alias.
        """
        return using or self._db or router.db_for_write(self.model)


class ResultManager(AliasedManager[M]):
    """Generic manager for celery results."""

    def get_queryset(self) -> ResultQuerySet[M]:
        return ResultQuerySet(self.model, using=self._db)

    def connection_for_write(self) -> BaseDatabaseWrapper:
        """The connection writes of this model go to (see :meth:`write_alias`)."""
        return connections[self.write_alias()]

    def connection_for_read(self) -> BaseDatabaseWrapper:
        """The connection reads go to: this manager's alias, else the routers' read alias."""
        return connections[self.db]

    def current_engine(self) -> str:
        """The ``ENGINE`` setting of the database results are read from."""
        return str(settings.DATABASES[self.db]["ENGINE"])

    def warn_if_repeatable_read(self) -> None:
        """Warn (:class:`TxIsolationWarning`) when results are read from one snapshot per transaction.

        That is REPEATABLE READ on MySQL/MariaDB, and REPEATABLE READ or
        SERIALIZABLE on PostgreSQL: a poller inside one transaction never sees
        the task finish.
        """
        if engines.snapshot_isolation_level(self.connection_for_read()) is not None:
            warnings.warn(TxIsolationWarning(W_ISOLATION_REP), stacklevel=2)

    def get_all_expired(self, expires: timedelta | float | int) -> ResultQuerySet[M]:
        """Rows older than ``expires`` (a timedelta or seconds), read from the write alias.

        The write alias, because what it returns is about to be deleted: a
        replica may lag behind.
        """
        before = timezone.now() - maybe_timedelta(expires)
        expired: ResultQuerySet[M] = self.get_queryset().using(self.write_alias()).done_before(before)
        return expired

    def delete_expired(
        self,
        expires: timedelta | float | int,
        batch_size: int | None = None,
    ) -> int:
        """Delete rows older than ``expires`` in short batches, oldest first; return how many went.

        The batching of ``celery_results_cleanup`` and ``backend.cleanup()``.
        """
        sizer = BatchSizer(batch_size or app_settings.cleanup_batch_size)
        return sum(delete_oldest_first(self.get_all_expired(expires), "date_done", sizer))


def outside_transaction(alias: str, write: Callable[[], Any], *, or_after_commit: bool = False) -> Any:
    """Run ``write`` so that it commits at once, even inside the caller's transaction.

    Inside an atomic block the write runs in a short-lived thread, which has
    its own (autocommit) connection to ``alias``, closed afterwards; no lock
    it takes is held by the caller's transaction. Where a second writer would
    wait for that transaction (SQLite), the write runs inside it, or, with
    ``or_after_commit``, once it commits (and not at all if it rolls back).
    """
    connection = connections[alias]
    if not connection.in_atomic_block:
        return write()
    if not engines.can_write_beside_a_transaction(connection):
        if or_after_commit:
            transaction.on_commit(write, using=alias)
            return None
        return write()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = write()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            connections[alias].close()

    thread = threading.Thread(target=run, name="django_celery_results-write")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class BatchSizer:
    """Rows per cleanup batch: a fixed number, or as many as take about :attr:`target` seconds.

    Without a configured size, batches are sized from the last one's rate,
    so each transaction stays short on any engine and hardware while each
    commit is spread over as many rows as that allows (docs/cleanup.rst).
    """

    #: Seconds one batch should take when sized adaptively.
    target = 0.05
    #: ``first`` is sized before any rate is known: 2,000 rows stay near ``target``
    #: on the slowest engine and disk measured (MariaDB, ~37,000 rows/s).
    first, smallest, largest = 2_000, 500, 200_000

    def __init__(self, fixed: int | None = None) -> None:
        self.fixed = fixed
        self.size = fixed or self.first

    def record(self, rows: int, seconds: float) -> None:
        """Size the next batch from this one's rows and duration (a full batch only)."""
        if self.fixed or rows < self.size or seconds <= 0:
            return
        wanted = int(self.size * self.target / seconds)
        self.size = max(self.smallest, min(self.largest, self.size * 2, max(self.size // 2, wanted)))


def delete_oldest_first(rows: models.QuerySet[Any], date_field: str, size: int | BatchSizer) -> Iterator[int]:
    """Delete ``rows`` oldest first, a batch at a time; yield each batch's count after its commit.

    Each batch is one short transaction: it reads the date that ends it (the
    ``size + 1``-th oldest row's, through the index on ``date_field``) and
    deletes the rows dated from the oldest left up to it, re-checked against
    the selection, in one range DELETE; nothing but that date travels to the
    client. When more than ``size`` rows share the oldest date, the batch
    deletes ``size`` of them by key instead (:func:`delete_tied`). The last
    batch is the one that finds no end. ``size`` is rows per batch, or a
    :class:`BatchSizer` (docs/cleanup.rst, "Large deletions").
    """
    sizer = size if isinstance(size, BatchSizer) else BatchSizer(size)
    alias = rows.db
    connection = connections[alias]
    skip_deleted = engines.index_keeps_deleted_rows(connection)
    recheck = where_sql(rows)
    oldest = rows.order_by(date_field).values_list(date_field, flat=True).first()
    while oldest is not None:
        batch = sizer.size
        start = oldest if skip_deleted else None
        left = rows if start is None else rows.filter(**{f"{date_field}__gte": start})
        started = time.monotonic()
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            for setting in engines.batch_settings_sql(connection):
                cursor.execute(setting)
            end = batch_end(left, date_field, batch).first()
            if end == oldest:
                deleted = delete_tied(left, date_field, batch, recheck, cursor)
            else:
                deleted = delete_dated(rows, date_field, (start, end), recheck, cursor)
        sizer.record(deleted, time.monotonic() - started)
        if deleted:
            yield deleted
        oldest = end


def batch_end(rows: models.QuerySet[Any], date_field: str, size: int) -> models.QuerySet[Any, Any]:
    """The date of the ``size + 1``-th oldest of ``rows``: the first row a batch of ``size`` leaves."""
    end: models.QuerySet[Any, Any] = rows.order_by(date_field).values_list(date_field, flat=True)[
        size : size + 1
    ]
    return end


#: A compiled WHERE condition and its parameters; ``""`` when there is none.
Condition = tuple[str, list[Any]]


def where_sql(rows: models.QuerySet[Any]) -> Condition:
    """The WHERE condition of ``rows`` (a filter on one table), compiled for its alias."""
    try:
        sql, params = rows.query.get_compiler(using=rows.db).compile(rows.query.where)
    except FullResultSet:
        return "", []
    return sql, list(params)


def delete_dated(
    rows: models.QuerySet[Any],
    date_field: str,
    span: tuple[Any, Any],
    recheck: Condition,
    cursor: Any,
) -> int:
    """DELETE the ``rows`` dated from ``span[0]`` up to ``span[1]`` (excluded; ``None``: open); the count.

    ``recheck`` is the selection's own condition, compiled once per cleanup.
    """
    connection = connections[rows.db]
    field = rows.model._meta.get_field(date_field)
    bounds = [field.get_db_prep_value(date, connection) if date is not None else None for date in span]
    sql = engines.delete_range_sql(
        connection, rows.model._meta.db_table, field.column, [date is not None for date in bounds], recheck[0]
    )
    cursor.execute(sql, [*(date for date in bounds if date is not None), *recheck[1]])
    return int(cursor.rowcount)


def delete_tied(
    rows: models.QuerySet[Any],
    date_field: str,
    size: int,
    recheck: Condition,
    cursor: Any,
) -> int:
    """Delete ``size`` of the oldest ``rows`` by key, for a date shared by more rows than a batch holds.

    The keys are selected and deleted in one statement, re-checked against
    the selection (:func:`engines.delete_keys_sql`).
    """
    model = rows.model
    pk = model._meta.pk
    keys = rows.order_by(date_field).values_list(pk.attname, flat=True)[:size]
    keys_sql, keys_params = keys.query.sql_with_params()
    sql = engines.delete_keys_sql(connections[rows.db], model._meta.db_table, pk.column, keys_sql, recheck[0])
    cursor.execute(sql, [*keys_params, *recheck[1]])
    return int(cursor.rowcount)


class TaskResultManager(ResultManager["TaskResult"]):
    """Manager for :class:`~django_celery_results.models.TaskResult`."""

    @cached_property
    def _meta_reads(self) -> ReadCache:
        table = self.model._meta.db_table
        return ReadCache(
            self.model,
            META_COLUMNS,
            lambda connection, size: engines.select_tasks_sql(connection, table, META_COLUMNS, size),
        )

    @cached_property
    def _ready_reads(self) -> ReadCache:
        table = self.model._meta.db_table
        return ReadCache(
            self.model,
            READY_COLUMNS,
            lambda connection, size: engines.select_tasks_sql(
                connection, table, READY_COLUMNS, size, ready_only=True
            ),
        )

    def meta_record(self, task_id: str) -> tuple[Any, ...] | None:
        """The :data:`codec.META_COLUMNS` of one task from the read alias, or ``None``.

        One SELECT; the values in column order, as :func:`codec.task_meta` reads them.
        """
        records = self._meta_reads.records(self.db, [check_id(self.model, "task_id", task_id)])
        return records[0] if records else None

    def ready_meta_records(self, task_ids: list[str]) -> list[tuple[Any, ...]]:
        """The :data:`codec.READY_COLUMNS` of those of ``task_ids`` in a ready state, as tuples: one SELECT.

        The caller has checked the ids (a join checks them once, not on every poll).
        """
        return self._ready_reads.records(self.db, task_ids)

    def get_task(self, task_id: str) -> TaskResult:
        """The stored result, or an unsaved PENDING instance when there is none."""
        try:
            return self.get(task_id=check_id(self.model, "task_id", task_id))
        except self.model.DoesNotExist:
            return self.model(task_id=task_id, status=states.PENDING)

    @transaction_retry(max_retries=2)
    def store_result(
        self,
        content_type: str,
        content_encoding: str,
        task_id: str,
        result: str | None,
        status: str,
        traceback: str | None = None,
        meta: str | None = None,
        periodic_task_name: str | None = None,
        task_name: str | None = None,
        task_args: str | None = None,
        task_kwargs: str | None = None,
        worker: str | None = None,
        using: str | None = None,
        **kwargs: Any,
    ) -> TaskResult:
        """Store (create or update) the result of a task in one statement.

        Values are already serialized. The write follows the state precedence
        rule of :mod:`django_celery_results.engines`: a stored SUCCESS is kept, a
        ready state is not replaced by a progress state. ``date_started``
        may be passed; ``exception_retry_count`` sets the retry budget.
        Returns the row as the database holds it after the write (read from
        the write alias): when the rule kept a stored state, that state.
        """
        values: dict[str, Any] = {
            "task_id": task_id,
            "status": status,
            "content_type": content_type,
            "content_encoding": content_encoding,
            "result": result,
            "traceback": traceback,
            "meta": meta,
            "periodic_task_name": periodic_task_name,
            "task_name": task_name,
            "task_args": task_args,
            "task_kwargs": task_kwargs,
            "worker": worker,
            "date_started": kwargs.get("date_started"),
        }
        alias = self.write_alias(using)
        self.upsert(values, using=alias)
        stored: TaskResult = self.get_queryset().using(alias).get(task_id=task_id)
        return stored

    def upsert(self, values: Mapping[str, Any], using: str | None = None) -> None:
        """Write one task's columns with the single-statement upsert.

        ``date_started`` comes from Django's clock when STARTED is stored (the
        database's clock may run in another time zone).
        """
        moment = timezone.now()
        alias = self.write_alias(using)
        connection = connections[alias]
        row = storable(self.model, {**values, "date_done": moment, "date_created": moment}, connection)
        if row.get("date_started") is None and values["status"] == states.STARTED:
            row["date_started"] = moment
        sql = engines.upsert_task_sql(
            connection,
            self.model._meta.db_table,
            list(row),
            str(values["status"]),
            [name for name in engines.KEEP_IF_NULL_COLUMNS if name in row and row[name] is None],
        )
        engines.write_row(self.model, alias, sql, row)

    def insert_if_absent(self, values: Mapping[str, Any], using: str | None = None) -> None:
        """Insert one task's row unless the task id has one already (never overwrites).

        Committed at once, beside any transaction of the caller's (``PENDING_ON_PUBLISH``
        runs inside views): a lock on the row held until the caller commits would
        hold back the worker storing the task's next state.
        """
        moment = timezone.now()
        alias = self.write_alias(using)
        dated = {**values, "date_done": moment, "date_created": moment}
        row = storable(self.model, dated, connections[alias])
        outside_transaction(
            alias,
            lambda: engines.upsert_row(self.model, alias, row, "task_id", []),
            or_after_commit=True,
        )

    def delete_task(self, task_id: str) -> None:
        """Delete one task's row (``forget``); a missing row is not an error."""
        self.get_queryset().using(self.write_alias()).filter(
            task_id=check_id(self.model, "task_id", task_id)
        ).delete()


class GroupResultManager(ResultManager["GroupResult"]):
    """Manager for :class:`~django_celery_results.models.GroupResult`."""

    def get_group(self, group_id: str) -> GroupResult | None:
        """The saved group, or ``None``."""
        return self.filter(group_id=check_id(self.model, "group_id", group_id)).first()

    @transaction_retry(max_retries=2)
    def store_group_result(
        self,
        content_type: str,
        content_encoding: str,
        group_id: str,
        result: str | None,
        using: str | None = None,
    ) -> GroupResult:
        """Save (create or replace) a group result in one statement, retried on transient errors."""
        return self.write_group(group_id, (content_type, content_encoding, result), using)

    def write_group(
        self, group_id: str, content: tuple[str, str, str | None], using: str | None = None
    ) -> GroupResult:
        """Save (create or replace) a group result in one statement; the caller decides on retries.

        ``content``: the content type, the encoding and the encoded result (``encode_content()``).
        """
        content_type, content_encoding, result = content
        values = {
            "group_id": group_id,
            "content_type": content_type,
            "content_encoding": content_encoding,
            "result": result,
        }
        moment = timezone.now()
        alias = self.write_alias(using)
        dated = {**values, "date_created": moment, "date_done": moment}
        row = storable(self.model, dated, connections[alias])
        engines.upsert_row(
            self.model,
            alias,
            row,
            "group_id",
            ["content_type", "content_encoding", "result", "date_done"],
        )
        return self.model(**row)

    def delete_group(self, group_id: str) -> None:
        """Delete a saved group; a missing group is not an error."""
        self.get_queryset().using(self.write_alias()).filter(
            group_id=check_id(self.model, "group_id", group_id)
        ).delete()


class PartOutcome(enum.Enum):
    """What counting one finished chord part did."""

    COUNTED = "counted"  # more parts to go
    LAST = "last"  # this part completed the header: send the callback
    ALREADY = "already"  # counted before (a redelivery), or the chord already completed
    NO_COUNTER = "no counter"  # never applied here, or its counter expired (told once per chord)


class ChordCounterManager(AliasedManager["ChordCounter"]):
    """Manager for :class:`~django_celery_results.models.ChordCounter`."""

    def for_write(self) -> models.QuerySet[ChordCounter]:
        """Counters as the write alias has them (never a lagging replica)."""
        counters: models.QuerySet[ChordCounter] = self.model._base_manager.using(self.write_alias())
        return counters

    def start(self, group_id: str, sub_tasks: str, count: int, part_ids: Sequence[str] = ()) -> None:
        """Create the counter of a chord, or reset it when the group id is applied again.

        Resetting also removes the part rows counted under that group id, in
        the same transaction. Where the engine counts a part by flipping its
        row (:func:`engines.prepares_chord_parts`), the rows of ``part_ids``
        are written then, not counted. Celery sends the header tasks right after this;
        when the caller is in a transaction (a view under ``ATOMIC_REQUESTS``,
        say), the counter is written and committed on a connection of its own,
        so the header tasks find it however long the caller's transaction lasts.
        """
        check_id(self.model, "group_id", group_id)
        alias = self.write_alias()
        row = {
            "group_id": group_id,
            "sub_tasks": sub_tasks,
            "count": count,
            "counted_parts": "|",
            "date_created": timezone.now(),
        }
        updated = ["sub_tasks", "count", "counted_parts", "date_created"]

        ahead = []
        if engines.prepares_chord_parts(connections[alias]):
            ahead = self._parts_ahead(group_id, part_ids)

        def write() -> None:
            with transaction.atomic(using=alias):
                self.parts(alias).filter(group_id=group_id).delete()
                engines.upsert_row(self.model, alias, row, "group_id", updated)
                self.parts(alias).bulk_create(ahead, batch_size=PARTS_AHEAD_PER_STATEMENT)

        outside_transaction(alias, write)

    @staticmethod
    def _parts_ahead(group_id: str, part_ids: Sequence[str]) -> list[ChordPart]:
        """A row not counted yet for each distinct id a part row can hold."""
        from .models import ChordPart

        limit = app_settings.task_id_max_length
        ids = dict.fromkeys(part_id for part_id in part_ids if 0 < len(part_id) <= limit)
        return [ChordPart(group_id=group_id, task_id=part_id, counted=False) for part_id in ids]

    def parts(self, alias: str | None = None) -> models.QuerySet[ChordPart]:
        """The counted part rows (:class:`~django_celery_results.models.ChordPart`), on the counters' alias.

        Part rows always live beside their counter: counting a part writes
        both in one statement or transaction. Rows written ahead and not
        counted yet are among them (``counted`` false).
        """
        from .models import ChordPart

        parts: models.QuerySet[ChordPart] = ChordPart._base_manager.using(alias or self.write_alias())
        return parts

    @transaction_retry(max_retries=2)
    def resize(self, group_id: str, size: int) -> None:
        """Set the number of parts, counting what already finished (``set_chord_size``).

        Celery calls this while the first parts already finish on workers. The
        counter's row lock is taken first, by a no-op UPDATE; the part rows are
        counted after it, so every part that decremented before is seen and
        every later one decrements the new count (an UPDATE counting in its
        own statement would, on PostgreSQL, miss a part committed while it
        waited for the lock, and the chord would never complete). Committed
        at once even inside the caller's transaction, as :meth:`start` is.
        """
        alias = self.write_alias()
        counters = self.for_write().filter(group_id=group_id)
        counted = (
            self.parts(alias)
            .filter(group_id=group_id, counted=True)
            .order_by()
            .annotate(
                n=Func(models.F("id"), function="COUNT", output_field=models.IntegerField()),
            )
            .values("n")
        )
        finished = Coalesce(Subquery(counted, output_field=models.IntegerField()), Value(0))

        def write() -> None:
            with transaction.atomic(using=alias):
                if counters.update(count=models.F("count")):
                    counters.update(
                        count=Greatest(Value(size) - finished, Value(0), output_field=models.IntegerField()),
                    )

        outside_transaction(alias, write)

    def add_part(self, group_id: str, part: Any) -> None:
        """One more part to wait for (``add_to_chord``), in one UPDATE."""
        text = models.TextField()
        item = Value(json.dumps(part), output_field=text)
        body = Substr("sub_tasks", 1, Length("sub_tasks") - 1, output_field=text)
        appended = Case(
            When(
                sub_tasks="[]",
                then=Concat(Value("[", output_field=text), item, Value("]"), output_field=text),
            ),
            default=Concat(body, Value(", ", output_field=text), item, Value("]"), output_field=text),
            output_field=text,
        )
        self.for_write().filter(group_id=group_id).update(count=models.F("count") + 1, sub_tasks=appended)

    @transaction_retry(max_retries=2)
    def part_done(self, group_id: str, task_id: str) -> PartOutcome:
        """Count one finished part of ``group_id``'s header, once per part id, at a constant cost.

        The part's row is inserted (a duplicate is ignored) and only a new row
        decrements the counter, both atomically (:func:`engines.count_chord_part`):
        one statement on PostgreSQL, a short transaction elsewhere. The unique
        key on the part rows and the row lock on the counter make exactly one
        caller see the count reach zero, so the callback fires once. A
        deadlock or serialization failure left nothing behind, so it is retried.
        """
        from .models import ChordPart

        check_id(ChordPart, "group_id", group_id)
        check_id(ChordPart, "task_id", task_id)
        alias = self.write_alias()
        done = engines.count_chord_part(
            connections[alias],
            self.model._meta.db_table,
            ChordPart._meta.db_table,
            group_id,
            task_id,
        )
        if done.counted:
            return PartOutcome.LAST if done.last else PartOutcome.COUNTED
        exists = done.counter_exists
        if exists is None:
            exists = self.for_write().filter(group_id=group_id).exists()
        if exists or not self._record_missing(group_id):
            return PartOutcome.ALREADY
        return PartOutcome.NO_COUNTER

    def _record_missing(self, group_id: str) -> bool:
        """Leave a completed (count 0) counter for a chord that had none; True for the one caller that did.

        The parts after the first to find the counter missing then find this
        one, so the callback is failed once, not once per remaining part;
        cleanup removes it like any completed counter.
        """
        alias = self.write_alias()
        try:
            with transaction.atomic(using=alias):
                self.model._base_manager.using(alias).create(
                    group_id=group_id,
                    sub_tasks="[]",
                    count=0,
                    counted_parts="|",
                )
        except IntegrityError:
            return False
        return True

    def dateless(self) -> models.QuerySet[ChordCounter]:
        """Counters without a creation date (inserted by code that predates the column)."""
        dateless: models.QuerySet[ChordCounter] = self.for_write().filter(date_created__isnull=True)
        return dateless

    def expired(self, moment: datetime) -> models.QuerySet[ChordCounter]:
        """Counters cleanup removes: completed before ``moment``, or given up waiting.

        A counter still waiting for parts stays until it is also older than
        ``WAITING_CHORD_EXPIRES``: without it its chord could never complete.
        """
        given_up = min(moment, timezone.now() - app_settings.waiting_chord_expires)
        expired: models.QuerySet[ChordCounter] = self.for_write().filter(
            models.Q(date_created__lt=moment, count=0) | models.Q(date_created__lt=given_up)
        )
        return expired
