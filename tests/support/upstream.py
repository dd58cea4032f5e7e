"""Upstream ``django-celery-results`` 2.6.0 as a test oracle, always in a subprocess.

Our package replaces upstream's, so both cannot be imported by one process:
the migration tests run upstream (its migrations, its result backend) in a
child Python whose ``sys.path`` starts with the unpacked upstream wheel, and
compare what it did with what ours does. No upstream code is copied into this
repository: the wheel is downloaded with pip into ``.cache/upstream/`` (once;
later runs reuse it) and checked against its published SHA-256.

The same module is the child's entry point (``python -m tests.support.upstream
<command> <result-file>``, payload as JSON on stdin), and it holds the result
scenario both sides run, so writer and reader agree on one definition. It
imports neither copy of ``django_celery_results`` at module level.

Running a child with ``package="ours"`` uses the same machinery for checks
that need settings fixed at process start (``makemigrations`` with another
``DJANGO_CELERY_RESULTS_TASK_ID_MAX_LENGTH``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from io import StringIO
from pathlib import Path
from typing import Any, Literal

from tests.support import ROOT
from tests.support.processes import ENV_DATABASES

UPSTREAM_VERSION = "2.6.0"
WHEEL_NAME = f"django_celery_results-{UPSTREAM_VERSION}-py3-none-any.whl"
#: SHA-256 of the wheel on PyPI: a corrupt or substituted cache fails loudly.
WHEEL_SHA256 = "b9ccdca2695b98c7cbbb8dea742311ba9a92773d71d7b4944a676e69a7df1c73"

BASE_DIR = ROOT
CACHE_DIR = BASE_DIR / ".cache" / "upstream"
SETTINGS_MODULE = "tests.settings.migrations"
#: Seconds a child may run; pip gets its own, shorter network timeouts.
CHILD_TIMEOUT = 300

Package = Literal["upstream", "ours"]


class UpstreamUnavailable(RuntimeError):
    """Upstream django-celery-results 2.6.0 could not be obtained; the migration tests need it."""


class ChildFailed(AssertionError):
    """A subprocess running django_celery_results failed; its output is in the message."""


# -- obtaining upstream ---------------------------------------------------------


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """Serialize download and unpacking: test runs on several engines may start together."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download_wheel() -> Path:
    """The wheel in the cache, downloaded by pip when missing."""
    wheel = CACHE_DIR / WHEEL_NAME
    if not wheel.exists():
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--timeout",
            "30",
            "--retries",
            "2",
            "--dest",
            str(CACHE_DIR),
            f"django-celery-results=={UPSTREAM_VERSION}",
        ]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise UpstreamUnavailable(
                f"`{' '.join(command)}` did not finish in {CHILD_TIMEOUT}s: is PyPI reachable?"
            ) from exc
        if proc.returncode != 0 or not wheel.exists():
            raise UpstreamUnavailable(
                f"could not download django-celery-results {UPSTREAM_VERSION} "
                f"(is PyPI reachable?): `{' '.join(command)}` exited {proc.returncode}:\n"
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
    digest = _sha256(wheel)
    if digest != WHEEL_SHA256:
        raise UpstreamUnavailable(
            f"{wheel} has SHA-256 {digest}, expected {WHEEL_SHA256}; delete it to download again"
        )
    return wheel


def upstream_root() -> Path:
    """Directory holding upstream's ``django_celery_results`` package (unpacked wheel).

    Raises :class:`UpstreamUnavailable` with the reason when it cannot be had.
    """
    target = CACHE_DIR / f"django_celery_results-{UPSTREAM_VERSION}"
    with _cache_lock():
        if not (target / "django_celery_results" / "__init__.py").exists():
            wheel = _download_wheel()
            scratch = Path(tempfile.mkdtemp(dir=CACHE_DIR, prefix=".unpack-"))
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(scratch)
            os.replace(scratch, target)
    return target


# -- running a child ------------------------------------------------------------


def package_root(package: Package) -> Path:
    """The directory the child's ``django_celery_results`` must come from."""
    return upstream_root() if package == "upstream" else BASE_DIR


def run_child(
    command: str,
    payload: Mapping[str, Any] | None = None,
    *,
    package: Package = "upstream",
    databases: Mapping[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``command`` of :data:`COMMANDS` in a child Python and return its JSON answer.

    ``sys.path`` of the child starts with the chosen package root, also as its
    working directory (``python -m`` puts the working directory first), so
    upstream's copy wins over ours, which is installed in editable mode; the
    child checks which copy it imported before doing anything.
    """
    root = package_root(package)
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), str(BASE_DIR)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DCR_MIG_PACKAGE_ROOT": str(root),
        **(env or {}),
    }
    if databases is not None:
        child_env[ENV_DATABASES] = json.dumps(databases)
    with tempfile.TemporaryDirectory(prefix="dcr_mig_") as scratch:
        answer_file = Path(scratch) / "answer.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "tests.support.upstream", command, str(answer_file)],
                input=json.dumps(payload or {}),
                capture_output=True,
                text=True,
                cwd=root,
                env=child_env,
                timeout=CHILD_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise ChildFailed(f"{package} child `{command}` did not finish in {CHILD_TIMEOUT}s") from exc
        if proc.returncode != 0 or not answer_file.exists():
            raise ChildFailed(
                f"{package} child `{command}` exited {proc.returncode}:\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
            )
        answer: dict[str, Any] = json.loads(answer_file.read_text())
    imported = Path(answer["origin"])
    if imported.parent.parent != root.resolve():
        raise ChildFailed(f"the {package} child imported django_celery_results from {imported}, not {root}")
    return answer


# -- the result scenario (both processes) ---------------------------------------

BACKEND = "django_celery_results.backends.database:DatabaseBackend"
#: Keys of ``request.meta`` a task injected; readers must return them unchanged.
USER_META = {"tenant": "acme", "attempt": 2}
#: Keys of ``get_task_meta()`` compared between the two packages.
META_KEYS = (
    "status",
    "result",
    "traceback",
    "children",
    "date_done",
    "task_name",
    "task_args",
    "task_kwargs",
    "args",
    "kwargs",
    "worker",
)


TRACEBACK = 'Traceback (most recent call last):\n  File "tasks.py", line 3\nValueError: boom \u2717\n'


def success_value(serializer: str) -> dict[str, Any]:
    """The SUCCESS result; under pickle it holds types JSON cannot."""
    value: dict[str, Any] = {"sum": 5, "items": [1, "two", None, 2.5], "text": "h\u00e9llo \u2713"}
    if serializer == "pickle":
        value.update(
            set={1, 2}, tuple=(1, "two"), when=datetime(2021, 2, 3, 4, 5, 6, 789, tzinfo=timezone.utc)
        )
    return value


def make_app(serializer: str, extended: bool) -> Any:
    """A Celery app (no broker used) whose results go to ``django_celery_results``' database backend.

    The class path resolves to whichever copy of the package the process imported.
    """
    from celery import Celery

    app = Celery("dcr-mig", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        result_backend=BACKEND,
        result_extended=extended,
        result_serializer=serializer,
        accept_content=["json", "pickle"],
        result_accept_content=["json", "pickle"],
    )
    return app


def task_ids(tag: str) -> dict[str, str]:
    """The ids one scenario writes, by role."""
    return {role: f"{tag}-{role}" for role in ("success", "failure", "progress")}


def group_id(tag: str) -> str:
    return f"{tag}-group"


def write_results(app: Any, tag: str, serializer: str) -> None:
    """Store a SUCCESS, a FAILURE with traceback, a custom state with user meta, and a group.

    Requests carry what a worker's request carries (argsrepr, hostname,
    children, periodic task name), so extended fields are exercised. Under
    pickle the values include types JSON cannot hold.
    """
    from celery.app.task import Context
    from celery.result import GroupResult

    backend = app.backend
    ids = task_ids(tag)
    success = Context(
        id=ids["success"],
        task="tests.add",
        args=[2, 3],
        kwargs={"z": 1},
        argsrepr="(2, 3)",
        kwargsrepr="{'z': 1}",
        hostname="worker1@example.com",
        periodic_task_name="every-minute",
    )
    success.children.append(app.AsyncResult(f"{tag}-child"))
    backend.store_result(ids["success"], success_value(serializer), "SUCCESS", request=success)

    # Protocol 1 style: arguments without their repr.
    failure = Context(
        id=ids["failure"], task="tests.fail", args=[1], kwargs={"b": 2}, hostname="w2@example.com"
    )
    backend.store_result(ids["failure"], ValueError("boom \u2717"), "FAILURE", TRACEBACK, request=failure)

    progress = Context(
        id=ids["progress"],
        task="tests.long",
        args=[],
        kwargs={},
        argsrepr="()",
        kwargsrepr="{}",
        hostname="worker1@example.com",
        meta=dict(USER_META),
    )
    backend.store_result(ids["progress"], {"done": 3, "total": 7}, "PROGRESS", request=progress)

    members = [app.AsyncResult(ids["success"]), app.AsyncResult(ids["failure"])]
    backend.save_group(group_id(tag), GroupResult(group_id(tag), members, app=app))


def describe(value: Any) -> Any:
    """A JSON-able, type-preserving description of a decoded value (repr keeps tuples and sets apart)."""
    if isinstance(value, BaseException):
        return {"exception": f"{type(value).__module__}.{type(value).__qualname__}", "args": repr(value.args)}
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def summarize_task(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What ``get_task_meta()`` returned, in a form that crosses the process boundary."""
    summary = {key: describe(meta.get(key)) for key in META_KEYS}
    summary["user_meta"] = {key: describe(meta.get(key)) for key in USER_META}
    # Celery's own name for the task name (AsyncResult.name); upstream only returns task_name.
    summary["name"] = describe(meta.get("name"))
    return summary


def read_results(app: Any, tag: str) -> dict[str, Any]:
    """Read back everything :func:`write_results` stored, bypassing Celery's meta cache."""
    backend = app.backend
    summary: dict[str, Any] = {
        role: summarize_task(backend.get_task_meta(task_id, cache=False))
        for role, task_id in task_ids(tag).items()
    }
    restored = backend.restore_group(group_id(tag), cache=False)
    meta = backend.get_group_meta(group_id(tag), cache=False)
    summary["group"] = {
        "id": restored.id,
        "members": repr(restored.as_tuple()),
        "date_done": describe(meta["date_done"]),
    }
    return summary


# -- the child side ---------------------------------------------------------------


def _migrate(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Migrate ``django_celery_results`` on each ``{"database", "target"}`` job."""
    from django.core.management import call_command
    from django.db import connections
    from django.db.migrations.recorder import MigrationRecorder

    applied: dict[str, list[str]] = {}
    for job in payload["jobs"]:
        alias = job["database"]
        call_command("migrate", "django_celery_results", job["target"], database=alias, verbosity=0)
        recorded = MigrationRecorder(connections[alias]).applied_migrations()
        applied[alias] = sorted(name for app, name in recorded if app == "django_celery_results")
        connections[alias].close()
    return {"applied": applied}


def _makemigrations_check(payload: Mapping[str, Any]) -> dict[str, Any]:
    """``makemigrations django_celery_results --check --dry-run``: does any change show up?"""
    from django.core.management import call_command

    from django_celery_results.models import TaskResult

    output = StringIO()
    task_id = TaskResult._meta.get_field("task_id")
    answer = {"task_id_max_length": getattr(task_id, "max_length", None), "changes": False}
    try:
        call_command(
            "makemigrations",
            "django_celery_results",
            check=True,
            dry_run=True,
            verbosity=3,
            stdout=output,
            stderr=output,
        )
    except SystemExit as exc:
        answer["changes"] = exc.code not in (0, None)
    return {**answer, "output": output.getvalue()}


def _write_results(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Write each scenario, then read it back through a fresh app (no cached meta)."""
    summaries = {}
    for scenario in payload["scenarios"]:
        write_results(
            make_app(scenario["serializer"], scenario["extended"]), scenario["tag"], scenario["serializer"]
        )
        summaries[scenario["tag"]] = read_results(
            make_app(scenario["serializer"], scenario["extended"]),
            scenario["tag"],
        )
    return {"summaries": summaries}


def _read_results(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "summaries": {
            scenario["tag"]: read_results(
                make_app(scenario["serializer"], scenario["extended"]), scenario["tag"]
            )
            for scenario in payload["scenarios"]
        }
    }


def _whoami(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {}


COMMANDS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "whoami": _whoami,
    "migrate": _migrate,
    "makemigrations-check": _makemigrations_check,
    "write-results": _write_results,
    "read-results": _read_results,
}


def main(argv: list[str]) -> int:
    """Child entry point: check which package is imported, run one command, write its answer."""
    command, answer_file = argv
    import django

    django.setup()
    import django_celery_results

    origin = Path(django_celery_results.__file__).resolve()
    expected = Path(os.environ["DCR_MIG_PACKAGE_ROOT"]).resolve()
    if origin.parent.parent != expected:
        print(f"django_celery_results was imported from {origin}, expected under {expected}", file=sys.stderr)
        return 3
    answer = COMMANDS[command](json.loads(sys.stdin.read() or "{}"))
    answer.update(origin=str(origin), version=getattr(django_celery_results, "__version__", None))
    Path(answer_file).write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
