"""tox.ini is the one source of the supported versions and engines; every other file agrees with it.

The Python, Django and Celery versions, the engines and the database servers
are named in tox.ini (its env list, labels and ``[servers]``); pyproject's
bounds and classifiers, the support claims of the README and docs, dev.py,
the test settings, .ci/run, the GitHub workflow and docker-compose.yml either
read them from there or must name nothing else.
"""

from __future__ import annotations

import configparser
import itertools
import re
from collections.abc import Callable
from importlib.metadata import metadata
from typing import Any

import pytest
import yaml

from tests.support import ROOT

TOX = configparser.ConfigParser(interpolation=None)
TOX.read(ROOT / "tox.ini")

#: Factors that are not a version or an engine.
MODIFIERS = {"min", "pg18", "psycopg2"}


def expand(pattern: str) -> list[str]:
    """tox's brace expansion: ``py{310,311}-{a,b}`` -> four names."""
    parts = re.split(r"(\{[^}]*\})", pattern.strip())
    choices = [part[1:-1].split(",") if part.startswith("{") else [part] for part in parts]
    return ["".join(combo) for combo in itertools.product(*choices)]


ENV_LIST = [env for line in TOX["tox"]["env_list"].split("\n") if line.strip() for env in expand(line)]
CELLS = [env for env in ENV_LIST if env.startswith("py")]
LABELS = {
    key.strip(): [env.strip() for env in value.split(",")]
    for key, value in (line.split("=", 1) for line in TOX["tox"]["labels"].strip().splitlines())
}
SERVERS = {name: value.split() for name, value in TOX["servers"].items()}


def dotted(digits: str) -> str:
    """``310`` -> ``3.10``, ``42`` -> ``4.2``."""
    return f"{digits[0]}.{digits[1:]}"


def factor_values(prefix: str, cells: list[str] = CELLS) -> set[str]:
    return {
        dotted(f.removeprefix(prefix))
        for env in cells
        for f in env.split("-")
        if re.fullmatch(prefix + r"\d+", f)
    }


PYTHONS = factor_values("py")
DJANGOS = factor_values("django")
CELERYS = factor_values("celery")
ENGINES = {"sqlite", "postgresql", "mysql"}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_the_factors() -> None:
    assert {"3.10", "3.11", "3.12", "3.13"} == PYTHONS
    assert {"4.2", "5.2", "6.0"} == DJANGOS
    assert {"5.3", "5.5", "5.7"} == CELERYS
    for env in CELLS:
        factors = env.split("-")
        assert len([f for f in factors if f in ENGINES]) == 1, env
        known = ENGINES | MODIFIERS
        assert all(re.fullmatch(r"(py|django|celery)\d+", f) or f in known for f in factors), env
        if "django60" in factors:
            assert version_key(dotted(factors[0][2:])) >= (3, 12), env
        if {"pg18", "psycopg2"} & set(factors):
            assert "postgresql" in factors, env


def test_every_version_factor_has_its_pin() -> None:
    deps = TOX["testenv"]["deps"]
    for version in DJANGOS:
        major, minor = version.split(".")
        assert re.search(rf"^\s*django{major}{minor}: Django>={version},<", deps, re.M), version
    for version in CELERYS:
        major, minor = version.split(".")
        assert re.search(rf"^\s*celery{major}{minor}: celery>={version},<", deps, re.M), version


def test_labels_name_cells_of_the_env_list() -> None:
    assert {"main", "corners", "matrix"} <= LABELS.keys()
    for name, envs in LABELS.items():
        assert set(envs) <= set(ENV_LIST), (name, set(envs) - set(ENV_LIST))
    assert set(LABELS["main"]) | set(LABELS["corners"]) <= set(LABELS["matrix"])
    assert {env.split("-")[-1] for env in LABELS["main"]} == ENGINES


def test_the_matrix_label_covers_every_factor_with_every_engine() -> None:
    matrix = LABELS["matrix"]
    for engine in ENGINES:
        cells = [env for env in matrix if engine in env.split("-")]
        assert factor_values("py", cells) == PYTHONS, engine
        assert factor_values("django", cells) == DJANGOS, engine
        assert factor_values("celery", cells) == CELERYS, engine
        assert any("min" in env.split("-") for env in cells), engine
    assert any(env.endswith("-pg18") for env in matrix)
    assert any(env.endswith("-psycopg2") for env in matrix)


def cell(pick: Callable[..., str]) -> str:
    """``py310-django42-celery53`` for ``min``, the newest of each for ``max``."""
    chosen = [pick(values, key=version_key).replace(".", "") for values in (PYTHONS, DJANGOS, CELERYS)]
    return "py{}-django{}-celery{}".format(*chosen)


def test_the_corners_are_the_oldest_and_the_newest() -> None:
    for corner in (cell(min), cell(max)):
        engines = {env.split("-")[3] for env in LABELS["corners"] if env.startswith(corner + "-")}
        assert engines == ENGINES, corner


def test_the_package_metadata_says_what_tox_runs() -> None:
    # The installed metadata, built from pyproject.toml (tox reinstalls the package each run).
    project = metadata("django-celery-results")
    assert project["Requires-Python"] == f">={min(PYTHONS, key=version_key)}"
    classifiers = project.get_all("Classifier") or []
    python = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    assert {m.group(1) for c in classifiers if (m := python.fullmatch(c))} == PYTHONS
    django = re.compile(r"Framework :: Django :: (\d+\.\d+)")
    assert {m.group(1) for c in classifiers if (m := django.fullmatch(c))} == DJANGOS
    bounds = {}
    for requirement in project.get_all("Requires-Dist") or []:
        if ";" not in requirement:  # not an extra's
            name, specifiers = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", requirement).groups()  # type: ignore[union-attr]
            bounds[name.lower()] = set(specifiers.replace(" ", "").split(","))
    assert bounds["django"] == {f">={min(DJANGOS, key=version_key)}"}
    next_major = int(max(CELERYS, key=version_key).split(".")[0]) + 1
    assert bounds["celery"] == {f">={min(CELERYS, key=version_key)}", f"<{next_major}"}


#: ``Python 3.10, 3.11 and 3.13``, ``Django 4.2 to 6.0``: a product's name and the versions after it.
CLAIM = re.compile(
    r"\b(Python|Django|Celery|PostgreSQL|MySQL|MariaDB)\s+((?:\d+(?:\.\d+)*\+?(?:,\s*|\s+(?:and|to|or)\s+|-)?)+)"
)
CLAIM_FILES = ("README.md", "CONTRIBUTING.md", "docs/index.rst", "docs/testing.rst", "docs/changelog.rst")


def claims(text: str) -> list[tuple[str, str]]:
    return [
        (product, version)
        for product, versions in CLAIM.findall(text)
        for version in re.findall(r"\d+(?:\.\d+)*", versions)
    ]


def test_claims_parse() -> None:
    assert claims("Python 3.10, 3.11 and 3.13, Django 4.2 to 6.0 and MariaDB 10.11") == [
        ("Python", "3.10"),
        ("Python", "3.11"),
        ("Python", "3.13"),
        ("Django", "4.2"),
        ("Django", "6.0"),
        ("MariaDB", "10.11"),
    ]


@pytest.mark.parametrize("name", CLAIM_FILES)
def test_the_docs_claim_only_what_tox_runs(name: str) -> None:
    text = (ROOT / name).read_text()
    if name == "docs/changelog.rst":  # older entries describe their own time; the newest is today's
        text = re.split(r"\n\S.*\n[-=~^]{3,}\n", text)[1]
    allowed = {
        "Python": PYTHONS,
        "Django": DJANGOS,
        "Celery": CELERYS,
        "PostgreSQL": set(SERVERS["postgresql"]),
        "MySQL": set(SERVERS["mysql"]),
        "MariaDB": set(SERVERS["mariadb"]),
    }
    wrong = [(product, version) for product, version in claims(text) if version not in allowed[product]]
    assert not wrong, f"{name} names versions tox.ini does not: {wrong}"


def test_dev_py_and_the_settings_know_the_same_engines() -> None:
    from tests import settings

    dev = (ROOT / "dev.py").read_text()
    assert re.search(r'^ENGINES = \("sqlite", "postgresql", "mysql"\)$', dev, re.M)
    assert set(settings.ENGINES) == ENGINES


def test_ci_run_names_no_version() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert not re.search(r"\b(py3\d+|django\d+|celery\d+|3\.1\d)\b", script)
    assert re.search(r"^exec python3 dev.py ci ", script, re.M)


def images(services: dict[str, Any]) -> dict[str, str]:
    """``{"postgres": "18", ...}``: each service's image and tag."""
    return dict(spec["image"].split(":", 1) for spec in services.values() if "image" in spec)


def assert_servers_known(found: dict[str, str]) -> None:
    for image, name in (("postgres", "postgresql"), ("mysql", "mysql"), ("mariadb", "mariadb")):
        assert found[image] in SERVERS[name], (image, found[image])


def test_the_workflow_reads_the_cells_from_tox() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    jobs = workflow["jobs"]
    assert "python3 dev.py cells matrix" in jobs["cells"]["steps"][-1]["run"]
    assert jobs["tests"]["strategy"]["matrix"] == {"include": "${{ fromJSON(needs.cells.outputs.cells) }}"}
    assert_servers_known(images(jobs["tests"]["services"]))
    versions = [
        str(step["with"]["python-version"])
        for job in jobs.values()
        for step in job["steps"]
        if "python-version" in step.get("with", {})
    ]
    assert set(versions) - {"${{ matrix.python }}"} <= PYTHONS
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert not re.search(r"\b(py3\d+|django\d+|celery\d+)\b|[Dd]jango[ =]+\d|[Cc]elery[ =]+\d", text)


def test_compose_runs_the_main_cells_against_known_servers() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    found = images(services)
    assert_servers_known(found)
    main_python = {dotted(env.split("-")[0][2:]) for env in LABELS["main"]}
    assert {services["tests"]["image"].split(":")[1].split("-")[0]} == main_python
    assert {
        services[name]["image"].split(":")[1].split("-")[0]
        for name in services
        if services[name]["image"].startswith("python:")
    } <= PYTHONS


def test_the_readme_claims_every_version_tox_runs() -> None:
    found = claims((ROOT / "README.md").read_text())

    def said(*products: str) -> set[str]:
        return {version for name, version in found if name in products}

    assert said("Python") == PYTHONS
    assert said("Django") == DJANGOS
    assert {min(CELERYS, key=version_key), max(CELERYS, key=version_key)} <= said("Celery") <= CELERYS
    servers = {
        (name.lower(), version) for name, version in found if name in ("PostgreSQL", "MySQL", "MariaDB")
    }
    assert servers == {(name, version) for name, versions in SERVERS.items() for version in versions}
