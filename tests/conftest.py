"""Fixtures: a Celery app wired to this package's backends, in this process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from tests.support.apps import make_app


@pytest.fixture
def celery_app_factory() -> Iterator[Any]:
    apps: list[Celery] = []

    def factory(backend: str = "django-db", **conf: Any) -> Celery:
        app = make_app(backend, **conf)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def app(celery_app_factory: Any) -> Celery:
    return celery_app_factory()


@pytest.fixture
def backend(app: Celery) -> Any:
    return app.backend


@pytest.fixture(autouse=True)
def _empty_memory_broker() -> Iterator[None]:
    """Messages published to ``memory://`` by one test must not reach the next."""
    from kombu.transport import memory

    memory.Channel.queues.clear()
    yield
    memory.Channel.queues.clear()


@pytest.fixture(scope="session", autouse=True)
def _close_connections_before_teardown(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Close every alias's connection before the test databases are dropped.

    PostgreSQL refuses to drop a database that a connection still uses, and
    tests that touch extra aliases leave theirs open.
    """
    yield
    from django.db import connections

    from django_celery_results import notify

    notify.close_all()  # the shared LISTEN connection too
    with django_db_blocker.unblock():
        connections.close_all()
