"""``result_backend = "django-db"``: task results in the database, through the ORM."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, wraps
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from celery import maybe_signature, states
from celery.backends.base import Backend, BaseDictBackend
from celery.exceptions import ChordError, TimeoutError
from celery.result import GroupResult, allow_join_result, result_from_tuple
from celery.utils.log import get_logger
from django.db import connections, router
from django.utils.functional import classproperty

from .. import codec, engines, notify
from ..exceptions import UnstorableText, ValueTooLong
from ..managers import PartOutcome, reset_connections, result_aliases
from ..values import check_id, check_ids
from .chords import GroupBodyFailures

if TYPE_CHECKING:
    from ..models import ChordCounter, TaskResult
    from ..models import GroupResult as GroupResultModel

logger = get_logger(__name__)

#: Celery >= 5.7 calls ``on_backend_retryable_error`` before each retry. Older
#: releases retry without it, so the backend resets broken connections itself.
CELERY_CALLS_RETRY_HOOK = hasattr(Backend, "on_backend_retryable_error")

F = TypeVar("F", bound=Callable[..., Any])


def reconnects_when_lost(method: F) -> F:
    """Run ``method`` once more on a new connection when the session was lost; reset it for Celery's retry.

    A worker keeps its connection between tasks (``CONN_MAX_AGE``), and the
    worker's main process stores revokes, time limits and lost workers outside
    any task hook that would refresh it: when the server has closed the idle
    session meanwhile, the state is still stored, with or without
    ``result_backend_always_retry``. Other transient errors go to Celery's
    retry; Celery < 5.7 calls no hook before it, so the backend resets the
    connections itself.
    """

    @wraps(method)
    def call(self: DatabaseBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if not (engines.is_lost_connection(exc) and self._reconnectable()):
                if not CELERY_CALLS_RETRY_HOOK and engines.is_transient_error(exc):
                    self.on_backend_retryable_error(exc)
                raise
            logger.info("Database connection lost (%s); storing again on a new connection", exc)
            self.on_backend_retryable_error(exc)
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if not CELERY_CALLS_RETRY_HOOK and engines.is_transient_error(exc):
                self.on_backend_retryable_error(exc)
            raise

    return call  # type: ignore[return-value]


#: True while reads must see the primary's latest writes (a chord's join): they go to the write alias.
_reading_own_writes: ContextVar[bool] = ContextVar("dcr_reading_own_writes", default=False)


@contextmanager
def reading_own_writes() -> Iterator[None]:
    """Route this context's result reads to the write alias: a lagging replica may not have them yet."""
    token = _reading_own_writes.set(True)
    try:
        yield
    finally:
        _reading_own_writes.reset(token)


#: Longest pause within the first second of a wait: a result stored then is seen within ~40 ms.
FIRST_SECOND_CAP = 0.04


def poll_pauses(first: float, ceiling: float) -> Iterator[float]:
    """Pauses between polls (used by get() and join_native()): ``first``, then growing by half.

    Within the first second pauses stay under :data:`FIRST_SECOND_CAP`, so a
    quick result is seen quickly; after it they are ``ceiling`` (few queries).
    """
    pause = min(first, FIRST_SECOND_CAP, ceiling)
    elapsed = 0.0
    while True:
        yield pause
        elapsed += pause
        # Capped for the first second, then straight to the caller's interval.
        pause = min(pause * 1.5, FIRST_SECOND_CAP, ceiling) if elapsed < 1.0 else ceiling


def wait_pauses(listener: notify.Waiter | None, first: float, interval: float) -> Iterator[float]:
    """Pauses between reads of a wait: ``interval`` while notifications are trusted, else polling.

    A listener is trusted once it heard its probe; until then, and behind a
    pooler where it never will, the reads poll (:func:`poll_pauses`).
    """
    polls = poll_pauses(first, interval)
    while True:
        yield interval if listener is not None and listener.trusted() else next(polls)


def _within(deadline: float | None, pause: float) -> float:
    """``pause``, shortened so as not to sleep past ``deadline``; TimeoutError once it has passed."""
    if deadline is None:
        return pause
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("The operation timed out.")
    return min(pause, left)


@cache
def _models() -> ModuleType:
    """The models module, imported on first use (the backend may be built before ``django.setup()``)."""
    from .. import models

    return models


class DatabaseBackend(GroupBodyFailures, BaseDictBackend):  # type: ignore[misc]  # Celery is untyped
    """Celery result backend storing results in Django's database.

    The models are imported when first used, so the backend can be built
    before ``django.setup()``.
    """

    subpolling_interval = 0.5

    #: ``GroupResult.join_native()`` polls many ids per query (:meth:`get_many`).
    supports_native_join = True

    #: Ids asked for in one query by :meth:`get_many`.
    ids_per_query = 1000

    #: First pause of a waiting ``get()``/``join_native()``; pauses then grow by
    #: half up to the caller's ``interval``: a result stored a moment after the
    #: first look is seen within milliseconds, and a long wait costs few queries.
    first_poll_interval = 0.002

    @classproperty
    def TaskModel(cls) -> type[TaskResult]:
        return cast("type[TaskResult]", _models().TaskResult)

    @classproperty
    def GroupModel(cls) -> type[GroupResultModel]:
        return cast("type[GroupResultModel]", _models().GroupResult)

    @classproperty
    def ChordCounterModel(cls) -> type[ChordCounter]:
        return cast("type[ChordCounter]", _models().ChordCounter)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.codec = codec.Codec(self.serializer, self.accept)
        #: Task ids already reported as unstorable (see :meth:`_unstorable_id_logged`).
        self._refused_ids: set[str] = set()

    @property
    def result_extended(self) -> bool:
        """Celery's ``result_extended``, looked up once: it is read on every write."""
        cached = self.__dict__.get("_result_extended")
        if cached is None:
            cached = self.__dict__["_result_extended"] = bool(
                self.app.conf.find_value_for_key("extended", "result")
            )
        return cached

    # -- retries ------------------------------------------------------------

    def exception_safe_to_retry(self, exc: BaseException) -> bool:
        """True for transient database errors (lost connection, deadlock...); no side effect."""
        return engines.is_transient_error(exc)

    def on_backend_retryable_error(self, exc: BaseException) -> None:
        """Before a retry, drop the connections of the aliases results use (outside a transaction)."""
        reset_connections(result_aliases())

    def _reconnectable(self) -> bool:
        """No result alias is inside a transaction: a lost session can be replaced without losing one."""
        return not any(connections[alias].in_atomic_block for alias in result_aliases())

    def current_task_children(self, request: Any = None) -> list[Any] | None:
        """The running task's children, as Celery stores them; results only (a mock's are ignored)."""
        if request is None:
            # None: Celery's base reads the current task's request.
            return cast("list[Any] | None", super().current_task_children(request))
        children = getattr(request, "children", None)
        if not isinstance(children, (list, tuple)):
            return None
        return [child.as_tuple() for child in children if callable(getattr(child, "as_tuple", None))]

    # -- content ------------------------------------------------------------

    def encode_content(self, data: Any) -> tuple[str, str, str]:
        """Serialize ``data``: ``(content_type, content_encoding, text)``."""
        return self.codec.encode(data)

    def decode_content(self, obj: Any, content: str | None) -> Any:
        """Decode one column of ``obj`` (a row holding ``content_type``/``content_encoding``)."""
        return self.codec.decode(obj.content_type, obj.content_encoding, content)

    # -- tasks ----------------------------------------------------------------

    @reconnects_when_lost
    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        using: str | None = None,
        **kwargs: Any,
    ) -> Any:
        values = codec.task_values(
            self.codec,
            task_id=task_id,
            status=state,
            result=result,
            traceback=traceback,
            request=request,
            children=self.current_task_children(request),
            extended=self.result_extended,
        )
        with self._unstorable_id_logged(task_id):
            self.TaskModel._default_manager.upsert(values, using=using)
        return result

    @contextmanager
    def _unstorable_id_logged(self, task_id: str) -> Iterator[None]:
        """Turn the write's refusal of ``task_id`` itself into one log line per id and process.

        Raising instead would fail each store of the task in the worker (the
        STARTED one, then the failure Celery tries to store for that error),
        filling the log and, in a prefork worker, reaching the parent process.
        Readers of the id get the error instead: see :meth:`_get_task_meta_for`.
        Any other refusal (a result too large, say) is raised: Celery stores it as the failure.
        """
        try:
            yield
        except (ValueTooLong, UnstorableText) as error:
            if error.field != "task_id":
                raise
            if task_id not in self._refused_ids:
                if len(self._refused_ids) >= 1000:
                    self._refused_ids.clear()
                self._refused_ids.add(task_id)
                logger.error("Task %.60s... cannot have a result: %s", task_id, error)

    def store_pending(self, task_id: str, request: Any) -> None:
        """Record a task that was just sent, unless a row for it exists already (one statement)."""
        values = codec.task_values(
            self.codec,
            task_id=task_id,
            status=states.PENDING,
            result=None,
            traceback=None,
            request=request,
            children=None,
            extended=self.result_extended,
        )
        with self._unstorable_id_logged(task_id):
            self.TaskModel._default_manager.insert_if_absent(values)

    def _task_reader(self, fresh: bool = False) -> Any:
        """The task manager reads go through: the read alias's, or the write alias's when ``fresh``.

        Fresh reads follow a notification (sent by the primary on commit) and a
        chord's join (:func:`reading_own_writes`): a replica may lag behind both.
        """
        manager = self.TaskModel._default_manager
        if fresh or _reading_own_writes.get():
            return manager.db_manager(router.db_for_write(self.TaskModel))
        return manager

    @reconnects_when_lost
    def _get_task_meta_for(self, task_id: str, fresh: bool = False) -> dict[str, Any]:
        # An id that can never be stored raises here (check_id): a caller waiting on it would wait forever.
        record = self._task_reader(fresh).meta_record(task_id)
        if record is None:
            return cast(
                "dict[str, Any]",
                self.meta_from_decoded(
                    {
                        "task_id": task_id,
                        "status": states.PENDING,
                        "result": None,
                        "traceback": None,
                        "children": None,
                        "date_done": None,
                    }
                ),
            )
        return cast("dict[str, Any]", self.meta_from_decoded(codec.task_meta(self.codec, record)))

    def _ready_metas(self, task_ids: Iterable[str], fresh: bool = False) -> list[dict[str, Any]]:
        """Join meta (:func:`codec.ready_meta`) of those of ``task_ids`` in a ready state.

        One query per :attr:`ids_per_query` ids; from the write alias when ``fresh``.
        """
        ids = list(task_ids)
        manager = self._task_reader(fresh)
        found: list[dict[str, Any]] = []
        decode, with_exception = self.codec, self.meta_from_decoded
        for start in range(0, len(ids), self.ids_per_query):
            records = manager.ready_meta_records(ids[start : start + self.ids_per_query])
            found.extend(with_exception(codec.ready_meta(decode, record)) for record in records)
        return found

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Callable[[], Any] | None = None,
    ) -> dict[str, Any]:
        """Wait until the task is ready (``AsyncResult.get()``).

        On PostgreSQL the wait ends when the result's notification arrives
        (the row is still read every ``interval``, in case a writer did not
        announce it); elsewhere the row is polled, fast at first, then backing
        off to ``interval``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        # get_task_meta checks the app is not eager, as Celery's wait_for does.
        meta: dict[str, Any] = self.get_task_meta(task_id)
        if meta["status"] in states.READY_STATES:
            return meta
        # Notifications are sent where results are written; a hot standby
        # replica could not LISTEN anyway.
        alias = router.db_for_write(self.TaskModel)
        with notify.result_waiter(alias, [task_id]) as listener:
            # Registered before the next read: a result stored meanwhile is
            # either read or announced (the shared listener wakes us).
            pauses = wait_pauses(listener, self.first_poll_interval, interval)
            # Read where results are written first (one stored before the listener
            # was registered is not announced), then after each announcement; a
            # replica routed reads may lag behind both.
            woken = listener is not None
            for pause in pauses:
                meta = self._get_task_meta_for(task_id, fresh=True) if woken else self.get_task_meta(task_id)
                if meta["status"] in states.READY_STATES:
                    return meta
                if on_interval:
                    on_interval()
                pause = _within(deadline, pause)
                if listener is None:
                    time.sleep(pause)
                else:
                    woken = listener.wait(pause)
        raise AssertionError("unreachable")  # pragma: no cover - poll_pauses never ends

    def get_many(
        self,
        task_ids: Iterable[str],
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        max_iterations: int | None = None,
        READY_STATES: frozenset[str] = states.READY_STATES,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(task_id, meta)`` as the tasks become ready: one query per poll of all of them."""
        pending = check_ids(self.TaskModel, "task_id", task_ids)
        if self._cache:  # Celery's result cache (result_cache_max): empty unless enabled
            for task_id in list(pending):
                cached = self._cache.get(task_id)
                if cached is not None and cached["status"] in READY_STATES:
                    pending.discard(task_id)
                    yield task_id, cached
        deadline = None if timeout is None else time.monotonic() + timeout
        # Finished tasks cost one query and no listener; the waiter is registered only when some are not.
        yield from self._ready_now(pending, on_message)
        if not pending or max_iterations == 1:
            return
        alias = router.db_for_write(self.TaskModel)
        with notify.result_waiter(alias, pending) as listener:
            yield from self._poll_many(
                pending, listener, deadline, interval, on_message, on_interval, max_iterations
            )

    def _ready_now(
        self,
        pending: set[str],
        on_message: Callable[[dict[str, Any]], Any] | None,
        fresh: bool = False,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """One poll: yield the ready ones of ``pending`` and remove them from it."""
        for meta in self._ready_metas(pending, fresh):
            task_id = meta["task_id"]
            pending.discard(task_id)
            if on_message is not None:
                on_message(meta)
            yield task_id, meta

    def _poll_many(
        self,
        pending: set[str],
        listener: notify.Waiter | None,
        deadline: float | None,
        interval: float,
        on_message: Callable[[dict[str, Any]], Any] | None,
        on_interval: Callable[[], Any] | None,
        max_iterations: int | None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """The polls of :meth:`get_many` after its first: woken early by notifications on PostgreSQL.

        With a listener the first of them reads at once: a result stored before
        the waiter was registered is read rather than announced.
        """
        pauses = wait_pauses(listener, self.first_poll_interval, interval)
        woken = listener is not None  # as in wait_for(): fresh first, then after each announcement
        for iteration, pause in enumerate(pauses, 2):
            if listener is None or iteration > 2:
                if on_interval:
                    on_interval()
                if listener is None:
                    time.sleep(_within(deadline, pause))
                else:
                    woken = listener.wait(_within(deadline, pause))
            yield from self._ready_now(pending, on_message, fresh=woken)
            if not pending or (max_iterations and iteration >= max_iterations):
                return

    def task_result_exists(self, task_id: str) -> bool:
        """True when a row exists for ``task_id`` (even a PENDING one)."""
        exists: bool = self.TaskModel._default_manager.filter(
            task_id=check_id(self.TaskModel, "task_id", task_id),
        ).exists()
        return exists

    @reconnects_when_lost
    def _forget(self, task_id: str) -> None:
        self.TaskModel._default_manager.delete_task(task_id)

    # -- groups ---------------------------------------------------------------

    @reconnects_when_lost
    def _save_group(self, group_id: str, result: GroupResult) -> GroupResult:
        # Retried by Celery (result_backend_always_retry), not once more here.
        self.GroupModel._default_manager.write_group(group_id, self.encode_content(result.as_tuple()))
        return result

    @reconnects_when_lost
    def _restore_group(self, group_id: str) -> dict[str, Any] | None:
        groups = self.GroupModel._default_manager
        group = groups.get_group(group_id)
        write_alias = router.db_for_write(self.GroupModel)
        if group is None and groups.db != write_alias:
            # Saved a moment ago, perhaps: a lagging replica does not have it yet.
            group = groups.db_manager(write_alias).get_group(group_id)
        if group is None:
            return None
        stored = self.decode_content(group, group.result)
        return {
            "group_id": group.group_id,
            "result": result_from_tuple(stored, app=self.app) if stored else None,
            "date_done": group.date_done,
        }

    @reconnects_when_lost
    def _delete_group(self, group_id: str) -> None:
        self.GroupModel._default_manager.delete_group(group_id)

    def cleanup(self) -> None:
        """Delete expired task results, group results and chord counters (``result_expires``)."""
        if not self.expires:
            return
        from ..cleanup import delete_expired_results

        delete_expired_results(self.expires)

    # -- chords ---------------------------------------------------------------

    def apply_chord(self, header_result_args: Any, body: Any, **kwargs: Any) -> None:
        """Start counting the parts of a chord header."""
        if isinstance(header_result_args, GroupResult):
            header = header_result_args
        else:
            header = self.app.GroupResult(*header_result_args)
        parts = [r.as_tuple() for r in header]
        size = body.get("chord_size") or len(parts)
        counters = self.ChordCounterModel._default_manager
        counters.start(header.id, json.dumps(parts), size, plain_task_ids(parts) or ())

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        """Celery tells the real number of parts (nested groups count their leaves)."""
        self.ChordCounterModel._default_manager.resize(group_id, chord_size)

    def add_to_chord(self, chord_id: str, result: Any) -> None:
        """A header task replaced itself by more work: one more part to wait for."""
        self.ChordCounterModel._default_manager.add_part(chord_id, result.as_tuple())

    def on_chord_part_return(self, request: Any, state: str, result: Any, **kwargs: Any) -> None:
        """Count a finished header part; the part that completes the header sends the callback.

        A redelivered part counts once. The counter is kept at zero (until
        ``cleanup()``), so a duplicate arriving after completion is ignored too.
        """
        group_id, task_id = getattr(request, "group", None), getattr(request, "id", None)
        if not isinstance(group_id, str) or not isinstance(task_id, str) or not group_id or not task_id:
            return
        counters = self.ChordCounterModel._default_manager
        outcome = counters.part_done(group_id, task_id)
        if outcome is PartOutcome.COUNTED or outcome is PartOutcome.ALREADY:
            return
        callback = maybe_signature(request.chord, app=self.app)
        if outcome is PartOutcome.NO_COUNTER:
            logger.error("Chord %s has no counter; its callback is marked failed", group_id)
            try:
                raise ChordError(
                    f"Chord {group_id} cannot complete: its counter is missing "
                    "(never applied with this result backend, or removed by cleanup)"
                )
            except ChordError as error:  # raised so the failure carries a traceback
                self.chord_error_from_stack(callback, error)
            return
        # From the alias just written: a replica may not have the counter yet.
        fire_callback(self.app, callback, counters.for_write().get(group_id=group_id))

    def join_header(self, task_ids: list[str], timeout: float | None) -> list[Any]:
        """The values of ``task_ids`` in order, as ``join_native(propagate=True)`` returns them.

        A chord of plain tasks is joined without building a result object per
        part (Celery's cost for thousands of parts exceeds the query's).
        """
        values: dict[str, Any] = {}
        for task_id, meta in self.get_many(task_ids, timeout=timeout):
            if meta["status"] in states.PROPAGATE_STATES:
                raise meta["result"]
            values[task_id] = meta["result"]
        return [values[task_id] for task_id in task_ids]


def plain_task_ids(items: list[Any]) -> list[str] | None:
    """The ids of a header of plain tasks (Celery's result tuples); ``None`` when a member is a group."""
    ids = []
    for result, nodes in items:
        if nodes:
            return None
        ids.append(result[0] if isinstance(result, (list, tuple)) else result)
    return ids


def fire_callback(app: Any, callback: Any, counter: ChordCounter) -> None:
    """Join the header and send the callback; on any failure mark the callback failed.

    The callback is never dropped silently: the chord's result shows a
    :class:`~celery.exceptions.ChordError` that names the cause and carries it
    as ``__cause__`` (Celery >= 5.6 fails each task of a group body with it).
    """
    timeout = app.conf.result_chord_join_timeout
    ids = plain_task_ids(json.loads(counter.sub_tasks))
    try:
        with allow_join_result(), reading_own_writes():
            if ids is not None and isinstance(app.backend, DatabaseBackend):
                values = app.backend.join_header(ids, timeout)
            else:
                header = counter.group_result(app=app)
                join = header.join_native if header.supports_native_join else header.join
                values = join(timeout=timeout, propagate=True)
    except Exception as exc:
        header = counter.group_result(app=app)
        culprit = next((r for r in header.results if r.state in states.PROPAGATE_STATES), None)
        reason = f"Dependency {culprit.id} raised {exc!r}" if culprit else repr(exc)
        logger.exception("Chord %s failed: %s", counter.group_id, reason)
        app.backend.chord_error_from_stack(callback, chord_error(reason, exc))
        return
    try:
        callback.delay(values)
    except Exception as exc:
        logger.exception("Chord %s: the callback could not be sent", counter.group_id)
        app.backend.chord_error_from_stack(callback, chord_error(f"Callback error: {exc!r}", exc))


def chord_error(reason: str, cause: BaseException) -> ChordError:
    """A :class:`ChordError` whose ``__cause__`` is what made the chord fail, as if raised ``from`` it."""
    error = ChordError(reason)
    error.__cause__ = cause
    return error
