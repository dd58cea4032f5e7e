"""Real OS processes: children writing to the test database (race tests), and Python commands.

Each child of :func:`run_in_processes` is a fresh interpreter (``spawn``)
that sets Django up with the parent's *test* database connection settings, so
all processes race on the same rows through separate connections.
:func:`run_python` runs ``python ...`` from the project's root, its output captured.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

DATABASE_KEYS = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "TIME_ZONE")


def database_settings() -> dict[str, Any]:
    """The test process's ``default`` connection settings (after pytest-django switched to the test DB)."""
    from django.db import connection

    return {key: connection.settings_dict.get(key) for key in DATABASE_KEYS}


def _bootstrap(database: dict[str, Any], target: Callable[..., Any], args: Sequence[Any], queue: Any) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    from django.conf import settings

    settings.DATABASES["default"].update(database)
    import django

    django.setup()
    try:
        queue.put(("ok", target(*args)))
    except BaseException as exc:  # reported to the parent, which fails the test
        queue.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def run_in_processes(
    target: Callable[..., Any], argument_lists: Sequence[Sequence[Any]], timeout: float = 120
) -> list[Any]:
    """Run ``target(*args)`` in one process per argument list, all at once; return their results.

    Raises ``AssertionError`` naming every child that failed or hung.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    database = database_settings()
    children = [
        context.Process(target=_bootstrap, args=(database, target, args, queue)) for args in argument_lists
    ]
    for child in children:
        child.start()
    outcomes = [queue.get(timeout=timeout) for _ in children]
    for child in children:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    errors = [detail for status, detail in outcomes if status == "error"]
    assert not errors, errors
    return [detail for _, detail in outcomes]


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
