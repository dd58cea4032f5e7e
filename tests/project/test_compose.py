"""docker-compose.yml agrees with tests/settings/__init__.py: services, images, ports and credentials.

No Docker needed: the file is read as data, and :func:`tests.settings.database`
is evaluated with the ``tests`` service's environment to see which server,
port, user, password and database the suite would use inside the container.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests import settings as test_settings
from tests.support import ROOT

COMPOSE = ROOT / "docker-compose.yml"

#: Database service -> (image prefix, container port). The versions: tests/project/test_matrix.py.
DATABASES = {
    "postgres": ("postgres:", 5432),
    "mysql": ("mysql:", 3306),
    "mariadb": ("mariadb:", 3306),
}
OTHERS = {"redis": ("redis:", 6379), "rabbitmq": ("rabbitmq:", 5672)}
#: Ports servers already running on a developer's machine listen on.
LOCAL_PORTS = {5432, 3306, 6379, 5672, 15672}
#: Every variable tests/settings/__init__.py reads for a server.
SETTINGS_VARIABLES = (
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "MYSQL_HOST",
    "MYSQL_TCP_PORT",
    "MYSQL_USER",
    "MYSQL_PWD",
    "MYSQL_DATABASE",
)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict (compose allows a mapping or a list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def port_mappings(service: dict[str, Any]) -> list[tuple[int, int]]:
    """``(host, container)`` pairs of a service's ``ports``."""
    pairs = []
    for entry in service.get("ports", []):
        host, container = str(entry).rsplit(":", 2)[-2:]
        pairs.append((int(host), int(container.split("/")[0])))
    return pairs


def settings_inside_tests_service(
    services: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    **extra: str,
) -> dict[str, Any]:
    """``DATABASES["default"]`` as tests/settings/__init__.py builds it in the tests container."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**environment(services["tests"]), **extra}.items():
        monkeypatch.setenv(name, value)
    return test_settings.database(engine)


def test_services_and_images(services: dict[str, Any]) -> None:
    assert set(DATABASES) | set(OTHERS) | {"tests"} <= set(services)
    for name, (image, _) in {**DATABASES, **OTHERS}.items():
        assert str(services[name]["image"]).startswith(image), name


def test_servers_have_healthchecks_the_tests_wait_for(services: dict[str, Any]) -> None:
    depends = services["tests"]["depends_on"]
    for name in {**DATABASES, **OTHERS}:
        assert services[name]["healthcheck"]["test"], name
        assert depends[name]["condition"] == "service_healthy", name


def test_host_ports_do_not_clash(services: dict[str, Any]) -> None:
    host_ports = []
    for name, (_, container_port) in {**DATABASES, **OTHERS}.items():
        mappings = port_mappings(services[name])
        assert [container for _, container in mappings] == [container_port], name
        host_ports += [host for host, _ in mappings]
    assert len(host_ports) == len(set(host_ports))
    assert not set(host_ports) & LOCAL_PORTS


def test_postgresql_settings_match_the_postgres_service(
    services: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = settings_inside_tests_service(services, monkeypatch, "postgresql")
    server = environment(services["postgres"])

    assert database["HOST"] == "postgres"
    assert int(database["PORT"]) == DATABASES["postgres"][1]
    assert database["USER"] == server.get("POSTGRES_USER", "postgres")
    assert database["PASSWORD"] == server["POSTGRES_PASSWORD"]
    assert database["NAME"] == server["POSTGRES_DB"]


@pytest.mark.parametrize("service", ["mysql", "mariadb"])
def test_mysql_settings_match_each_mysql_service(
    services: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    service: str,
) -> None:
    # The tests service runs the mysql engine once per host in DCR_MYSQL_HOSTS.
    assert service in environment(services["tests"])["DCR_MYSQL_HOSTS"].split()
    database = settings_inside_tests_service(services, monkeypatch, "mysql", MYSQL_HOST=service)
    server = environment(services[service])
    prefix = "MARIADB_" if service == "mariadb" else "MYSQL_"

    assert database["HOST"] == service
    assert int(database["PORT"]) == DATABASES[service][1]
    assert database["USER"] == "root"
    assert database["PASSWORD"] == server[prefix + "ROOT_PASSWORD"]
    assert database["NAME"] == server[prefix + "DATABASE"]


def test_tests_service_runs_the_matrix(services: dict[str, Any]) -> None:
    script = "\n".join(str(part) for part in services["tests"]["command"])
    assert "python3 dev.py test --engine sqlite --engine postgresql" in script
    assert "MYSQL_HOST=$$host python3 dev.py test --engine mysql" in script
    assert "for host in $$DCR_MYSQL_HOSTS" in script


def test_broker_and_cache_urls_name_their_services(services: dict[str, Any]) -> None:
    env = environment(services["tests"])
    rabbit = environment(services["rabbitmq"])
    redis_url, broker_url = urlsplit(env["REDIS_URL"]), urlsplit(env["BROKER_URL"])

    assert (redis_url.hostname, redis_url.port) == ("redis", OTHERS["redis"][1])
    assert (broker_url.hostname, broker_url.port) == ("rabbitmq", OTHERS["rabbitmq"][1])
    assert (broker_url.username, broker_url.password) == (
        rabbit["RABBITMQ_DEFAULT_USER"],
        rabbit["RABBITMQ_DEFAULT_PASS"],
    )
