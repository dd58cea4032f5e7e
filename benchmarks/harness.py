"""Django and Celery set up for the benchmark, in this process and in the processes it starts."""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from celery import Celery

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


def make_app(**conf: Any) -> Celery:
    """A Celery app storing results with ``django-db`` (extended), publishing to ``memory://``.

    ``conf`` overrides, e.g. ``result_backend`` for a peer backend.
    """
    app = Celery("bench", set_as_current=False)
    app.conf.update(
        {
            "broker_url": "memory://",
            "result_backend": "django-db",
            "result_extended": True,
            "accept_content": ["json"],
            "result_serializer": "json",
            "result_expires": timedelta(days=1),
            **conf,
        }
    )
    return app


def _child(engine: str, target: Callable[..., Any], args: Sequence[Any], results: Any) -> None:
    setup(engine)
    from django.db import connections

    try:
        results.put(("ok", target(*args)))
    except BaseException as exc:  # reported to the parent, which fails the figure
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        connections.close_all()


class Children:
    """Processes running ``target(*args)`` each, in a fresh interpreter (spawn), started at once."""

    def __init__(
        self,
        target: Callable[..., Any],
        argument_lists: Sequence[Sequence[Any]],
        engine: str,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.name = target.__name__
        self._results = context.Queue()
        self._processes = [
            context.Process(target=_child, args=(engine, target, args, self._results), daemon=True)
            for args in argument_lists
        ]
        for process in self._processes:
            process.start()

    def results(self) -> list[Any]:
        """What each child returned (in completion order), once all have ended.

        Raises ``RuntimeError`` naming every child that failed or hung.
        """
        outcomes: list[tuple[str, Any]] = []
        deadline = time.monotonic() + CHILD_TIMEOUT
        try:
            while len(outcomes) < len(self._processes):
                try:
                    outcomes.append(self._results.get(timeout=1))
                except queue_module.Empty:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name}: no answer in {CHILD_TIMEOUT}s") from None
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
    engine: str,
) -> list[Any]:
    """Run ``target(*args)`` in one process per argument list, all at once; return their results."""
    return Children(target, argument_lists, engine).results()


def run_in_process(target: Callable[..., Any], *args: Any, engine: str) -> Any:
    """Run ``target(*args)`` in one fresh interpreter; return what it returned."""
    return run_in_processes(target, [args], engine)[0]
