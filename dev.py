#!/usr/bin/env python3
"""Developer entry point: ``python3 dev.py demo`` and ``python3 dev.py test``.

Standard library only, so it runs on a bare Python 3.10+. It makes ``.venv``
(with the interpreter running this file) holding tox and the project, then
hands the work to tox: tox.ini is the one place that names the test
environments, and tox builds and caches each one. What is left here is what
tox does not do: finding the pyenv interpreters, choosing which of the main
cells this machine can reach, and the closing ``N passed, N failed`` line over
all of them, read from each cell's JUnit report.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import venv
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TOX_INI = ROOT / "tox.ini"
#: What .venv holds; tox installs the rest of each environment itself.
TOOLS = ("tox>=4.22", "tox-uv>=1.11")
ENGINES = ("sqlite", "postgresql", "mysql")
MYSQL_HINT = "install the client headers (Debian/Ubuntu: apt-get install -y libmariadb-dev pkg-config)"
#: The languages the package ships catalogs for (django_celery_results/locale/).
LANGUAGES = ("es", "pt_BR", "ru", "zh_Hans")
GETTEXT_HINT = "install GNU gettext (Debian/Ubuntu: apt-get install -y gettext)"


def say(message: str = "") -> None:
    print(message, flush=True)


# -- tox in .venv ---------------------------------------------------------------


def venv_bin(name: str) -> Path:
    scripts = VENV / ("Scripts" if os.name == "nt" else "bin")
    return scripts / (name + (".exe" if os.name == "nt" else ""))


@functools.cache
def ensure_tox() -> Path:
    """``.venv/bin/tox``: ``.venv`` made and filled first when needed (see :func:`fill_venv`)."""
    tox = venv_bin("tox")
    if not (tox.exists() and subprocess.run([str(tox), "--version"], capture_output=True).returncode == 0):
        if not venv_bin("python").exists():
            say(f"-- creating {VENV.name} with Python {sys.version.split()[0]} ({sys.executable})")
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        say(f"-- installing {' '.join(TOOLS)} into {VENV.name}")
        pip = [str(venv_bin("python")), "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip", *TOOLS], check=True)
    fill_venv()
    return tox


def fill_venv() -> None:
    """The project, editable with its ``dev`` extra, in ``.venv`` too (benchmarks, editors).

    uv checks it in a second and reinstalls only when pyproject.toml changed. The
    ``mysql`` extra only where mysqlclient can be built.
    """
    extras = "dev" if mysql_headers_missing() else "dev,mysql"
    uv = [str(venv_bin("uv")), "pip", "install", "--quiet", "--python", str(venv_bin("python"))]
    done = subprocess.run([*uv, "-e", f".[{extras}]"], cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"dev.py: installing the project into {VENV.name} failed")


def interpreter_path() -> str:
    """``PATH`` with every pyenv-installed CPython added, so tox finds py310 ... py313 by name."""
    folders: list[str] = []
    pyenv = shutil.which("pyenv")
    root = os.environ.get("PYENV_ROOT") or (
        subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip() if pyenv else ""
    )
    if root and (Path(root) / "versions").is_dir():
        folders = [
            str(path / "bin")
            for path in sorted((Path(root) / "versions").iterdir())
            if (path / "bin" / "python").exists()
        ]
    return os.pathsep.join([*folders, os.environ.get("PATH", "")])


def tox_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = interpreter_path()
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tox(*args: str) -> int:
    """Run tox in the foreground; Ctrl-C reaches it and it stops its own children."""
    child = subprocess.Popen([str(ensure_tox()), *args], cwd=ROOT, env=tox_env())
    try:
        return child.wait()
    except KeyboardInterrupt:
        return child.wait()


def label(name: str) -> list[str]:
    """The environments of a tox label, read from tox.ini (the single source)."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(TOX_INI)
    labels = dict(line.split("=", 1) for line in config["tox"]["labels"].strip().splitlines())
    envs = {key.strip(): value for key, value in labels.items()}[name]
    return [env.strip() for env in envs.split(",")]


# -- which cells can run here ------------------------------------------------------


def engine_of(env: str) -> str:
    return next(factor for factor in env.split("-") if factor in ENGINES)


def reachable(host: str, port: str) -> str | None:
    """``None`` when something listens at host:port, else why not."""
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return None
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or exc})"


def mysql_headers_missing() -> str | None:
    """Why mysqlclient cannot be built here, or ``None``."""
    if os.environ.get("MYSQLCLIENT_CFLAGS") and os.environ.get("MYSQLCLIENT_LDFLAGS"):
        return None
    if shutil.which("pkg-config") is None:
        return f"pkg-config is not installed; {MYSQL_HINT}"
    names = ("mysqlclient", "mariadb", "libmariadb", "perconaserverclient")
    if any(subprocess.run(["pkg-config", "--exists", name]).returncode == 0 for name in names):
        return None
    return f"no MySQL/MariaDB client library found by pkg-config; {MYSQL_HINT}"


def unavailable(env: str) -> str | None:
    """Why the cell cannot run on this machine, or ``None``."""
    if "pg18" in env.split("-"):
        return None  # the harness starts its own server
    engine = engine_of(env)
    if engine == "postgresql":
        return reachable(os.environ.get("PGHOST", "127.0.0.1"), os.environ.get("PGPORT", "5432"))
    if engine == "mysql":
        return mysql_headers_missing() or reachable(
            os.environ.get("MYSQL_HOST", "127.0.0.1"), os.environ.get("MYSQL_TCP_PORT", "3306")
        )
    return None


# -- results: pytest's JUnit XML of each cell ----------------------------------------


def junit_path(env: str) -> Path:
    return ROOT / ".tox" / env / "junit.xml"


@dataclass
class Outcome:
    env: str
    reason: str = ""  # why it did not run
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    started: str = ""  # when the run began (UTC), from the report
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        return bool(self.counts)

    @property
    def passed(self) -> int:
        return self.counts.get("tests", 0) - self.failed - self.skipped

    @property
    def failed(self) -> int:
        return self.counts.get("failures", 0) + self.counts.get("errors", 0)

    @property
    def skipped(self) -> int:
        return self.counts.get("skipped", 0)


def read_outcome(env: str, report: Path | None = None) -> Outcome:
    """The cell's counts, time and properties from its JUnit report (``.tox/<env>/junit.xml``)."""
    outcome = Outcome(env)
    try:
        suite = ElementTree.parse(report or junit_path(env)).getroot()
    except (OSError, ElementTree.ParseError):
        outcome.reason = "no test report (the environment or pytest failed before any test ran)"
        return outcome
    if suite.tag == "testsuites":
        suite = suite[0]
    outcome.counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    outcome.seconds = float(suite.get("time", "0"))
    with contextlib.suppress(ValueError):
        started = datetime.fromisoformat(suite.get("timestamp", ""))
        outcome.started = started.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")
    # The suite's own properties (conftest.py), not those of single tests.
    properties = suite.find("properties")
    if properties is not None:
        outcome.properties = {p.get("name", ""): p.get("value", "") for p in properties}
    if outcome.properties.get("exitstatus") == "2":  # pytest.ExitCode.INTERRUPTED
        outcome.counts, outcome.reason = {}, "interrupted: the report holds part of the run"
    return outcome


def print_summary(outcomes: list[Outcome]) -> None:
    say()
    say(f"  {'environment':<44} {'passed':>7} {'failed':>7} {'skipped':>8} {'time':>8}")
    for o in outcomes:
        if not o.ran:
            say(f"  {o.env:<44} {'not run:':>7} {o.reason}")
            continue
        say(f"  {o.env:<44} {o.passed:>7} {o.failed:>7} {o.skipped:>8} {o.seconds:>7.1f}s")
    passed, failed = sum(o.passed for o in outcomes), sum(o.failed for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    say(f"{passed} passed, {failed} failed, {skipped} skipped")


def run_cells(envs: list[str], pytest_args: list[str], required: bool) -> tuple[int, list[Outcome]]:
    """Run the cells that can run (all of them when ``required``); outcomes in ``envs`` order."""
    skipped = {env: why for env in envs if (why := unavailable(env))}
    for env, why in skipped.items():
        say(f"-- {env}: {'required but ' if required else 'skipped: '}{why}")
    runnable = envs if required else [env for env in envs if env not in skipped]
    for env in runnable:
        junit_path(env).unlink(missing_ok=True)
    if runnable:
        tox("run", "-e", ",".join(runnable), "--", *pytest_args)
    outcomes = [read_outcome(env) if env in runnable else Outcome(env, reason=skipped[env]) for env in envs]
    # Judged by the reports, not tox's status: pytest exits 5 when a cell deselected every
    # test (another engine's tests only), which is no failure; a cell without a report is one.
    bad = [o for o in outcomes if o.failed or (not o.ran and (required or o.env in runnable))]
    return (1 if bad else 0), outcomes


# -- MATRIX.md ----------------------------------------------------------------------

MATRIX = ROOT / "MATRIX.md"
#: How conftest.py names each engine's server in the report, by tox.ini's [servers] key.
SERVER_NAMES = {"postgresql": "postgresql", "mysql": "mysql (mysql)", "mariadb": "mysql (mariadb)"}
ELSEWHERE = (
    "no server package of this version reaches this machine; "
    "run by `docker compose up --exit-code-from tests` and the GitHub workflow"
)


def servers() -> dict[str, list[str]]:
    """tox.ini's ``[servers]``: the server versions the suite is run against somewhere."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(TOX_INI)
    return {name: value.split() for name, value in config["servers"].items()}


def selection(chosen: str) -> str:
    return "contract subset (`CORNER_TESTS`)" if chosen == " ".join(CORNER_TESTS) else chosen


def write_matrix(outcomes: list[Outcome]) -> None:
    """MATRIX.md: one row per cell from its JUnit report, then the servers no cell reached."""
    columns = (
        "cell",
        "Python",
        "Django",
        "Celery",
        "kombu",
        "server",
        "driver",
        "passed",
        "failed",
        "skipped",
        "time",
        "tests run",
        "run at (UTC)",
    )
    green = [o for o in outcomes if o.ran and not o.failed]
    verdict = (
        f"All {len(outcomes)} cells passed."
        if len(green) == len(outcomes)
        else f"{len(green)} of {len(outcomes)} cells passed; not green: "
        + ", ".join(f"`{o.env}`" for o in outcomes if o not in green)
        + "."
    )
    lines = [
        "# Compatibility matrix",
        "",
        "Written by `python3 dev.py matrix` from the JUnit reports of its last run of every cell",
        "of the tox label `matrix` (tox.ini is the single source of the factors), on a 2-core",
        "development machine. The server is the one each cell really talked to, as the suite",
        "reported it. The main cells run the full suite; the others the contract subset",
        "(`CORNER_TESTS` in dev.py: backend, precedence, races, chords, migrations, faults,",
        "both PostgreSQL drivers, real workers).",
        "",
        verdict,
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for o in outcomes:
        p = o.properties
        if not o.ran:
            lines.append(f"| `{o.env}` | " + " | ".join(["-"] * 10) + f" | not run: {o.reason} | - |")
            continue
        row = (
            f"`{o.env}`",
            p.get("python", "?"),
            p.get("django", "?"),
            p.get("celery", "?"),
            p.get("kombu", "?"),
            p.get("server", "?"),
            p.get("driver", "?"),
            str(o.passed),
            str(o.failed),
            str(o.skipped),
            f"{o.seconds / 60:.1f} min",
            selection(p.get("selection", "?")),
            o.started,
        )
        lines.append("| " + " | ".join(row) + " |")
    seen = [o.properties.get("server", "") for o in outcomes]
    missing = [
        (name, version)
        for name, versions in servers().items()
        for version in versions
        if not any(s.startswith(f"{SERVER_NAMES[name]} {version}.") for s in seen)
    ]
    lines += ["", "## Not run on this machine", ""]
    lines += [f"- {name} {version}: {ELSEWHERE}." for name, version in missing] or ["- none"]
    lines += [
        "",
        "Every other environment of `tox -l` can be run the same way (`tox -e NAME`);",
        "the cells above cover every Python, Django and Celery version with every engine.",
        "",
    ]
    MATRIX.write_text("\n".join(lines))


# -- commands ------------------------------------------------------------------------


def cmd_test(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dev.py test",
        description="The test suite on the main cell of every engine (tox label 'main'); "
        "arguments after -- go to pytest.",
    )
    parser.add_argument(
        "--engine",
        action="append",
        default=[],
        type=str.lower,
        help="only this engine (repeatable, or a comma list); it must be reachable",
    )
    parser.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        help="tox environments to run instead of the main cells (repeatable, comma lists)",
    )
    parser.add_argument(
        "--require-all", action="store_true", help="an unreachable engine is a failure (also when CI is true)"
    )
    options, pytest_args = split_passthrough(parser, argv)
    engines = {name.strip() for value in options.engine for name in value.split(",")}
    if unknown := engines - set(ENGINES):
        parser.error(f"unknown engine {', '.join(sorted(unknown))}; choose from {', '.join(ENGINES)}")
    envs = [env for value in options.env for env in value.split(",")] or label("main")
    envs = [env for env in envs if not engines or engine_of(env) in engines]
    required = bool(options.require_all or engines or options.env) or (
        os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")
    )
    code, outcomes = run_cells(envs, pytest_args, required)
    print_summary(outcomes)
    return code


def split_passthrough(
    parser: argparse.ArgumentParser,
    argv: list[str],
) -> tuple[argparse.Namespace, list[str]]:
    """Our options before ``--``, pytest's after it (unknown options go to pytest too)."""
    ours, theirs = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    options, rest = parser.parse_known_args(ours)
    return options, [*rest, *theirs]


#: What the corner cells run in CI: the backend contract, state precedence, races, chords,
#: migrations, faults, both PostgreSQL drivers and real workers.
CORNER_TESTS = (
    "tests/backends/test_database.py",
    "tests/backends/test_precedence.py",
    "tests/races/test_concurrent_writers.py",
    "tests/backends/test_chords.py",
    "tests/test_migrations.py",
    "tests/faults/test_server_restarts.py",
    "tests/engines/test_postgresql_drivers.py",
    "tests/workers/test_backends.py",
    *(
        f"tests/workers/test_chords.py::{test}[{setup}]"
        for test in (
            "test_chord_callback_gets_every_part",
            "test_chord_with_a_failed_part_fails_its_callback",
            "test_a_failed_header_part_fails_a_group_body_with_its_own_exception",
        )
        for setup in ("filesystem", "django-cache")
    ),
)


#: pytest options of the main cells in CI: branch coverage of the package (pyproject's [tool.coverage]).
#: The floor applies to the cells together (report_coverage), not to each one.
COVERAGE_ARGS = ("--cov", "--cov-report=", "--cov-fail-under=0")


def report_coverage(envs: list[str]) -> int:
    """Combine the cells' coverage data, print the report; non-zero under pyproject's ``fail_under``."""
    found = [str(path) for env in envs if (path := ROOT / ".tox" / env / ".coverage").is_file()]
    if len(found) != len(envs):
        say("-- coverage: a main cell wrote no coverage data")
        return 1
    python = str(ROOT / ".tox" / envs[0] / "bin" / "python")
    combined = str(ROOT / ".tox" / ".coverage")
    say("-- coverage of django_celery_results (branches included), the main cells together:")
    subprocess.run(
        [python, "-m", "coverage", "combine", "--keep", "-q", f"--data-file={combined}", *found],
        cwd=ROOT,
        check=True,
    )
    report = subprocess.run([python, "-m", "coverage", "report", f"--data-file={combined}"], cwd=ROOT)
    return report.returncode


def cmd_ci(argv: list[str]) -> int:
    """What .ci/run runs: the main cells' full suite with coverage, then the corners' subset; all required."""
    parser = argparse.ArgumentParser(prog="dev.py ci", description=cmd_ci.__doc__)
    parser.parse_args(argv)
    main_code, main = run_cells(label("main"), list(COVERAGE_ARGS), required=True)
    corners_code, corners = run_cells(label("corners"), list(CORNER_TESTS), required=True)
    print_summary(main + corners)
    coverage_code = report_coverage(label("main"))
    return main_code or corners_code or coverage_code


def cmd_matrix(argv: list[str]) -> int:
    """Every cell of the tox label ``matrix``, then MATRIX.md from their reports.

    The main cells run the full suite, the others CORNER_TESTS (the whole matrix in
    full would take hours on a 2-core machine); ``-e`` reruns some cells only.
    """
    parser = argparse.ArgumentParser(prog="dev.py matrix", description=cmd_matrix.__doc__)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite MATRIX.md from the reports of the last run without running anything",
    )
    parser.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        help="run only these cells of the label (repeatable, comma lists)",
    )
    options = parser.parse_args(argv)
    envs = label("matrix")
    chosen = [env for value in options.env for env in value.split(",")] or envs
    if unknown := set(chosen) - set(envs):
        parser.error(f"not in the matrix label: {', '.join(sorted(unknown))}")
    code = 0
    if not options.report_only:
        main = [env for env in chosen if env in label("main")]
        others = [env for env in chosen if env not in main]
        codes, outcomes = [], []
        for cells, tests in ((others, list(CORNER_TESTS)), (main, [])):
            if cells:
                done, found = run_cells(cells, tests, required=True)
                codes.append(done)
                outcomes += found
        print_summary(outcomes)
        code = max(codes, default=0)
    write_matrix([read_outcome(env) for env in envs])
    say(f"-- wrote {MATRIX.name}")
    return code


def cmd_cells(argv: list[str]) -> int:
    """A tox label's environments as JSON, with each one's Python: the GitHub workflow's job matrix."""
    parser = argparse.ArgumentParser(prog="dev.py cells", description=cmd_cells.__doc__)
    parser.add_argument("label", help="a label of tox.ini (main, corners, matrix)")
    options = parser.parse_args(argv)
    cells = [{"env": env, "python": python_of(env)} for env in label(options.label)]
    say(json.dumps(cells))
    return 0


def python_of(env: str) -> str:
    """``py313-...`` -> ``3.13``."""
    digits = env.split("-")[0].removeprefix("py")
    return f"{digits[0]}.{digits[1:]}"


def cmd_demo(argv: list[str]) -> int:
    return tox("run", "-q", "-e", "demo", "--", *argv)


def cmd_lint(argv: list[str]) -> int:
    """ruff (lint rules and formatting) over the tree; mypy (strict) over the package and the benchmarks."""
    return tox("run", "-e", "lint,type", *argv)


def cmd_docs(argv: list[str]) -> int:
    """The Sphinx docs, warnings as errors (as CI builds them)."""
    return tox("run", "-e", "docs", *argv)


def cmd_messages(argv: list[str]) -> int:
    """makemessages then compilemessages for the package's own catalogs.

    Both .po and .mo are committed; tests/project/test_packaging.py fails when a .mo
    no longer matches its .po.
    """
    missing = [tool for tool in ("xgettext", "msgmerge", "msgfmt") if shutil.which(tool) is None]
    if missing:
        say(f"dev.py: {', '.join(missing)} not found; {GETTEXT_HINT}")
        return 1
    make = ["makemessages", "--add-location=file", *(f"--locale={lang}" for lang in LANGUAGES)]
    for command in (make, ["compilemessages", *argv]):
        if code := tox("run", "-q", "-e", "messages", "--", "django-admin", *command):
            return code
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "test": cmd_test,
    "ci": cmd_ci,
    "matrix": cmd_matrix,
    "cells": cmd_cells,
    "lint": cmd_lint,
    "docs": cmd_docs,
    "messages": cmd_messages,
}

USAGE = """\
usage: python3 dev.py demo [--admin]
       python3 dev.py test [--engine NAME]... [--require-all] [-e ENV]... [-- pytest args...]
       python3 dev.py ci
       python3 dev.py matrix [--report-only]
       python3 dev.py cells LABEL
       python3 dev.py lint | docs | messages

  demo      run the demo project against a real celery worker
  test      the test suite on the main cell of sqlite, postgresql and mysql (tox -m main);
            an engine whose server does not answer is skipped, unless it is named,
            --require-all is given or CI is true
  ci        what .ci/run runs: the main cells (full suite) and the corners (tox -m corners,
            CORNER_TESTS), every server required
  matrix    every cell this machine can run (tox -m matrix), then MATRIX.md
  cells     a tox label's environments as JSON (the GitHub workflow's job matrix)
  lint      ruff over the tree, mypy over the package and benchmarks
  docs      build the Sphinx docs, warnings as errors
  messages  update the translation catalogs (.po) and compile them (.mo); needs GNU gettext
"""


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        say(USAGE)
        return 0 if argv and argv[0] in ("-h", "--help", "help") else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
