"""Real OS processes: Django children on this process's test database, and Python commands.

A child learns which database to use from one variable, :data:`ENV_DATABASES`
(read by ``tests/settings``), whether it is a ``spawn`` child of
:class:`Children`, a worker of :mod:`tests.support.workers` or a command of
:func:`run_python`. The benchmarks start their children through
:class:`Children` too, with their own settings.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue as queue_module
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tests.support import ROOT

#: JSON of the ``DATABASES`` setting of a child process (``tests/settings`` reads it).
ENV_DATABASES = "DCR_CHILD_DATABASES"

#: Keys of ``connection.settings_dict`` a child needs to reach the same database.
DATABASE_KEYS = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "TIME_ZONE")


def database_settings(**changes: Any) -> dict[str, Any]:
    """The ``default`` connection's settings (pytest-django's test database), with ``changes``."""
    from django.db import connection

    settings_dict = connection.settings_dict
    name = str(settings_dict["NAME"])
    if settings_dict["ENGINE"].endswith("sqlite3") and (not name or "memory" in name):
        raise RuntimeError("a child process cannot share an in-memory SQLite database; use a file TEST NAME")
    return {**{key: settings_dict.get(key) for key in DATABASE_KEYS}, **changes}


def child_environ(
    settings_module: str = "tests.settings",
    databases: Mapping[str, Mapping[str, Any]] | None = None,
    **extra: str,
) -> dict[str, str]:
    """What a child Django process needs: its settings module, and the test database by default."""
    chosen = {"default": database_settings()} if databases is None else databases
    return {
        "DJANGO_SETTINGS_MODULE": settings_module,
        ENV_DATABASES: json.dumps(chosen, default=str),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def _bootstrap(
    environ: Mapping[str, str], target: Callable[..., Any], args: Sequence[Any], queue: Any
) -> None:
    os.environ.update(environ)
    import django

    django.setup()
    from django.db import connections

    try:
        queue.put(("ok", target(*args)))
    except BaseException as exc:  # reported to the parent, which fails
        queue.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        connections.close_all()


class Children:
    """Processes running ``target(*args)`` each, in a fresh interpreter (``spawn``), started at once.

    ``environ`` is added to each child's environment before Django is set up
    (by default :func:`child_environ`: the test settings on the test database).
    """

    def __init__(
        self,
        target: Callable[..., Any],
        argument_lists: Sequence[Sequence[Any]],
        environ: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.name = target.__name__
        self.timeout = timeout
        self._results = context.Queue()
        chosen = child_environ() if environ is None else dict(environ)
        self._processes = [
            context.Process(target=_bootstrap, args=(chosen, target, args, self._results), daemon=True)
            for args in argument_lists
        ]
        for process in self._processes:
            process.start()

    def results(self) -> list[Any]:
        """What each child returned (in completion order), once all have ended.

        Raises ``RuntimeError`` naming every child that failed, died or hung.
        """
        outcomes: list[tuple[str, Any]] = []
        deadline = time.monotonic() + self.timeout
        try:
            while len(outcomes) < len(self._processes):
                try:
                    outcomes.append(self._results.get(timeout=1))
                except queue_module.Empty:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name}: no answer in {self.timeout}s") from None
                    if not any(p.is_alive() for p in self._processes) and self._results.empty():
                        codes = [p.exitcode for p in self._processes]
                        raise RuntimeError(f"{self.name}: a child died, exit codes {codes}") from None
        finally:
            for process in self._processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
                    process.join()
        errors = [detail for status, detail in outcomes if status == "error"]
        if errors:
            raise RuntimeError(f"{self.name} failed in a child: {errors}")
        return [detail for _, detail in outcomes]


def run_in_processes(
    target: Callable[..., Any],
    argument_lists: Sequence[Sequence[Any]],
    environ: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> list[Any]:
    """Run ``target(*args)`` in one process per argument list, all at once; return their results."""
    return Children(target, argument_lists, environ, timeout).results()


def run_python(
    args: Sequence[str],
    env: Mapping[str, str],
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``python <args>`` from the project root with ``env``; output captured as text, never raises."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
