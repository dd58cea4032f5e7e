"""``python -m demo.run``: migrate, start a real worker, send work, print and check the stored rows.

Run through ``python3 dev.py demo``, which provides the virtualenv. Exits 0
when every result the worker stored reads back as expected, 1 otherwise.
The worker is always stopped, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
from celery import states

from demo import settings

ROOT = Path(__file__).resolve().parent.parent
WORKER_LOG = settings.STATE_DIR / "worker.log"


class DemoError(Exception):
    """The demo could not run to the end (the worker died or did not answer in time)."""


# -- the worker process ---------------------------------------------------------


def prepare_state() -> None:
    """Create ``demo/state/`` and empty the broker folders (stale messages of a killed run)."""
    settings.STATE_DIR.mkdir(exist_ok=True)
    shutil.rmtree(settings.BROKER_DIR, ignore_errors=True)
    for name in ("queue", "control", "processed"):
        (settings.BROKER_DIR / name).mkdir(parents=True)


def start_worker() -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "demo.celery_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--hostname",
        "demo@%h",
        "--without-mingle",
        "--without-gossip",
    ]
    with WORKER_LOG.open("wb") as log:
        # A session of its own: Ctrl-C in the terminal reaches us, and we stop it.
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )


def log_tail(lines: int = 25) -> str:
    try:
        text = WORKER_LOG.read_text(errors="replace")
    except OSError:
        return "(no worker log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(worker: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise DemoError(f"the worker exited with status {worker.returncode}:\n{log_tail()}")
        if " ready." in WORKER_LOG.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise DemoError(f"the worker was not ready after {timeout:.0f}s:\n{log_tail()}")


def stop_worker(worker: subprocess.Popen[bytes], grace: float = 15) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL for the worker and its pool processes."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                print(f"-- the worker did not stop within {grace:.0f}s; killing it", flush=True)
        # The pool processes share the worker's process group (its own session).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


# -- the work -------------------------------------------------------------------


@dataclass
class Expect:
    """One task the demo checks: what its stored state and result must be."""

    label: str
    task_id: str
    name: str
    status: str
    check: Callable[[dict[str, Any]], bool]


def send_work() -> tuple[list[Expect], str, str]:
    """Send each kind of work; return the expectations, the saved group's id and the chord's."""
    from celery import chain, chord, group

    from demo import tasks

    expects: list[Expect] = []

    def result_is(value: Any) -> Callable[[dict[str, Any]], bool]:
        return lambda meta: meta["result"] == value

    single = tasks.add.delay(2, 3)
    expects.append(Expect("success", single.id, "demo.add", states.SUCCESS, result_is(5)))

    failing = tasks.fail.delay("boom")
    expects.append(
        Expect(
            "failure",
            failing.id,
            "demo.fail",
            states.FAILURE,
            lambda meta: (
                isinstance(meta["result"], ValueError) and "ValueError: boom" in (meta["traceback"] or "")
            ),
        )
    )

    retried = tasks.flaky.delay(2)
    expects.append(
        Expect(
            "retry",
            retried.id,
            "demo.flaky",
            states.SUCCESS,
            result_is("ok after 2 retries"),
        )
    )

    chained = chain(tasks.add.s(1, 2), tasks.mul.s(10)).delay()
    expects.append(Expect("chain 1/2", chained.parent.id, "demo.add", states.SUCCESS, result_is(3)))
    expects.append(Expect("chain 2/2", chained.id, "demo.mul", states.SUCCESS, result_is(30)))

    grouped = group(tasks.add.s(i, i) for i in range(4)).delay()
    grouped.save()
    for i, member in enumerate(grouped.results):
        expects.append(Expect(f"group {i + 1}/4", member.id, "demo.add", states.SUCCESS, result_is(2 * i)))

    chorded = chord((tasks.add.s(i, 10) for i in range(3)), tasks.total.s()).delay()
    for i, member in enumerate(chorded.parent.results):
        expects.append(
            Expect(f"chord part {i + 1}/3", member.id, "demo.add", states.SUCCESS, result_is(i + 10))
        )
    expects.append(Expect("chord body", chorded.id, "demo.total", states.SUCCESS, result_is(33)))
    return expects, grouped.id, chorded.parent.id


def wait_done(expects: list[Expect], worker: subprocess.Popen[bytes], timeout: float) -> list[str]:
    """Wait until every task is in a ready state; return the ids still not ready at the deadline."""
    from demo.celery_app import app

    pending = {e.task_id for e in expects}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        pending = {task_id for task_id in pending if not app.AsyncResult(task_id).ready()}
        if worker.poll() is not None:
            raise DemoError(f"the worker exited with status {worker.returncode}:\n{log_tail()}")
        time.sleep(0.2)
    return sorted(pending)


# -- report ---------------------------------------------------------------------


def short_result(backend: Any, row: Any) -> str:
    try:
        value = backend.decode_content(row, row.result)
    except Exception as exc:  # shown, not hidden: the row is unreadable
        return f"<undecodable: {exc}>"
    if isinstance(value, dict) and "exc_type" in value:
        message = value.get("exc_message")
        if isinstance(message, (list, tuple)):
            message = ", ".join(str(m) for m in message)
        text = f"{value['exc_type']}: {message}"
    else:
        text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 26 else text[:25] + "…"


def clock(moment: Any) -> str:
    return moment.strftime("%H:%M:%S.%f")[:-3] if moment else "-"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def report(expects: list[Expect], group_id: str, chord_id: str) -> list[str]:
    """Print the stored rows; return the problems found (empty when all is well)."""
    from demo.celery_app import app
    from django_celery_results.models import ChordCounter, GroupResult, TaskResult

    labels = {e.task_id: e.label for e in expects}
    stored = TaskResult.objects.filter(task_id__in=labels).order_by("date_created", "id")
    rows = [
        [
            row.task_id[:8],
            labels[row.task_id],
            row.task_name or "-",
            row.status,
            short_result(app.backend, row),
            row.worker or "-",
            clock(row.date_started),
            clock(row.date_done),
        ]
        for row in stored
    ]
    database = settings.DATABASES["default"]["NAME"]
    print(f"\nTask results stored by the worker ({len(rows)} rows in {database}):\n")
    print_table(["task id", "what", "name", "status", "result", "worker", "started", "done"], rows)

    problems: list[str] = []
    by_id = {row.task_id: row for row in stored}
    for e in expects:
        row = by_id.get(e.task_id)
        if row is None:
            problems.append(f"{e.label}: no row for task {e.task_id}")
            continue
        meta = app.backend.get_task_meta(e.task_id)
        if meta["status"] != e.status:
            problems.append(f"{e.label}: status {meta['status']}, expected {e.status}")
        elif not e.check(meta):
            problems.append(f"{e.label}: unexpected result {meta['result']!r}")
        if row.task_name != e.name:
            problems.append(f"{e.label}: task_name {row.task_name!r}, expected {e.name!r}")
        if not (row.worker or "").startswith("demo@"):
            problems.append(f"{e.label}: worker {row.worker!r} not recorded (result_extended)")
        if row.date_started is None:
            problems.append(f"{e.label}: date_started not recorded (task_track_started)")

    saved = GroupResult.objects.filter(group_id=group_id).first()
    restored = app.GroupResult.restore(group_id)
    print(
        f"\nGroup result: {group_id[:8]} "
        f"{'saved with ' + str(len(restored.results)) + ' members' if saved and restored else 'MISSING'}"
    )
    if saved is None or restored is None or len(restored.results) != 4:
        problems.append(f"group {group_id}: not saved or not restorable")
    counter = ChordCounter.objects.filter(group_id=chord_id).first()
    print(f"Chord counter: {'removed' if counter is None else f'{counter.count} parts left'}")
    if counter is not None and counter.count:
        problems.append(f"chord {chord_id}: its counter still waits for {counter.count} parts")
    return problems


# -- admin ------------------------------------------------------------------------


def serve_admin(port: int) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    users = get_user_model()
    if not users.objects.filter(username="demo").exists():
        users.objects.create_superuser("demo", "demo@example.invalid", "demo")
    print(f"\nAdmin: http://127.0.0.1:{port}/admin/ (user demo, password demo). Ctrl-C stops it.")
    call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)


# -- main -------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dev.py demo", description=__doc__.splitlines()[0])
    parser.add_argument("--admin", action="store_true", help="then serve the admin on the demo database")
    parser.add_argument("--port", type=int, default=8000, help="port of --admin (default 8000)")
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for the results")
    options = parser.parse_args(argv)

    started = time.monotonic()
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
    prepare_state()
    django.setup()
    from django.core.management import call_command

    print("-- migrating", settings.DATABASES["default"]["NAME"], flush=True)
    call_command("migrate", interactive=False, verbosity=0)

    print("-- starting a celery worker (prefork, concurrency 2); log in", WORKER_LOG, flush=True)
    worker = start_worker()
    try:
        wait_ready(worker)
        print(f"-- worker ready after {time.monotonic() - started:.1f}s; sending work", flush=True)
        expects, group_id, chord_id = send_work()
        missing = wait_done(expects, worker, options.timeout)
        print(f"-- results in after {time.monotonic() - started:.1f}s; stopping the worker", flush=True)
    except DemoError as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print("\nDEMO FAILED: sending or waiting for the work raised (traceback above)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n-- interrupted; stopping the worker", flush=True)
        return 130
    finally:
        stop_worker(worker)
        print(
            f"-- worker stopped after {time.monotonic() - started:.1f}s (exit status {worker.returncode})",
            flush=True,
        )

    problems = report(expects, group_id, chord_id)
    problems += [f"task {task_id} not finished after {options.timeout:.0f}s" for task_id in missing]
    print(f"\nDemo took {time.monotonic() - started:.1f}s.")
    if problems:
        print(f"\nDEMO FAILED ({len(problems)} problems):", file=sys.stderr)
        for problem in problems:
            print("  - " + problem, file=sys.stderr)
        print(f"\nLast lines of the worker log ({WORKER_LOG}):\n{log_tail()}", file=sys.stderr)
        return 1
    print("All results stored and read back as expected.")
    if options.admin:
        serve_admin(options.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
