"""Throw-away PostgreSQL and MariaDB servers, for tests that restart or crash the database.

:func:`disposable_server` initialises a data directory in a new temporary
folder, starts the server there on a free TCP port of 127.0.0.1 (its Unix
socket in the same folder), waits until it answers, and on exit stops it and
deletes the folder, also when the body raises. Only the server binaries are
needed; the shared servers on the usual ports are never touched::

    with disposable_server("postgresql") as server:
        server.create_database("dcr_fault")
        DATABASES = {"default": server.database_settings("dcr_fault")}
        server.restart()  # fast shutdown, then start again
        server.kill()     # SIGKILL, as a crash would...
        server.start()    # ...and crash recovery on the next start

The server process is a child of this process, so it is reaped when it stops
or is killed. PostgreSQL refuses to run as root: when this process is root,
the server and its tools run as the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, ClassVar

#: Where Debian puts the PostgreSQL 15 binaries; ``DCR_PG_BIN`` overrides it.
PG_BIN = Path(os.environ.get("DCR_PG_BIN", "/usr/lib/postgresql/15/bin"))
MARIADB_INSTALL_DB = os.environ.get("DCR_MARIADB_INSTALL_DB", "/usr/bin/mariadb-install-db")
MARIADBD = os.environ.get("DCR_MARIADBD", "/usr/sbin/mariadbd")

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class ServerError(RuntimeError):
    """The disposable server did not start, stop or answer in time (the message has its log)."""


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    """``(parent pid, state letter)`` of a process, from ``/proc``; ``None`` once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: split after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _parent_and_state(int(entry.name))
            if info is not None and info[0] == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, waiting for its parent to reap it, does not)."""
    info = _parent_and_state(pid)
    return info is not None and info[1] != "Z"


class DisposableServer:
    """One database server in ``directory``; subclasses know how each engine is run."""

    #: ``"postgresql"`` or ``"mysql"``, as ``DCR_TEST_DB`` names the engine.
    engine: ClassVar[str]
    #: The OS user the server runs as when this process is root (``None``: root itself).
    os_user: ClassVar[str | None] = None
    #: The database user with every privilege (no password: local tests only).
    user: ClassVar[str]

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.log_path = directory / "server.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    # -- what each engine defines ---------------------------------------------

    def initialise(self) -> None:
        """Create the data directory (``initdb``, ``mariadb-install-db``)."""
        raise NotImplementedError

    def server_command(self) -> list[str]:
        """The command line of the server process."""
        raise NotImplementedError

    def connect(self, database: str | None = None) -> Any:
        """A new DB-API connection (autocommit) as :attr:`user`, to ``database`` or the default one."""
        raise NotImplementedError

    def create_database(self, name: str) -> None:
        """Create an empty database ``name``."""
        raise NotImplementedError

    def database_settings(self, name: str) -> dict[str, Any]:
        """A Django ``DATABASES`` entry for database ``name`` on this server."""
        raise NotImplementedError

    def _request_stop(self, timeout: float) -> None:
        """Ask the server for a clean, fast shutdown (sessions are ended, data is flushed)."""
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------

    def _owner(self) -> dict[str, Any]:
        """``subprocess`` arguments that run a command as :attr:`os_user` when we are root."""
        if self.os_user is None or os.geteuid() != 0:
            return {}
        account = pwd.getpwnam(self.os_user)
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _run(self, command: list[str], timeout: float = 120) -> None:
        """Run a tool of the server (as its owner); raise :class:`ServerError` with its output on failure."""
        completed = subprocess.run(
            command,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            **self._owner(),
        )
        if completed.returncode != 0:
            output = (completed.stdout + completed.stderr).decode(errors="replace")
            raise ServerError(f"{command[0]} failed with status {completed.returncode}:\n{output}")

    @property
    def pid(self) -> int | None:
        """The server's main process (the postmaster, mariadbd) while it runs."""
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it answers a query (after crash recovery, if any)."""
        if self.running():
            raise ServerError(f"the {self.engine} server is running already (pid {self.pid})")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.server_command(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._owner(),
            )
        self.wait_until_answering(timeout)

    def wait_until_answering(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise ServerError(f"the {self.engine} server exited while starting\n{self.log_tail()}")
            try:
                self.connect().close()
                return
            except Exception as exc:  # any driver error means "not yet"
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"the {self.engine} server did not answer within {timeout:.0f}s: {exc}\n"
                        f"{self.log_tail()}"
                    ) from exc
            time.sleep(0.05)

    def stop(self, timeout: float = 60) -> None:
        """Clean fast shutdown; waits until the server process has exited."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        self._request_stop(timeout)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ServerError(
                f"the {self.engine} server did not stop in {timeout:.0f}s\n{self.log_tail()}"
            ) from exc

    def kill(self, timeout: float = 30) -> None:
        """SIGKILL the server's main process, as a crash would; return once nothing of it runs.

        PostgreSQL's backends outlive the postmaster for a moment, until they
        notice it died; a new postmaster refuses to start while they hold the
        old shared memory, so they are waited for too (and killed, if slow).
        """
        process = self.process
        if process is None or process.poll() is not None:
            return
        helpers = _children(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=timeout)
        if not self._wait_gone(helpers, timeout):
            for pid in helpers:
                if _alive(pid):
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if not self._wait_gone(helpers, 10):
                raise ServerError(f"processes of the killed {self.engine} server linger: {helpers}")

    @staticmethod
    def _wait_gone(pids: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def restart(self, timeout: float = 60) -> None:
        """Fast shutdown, then start again: what ``pg_ctl restart -m fast`` or a service restart does."""
        self.stop(timeout)
        self.start(timeout)

    def shut_down(self) -> None:
        """Stop for good: cleanly if it will, killed otherwise."""
        try:
            self.stop(timeout=30)
        except Exception:
            self.kill()
        finally:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return f"--- {self.engine} server log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


class PostgresServer(DisposableServer):
    engine = "postgresql"
    os_user = "postgres"
    user = "postgres"

    def initialise(self) -> None:
        if self._owner():
            account = pwd.getpwnam(str(self.os_user))
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self._run(
            [
                str(PG_BIN / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                self.user,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ]
        )

    def server_command(self) -> list[str]:
        return [
            str(PG_BIN / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.directory),
            "-c",
            f"listen_addresses={HOST}",
            # The tests crash the server process, never the machine: the page cache
            # survives a SIGKILL, so fsync only costs time here.
            "-c",
            "fsync=off",
            "-c",
            "max_connections=40",
            "-c",
            "shared_buffers=16MB",
        ]

    def _request_stop(self, timeout: float) -> None:
        # Fast shutdown: open sessions end with 57P01 (admin shutdown); new ones
        # get 57P03 (shutting down) until the port closes.
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "stop",
                "--pgdata",
                str(self.data),
                "--mode",
                "fast",
                "--wait",
                "--timeout",
                str(int(timeout)),
            ],
            timeout=timeout + 10,
        )

    def connect(self, database: str | None = None) -> Any:
        """Through psycopg 3, or psycopg2 where it is the only driver (the ``psycopg2`` cells)."""
        options = {
            "host": HOST,
            "port": self.port,
            "user": self.user,
            "dbname": database or "postgres",
            "connect_timeout": 2,
        }
        try:
            import psycopg
        except ImportError:
            import psycopg2

            connection = psycopg2.connect(**options)
            connection.autocommit = True
            return connection
        return psycopg.connect(**options, autocommit=True)

    def create_database(self, name: str) -> None:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8'")
        finally:
            connection.close()

    def database_settings(self, name: str) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": self.user,
            "PASSWORD": "",
            "HOST": HOST,
            "PORT": str(self.port),
            "OPTIONS": {"connect_timeout": 5},
        }


class MariaDBServer(DisposableServer):
    engine = "mysql"
    user = "root"

    @property
    def socket_path(self) -> Path:
        return self.directory / "mariadbd.sock"

    def _root_flag(self) -> list[str]:
        # mariadbd refuses to run as root unless told to.
        return ["--user=root"] if os.geteuid() == 0 else []

    def initialise(self) -> None:
        self._run(
            [
                MARIADB_INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.data}",
                *self._root_flag(),
                # root without a password, also over TCP (127.0.0.1): local tests only.
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]
        )

    def server_command(self) -> list[str]:
        return [
            MARIADBD,
            "--no-defaults",
            f"--datadir={self.data}",
            f"--socket={self.socket_path}",
            f"--port={self.port}",
            f"--bind-address={HOST}",
            f"--pid-file={self.directory / 'mariadbd.pid'}",
            f"--tmpdir={self.directory}",
            *self._root_flag(),
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--max-connections=60",
            # The redo log reaches the OS at each commit, which is enough to
            # survive a SIGKILL of the server (the machine never crashes here).
            "--innodb-flush-log-at-trx-commit=2",
        ]

    def _request_stop(self, timeout: float) -> None:
        # SIGTERM is mariadbd's normal shutdown (what ``mariadb-admin shutdown``
        # asks for): sessions are killed, InnoDB flushes and the process exits.
        if self.process is not None:
            self.process.terminate()

    def connect(self, database: str | None = None) -> Any:
        import MySQLdb

        options: dict[str, Any] = {
            "host": HOST,
            "port": self.port,
            "user": self.user,
            "passwd": "",
            "connect_timeout": 2,
            "autocommit": True,
            "charset": "utf8mb4",
        }
        if database:
            options["database"] = database
        return MySQLdb.connect(**options)

    def create_database(self, name: str) -> None:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        finally:
            connection.close()

    def database_settings(self, name: str) -> dict[str, Any]:
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name,
            "USER": self.user,
            "PASSWORD": "",
            "HOST": HOST,
            "PORT": str(self.port),
            "OPTIONS": {
                "charset": "utf8mb4",
                "connect_timeout": 5,
                "init_command": "SET sql_mode='STRICT_ALL_TABLES'",
                "isolation_level": "read committed",
            },
        }


SERVERS: dict[str, type[DisposableServer]] = {cls.engine: cls for cls in (PostgresServer, MariaDBServer)}


@contextmanager
def disposable_server(engine: str) -> Iterator[DisposableServer]:
    """A started server of ``engine`` (``"postgresql"`` or ``"mysql"``) in a new temporary folder.

    On exit the server is stopped (killed if it will not stop) and the folder
    deleted, whatever happened in the body.
    """
    if engine not in SERVERS:
        raise ValueError(f"no disposable server for {engine!r}; choose one of {', '.join(SERVERS)}")
    directory = Path(tempfile.mkdtemp(prefix=f"dcr-{engine}-"))
    server = SERVERS[engine](directory)
    try:
        server.initialise()
        server.start()
        yield server
    finally:
        try:
            server.shut_down()
        finally:
            shutil.rmtree(directory, ignore_errors=True)
