"""Smoke tests with the worker and the brokers in containers (pytest-celery).

pytest-celery starts a Redis and a RabbitMQ broker container (each test runs
once per broker) and a worker container built from this project: the package
installed with pip as a site installs it, running ``celery -A tests.support.workers``
(the worker of the end-to-end suite) with the ``django-db`` backend. The
worker writes to this run's SQLite test database, bind-mounted at the same
path, and the test reads the rows through the ORM.

Run them with ``DCR_TEST_DB=sqlite DCR_DOCKER_TESTS=1 pytest tests/docker``
on a machine whose Docker engine can bind-mount this checkout and whose
published ports answer on ``localhost`` (a CI runner, a workstation). They
are skipped, with the reason, unless requested, when pytest-celery is not
installed, or when no Docker engine answers; requested under ``CI=true``,
the last two are failures.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REQUEST_VARIABLE = "DCR_DOCKER_TESTS"
TRUE = {"1", "true", "yes", "on"}


def _unavailable() -> str | None:
    """Why the smoke tests cannot run here, or ``None``."""
    try:
        import docker
        import pytest_celery  # noqa: F401
    except ImportError as exc:
        return f"pytest-celery is not installed ({exc}); pip install 'pytest-celery[redis]'"
    # docker-py leaks the socket of a failed first request; it is collected
    # here so that its ResourceWarning does not become an error later.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=5)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:  # any failure to reach the engine is the reason
            return f"no Docker engine answers ({type(exc).__name__}: {exc})"
        finally:
            gc.collect()
    return None


if os.environ.get(REQUEST_VARIABLE, "").strip().lower() not in TRUE:
    pytest.skip(
        f"container smoke tests run only when {REQUEST_VARIABLE}=1 "
        "(they build a worker image and start Redis and RabbitMQ containers)",
        allow_module_level=True,
    )
if (_reason := _unavailable()) is not None:
    if os.environ.get("CI", "").strip().lower() in TRUE:
        pytest.fail(f"{REQUEST_VARIABLE}=1 under CI, but {_reason}", pytrace=False)
    pytest.skip(_reason, allow_module_level=True)

# Imported only when the suite runs: pytest-celery and Docker are available.
import celery  # noqa: E402
import django  # noqa: E402
from celery import Celery, chord, states  # noqa: E402
from pytest_celery import RESULT_TIMEOUT, CeleryTestSetup, CeleryWorkerContainer  # noqa: E402
from pytest_docker_tools import container, fxtr  # noqa: E402

from tests.support import ROOT  # noqa: E402
from tests.support.processes import child_environ  # noqa: E402
from tests.support.workers import (  # noqa: E402
    ENV_BROKER_URL,
    ENV_CACHE_DIR,
    ENV_CONF,
    Tasks,
    worker_app,
)

pytestmark = [pytest.mark.engine("sqlite"), pytest.mark.worker, pytest.mark.django_db(transaction=True)]

HERE = Path(__file__).resolve().parent
QUEUE = "dcr_smoke"
IMAGE_TAG = "django-celery-results/smoke-worker:latest"


class ResultsWorkerContainer(CeleryWorkerContainer):
    """The end-to-end suite's worker (``celery -A tests.support.workers``) in a container."""

    @classmethod
    def command(cls, *args: str, **kwargs: Any) -> list[str]:
        return [
            "celery",
            "-A",
            "tests.support.workers",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--hostname",
            f"{cls.worker_name()}@%h",
            "--without-mingle",
            "--without-gossip",
            "--queues",
            cls.worker_queue(),
            *args,
        ]

    @classmethod
    def worker_name(cls) -> str:
        return "dcr_smoke_worker"

    @classmethod
    def worker_queue(cls) -> str:
        return QUEUE


@pytest.fixture(scope="session")
def dcr_worker_image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """This project pip-installed in an image, with the test process's Python, Celery and Django."""
    context = tmp_path_factory.mktemp("worker-image")
    shutil.copy(HERE / "Dockerfile", context / "Dockerfile")
    project = context / "project"
    shutil.copytree(
        ROOT / "django_celery_results",
        project / "django_celery_results",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, project / name)
    version = sys.version_info
    image, _ = docker_client.images.build(
        path=str(context),
        tag=IMAGE_TAG,
        rm=True,
        buildargs={
            "PYTHON_VERSION": f"{version.major}.{version.minor}",
            "CELERY_VERSION": celery.__version__,
            "DJANGO_VERSION": django.__version__,
        },
    )
    return image


@pytest.fixture
def default_worker_container_cls() -> type[CeleryWorkerContainer]:
    return ResultsWorkerContainer


@pytest.fixture(scope="session")
def default_worker_container_session_cls() -> type[CeleryWorkerContainer]:
    return ResultsWorkerContainer


@pytest.fixture
def celery_backend_cluster() -> None:
    """No result backend container: results go to this project's ``django-db`` backend."""
    return None


@pytest.fixture
def default_worker_env(
    default_worker_container_cls: type[CeleryWorkerContainer],
    celery_worker_cluster_config: dict[str, Any],
    django_db_setup: Any,
) -> dict[str, str]:
    """pytest-celery's worker environment, plus what :mod:`tests.support.workers` reads."""

    env = default_worker_container_cls.initial_env(celery_worker_cluster_config)
    broker_urls = celery_worker_cluster_config["celery_broker_cluster_config"]["urls"]
    extra = {
        "DCR_TEST_DB": "sqlite",
        "HOME": "/tmp",
        ENV_CACHE_DIR: "/tmp/dcr-worker-cache",
        ENV_BROKER_URL: ";".join(broker_urls),
        ENV_CONF: json.dumps({"task_default_queue": QUEUE}),
    }
    env.update(child_environ("tests.settings.workers", **extra))
    return env


# The worker container pytest-celery's ``celery_setup`` uses. It sees the
# test package (read-only) and the SQLite test database's folder at the paths
# they have here, and runs as this user so SQLite can write there.
default_worker_container = container(
    image="{dcr_worker_image.id}",
    environment=fxtr("default_worker_env"),
    network="{default_pytest_celery_network.name}",
    volumes={
        str(ROOT / "tests"): {"bind": str(ROOT / "tests"), "mode": "ro"},
        str(ROOT / ".cache"): {"bind": str(ROOT / ".cache"), "mode": "rw"},
    },
    user=f"{os.getuid()}:{os.getgid()}",
    wrapper_class=ResultsWorkerContainer,
    timeout=120,
    command=fxtr("default_worker_command"),
)


@pytest.fixture
def client(celery_setup: CeleryTestSetup, tmp_path: Path) -> Iterator[Celery]:
    """An app in this process on the broker container, reading results with ``django-db``."""
    from django.db import connection

    assert connection.vendor == "sqlite", "the worker container reaches the SQLite test database only"
    app = worker_app(
        "dcr-smoke-client",
        "django-db",
        tmp_path,
        broker_url=celery_setup.broker.config()["host_url"],
        task_default_queue=QUEUE,
    )
    yield app
    app.close()


def stored(task_id: str) -> Any:
    from django_celery_results.models import TaskResult

    return TaskResult.objects.get(task_id=task_id)


def test_result_stored_by_the_container_worker(client: Celery) -> None:
    result = Tasks(client).add.delay(2, 3)

    assert result.get(timeout=RESULT_TIMEOUT) == 5
    row = stored(result.id)
    assert (row.status, json.loads(row.result)) == (states.SUCCESS, 5)
    assert (row.task_name, json.loads(row.task_args)) == ("tests.support.workers.add", "(2, 3)")
    assert row.queue == QUEUE
    assert row.worker.startswith(f"{ResultsWorkerContainer.worker_name()}@")
    assert row.date_created <= row.date_started <= row.date_done


def test_failure_keeps_its_traceback(client: Celery) -> None:
    result = Tasks(client).fail.delay("boom")

    with pytest.raises(ValueError, match="boom"):
        result.get(timeout=RESULT_TIMEOUT)
    row = stored(result.id)
    assert row.status == states.FAILURE
    assert row.traceback.rstrip().endswith("ValueError: boom")


def test_chord_callback_gets_every_part(client: Celery) -> None:
    tasks = Tasks(client)
    result = chord((tasks.add.s(i, i) for i in range(20)), tasks.total.s()).apply_async()

    assert result.get(timeout=RESULT_TIMEOUT) == sum(2 * i for i in range(20))
    assert stored(result.id).status == states.SUCCESS
