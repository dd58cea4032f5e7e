"""The one Celery app factory of the tests: results to this package's backends, JSON only."""

from __future__ import annotations

from pathlib import Path
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


def filesystem_app(folder: str | Path) -> Celery:
    """:func:`make_app` publishing to kombu's filesystem transport in ``folder``.

    Several processes given the same folder see each other's messages (a
    callback a child sent can be read by the parent).
    """
    return make_app(
        broker_url="filesystem://",
        broker_transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": f"{folder}/control",
        },
    )
