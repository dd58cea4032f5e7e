"""The one Celery app factory of the tests: results to this package's backends, JSON only."""

from __future__ import annotations

from typing import Any

from celery import Celery


def make_app(backend: str = "django-db", *, name: str = "tests", **conf: Any) -> Celery:
    """A Celery app whose results go to ``backend``; ``conf`` adds to or replaces the defaults.

    The default broker is ``memory://``: publishing needs no server.
    """
    app = Celery(name, set_as_current=False)
    defaults: dict[str, Any] = {
        "broker_url": "memory://",
        "result_backend": backend,
        "result_extended": True,
        "accept_content": ["json"],
        "result_accept_content": None,
    }
    app.conf.update({**defaults, **conf})
    return app
