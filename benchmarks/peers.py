"""The peers: Celery's own Redis and SQLAlchemy result backends, measured with the same workloads.

Both run in this process, through :func:`benchmarks.workloads.measure_all`,
each call paired with the same floor statement on the Django connection as
ours and upstream: what compares is each backend's ratio to that floor.

* **redis**: ``redis://127.0.0.1:6379/15`` (``DCR_BENCH_REDIS_URL``), a
  database of its own, flushed when done.
* **sqlalchemy**: ``db+<dialect>://`` on the same server and scratch database
  as ours (``dcr_bench``; the SQLite file for SQLite), its own tables
  ``celery_taskmeta``/``celery_tasksetmeta`` created by the backend itself.
  Its engine is pooled, as in a prefork worker's child (Celery's
  ``SessionManager`` opens a connection per session in an unforked process).
  It has no native join (``join_native`` falls back to ``join``) and no
  native chord counting (Celery runs ``celery.chord_unlock`` instead).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

from celery import Celery

from .harness import make_app

REDIS_URL = os.environ.get("DCR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PEERS = ("redis", "sqlalchemy")


def sqlalchemy_url() -> str:
    """Celery's database-backend URL of the scratch database (same server as ours)."""
    from django.db import connection

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"db+sqlite:///{settings['NAME']}"
    dialect = "postgresql+psycopg" if connection.vendor == "postgresql" else "mysql+mysqldb"
    user = quote(settings.get("USER") or "")
    password = settings.get("PASSWORD") or ""
    auth = f"{user}:{quote(password)}@" if password else f"{user}@"
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"db+{dialect}://{auth}{settings.get('HOST') or '127.0.0.1'}{port}/{settings['NAME']}"


def make_peer_app(url: str) -> Celery:
    """The benchmark's app with ``url`` as its result backend."""
    app = make_app(result_backend=url)
    backend = app.backend
    if hasattr(backend, "session_manager"):
        backend.session_manager.forked = True  # a pooled engine, as in a worker's child
    return app


def urls() -> dict[str, str]:
    return {"redis": REDIS_URL, "sqlalchemy": sqlalchemy_url()}


def _release(name: str, app: Celery) -> None:
    """Flush the Redis database; drop the SQLAlchemy tables and close its engine."""
    backend = app.backend
    if name == "redis":
        backend.client.flushdb()
        return
    from celery.backends.database.models import ResultModelBase

    for engine in list(backend.session_manager._engines.values()):
        ResultModelBase.metadata.drop_all(engine)
        engine.dispose()


def run(engine: str, sizes: Any, log: Any = print) -> dict[str, dict[str, Any]]:
    """Every peer's figures by figure name (a peer that fails maps to its error)."""
    from . import workloads

    found: dict[str, dict[str, Any]] = {}
    for name, url in urls().items():
        log(f"peer {name} ({url.split('@')[-1]}) ...")
        app = make_peer_app(url)
        try:
            found[name] = workloads.measure_all(app, engine, asdict(sizes), latency_url=url)
        except Exception as exc:
            found[name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"peer {name} failed: {exc!r}")
        finally:
            try:
                _release(name, app)
            except Exception as exc:
                log(f"peer {name}: cleaning up failed: {exc!r}")
            app.close()
    return found
