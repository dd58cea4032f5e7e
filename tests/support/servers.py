"""Servers the topology tests start themselves: PgBouncer, and a PostgreSQL primary with a streaming replica.

Both run as the ``postgres`` user when this process is root (neither will
run as root), on free ports of 127.0.0.1, in temporary folders deleted on
exit; the context managers stop them also when the body raises::

    with pgbouncer(upstream_port=5432) as bouncer:       # transaction pooling
        DATABASES["default"]["PORT"] = str(bouncer.port)

    with primary_and_replica() as (primary, replica):   # pg_basebackup -R
        primary.create_database("dcr_replica")
        replica.wait_for_replay(primary)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.disposable import HOST, PG_BIN, PostgresServer, ServerError, free_port

#: Debian's pgbouncer binary; ``DCR_PGBOUNCER`` overrides it.
PGBOUNCER = os.environ.get("DCR_PGBOUNCER") or shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class PgBouncer:
    """A pgbouncer process in transaction pooling mode in front of one PostgreSQL server."""

    def __init__(self, directory: Path, upstream_host: str, upstream_port: int, pool_size: int = 8) -> None:
        self.directory = directory
        self.port = free_port()
        self.log_path = directory / "pgbouncer.log"
        self.config = directory / "pgbouncer.ini"
        (directory / "users.txt").write_text('"postgres" ""\n')
        # Every database of the upstream server, pooled per transaction; any
        # user of users.txt, without a password (local tests only).
        self.config.write_text(
            "[databases]\n"
            f"* = host={upstream_host} port={upstream_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {directory}\n"
            "auth_type = trust\n"
            f"auth_file = {directory / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
            "server_reset_query =\n"
            # The parameters drivers send at connection time, kept out of the pooled sessions.
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        owner = PostgresServer(self.directory)._owner()  # run as postgres when root
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [PGBOUNCER, str(self.config)],
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **owner,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise ServerError(f"pgbouncer exited ({self.process.returncode})\n{self.log_tail()}")
            try:
                import psycopg

                psycopg.connect(
                    host=HOST, port=self.port, user="postgres", dbname="postgres", connect_timeout=2
                ).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"pgbouncer did not answer in {timeout:.0f}s: {exc}\n{self.log_tail()}"
                    ) from exc
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGINT: pgbouncer's immediate shutdown (its server connections close with it)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(2)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "--- pgbouncer log (tail) ---\n" + "\n".join(self.log().splitlines()[-lines:])


@contextmanager
def pgbouncer(upstream_port: int, upstream_host: str = HOST) -> Iterator[PgBouncer]:
    """A started :class:`PgBouncer` in front of ``upstream_host:upstream_port``; stopped on exit."""
    directory = Path(tempfile.mkdtemp(prefix="dcr-pgbouncer-"))
    bouncer = PgBouncer(directory, upstream_host, upstream_port)
    try:
        give_to_server_user(directory)
        bouncer.start()
        yield bouncer
    finally:
        try:
            bouncer.stop()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def give_to_server_user(directory: Path) -> None:
    """Give ``directory`` (and what is in it) to the user the servers run as when we are root."""
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam(str(PostgresServer.os_user))
    for path in [directory, *directory.iterdir()]:
        os.chown(path, account.pw_uid, account.pw_gid)


class Primary(PostgresServer):
    """A disposable PostgreSQL server that streaming replicas can connect to."""

    def server_command(self) -> list[str]:
        return [
            *super().server_command(),
            "-c",
            "wal_level=replica",
            "-c",
            "max_wal_senders=4",
            "-c",
            "hot_standby=on",
        ]

    def initialise(self) -> None:
        super().initialise()
        # Replication connections from 127.0.0.1, trusted (local tests only).
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host replication all {HOST}/32 trust\n")


class Replica(PostgresServer):
    """A hot standby of a :class:`Primary`, made with ``pg_basebackup -R`` (it streams from then on)."""

    def __init__(self, directory: Path, primary: Primary) -> None:
        super().__init__(directory)
        self.primary = primary

    def initialise(self) -> None:
        give_to_server_user(self.directory)
        # -R writes standby.signal and primary_conninfo: the copy starts as a streaming standby.
        self._run(
            [
                str(PG_BIN / "pg_basebackup"),
                "--pgdata",
                str(self.data),
                "--host",
                HOST,
                "--port",
                str(self.primary.port),
                "--username",
                self.user,
                "-R",
                "--checkpoint=fast",
                "--wal-method=stream",
                "--no-sync",
            ]
        )

    def wait_for_replay(self, timeout: float = 30) -> None:
        """Return once the replica has replayed everything the primary had written when called."""
        with self.primary.connect() as primary:
            target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with self.connect() as replica:
            while True:
                caught_up = replica.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                    [str(target)],
                ).fetchone()[0]
                if caught_up:
                    return
                if time.monotonic() > deadline:
                    raise ServerError(f"the replica did not replay up to {target} in {timeout:.0f}s")
                time.sleep(0.02)

    def pause_replay(self) -> None:
        """Stop applying WAL (``pg_wal_replay_pause()``): the primary's new writes stay invisible here."""
        with self.connect() as replica:
            replica.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with self.connect() as replica:
            replica.execute("SELECT pg_wal_replay_resume()")


@contextmanager
def primary_and_replica() -> Iterator[tuple[Primary, Replica]]:
    """A started primary and a started streaming replica of it; both stopped and deleted on exit."""
    primary_dir = Path(tempfile.mkdtemp(prefix="dcr-primary-"))
    replica_dir = Path(tempfile.mkdtemp(prefix="dcr-replica-"))
    primary = Primary(primary_dir)
    replica = Replica(replica_dir, primary)
    try:
        primary.initialise()
        primary.start()
        replica.initialise()
        replica.start()
        yield primary, replica
    finally:
        try:
            replica.shut_down()
        finally:
            try:
                primary.shut_down()
            finally:
                shutil.rmtree(replica_dir, ignore_errors=True)
                shutil.rmtree(primary_dir, ignore_errors=True)
