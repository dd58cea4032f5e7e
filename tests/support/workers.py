"""Real ``celery worker`` processes for tests, storing results in the *test* database.

A worker started here runs ``celery -A tests.support.workers worker`` with Django
settings :mod:`tests.settings.workers`, which take the database connection
from the test process (``connection.settings_dict`` after pytest-django has
created the test database: ``test_<name>`` or the ``TEST["NAME"]`` file), so
the worker writes exactly where the test reads. The broker is kombu's
``filesystem://`` transport in a temporary folder (no server needed) unless a
``broker_url`` is given (``redis://``, ``amqp://``); extra Celery settings
(``conf``) reach the worker too, so both processes share one configuration.

Use :func:`running_worker` as a context manager (the worker is stopped on
exit, also when the body raises), or :class:`Worker` directly::

    with running_worker(tmp_path, backend="django-db") as worker:
        assert worker.tasks.add.delay(2, 3).get(timeout=30) == 5

Tests using it need ``@pytest.mark.django_db(transaction=True)``: the worker
only sees committed rows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from celery.utils.nodenames import host_format
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from tests.support import ROOT
from tests.support.apps import make_app
from tests.support.processes import child_environ, database_settings

#: Environment of the worker process, read by this module and tests.settings.workers.
ENV_BROKER_DIR = "DCR_WORKER_BROKER_DIR"
ENV_BACKEND = "DCR_WORKER_BACKEND"
ENV_CACHE_DIR = "DCR_WORKER_CACHE_DIR"
ENV_BROKER_URL = "DCR_WORKER_BROKER_URL"
ENV_CONF = "DCR_WORKER_CONF"
#: The worker's ``--loglevel`` (INFO unless set, e.g. to DEBUG when a test needs a closer look).
ENV_LOGLEVEL = "DCR_WORKER_LOGLEVEL"

#: What a worker logs, before the ids, once it has handled a revoke.
REVOKE_LOGGED = "Tasks flagged as revoked: "

#: The broker used when none is named: kombu's transport in a local folder.
FILESYSTEM_BROKER = "filesystem://"

#: The Django cache alias worker and tests share for ``django-cache`` (a FileBasedCache).
SHARED_CACHE = "worker_shared"


class AtomicFilesystemChannel(filesystem.Channel):
    """kombu's filesystem channel, except that a message appears in the folder whole.

    kombu writes a message file in place (create, then write): a consumer
    listing the folder in between takes the still empty file, and the worker
    dies decoding it (seen on a loaded machine). Here the message is written
    under a name no consumer picks up (it has no ``.<queue>.msg`` suffix) and
    then renamed, which is atomic.
    """

    # kombu's own filesystem channel renames the base class's ``message`` to ``payload``.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        folder = Path(self.data_folder_out)
        # kombu's naming: consumers take the files in name (so time) order.
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        partial = folder / f"partial-{uuid.uuid4().hex}"
        try:
            partial.write_bytes(str_to_bytes(dumps(payload)))
            os.replace(partial, folder / name)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to directory") from exc


class AtomicFilesystemTransport(filesystem.Transport):
    """The ``filesystem://`` transport with :class:`AtomicFilesystemChannel`."""

    Channel = AtomicFilesystemChannel


def broker_options(broker_dir: Path) -> dict[str, Any]:
    """kombu filesystem transport options: producer and worker share one folder."""
    return {
        "data_folder_in": str(broker_dir / "queue"),
        "data_folder_out": str(broker_dir / "queue"),
        "control_folder": str(broker_dir / "control"),
        "processed_folder": str(broker_dir / "processed"),
        "store_processed": False,
        "polling_interval": 0.05,
    }


def shared_cache(cache_dir: Path) -> dict[str, Any]:
    """The ``CACHES`` entry both processes use for ``django-cache``."""
    return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(cache_dir)}


def worker_app(
    name: str,
    backend: str,
    broker_dir: Path,
    broker_url: str = FILESYSTEM_BROKER,
    **conf: Any,
) -> Celery:
    """A Celery app with the test tasks registered.

    Its broker is ``broker_url``; the filesystem one keeps its messages in
    ``broker_dir``. ``conf`` adds to (or replaces) the settings below.
    """
    settings: dict[str, Any] = {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        "task_track_started": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "cache_backend": SHARED_CACHE if backend == "django-cache" else None,
        "result_chord_join_timeout": 30,
    }
    if broker_url.startswith("filesystem:"):
        settings["broker_transport"] = f"{__name__}:AtomicFilesystemTransport"
        settings["broker_transport_options"] = broker_options(broker_dir)
    app = make_app(backend, name=name, **{**settings, **conf})
    register_tasks(app)
    return app


class Tasks:
    """The tasks of one app, by attribute: ``tasks.add``, ``tasks.fail``, ``tasks.total``."""

    def __init__(self, app: Celery) -> None:
        self.add = app.tasks["tests.support.workers.add"]
        self.fail = app.tasks["tests.support.workers.fail"]
        self.total = app.tasks["tests.support.workers.total"]
        self.echo = app.tasks["tests.support.workers.echo"]
        self.sleep = app.tasks["tests.support.workers.sleep"]
        self.flaky = app.tasks["tests.support.workers.flaky"]
        self.text = app.tasks["tests.support.workers.text"]
        self.session = app.tasks["tests.support.workers.session"]
        self.die = app.tasks["tests.support.workers.die"]


def register_tasks(app: Celery) -> None:
    """Define the test tasks on ``app``, under names that are the same in every process."""

    @app.task(name="tests.support.workers.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tests.support.workers.fail", shared=False)
    def fail(message: str) -> None:
        raise ValueError(message)

    @app.task(name="tests.support.workers.total", shared=False)
    def total(numbers: list[int]) -> int:
        return sum(numbers)

    @app.task(name="tests.support.workers.echo", shared=False)
    def echo(value: Any) -> Any:
        return value

    @app.task(name="tests.support.workers.sleep", shared=False)
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.task(name="tests.support.workers.flaky", bind=True, shared=False, max_retries=10)
    def flaky(self: Any, failures: int) -> int:
        """Retry ``failures`` times (right away), then return how many retries it took."""
        if self.request.retries < failures:
            raise self.retry(exc=ConnectionError(f"attempt {self.request.retries + 1}"), countdown=0)
        return int(self.request.retries)

    @app.task(name="tests.support.workers.die", shared=False)
    def die() -> None:
        """SIGKILL the process running the task, as the OOM killer would (a prefork pool process)."""
        os.kill(os.getpid(), signal.SIGKILL)

    @app.task(name="tests.support.workers.session", shared=False)
    def session(hold: float) -> dict[str, Any]:
        """The database session the task uses, held ``hold`` seconds: when it ran, and which session.

        The session is the server's id for it (the process and connection on SQLite).
        """
        from django.db import connection

        started = time.time()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_backend_pid()")
                name = str(cursor.fetchone()[0])
            elif connection.vendor == "mysql":
                cursor.execute("SELECT CONNECTION_ID()")
                name = str(cursor.fetchone()[0])
            else:
                cursor.execute("SELECT 1")
                name = f"{os.getpid()}:{id(connection.connection)}"
            time.sleep(hold)
        return {"session": name, "started": started, "ended": time.time()}

    @app.task(name="tests.support.workers.text", shared=False)
    def text(piece: str, times: int) -> str:
        """``piece`` repeated: a large result from a small message."""
        return piece * times


def _worker_app_from_env() -> Celery:
    """The app ``celery -A tests.support.workers worker`` runs, configured by the starting test."""
    broker_dir = Path(os.environ.get(ENV_BROKER_DIR, ROOT / ".cache" / "worker-broker"))
    return worker_app(
        "tests-worker",
        os.environ.get(ENV_BACKEND, "django-db"),
        broker_dir,
        os.environ.get(ENV_BROKER_URL, FILESYSTEM_BROKER),
        **json.loads(os.environ.get(ENV_CONF, "{}")),
    )


# The module attribute the celery command looks for. Building it does not
# touch Django, the broker or the backend: all of that is lazy.
app = _worker_app_from_env()


@dataclass
class Worker:
    """One ``celery worker`` subprocess and a client app talking to it."""

    directory: Path
    backend: str = "django-db"
    #: ``--pool``; ``None`` leaves the choice to the app's configuration (``worker_pool``).
    pool: str | None = "prefork"
    concurrency: int = 2
    process: subprocess.Popen[bytes] | None = None
    #: The broker both processes use (``redis://...``, ``amqp://...``).
    broker_url: str = FILESYSTEM_BROKER
    #: Extra Celery settings of both apps; JSON values only (they reach the worker as JSON).
    conf: dict[str, Any] = field(default_factory=dict)
    #: Queues the worker consumes (``-Q``); by default ``task_default_queue``.
    queues: tuple[str, ...] = ()
    #: The worker's ``--hostname``; a unique ``dcr-test-<hex>@%h`` when empty.
    hostname: str = ""
    #: Entries replacing the test database's in the worker (``CONN_MAX_AGE``, ``OPTIONS``...).
    database: dict[str, Any] = field(default_factory=dict)
    #: The module ``celery -A`` loads the worker's app from.
    app_module: str = "tests.support.workers"
    #: The worker's ``DJANGO_SETTINGS_MODULE``.
    settings_module: str = "tests.settings.workers"

    def __post_init__(self) -> None:
        self.hostname = self.hostname or f"dcr-test-{uuid.uuid4().hex[:8]}@%h"
        self.broker_dir = self.directory / "broker"
        self.cache_dir = self.directory / "cache"
        self.log_path = self.directory / "worker.log"
        # Made now: tasks may be published (to the filesystem broker) before the worker starts.
        for name in ("queue", "control", "processed"):
            (self.broker_dir / name).mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.app = worker_app("tests-client", self.backend, self.broker_dir, self.broker_url, **self.conf)
        self.tasks = Tasks(self.app)

    # -- lifecycle -----------------------------------------------------------

    def environment(self) -> dict[str, str]:
        database = database_settings(**self.database)
        extra = {
            ENV_BROKER_DIR: str(self.broker_dir),
            ENV_BACKEND: self.backend,
            ENV_CACHE_DIR: str(self.cache_dir),
            ENV_BROKER_URL: self.broker_url,
            ENV_CONF: json.dumps(self.conf),
            "PYTHONUNBUFFERED": "1",
        }
        return {**os.environ, **child_environ(self.settings_module, {"default": database}, **extra)}

    def start(self, timeout: float = 60) -> None:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.app_module,
            "worker",
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            os.environ.get(ENV_LOGLEVEL, "INFO"),
            "--hostname",
            self.hostname,
            "--without-mingle",
            "--without-gossip",
        ]
        if self.pool is not None:
            command += ["--pool", self.pool]
        if self.queues:
            command += ["--queues", ",".join(self.queues)]
        with self.log_path.open("wb") as log:
            # Its own session: the pool processes can be killed as one group.
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if " ready." in self.log():
                return
            time.sleep(0.05)
        raise RuntimeError(f"the worker was not ready after {timeout:.0f}s\n{self.log_tail()}")

    def stop(self, grace: float = 15) -> None:
        """Warm shutdown (SIGTERM); SIGKILL to the worker's process group after ``grace`` seconds."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # pool processes left behind, if any
        process.wait()

    def remaining_processes(self) -> list[str]:
        """``ps`` lines of processes still in the worker's process group (zombies excepted)."""
        if self.process is None:
            return []
        listing = subprocess.run(
            ["ps", "-eo", "pid=,pgid=,stat=,args="],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        remaining = []
        for line in listing.splitlines():
            _pid, pgid, stat, *_ = line.split(None, 3)
            if int(pgid) == self.process.pid and not stat.startswith("Z"):
                remaining.append(line.strip())
        return remaining

    # -- inspection ----------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        """Wait until the worker's log contains ``text``; fail with the log's tail otherwise."""
        self._wait_for_log(lambda log: text in log, repr(text), timeout)

    def wait_for_revoke(self, *task_ids: str, timeout: float = 30) -> None:
        """Wait until the worker has handled a revoke naming all of ``task_ids``, in any order."""
        wanted = set(task_ids)

        def handled(log: str) -> bool:
            lines = (line.partition(REVOKE_LOGGED)[2] for line in log.splitlines() if REVOKE_LOGGED in line)
            return any(wanted <= set(line.split(", ")) for line in lines)

        self._wait_for_log(handled, f"a revoke of {sorted(wanted)}", timeout)

    def _wait_for_log(self, found: Callable[[str], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not found(self.log()):
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not in the log after {timeout:.0f}s\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        return "--- worker log (tail) ---\n" + "\n".join(self.log().splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.process is None:
            raise RuntimeError("the worker was not started")
        if self.process.poll() is not None:
            raise RuntimeError(f"the worker exited with status {self.process.returncode}\n{self.log_tail()}")

    def wait(self, result: AsyncResult, timeout: float = 30) -> AsyncResult:
        """Wait until ``result`` is ready; fail early, with the worker's log, if the worker died."""
        deadline = time.monotonic() + timeout
        while not result.ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{result.id} not ready after {timeout:.0f}s\n{self.log_tail()}")
            time.sleep(0.05)
        return result


@contextmanager
def sharing_cache(worker: Worker) -> Iterator[None]:
    """This process reads the worker's FileBasedCache (``django-cache`` results) while the block runs."""
    from django.conf import settings
    from django.test import override_settings

    with override_settings(CACHES={**settings.CACHES, SHARED_CACHE: shared_cache(worker.cache_dir)}):
        yield


@contextmanager
def running_worker(directory: Path, backend: str = "django-db", **options: Any) -> Iterator[Worker]:
    """Start a worker in ``directory`` (broker, cache and log live there); always stop it."""
    worker = Worker(Path(directory), backend, **options)
    with sharing_cache(worker):
        try:
            worker.start()
            yield worker
        finally:
            try:
                worker.stop()
            finally:
                worker.app.close()


@contextmanager
def publishing_from(app: Celery) -> Iterator[None]:
    """PENDING_ON_PUBLISH on, and ``app`` current: the receiver stores through ``current_app``."""
    from celery import current_app
    from django.test import override_settings

    previous = current_app._get_current_object()
    app.set_current()
    try:
        with override_settings(DJANGO_CELERY_RESULTS={"PENDING_ON_PUBLISH": True}):
            yield
    finally:
        previous.set_current()


@dataclass(frozen=True)
class Setup:
    """How a module's worker runs: its broker, the result backend, its pool."""

    broker: str = "filesystem"
    backend: str = "django-db"
    pool: str = "prefork"
    concurrency: int = 2


#: Every setup a module can ask for, by name (its test ids).
SETUPS = {
    "filesystem": Setup(),
    "redis": Setup(broker="redis"),
    "rabbitmq": Setup(broker="rabbitmq"),
    "django-cache": Setup(backend="django-cache"),
    "threads": Setup(pool="threads"),
    "solo": Setup(pool="solo", concurrency=1),
    "gevent": Setup(pool="gevent", concurrency=4),
}


#: ``start_worker(label, start=True, **conf)``: a context manager giving one worker on the module's broker.
WorkerStarter = Callable[..., AbstractContextManager[Worker]]


def nodename(worker: Worker) -> str:
    """The worker's node name, as stored in the ``worker`` column."""
    return host_format(worker.hostname)


def other_queue(worker: Worker) -> str:
    """The second queue the worker consumes (tasks sent there carry it as routing key)."""
    return f"{worker.app.conf.task_default_queue}.other"
