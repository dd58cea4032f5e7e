"""Upstream django-celery-results 2.6.0, measured in a child process against the same floor.

Timings taken in another process at another moment are not comparable on a
noisy machine, so the child pairs upstream with the floor call by call, as
the parent pairs ours: what is compared is each one's ratio to the floor.
The child runs ``python -m benchmarks.upstream`` with upstream's unpacked
wheel first on ``sys.path`` (and as working directory), against the
scratch database the parent migrated with our migrations; upstream's
models read and write a subset of those columns. The workloads are
:mod:`benchmarks.workloads`, the same the peers run; the latency writer is
spawned from the child (so it imports upstream too); ``cleanup`` runs one
``backend.cleanup()`` of the rows the parent loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .harness import CHILD_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent


def upstream_root() -> Path:
    """Where upstream's package is unpacked (downloaded by pip on first use)."""
    sys.path.insert(0, str(ROOT))
    from tests.support.upstream import upstream_root as unpacked

    return unpacked()


def _child(arguments: list[str]) -> Any:
    """Run ``python -m benchmarks.upstream ARGUMENTS... ANSWER`` with upstream first on the path."""
    root = upstream_root()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), str(ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "DCR_BENCH_UPSTREAM_ROOT": str(root),
    }
    with tempfile.TemporaryDirectory(prefix="dcr_bench_") as scratch:
        answer = Path(scratch) / "answer.json"
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.upstream", *arguments, str(answer)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
        )
        if proc.returncode != 0 or not answer.exists():
            raise RuntimeError(f"the upstream child exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return json.loads(answer.read_text())


def run(engine: str, sizes: Any) -> dict[str, Any]:
    """Measure upstream in a child; return its figures by name. Raises ``RuntimeError`` on failure."""
    found: dict[str, Any] = _child(["measure", engine, json.dumps(asdict(sizes))])
    return found


def cleanup(engine: str) -> dict[str, Any]:
    """Upstream's ``backend.cleanup()`` of the rows in the scratch database, in a fresh child."""
    found: dict[str, Any] = _child(["cleanup", engine])
    return found


# -- the child side -------------------------------------------------------------------


def measure(engine: str, sizes: dict[str, int]) -> dict[str, Any]:
    """Upstream through the same workloads as the peers (``benchmarks.workloads``), plus statements."""
    from celery import states
    from celery import uuid as new_id

    from . import floor, workloads
    from .figures import count_statements
    from .harness import make_app

    app = make_app()
    backend = app.backend
    found = workloads.measure_all(app, engine, sizes, latency_url=None)
    fresh = new_id()
    request = floor.request(fresh, 1)
    started = count_statements(
        lambda: backend.store_result(fresh, floor.STARTED_META, states.STARTED, request=request)
    )
    done = count_statements(lambda: backend.mark_as_done(fresh, 1, request=request))
    found["lifecycle"]["statements"] = f"{started} per STARTED, {done} per SUCCESS"
    found["get_meta"]["statements"] = f"{count_statements(lambda: backend.get_task_meta(fresh, cache=False))}"
    return found


def main(argv: list[str]) -> int:
    """Child entry point: ``python -m benchmarks.upstream measure ENGINE SIZES_JSON ANSWER_FILE``
    or ``... cleanup ENGINE ANSWER_FILE``."""
    command, engine, *rest = argv
    answer = rest[-1]
    from .harness import setup

    setup(engine)
    import django_celery_results

    origin = Path(django_celery_results.__file__).resolve()
    expected = Path(os.environ["DCR_BENCH_UPSTREAM_ROOT"]).resolve()
    if origin.parent.parent != expected:
        print(f"imported django_celery_results from {origin}, not from {expected}", file=sys.stderr)
        return 3
    if command == "cleanup":
        from . import children

        figures: Any = children.cleanup("ours")
    else:
        figures = measure(engine, json.loads(rest[0]))
    # An editable install of ours can still serve a module 2.6.0 lacks: then the figures mix both.
    loaded = {name: getattr(module, "__file__", None) for name, module in sys.modules.items()}
    strays = sorted(
        name
        for name, file in loaded.items()
        if name.startswith("django_celery_results.")
        and file
        and not Path(file).resolve().is_relative_to(expected)
    )
    if strays:
        print(f"modules imported from outside {expected}: {', '.join(strays)}", file=sys.stderr)
        return 3
    Path(answer).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
