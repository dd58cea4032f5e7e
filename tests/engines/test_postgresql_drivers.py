"""PostgreSQL through either driver: psycopg 3 (Django's choice when installed) and psycopg2.

psycopg2 can only be exercised in a process where psycopg 3 cannot be
imported, so that smoke test runs the backend in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap
from typing import Any

import pytest
from celery import states
from celery.result import AsyncResult
from celery.result import GroupResult as CeleryGroupResult
from django.db import connections

from django_celery_results.models import GroupResult, TaskResult
from tests.support.processes import child_environ, run_python
from tests.support.routers import extra_connections_closed  # noqa: F401

#: Runs in the subprocess: the backend's round trip, reported as JSON.
SMOKE = textwrap.dedent(
    """
    import json, sys
    {block}
    import django
    django.setup()
    from celery import states
    from celery.result import AsyncResult, GroupResult
    from django.db import connection
    from django_celery_results.models import TaskResult
    from tests.support.apps import make_app

    app = make_app(name="smoke")
    backend = app.backend
    backend.store_result("smoke-1", None, states.STARTED)
    started = backend.get_task_meta("smoke-1", cache=False)
    backend.store_result("smoke-1", {{"answer": 42}}, states.SUCCESS)
    done = backend.get_task_meta("smoke-1", cache=False)
    group = GroupResult("smoke-group", [AsyncResult("smoke-1", app=app)], app=app)
    backend.save_group("smoke-group", group)
    restored = backend.restore_group("smoke-group", cache=False)
    backend.forget("smoke-1")
    forgotten = backend.get_task_meta("smoke-1", cache=False)
    print(json.dumps({{
        "driver": connection.Database.__name__,
        "connection_class": type(connection.connection).__module__,
        "psycopg_importable": sys.modules.get("psycopg") is not None,
        "started": [started["status"], started["date_started"] is not None],
        "done": [done["status"], done["result"]],
        "restored": [r.id for r in restored.results],
        "forgotten": forgotten["status"],
        "rows": TaskResult.objects.count(),
    }}))
    """
)


def run_smoke(block: str) -> dict[str, Any]:
    env = {**os.environ, **child_environ()}  # the test database pytest-django created
    completed = run_python(["-c", SMOKE.format(block=block)], env)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


EXPECTED = {
    "started": [states.STARTED, True],
    "done": [states.SUCCESS, {"answer": 42}],
    "restored": ["smoke-1"],
    "forgotten": states.PENDING,
    "rows": 0,
}


@pytest.mark.engine("postgresql")
@pytest.mark.django_db(databases=["default"], transaction=True)
def test_backend_on_psycopg2() -> None:
    # psycopg 3 made unimportable before Django picks a driver.
    report = run_smoke('sys.modules["psycopg"] = None')
    assert report["driver"] == "psycopg2"
    assert report["connection_class"].split(".")[0] == "psycopg2"
    assert report["psycopg_importable"] is False
    assert {key: report[key] for key in EXPECTED} == EXPECTED
    assert GroupResult.objects.filter(group_id="smoke-group").exists()


#: The ``psycopg2`` cells of tox.ini leave psycopg 3 out, so that Django uses psycopg2 throughout.
needs_psycopg3 = pytest.mark.skipif(
    importlib.util.find_spec("psycopg") is None,
    reason="psycopg 3 is not installed (a psycopg2 cell)",
)


@needs_psycopg3
@pytest.mark.engine("postgresql")
@pytest.mark.django_db(databases=["default"], transaction=True)
def test_backend_on_psycopg3_in_a_subprocess() -> None:
    report = run_smoke("")
    assert report["driver"] == "psycopg"
    assert report["connection_class"].split(".")[0] == "psycopg"
    assert {key: report[key] for key in EXPECTED} == EXPECTED


@needs_psycopg3
@pytest.mark.engine("postgresql")
@pytest.mark.django_db(databases=["default"], transaction=True)
def test_backend_on_psycopg3(app: Any, backend: Any) -> None:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    connection = connections["default"]
    connection.ensure_connection()
    assert is_psycopg3 and connection.Database.__name__ == "psycopg"  # type: ignore[attr-defined]
    assert type(connection.connection).__module__.split(".")[0] == "psycopg"
    backend.store_result("p3", None, states.STARTED)
    assert backend.get_task_meta("p3", cache=False)["status"] == states.STARTED
    backend.store_result("p3", {"answer": 42}, states.SUCCESS)
    assert backend.get_task_meta("p3", cache=False)["result"] == {"answer": 42}
    backend.save_group("p3-group", CeleryGroupResult("p3-group", [AsyncResult("p3", app=app)], app=app))
    assert [r.id for r in backend.restore_group("p3-group", cache=False).results] == ["p3"]
    backend.forget("p3")
    assert not TaskResult.objects.filter(task_id="p3").exists()
