"""Benchmark the ``django-db`` result backend against a hand-written floor, on one engine.

Usage, from the project root::

    .venv/bin/python benchmarks/run.py --engine sqlite|postgresql|mysql [--quick] [--markdown]
    .venv/bin/python benchmarks/run.py --engine postgresql|mysql|sqlite --only admin [--admin-rows N]

Creates and migrates the scratch database ``dcr_bench`` (a file under
``.cache`` for SQLite), measures through Celery's public API, prints a table
and one JSON line per figure, and drops the database again.

The ``admin`` figure (``benchmarks/admin_scale.py``: the task-result admin
over a million rows, through Django's test Client) is not part of a default
run: it takes minutes, and runs alone (``--only admin``) on a scratch
database of its own, ``dcr_bench_admin``, with the admin site installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported once Django is set up, in main()
    from benchmarks.figures import Figure

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make ``benchmarks`` and the package importable
    sys.path.insert(0, str(ROOT))


#: The figure that runs alone, on its own database (``benchmarks/admin_scale.py``).
ADMIN = "admin"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        if connection.vendor == "mysql":
            cursor.execute("SELECT VERSION()")
            return f"MySQL/MariaDB {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]}"


def machine() -> dict[str, Any]:
    """CPU count, memory and CPU model of this machine (Linux)."""
    model, memory = platform.processor() or "unknown", "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) // 1024} MiB"
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory": memory, "cpu": model}


def driver_version() -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        import psycopg

        return f"psycopg {psycopg.__version__}"
    if connection.vendor == "mysql":
        import MySQLdb

        return f"mysqlclient {'.'.join(map(str, MySQLdb.version_info[:3]))}"
    import sqlite3

    return f"sqlite3 (SQLite library {sqlite3.sqlite_version})"


def versions() -> dict[str, str]:
    import celery
    import django

    import django_celery_results

    return {
        "python": platform.python_version(),
        "django": django.get_version(),
        "celery": celery.__version__,
        "django_celery_results": django_celery_results.__version__,
        "server": server_version(),
        "driver": driver_version(),
    }


#: The figures compared through their ratio to the floor (the rest: latency, compared as ms).
LATENCY_KEYS = {"latency": "p50_ms", "latency_p99": "p99_ms"}
#: The figures the peers run (``benchmarks.workloads.measure_all``).
PEER_FIGURES = (
    "store_new",
    "lifecycle",
    "get_meta",
    "group_join_native",
    "group_join",
    "chord_part",
    *LATENCY_KEYS,
)


def _normalised(figure: Any, found: Any) -> tuple[float | str | None, float | None]:
    """A peer's or upstream's cell for ``figure``, and the number ours is compared with.

    Paired figures: the other side's ratio to its floor (ours compares its own
    ratio); latency: ms. A string says why there is no figure.
    """
    if found is None:
        return None, None
    if isinstance(found, str):
        return found, None
    if figure.name in LATENCY_KEYS:
        value = found.get(LATENCY_KEYS[figure.name])
        return value, value
    if "ratio" not in found:
        return found.get("error"), None
    return f"{found['ms']:g} ({found['ratio']:g}x)", found["ratio"]


def _ours(figure: Figure) -> float | None:
    return figure.ours if figure.name in LATENCY_KEYS else figure.ratio


def add_upstream(results: list[Any], measured: dict[str, Any]) -> None:
    """Put upstream's figure beside ours, and ours over it (each normalised by its own floor)."""
    for figure in results:
        found = measured.get(figure.name)
        if found is None and figure.name == "latency_p99":
            found = measured.get("latency")
        if found is None:
            continue
        cell, theirs = _normalised(figure, found)
        figure.upstream = cell
        if isinstance(found, dict) and "ratio" in found:
            figure.upstream_ratio = found["ratio"]
        ours = _ours(figure)
        if theirs and ours is not None:
            figure.vs_upstream = round(ours / theirs, 2)
        figure.details["upstream"] = found


def add_peers(results: list[Any], measured: dict[str, dict[str, Any]]) -> None:
    """Put each peer's figure beside ours (``benchmarks/peers.py``)."""
    for peer, figures_found in measured.items():
        for figure in results:
            if figure.name not in PEER_FIGURES:
                continue
            found = figures_found.get("latency" if figure.name == "latency_p99" else figure.name)
            if found is None and "error" in figures_found:
                found = figures_found["error"]
            if found is None:
                continue
            cell, theirs = _normalised(figure, found)
            setattr(figure, peer, cell)
            figure.details[peer] = found
            figure.details[f"{peer}_compared"] = theirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--engine", choices=("sqlite", "postgresql", "mysql"), required=True)
    parser.add_argument("--quick", action="store_true", help="fewer calls and 20k cleanup rows")
    parser.add_argument(
        "--only",
        nargs="*",
        metavar="FIGURE",
        help=f"run only these figures; '{ADMIN}' (not in a default run) must be alone",
    )
    parser.add_argument(
        "--admin-rows",
        type=int,
        default=None,
        metavar="N",
        help="task results the admin figure fills (default 1,000,000; 100,000 with --quick)",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--no-upstream",
        dest="upstream",
        action="store_false",
        help="skip the upstream 2.6.0 column (otherwise pip downloads its wheel once, into .cache)",
    )
    parser.add_argument(
        "--no-peers",
        dest="peers",
        action="store_false",
        help="skip the redis and sqlalchemy columns (Celery's own result backends)",
    )
    options = parser.parse_args(argv)
    admin_run = ADMIN in (options.only or ())
    if admin_run and set(options.only) != {ADMIN}:
        parser.error(f"the {ADMIN} figure runs alone, on its own scratch database: --only {ADMIN}")

    from benchmarks.harness import ADMIN_SETTINGS_MODULE, SETTINGS_MODULE, make_app, setup

    setup(options.engine, ADMIN_SETTINGS_MODULE if admin_run else SETTINGS_MODULE)
    from django.db import connection

    from benchmarks import chord_scale, figures, report, upstream
    from django_celery_results import notify

    steps: dict[str, Callable[[figures.Bench], Any]] = {
        "store_new": figures.store_new,
        "lifecycle": figures.lifecycle,
        "get_meta": figures.get_meta,
        "group_join": figures.group_join,
        "chord": figures.chord,
        "chord_scale": chord_scale.chord_scale,
        "cleanup": figures.cleanup,
        "latency": figures.latency,
        "latency_pooler": figures.latency_pooler,
        "memory": figures.memory,
    }
    unknown = set(options.only or ()) - set(steps) - {ADMIN}
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; choose from {sorted([*steps, ADMIN])}")
    if admin_run:
        from benchmarks import admin_scale

        rows = options.admin_rows or (admin_scale.ROWS // 10 if options.quick else admin_scale.ROWS)
        steps = {ADMIN: lambda bench: admin_scale.admin(rows)}
        options.upstream = False  # upstream has no admin figure to compare with
        options.peers = False

    sizes = figures.Sizes.quick() if options.quick else figures.Sizes.full()
    name = connection.settings_dict["NAME"]
    log(f"creating and migrating the scratch database {name} on {options.engine}")
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    results: list[figures.Figure] = []
    failed = False
    try:
        context = {"engine": options.engine, "quick": options.quick, **versions(), **machine()}
        app = make_app()
        bench = figures.Bench(options.engine, sizes, app, with_upstream=options.upstream)
        for step_name, step in steps.items():
            if options.only and step_name not in options.only:
                continue
            log(f"{step_name} ...")
            started = time.perf_counter()
            try:
                produced = step(bench)
            except Exception as exc:
                failed = True
                traceback.print_exc()
                produced = figures.Figure(step_name, "", None, met=False, note=f"failed: {exc!r}")
            results.extend(produced if isinstance(produced, list) else [produced])
            log(f"{step_name} done in {time.perf_counter() - started:.1f}s")
        # Upstream's and the peers' paired figures, when one of them was run (cleanup's
        # upstream column is measured inside the cleanup figure, between loads).
        paired_run = any(f.name in PEER_FIGURES for f in results)
        options.upstream = options.upstream and paired_run
        options.peers = options.peers and paired_run
        if options.upstream:
            log("upstream 2.6.0, in its own process ...")
            try:
                add_upstream(results, upstream.run(options.engine, sizes))
            except Exception as exc:
                failed = True
                log(f"upstream failed: {exc}")
        if options.peers and not admin_run:
            from benchmarks import peers

            add_peers(results, peers.run(options.engine, sizes, log=log))
        app.close()
    finally:
        log("dropping the scratch database")
        notify.close_all()  # the shared LISTEN connection is on it
        connection.creation.destroy_test_db(name, verbosity=0)
    print(f"engine: {options.engine} ({context['server']}); {'quick' if options.quick else 'full'} run")
    print(report.table(results, markdown=options.markdown))
    if not admin_run:
        print()
        print(report.targets_table(results, markdown=options.markdown))
    print()
    print(report.json_lines(results, context))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
