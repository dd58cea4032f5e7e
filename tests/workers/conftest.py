"""Fixtures of the end-to-end suite: real ``celery worker`` processes on real brokers.

Every module gets one worker per setup it names in ``WORKER_SETUPS`` (by
default one per broker of :data:`BROKERS`; :data:`tests.support.workers.SETUPS` lists them all: other
pools, the ``django-cache`` backend). The ``worker`` fixture is module scoped,
so pytest runs a module's tests setup by setup and starts each worker once. The
worker writes to this run's test database; tests read the rows it committed,
hence ``django_db(transaction=True)``.

Brokers:

* ``filesystem`` -- kombu's transport in a temporary folder, always run.
* ``redis`` -- ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``).
* ``rabbitmq`` -- ``BROKER_URL`` (default ``amqp://guest:guest@127.0.0.1:5672//``).

A server broker that does not answer is skipped with the reason, except when
``CI`` is true: there it is a failure, so a CI job cannot pass by not testing.

Other runs may share the servers, so each worker gets names of its own: its
queues and control exchange carry a per-run random prefix, Redis keys carry it
as ``global_keyprefix``, and what the run declared is deleted at the end.

Stopping: a worker is told to stop (SIGTERM, a warm shutdown) as soon as its
module is done, and the session waits for all of them at its end (SIGKILL to
the process group after a grace period), then checks with ``ps`` that no
worker process is left. A warm shutdown takes seconds (the filesystem
transport's consumer loop notices it only between two polls of two seconds),
so the workers stop while the next modules run instead of one after another.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
from kombu.utils.url import maybe_sanitize_url

from tests.support.workers import FILESYSTEM_BROKER, SETUPS, Setup, Worker, WorkerStarter, sharing_cache

BROKERS = ("filesystem", "redis", "rabbitmq")

#: Where the server brokers are; the variables CI and docker-compose.yml set.
SERVER_URLS = {
    "redis": ("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "rabbitmq": ("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}

#: This run's prefix: no two runs (or two workers of one run) share a queue, key or exchange.
RUN = uuid.uuid4().hex[:8]

#: Seconds a stopping worker gets for its warm shutdown before its process group is killed.
STOP_GRACE = 30


def in_ci() -> bool:
    """``CI`` is set to a true value (GitHub Actions and most CI services set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def server_url(broker: str) -> str:
    variable, default = SERVER_URLS[broker]
    return os.environ.get(variable) or default


def unreachable(url: str, timeout: float = 3) -> str | None:
    """Why the broker at ``url`` cannot be used, or ``None`` when it answers."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # whatever stops the connection is the reason to report
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class Broker:
    """One broker of the suite, and the names its workers use."""

    name: str
    url: str
    #: Prefixes of the queues, exchanges and keys handed out; :meth:`purge` deletes them.
    used_prefixes: list[str] = field(default_factory=list)

    def conf(self, label: str) -> dict[str, Any]:
        """Celery settings giving one worker names nobody else uses."""
        prefix = f"dcr-e2e-{RUN}-{label}"
        self.used_prefixes.append(prefix)
        conf: dict[str, Any] = {"task_default_queue": prefix, "control_exchange": prefix}
        if self.name == "redis":
            conf["broker_transport_options"] = {"global_keyprefix": f"{prefix}:"}
        return conf

    def purge(self) -> None:
        """Delete what this run's workers declared on the server (queues, exchanges, keys)."""
        if self.name == "redis":
            self._purge_redis()
        elif self.name == "rabbitmq":
            self._purge_rabbitmq()

    def _purge_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            for prefix in self.used_prefixes:
                keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()

    def _purge_rabbitmq(self) -> None:
        from kombu import Connection

        with Connection(self.url, connect_timeout=5) as conn:
            for prefix in self.used_prefixes:
                for queue in (prefix, f"{prefix}.other"):
                    # A failed delete closes its channel: one channel per operation.
                    with suppress(Exception), conn.channel() as channel:
                        channel.queue_delete(queue)
                for exchange in (prefix, f"{prefix}.other", f"{prefix}.pidbox", f"reply.{prefix}.pidbox"):
                    with suppress(Exception), conn.channel() as channel:
                        channel.exchange_delete(exchange)


class Reaper:
    """Stops workers without waiting; waits for all of them (and cleans the brokers) at the end."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []
        self.brokers: list[Broker] = []

    def stop_later(self, worker: Worker) -> None:
        """Begin ``worker``'s warm shutdown (SIGTERM); :meth:`finish` waits for it."""
        self.workers.append(worker)
        if worker.process is not None and worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)

    def finish(self) -> None:
        """Wait for every worker (killing what outlives the grace), close clients, purge brokers."""
        problems = []
        deadline = time.monotonic() + STOP_GRACE
        for worker in self.workers:
            try:
                if worker.process is not None:
                    with suppress(subprocess.TimeoutExpired):
                        worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
                worker.stop(grace=0)  # kills the process group if anything is left
                assert_all_exited(worker)
            except AssertionError as error:
                problems.append(str(error))
            finally:
                worker.app.close()
        for broker in self.brokers:
            try:
                broker.purge()
            except Exception as error:  # a broker gone away must not hide the test results
                where = maybe_sanitize_url(broker.url)
                problems.append(f"could not clean up {broker.name} at {where}: {error!r}")
        assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def reaper(django_db_setup: Any) -> Iterator[Reaper]:
    """Session-wide: finishes before the test database is dropped (it depends on its setup)."""
    stopper = Reaper()
    try:
        yield stopper
    finally:
        stopper.finish()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each module runs on the setups its ``WORKER_SETUPS`` names (by default, every broker)."""
    if "worker_setup" in metafunc.fixturenames:
        names = getattr(metafunc.module, "WORKER_SETUPS", BROKERS)
        metafunc.parametrize("worker_setup", names, indirect=True, scope="module")


@pytest.fixture(scope="module")
def worker_setup(request: pytest.FixtureRequest) -> Setup:
    return SETUPS[request.param]


@pytest.fixture(scope="module")
def broker(worker_setup: Setup, reaper: Reaper) -> Broker:
    """The broker this module's tests run on: skipped, or failed under CI, when it does not answer."""
    name = worker_setup.broker
    if name == "filesystem":
        return Broker(name, FILESYSTEM_BROKER)
    url = server_url(name)
    reason = unreachable(url)
    if reason is not None:
        shown = maybe_sanitize_url(url)
        message = f"{name} broker at {shown} (${SERVER_URLS[name][0]}) does not answer: {reason}"
        if in_ci():
            pytest.fail(f"CI is true, so every broker is required: {message}", pytrace=False)
        pytest.skip(message)
    used = Broker(name, url)
    reaper.brokers.append(used)
    return used


@pytest.fixture(scope="module")
def start_worker(
    worker_setup: Setup,
    broker: Broker,
    reaper: Reaper,
    tmp_path_factory: pytest.TempPathFactory,
    django_db_setup: Any,
    django_db_blocker: Any,
) -> WorkerStarter:
    """Workers of this module's setup (by default prefork, two processes), with this suite's settings.

    The worker consumes its own ``task_default_queue`` and ``<queue>.other``.
    With ``start=False`` the test starts it (``worker.start()``), e.g. after
    publishing. It is told to stop when the ``with`` block ends, whatever
    happened in it. ``django_db_setup`` comes first: the worker must get the
    *test* database.
    """

    @contextmanager
    def run_worker(label: str, *, start: bool = True, **conf: Any) -> Iterator[Worker]:
        settings = broker.conf(label)
        queue = settings["task_default_queue"]
        worker = Worker(
            tmp_path_factory.mktemp(f"{label}-{broker.name}"),
            backend=worker_setup.backend,
            pool=worker_setup.pool,
            concurrency=worker_setup.concurrency,
            broker_url=broker.url,
            conf={**settings, **conf},
            queues=(queue, f"{queue}.other"),
        )
        try:
            with sharing_cache(worker):
                if start:
                    worker.start()
                yield worker
        finally:
            reaper.stop_later(worker)

    return run_worker


@pytest.fixture(scope="module")
def worker_conf() -> dict[str, Any]:
    """Celery settings a module adds for its worker (override in the module)."""
    return {}


@pytest.fixture(scope="module")
def worker(
    request: pytest.FixtureRequest,
    start_worker: WorkerStarter,
    worker_conf: dict[str, Any],
) -> Iterator[Worker]:
    """The module's worker, in the current setup."""
    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with start_worker(label, **worker_conf) as started:
        yield started


def assert_all_exited(worker: Worker, timeout: float = 10) -> None:
    """No process of ``worker`` is left (killed pool processes may take a moment to go)."""
    deadline = time.monotonic() + timeout
    while remaining := worker.remaining_processes():
        if time.monotonic() > deadline:
            raise AssertionError("worker processes left running:\n" + "\n".join(remaining))
        time.sleep(0.1)
