"""Django and Celery set up for the benchmark, in this process and in the processes it starts.

Children are those of :mod:`tests.support.processes` (spawned, Django set up,
their outcome reported, their connections closed), on the benchmark's
settings (:func:`child_environ`) and with the benchmark's patience.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from celery import Celery

from tests.support import apps, processes

SETTINGS_MODULE = "benchmarks.settings"
#: Settings of the ``admin`` figure: the admin site, on its own scratch database.
ADMIN_SETTINGS_MODULE = "benchmarks.admin_settings"
#: Seconds a child process may take before the figure fails.
CHILD_TIMEOUT = 900


def setup(engine: str, settings_module: str = SETTINGS_MODULE) -> None:
    """Point Django at the benchmark settings for ``engine`` and set it up (children inherit it)."""
    os.environ["DCR_BENCH_ENGINE"] = engine
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()


def child_environ(engine: str) -> dict[str, str]:
    """What a child adds to its environment before setting Django up: the benchmark settings."""
    return {"DCR_BENCH_ENGINE": engine, "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE}


def make_app(**conf: Any) -> Celery:
    """The tests' app (``django-db``, extended, JSON, ``memory://``), results expiring after a day.

    ``conf`` overrides, e.g. ``result_backend`` for a peer backend.
    """
    return apps.make_app(
        name="bench",
        **{"result_serializer": "json", "result_expires": timedelta(days=1), **conf},
    )


def start_children(
    target: Callable[..., Any],
    argument_lists: Sequence[Sequence[Any]],
    engine: str,
) -> processes.Children:
    """One process per argument list running ``target(*args)``, on the benchmark settings for ``engine``."""
    return processes.Children(target, argument_lists, environ=child_environ(engine), timeout=CHILD_TIMEOUT)


def run_in_processes(
    target: Callable[..., Any],
    argument_lists: Sequence[Sequence[Any]],
    engine: str,
) -> list[Any]:
    """Run ``target(*args)`` in one process per argument list, all at once; return their results."""
    return processes.run_in_processes(
        target, argument_lists, environ=child_environ(engine), timeout=CHILD_TIMEOUT
    )


def run_in_process(target: Callable[..., Any], *args: Any, engine: str) -> Any:
    """Run ``target(*args)`` in one fresh interpreter; return what it returned."""
    return run_in_processes(target, [args], engine)[0]
