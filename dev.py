#!/usr/bin/env python3
"""Developer entry point: ``python3 dev.py demo`` and ``python3 dev.py test``.

Standard library only, so it runs on a bare Python 3.10+. Both commands first
make sure ``.venv`` exists (created with the interpreter running this file) and
holds the project with its ``postgres``, ``mysql``, ``test`` and ``lint``
extras. The install is redone only when ``pyproject.toml`` changes: its hash is
kept in a stamp file inside ``.venv``.

``test`` runs the pytest suite once per engine (sqlite, postgresql, mysql) with
``DCR_TEST_DB`` set, after checking that the engine answers. An unreachable
engine is skipped with its reason, unless ``CI`` is true, ``--require-all`` is
given or the engine was named with ``--engine``: then it is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".dcr-install.json"
ENGINES = ("sqlite", "postgresql", "mysql")
EXTRAS_ALL = "postgres,mysql,test,lint,docs"
EXTRAS_NO_MYSQL = "postgres,test,lint,docs"
EXTRA_PACKAGES = ("psycopg2-binary",)
MYSQL_HINT = "install the client headers (Debian/Ubuntu: apt-get install -y libmariadb-dev pkg-config)"

USAGE = """\
usage: python3 dev.py demo [--admin]
       python3 dev.py test [--engine NAME]... [--require-all] [pytest args...]
       python3 dev.py lint | docs | messages

  demo            run the demo project against a real celery worker
  test            run the test suite on sqlite, postgresql and mysql
    --engine NAME   run only this engine (repeatable; comma lists work too);
                    a named engine that cannot be reached is a failure
    --require-all   an unreachable engine is a failure (also when CI=true)
    --              everything after it goes to pytest unchanged
  lint            ruff over the tree, mypy over the package
  docs            build the Sphinx docs, warnings as errors
  messages        update the translation catalogs (.po) from the sources and
                  compile them (.mo); needs GNU gettext
"""


def say(message: str = "") -> None:
    print(message, flush=True)


# -- the virtualenv -----------------------------------------------------------


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def pyproject_hash() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def read_stamp() -> dict:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


def write_stamp(mysql_ok: bool, mysql_reason: str) -> None:
    STAMP.write_text(json.dumps({
        "pyproject_sha256": pyproject_hash(),
        "python": sys.version.split()[0],
        "mysql": mysql_ok,
        "mysql_reason": mysql_reason,
    }, indent=2) + "\n")


def venv_works() -> bool:
    python = venv_python()
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", "import sys"], capture_output=True)
    return probe.returncode == 0


def create_venv() -> None:
    if VENV.exists():
        say(f"-- {VENV.name} is broken; recreating it")
        shutil.rmtree(VENV)
    say(f"-- creating {VENV.name} with Python {sys.version.split()[0]} ({sys.executable})")
    venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    pip(["install", "--quiet", "--upgrade", "pip"], check=True)


def pip(args: list[str], check: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if check and done.returncode != 0:
        say(done.stdout + done.stderr)
        raise SystemExit(f"dev.py: `pip {' '.join(args)}` failed (exit {done.returncode})")
    return done


def mysql_prerequisites() -> str | None:
    """Why mysqlclient cannot build here, or ``None`` when its build inputs look present."""
    if os.environ.get("MYSQLCLIENT_CFLAGS") and os.environ.get("MYSQLCLIENT_LDFLAGS"):
        return None
    if shutil.which("pkg-config") is None:
        return f"pkg-config is not installed; {MYSQL_HINT}"
    for name in ("mysqlclient", "mariadb", "libmariadb", "perconaserverclient"):
        if subprocess.run(["pkg-config", "--exists", name]).returncode == 0:
            return None
    return f"no MySQL/MariaDB client library found by pkg-config; {MYSQL_HINT}"


def install_project(reason: str) -> None:
    say(f"-- installing the project into {VENV.name} ({reason}); this takes a minute")
    started = time.monotonic()
    editable = ["-e", f".[{EXTRAS_ALL}]", *EXTRA_PACKAGES]
    done = pip(["install", "--quiet", *editable])
    mysql_ok, mysql_reason = True, ""
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if "mysqlclient" not in output:
            say(output)
            raise SystemExit(f"dev.py: installing the project failed (pip exit {done.returncode})")
        mysql_ok = False
        mysql_reason = mysql_prerequisites() or (
            "mysqlclient failed to build: " + last_error_line(output)
        )
        say(f"-- mysqlclient could not be built ({mysql_reason})")
        say("-- installing without the mysql extra; MySQL tests will be unavailable")
        pip(["install", "--quiet", "-e", f".[{EXTRAS_NO_MYSQL}]", *EXTRA_PACKAGES], check=True)
    write_stamp(mysql_ok, mysql_reason)
    say(f"-- installed in {time.monotonic() - started:.0f}s")


def last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    interesting = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
    return (interesting or lines or ["no output"])[-1][:200]


def retry_mysql(stamp: dict) -> None:
    """The stamp says MySQL was unavailable; try again once its prerequisites appear."""
    if mysql_prerequisites() is not None:
        return
    say("-- MySQL client headers are present now; installing mysqlclient")
    done = pip(["install", "--quiet", "-e", f".[{EXTRAS_ALL}]", *EXTRA_PACKAGES])
    if done.returncode == 0:
        write_stamp(True, "")
    else:
        write_stamp(False, "mysqlclient failed to build: " + last_error_line(done.stdout + done.stderr))


def ensure_venv() -> dict:
    """Create and fill ``.venv`` when needed; return the install stamp."""
    if not venv_works():
        create_venv()
    stamp = read_stamp()
    if not stamp:
        install_project("first install")
    elif stamp.get("pyproject_sha256") != pyproject_hash():
        install_project("pyproject.toml changed")
    elif not stamp.get("mysql"):
        retry_mysql(stamp)
    return read_stamp()


# -- running children ---------------------------------------------------------


def run_child(command: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``command`` in the foreground; Ctrl-C reaches it too, and we wait for it to clean up."""
    child = subprocess.Popen(command, cwd=ROOT, env=env)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            # The child got the same SIGINT; give it time to stop its own processes.
            try:
                return child.wait(timeout=30)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                child.send_signal(signal.SIGTERM)
                return child.wait()


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# -- demo ---------------------------------------------------------------------


def cmd_demo(args: list[str]) -> int:
    ensure_venv()
    return run_child([str(venv_python()), "-m", "demo.run", *args], env=child_env())


# -- docs and lint -------------------------------------------------------------


def cmd_docs(args: list[str]) -> int:
    """Build the Sphinx docs with warnings as errors (as CI does)."""
    ensure_venv()
    build = [str(venv_python()), "-m", "sphinx", "-W", "-q", "-b", "html", "docs", "docs/_build/html"]
    return run_child([*build, *args], env=child_env())


def cmd_lint(args: list[str]) -> int:
    """ruff over the tree and mypy over the package."""
    ensure_venv()
    ruff = run_child([str(venv_python()), "-m", "ruff", "check", "."], env=child_env())
    mypy = run_child([str(venv_python()), "-m", "mypy", "django_celery_results"], env=child_env())
    return ruff or mypy


# -- translations ---------------------------------------------------------------

#: The languages the package ships catalogs for (django_celery_results/locale/).
LANGUAGES = ("es", "pt_BR", "ru", "zh_Hans")
GETTEXT_HINT = "install GNU gettext (Debian/Ubuntu: apt-get install -y gettext)"


def cmd_messages(args: list[str]) -> int:
    """makemessages then compilemessages for the package's own catalogs.

    Both .po and .mo are committed; tests/test_packaging.py fails when a .mo
    no longer matches its .po.
    """
    missing = [tool for tool in ("xgettext", "msgmerge", "msgfmt") if shutil.which(tool) is None]
    if missing:
        say(f"dev.py: {', '.join(missing)} not found; {GETTEXT_HINT}")
        return 1
    ensure_venv()
    # django-admin rather than ``python -m django``, which would put the package
    # folder (the working directory) first on sys.path.
    admin = [str(venv_python().with_name("django-admin" + (".exe" if os.name == "nt" else "")))]
    env = child_env(DJANGO_SETTINGS_MODULE="tests.settings", PYTHONPATH=str(ROOT))
    package = ROOT / "django_celery_results"
    make = [*admin, "makemessages", "--add-location=file", *(f"--locale={lang}" for lang in LANGUAGES)]
    for command in (make, [*admin, "compilemessages", *args]):
        child = subprocess.run(command, cwd=package, env=env)
        if child.returncode != 0:
            return child.returncode
    return 0


# -- test ---------------------------------------------------------------------

#: Imports each engine needs, any one of them.
DRIVERS = {"sqlite": ("sqlite3",), "postgresql": ("psycopg", "psycopg2"), "mysql": ("MySQLdb",)}

PROBE = """
import importlib, os, sys
engine = os.environ["DCR_TEST_DB"]
names = {drivers!r}[engine]
for name in names:
    try:
        importlib.import_module(name)
        break
    except ImportError:
        pass
else:
    print("no driver: cannot import " + " or ".join(names))
    sys.exit(3)
import django
django.setup()
from django.db import connection
try:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
except Exception as exc:
    text = " ".join(str(exc).split()) or type(exc).__name__
    where = connection.settings_dict["HOST"] or connection.settings_dict["NAME"]
    print(f"no answer from {{where}}: {{text}}")
    sys.exit(4)
print("ok")
"""


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def probe_engine(engine: str, stamp: dict) -> str | None:
    """``None`` when the engine answers, else why it cannot be used."""
    if engine == "mysql" and not stamp.get("mysql", True):
        return f"mysqlclient is not installed ({stamp.get('mysql_reason') or 'build failed'})"
    env = child_env(DCR_TEST_DB=engine, DJANGO_SETTINGS_MODULE="tests.settings")
    code = PROBE.format(drivers=DRIVERS)
    try:
        done = subprocess.run(
            [str(venv_python()), "-c", code], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=30,
        )
    except subprocess.TimeoutExpired:
        return "no answer within 30s"
    if done.returncode == 0:
        return None
    lines = (done.stdout.strip() or done.stderr.strip() or "probe failed").splitlines()
    return lines[-1][:300]


ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: pytest's closing line, ``==== 3 failed, 120 passed, 2 skipped in 9.81s ====``
#: (without the rules under ``-q``).
CLOSING = re.compile(r"^=*\s*(.*?\bin \d+(?:\.\d+)?s\b.*?)\s*=*$")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected|warnings?)")


@dataclass
class Outcome:
    engine: str
    state: str = "not run"  # ok, failed, error, skipped, missing
    counts: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return self.counts.get("passed", 0)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0) + self.counts.get("error", 0)

    @property
    def skipped(self) -> int:
        return self.counts.get("skipped", 0)

    @property
    def bad(self) -> bool:
        return self.state in ("failed", "error", "missing")


def parse_closing_line(lines: list[str]) -> dict[str, int]:
    for line in reversed(lines):
        match = CLOSING.match(ANSI.sub("", line).strip())
        if match and (COUNT.search(match.group(1)) or "no tests ran" in match.group(1)):
            counts: dict[str, int] = {}
            for number, word in COUNT.findall(match.group(1)):
                word = {"errors": "error", "warnings": "warning"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(number)
            return counts
    return {}


def run_pytest(engine: str, pytest_args: list[str]) -> Outcome:
    outcome = Outcome(engine)
    command = [str(venv_python()), "-m", "pytest", *pytest_args]
    if sys.stdout.isatty() and not any(a.startswith("--color") for a in pytest_args):
        command.append("--color=yes")
    started = time.monotonic()
    lines: list[str] = []
    child = subprocess.Popen(
        command, cwd=ROOT, env=child_env(DCR_TEST_DB=engine),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
    )
    assert child.stdout is not None
    try:
        for line in child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
            del lines[:-50]
        code = child.wait()
    except KeyboardInterrupt:
        child.wait(timeout=60)
        raise
    outcome.seconds = time.monotonic() - started
    outcome.counts = parse_closing_line(lines)
    if code == 0:
        outcome.state = "ok"
    elif code == 5:  # no tests collected: nothing failed
        outcome.state = "ok"
        outcome.reason = "no tests collected"
    elif outcome.failed:
        outcome.state = "failed"
    else:
        outcome.state = "error"
        outcome.reason = f"pytest exited with status {code}"
    return outcome


def parse_test_args(args: list[str]) -> tuple[list[str], bool, list[str]]:
    engines: list[str] = []
    require_all = False
    passthrough: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            passthrough.extend(args[index + 1:])
            break
        if arg == "--require-all":
            require_all = True
        elif arg == "--engine" or arg.startswith("--engine="):
            if arg == "--engine":
                index += 1
                if index >= len(args):
                    raise SystemExit("dev.py: --engine needs a name: " + ", ".join(ENGINES))
                value = args[index]
            else:
                value = arg.split("=", 1)[1]
            for name in value.split(","):
                name = name.strip().lower()
                if name not in ENGINES:
                    raise SystemExit(f"dev.py: unknown engine {name!r}; choose from {', '.join(ENGINES)}")
                if name not in engines:
                    engines.append(name)
        else:
            passthrough.append(arg)
        index += 1
    return engines, require_all, passthrough


def print_summary(outcomes: list[Outcome]) -> None:
    say()
    say("Summary")
    header = f"  {'engine':<11} {'result':<8} {'passed':>7} {'failed':>7} {'skipped':>8} {'time':>8}"
    say(header)
    for o in outcomes:
        if o.state in ("skipped", "missing", "not run"):
            say(f"  {o.engine:<11} {o.state:<8}  {o.reason}")
            continue
        line = f"  {o.engine:<11} {o.state:<8} {o.passed:>7} {o.failed:>7} {o.skipped:>8} {o.seconds:>7.1f}s"
        say(line + (f"  ({o.reason})" if o.reason else ""))
    say(f"{sum(o.passed for o in outcomes)} passed, {sum(o.failed for o in outcomes)} failed")


def cmd_test(args: list[str]) -> int:
    named, require_all, pytest_args = parse_test_args(args)
    require_all = require_all or truthy(os.environ.get("CI"))
    stamp = ensure_venv()
    # The SQLite test databases live there (git-ignored, so absent from a fresh clone).
    (ROOT / ".cache").mkdir(exist_ok=True)
    outcomes = [Outcome(engine) for engine in (named or ENGINES)]
    interrupted = False
    try:
        for outcome in outcomes:
            engine = outcome.engine
            say(f"\n== {engine}: checking the server")
            reason = probe_engine(engine, stamp)
            if reason is not None:
                required = require_all or engine in named
                outcome.state = "missing" if required else "skipped"
                outcome.reason = reason
                say(f"== {engine}: {'FAILED, required but unreachable' if required else 'skipped'}: {reason}")
                continue
            say(f"== {engine}: DCR_TEST_DB={engine} pytest {' '.join(pytest_args)}".rstrip())
            done = run_pytest(engine, pytest_args)
            outcome.state, outcome.counts = done.state, done.counts
            outcome.reason, outcome.seconds = done.reason, done.seconds
    except KeyboardInterrupt:
        interrupted = True
        say("\n-- interrupted")
    print_summary(outcomes)
    if interrupted:
        return 130
    return 1 if any(o.bad for o in outcomes) else 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        say(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return cmd_demo(rest)
    if command == "test":
        return cmd_test(rest)
    if command == "docs":
        return cmd_docs(rest)
    if command == "lint":
        return cmd_lint(rest)
    if command == "messages":
        return cmd_messages(rest)
    say(USAGE)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
