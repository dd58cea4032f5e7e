"""A database router for the tests: where the results' three models are read and written.

Used as an instance, ``override_settings(DATABASE_ROUTERS=[ResultsRouter(read="replica")])``;
models of other apps are left to the next router (in the tests: the default alias).
The aliases it routes to are the extra ones of ``tests/settings/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

APP_LABEL = "django_celery_results"

#: The aliases of tests/settings/__init__.py besides "default".
EXTRA_ALIASES = ("replica", "second", "lax", "repeatable", "other")


@pytest.fixture(scope="module", autouse=True)
def extra_connections_closed() -> Iterator[None]:
    """Close the extra aliases' connections after a module that uses them.

    pytest-django leaves connections open between tests; PostgreSQL refuses to
    drop the test database at the end while a mirror alias is still connected.
    Import it into a test module to use it.
    """
    yield
    for alias in EXTRA_ALIASES:
        connections[alias].close()


class ResultsRouter:
    """Send reads of results to ``read`` and writes to ``write``.

    ``counters`` sends :class:`~django_celery_results.models.ChordCounter`
    (reads and writes) elsewhere, for setups that split the tables; ``tables``
    names the only aliases where the results' tables may be migrated.
    """

    def __init__(
        self,
        read: str = "default",
        write: str = "default",
        counters: str | None = None,
        tables: tuple[str, ...] | None = None,
    ) -> None:
        self.read = read
        self.write = write
        self.counters = counters
        self.tables = tables

    def __repr__(self) -> str:
        return f"ResultsRouter(read={self.read!r}, write={self.write!r}, counters={self.counters!r})"

    def _ours(self, model: Any) -> bool:
        return bool(model._meta.app_label == APP_LABEL)

    def _counter(self, model: Any) -> bool:
        return self.counters is not None and model._meta.model_name == "chordcounter"

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        if not self._ours(model):
            return None
        return self.counters if self._counter(model) else self.read

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        if not self._ours(model):
            return None
        return self.counters if self._counter(model) else self.write

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(
        self,
        db: str,
        app_label: str,
        model_name: str | None = None,
        **hints: Any,
    ) -> bool | None:
        if app_label != APP_LABEL or self.tables is None:
            return None
        return db in self.tables
