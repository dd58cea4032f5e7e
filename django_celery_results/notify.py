"""One shared PostgreSQL ``LISTEN`` connection per process and database alias.

Every waiting ``get()`` of a process registers its task id with the alias's
:class:`Dispatcher`; one daemon thread reads the notifications and wakes the
waiters, so 50 waiting threads hold one listening connection, not 50.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from django.db import connections

from .conf import app_settings
from .engines import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)

#: application_name of the listening connection (psycopg only), to find it in pg_stat_activity.
APPLICATION_NAME = "dcr-listener"

#: Pause before reopening a lost listening connection; waiters poll meanwhile.
REOPEN_PAUSE = 0.5

#: How long a new listener waits for its own probe notification (it comes within
#: milliseconds when LISTEN works); without it the alias's waits poll instead.
PROBE_TIMEOUT = 1.0
#: How long the first wait on a new listener gives it to hear its probe before
#: reading on: waits poll until the probe is heard, so a deaf listener (a pooler)
#: delays none of them by :data:`PROBE_TIMEOUT`.
SETTLE_WAIT = 0.1

#: Aliases whose notifications do not reach a listener (a pooler in transaction
#: mode between us and the server): their waits poll, in this process, from then on.
_deaf_aliases: set[str] = set()


class Waiter:
    """What one waiting call is woken by: any of its ids being announced."""

    def __init__(self, task_ids: Iterable[str], heard: threading.Event) -> None:
        self.task_ids = set(task_ids)
        self.event = threading.Event()
        self._heard = heard

    def trusted(self) -> bool:
        """Notifications reach this waiter now (its listener is in place and heard its probe)."""
        return self._heard.is_set()

    def wait(self, timeout: float) -> bool:
        """True when woken within ``timeout`` (the event is then reset for the next wait)."""
        woken = self.event.wait(timeout)
        self.event.clear()
        return woken


class Dispatcher:
    """The alias's listening connection and the thread handing its notifications out."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        # Written to by stop(): the thread's select() returns at once, not after its timeout.
        self.wakeup_read, self.wakeup_write = os.pipe()
        self.lock = threading.Lock()
        self.waiters: dict[str, set[Waiter]] = {}
        self.raw: Any = None
        self.stopped = threading.Event()
        #: Set while the LISTEN is in place and known to be heard (its probe came back).
        self.heard = threading.Event()
        #: Set once the probe concluded either way, or the thread ended without one.
        self.probed = threading.Event()
        #: Under Django's tests: stop as soon as the probe concludes if no call waits then.
        self.close_when_probed = False
        self.thread = threading.Thread(target=self._run, name=f"dcr-listener-{alias}", daemon=True)
        self.thread.start()

    def register(self, waiter: Waiter) -> None:
        with self.lock:
            for task_id in waiter.task_ids:
                self.waiters.setdefault(task_id, set()).add(waiter)

    def unregister(self, waiter: Waiter) -> None:
        with self.lock:
            for task_id in waiter.task_ids:
                found = self.waiters.get(task_id)
                if found is not None:
                    found.discard(waiter)
                    if not found:
                        del self.waiters[task_id]

    def _open(self) -> Any:
        wrapper = connections[self.alias]
        params = dict(wrapper.get_connection_params())
        params.setdefault("application_name", APPLICATION_NAME)
        raw = wrapper.get_new_connection(params)
        raw.autocommit = True
        with raw.cursor() as cursor:
            cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return raw

    def _hears_probe(self, raw: Any) -> bool:
        """Whether a notification sent from another connection reaches ``raw``.

        Behind a pooler in transaction mode (PgBouncer) the LISTEN stays on a
        server connection that is handed to other clients: nothing reaches us.
        """
        wrapper = connections[self.alias]
        probe = f"dcr-probe-{uuid.uuid4().hex}"
        sender = wrapper.get_new_connection(wrapper.get_connection_params())
        try:
            sender.autocommit = True
            with sender.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, probe])
        finally:
            sender.close()
        deadline = time.monotonic() + PROBE_TIMEOUT
        while (left := deadline - time.monotonic()) > 0 and not self.stopped.is_set():
            payloads = self._read(raw, left)
            if probe in payloads:
                self._wake(payloads)
                return True
            self._wake(payloads)
        return False

    def _read(self, raw: Any, timeout: float) -> set[str]:
        """Payloads received within ``timeout`` (or until :meth:`stop`): psycopg 3 or psycopg2."""
        readable = select.select([raw.fileno(), self.wakeup_read], [], [], timeout)[0]
        if raw.fileno() not in readable:
            return set()
        if callable(getattr(raw, "notifies", None)):
            return {n.payload for n in raw.notifies(timeout=0)}
        raw.poll()
        payloads = {n.payload for n in raw.notifies}
        raw.notifies.clear()
        return payloads

    def _wake(self, payloads: set[str]) -> None:
        with self.lock:
            for task_id in payloads:
                for waiter in self.waiters.get(task_id, ()):
                    waiter.event.set()

    def _run(self) -> None:
        try:
            self._listen()
        finally:
            self.probed.set()
            self._drop(close=True)

    def _listen(self) -> None:
        while not self.stopped.is_set():
            try:
                if self.raw is None:
                    self.raw = self._open()
                    if not self.probed.is_set():
                        if not self._hears_probe(self.raw):
                            if not self.stopped.is_set():  # stopped while probing proves nothing
                                self._go_deaf()
                            return
                        self.probed.set()
                        if self.close_when_probed and _forget_if_idle(self.alias, self):
                            self.stopped.set()
                            self._close_pipe()  # forgotten: no stop() will close it
                            return
                    # Waiters read once more (a result stored before the LISTEN was in
                    # place is read, not announced), then rely on the notifications.
                    self._wake_all()
                    self.heard.set()
                self._wake(self._read(self.raw, 0.5))
            except Exception:  # lost connection, server restart: waiters poll until reopened
                self.heard.clear()
                self._drop(close=True)
                self.stopped.wait(REOPEN_PAUSE)

    def _go_deaf(self) -> None:
        """Notifications do not come through this alias: say so once, and let every waiter poll."""
        if self.alias not in _deaf_aliases:
            _deaf_aliases.add(self.alias)
            logger.warning(
                "No notification reaches a LISTEN on database alias %r (a pooler in transaction "
                "mode?): waiting for results polls instead. Name a direct alias in "
                'DJANGO_CELERY_RESULTS["LISTEN_DATABASE"] to be woken at once.',
                self.alias,
            )
        self._wake_all()

    def _wake_all(self) -> None:
        with self.lock:
            for waiters in self.waiters.values():
                for waiter in waiters:
                    waiter.event.set()

    def _drop(self, close: bool) -> None:
        raw, self.raw = self.raw, None
        if raw is not None and close:
            with suppress(Exception):
                raw.close()

    def idle(self) -> bool:
        """No call is waiting."""
        with self.lock:
            return not self.waiters

    def stop(self) -> None:
        self.stopped.set()
        os.write(self.wakeup_write, b"x")
        self.thread.join(2)
        self._drop(close=True)
        self._close_pipe()

    def _close_pipe(self) -> None:
        for end in (self.wakeup_read, self.wakeup_write):
            with suppress(OSError):
                os.close(end)


_dispatchers: dict[str, Dispatcher] = {}
#: Connections inherited over a fork: kept referenced so that no finalizer closes the parent's socket.
_inherited: list[Any] = []
_lock = threading.Lock()


def dispatcher(alias: str) -> Dispatcher:
    """The alias's shared dispatcher, started on first use."""
    with _lock:
        found = _dispatchers.get(alias)
        if found is None or not found.thread.is_alive():
            found = _dispatchers[alias] = Dispatcher(alias)
        return found


@contextmanager
def result_waiter(alias: str, task_ids: Iterable[str]) -> Iterator[Waiter | None]:
    """A waiter woken when one of ``task_ids`` is stored through ``alias``; ``None`` without push.

    Registered before the caller's next read of the rows, so a result stored
    meanwhile is either read or announced.
    """
    alias = app_settings.listen_database or alias
    if connections[alias].vendor != "postgresql" or alias in _deaf_aliases:
        yield None
        return
    shared = dispatcher(alias)
    waiter = Waiter(task_ids, shared.heard)
    shared.register(waiter)
    # A new listener hears its probe within milliseconds when LISTEN works: then
    # the caller's next read comes after the LISTEN, and nothing needs reading
    # twice. Otherwise the caller polls until it is heard (see Waiter.trusted).
    if shared.heard.wait(SETTLE_WAIT):
        waiter.event.clear()
    try:
        yield waiter
    finally:
        shared.unregister(waiter)
        if _under_django_tests() and shared.idle():
            _close(alias, shared)


def _under_django_tests() -> bool:
    """Django's test environment is set up (``setup_test_environment``: its runner, pytest-django).

    There the listener closes when its last waiter leaves: a connection left
    open to the test database would make dropping it fail at the end of the run.
    """
    from django.test import utils

    return hasattr(getattr(utils, "_TestState", None), "saved_data")


def _close(alias: str, shared: Dispatcher) -> None:
    """Stop ``shared`` and forget it, unless another waiter has started using it meanwhile.

    A probe still in flight is let conclude (within :data:`PROBE_TIMEOUT`), and
    the listener then stops itself: stopping it now would leave a deaf alias
    unknown, probed again by every wait.
    """
    if not shared.probed.is_set():
        shared.close_when_probed = True
        if not shared.probed.is_set():
            return
    if _forget_if_idle(alias, shared):
        shared.stop()


def _forget_if_idle(alias: str, shared: Dispatcher) -> bool:
    """Forget ``shared`` when it is the alias's listener and no call waits on it; whether it was."""
    with _lock:
        if _dispatchers.get(alias) is not shared or not shared.idle():
            return False
        del _dispatchers[alias]
        return True


def close_all() -> None:
    """Close the process's listening connections (at exit, and before dropping their database)."""
    with _lock:
        found = list(_dispatchers.values())
        _dispatchers.clear()
    for shared in found:
        shared.stop()


def _forget_after_fork() -> None:
    """In a forked child: forget the parent's listeners without closing their shared sockets.

    A close() here would send psycopg's Terminate on the parent's socket; the
    child opens its own listener on first use.
    """
    global _lock
    _lock = threading.Lock()
    for shared in _dispatchers.values():
        _inherited.append(shared.raw)  # the thread did not survive the fork; never close its socket
    _dispatchers.clear()


atexit.register(close_all)
os.register_at_fork(after_in_child=_forget_after_fork)
