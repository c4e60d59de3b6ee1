"""Session fixtures for real servers, markers, and shared helpers.

Each server fixture resolves, in order:
1. an environment variable (``KAFKA_BOOTSTRAP_SERVERS``, ``REDIS_URL``, ``NATS_URL``,
   ``SCHEMA_REGISTRY_URL``);
2. a testcontainers container when a Docker engine answers (checked once, fails fast without one; not for
   the registry);
3. the project's local servers (``tickwire infra``), started once per session and reused when running.
Servers this session started are stopped at its end (unless ``TICKWIRE_KEEP_INFRA=1``); servers that were
already running are never stopped.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import unique_name, wait_for

__all__ = ["unique_name", "wait_for"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything not marked integration is a unit test, so `pytest -m unit` selects exactly those.
    for item in items:
        if item.get_closest_marker("integration") is None and item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.unit)


@functools.cache
def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


class _LocalInfra:
    """Starts local servers on demand, remembering which ones this session started."""

    def __init__(self) -> None:
        from tickwire.infra.config import load_config

        self.cfg = load_config()
        self.started: list[str] = []

    def ensure(self, name: str) -> None:
        from tickwire.infra.cli import up

        action, _ = up(self.cfg, [name])[name]
        if action == "started":
            self.started.append(name)

    def close(self) -> None:
        if os.environ.get("TICKWIRE_KEEP_INFRA") == "1" or not self.started:
            return
        from tickwire.infra.cli import down

        down(self.cfg, self.started)


@pytest.fixture(scope="session")
def _local_infra() -> Iterator[_LocalInfra]:
    infra = _LocalInfra()
    yield infra
    infra.close()


@pytest.fixture(scope="session")
def _containers() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


def _resolve(
    env_key: str,
    name: str,
    request: pytest.FixtureRequest,
    from_container: Callable[[contextlib.ExitStack], str],
) -> str:
    value = os.environ.get(env_key)
    if value:
        return value
    if docker_available():
        stack: contextlib.ExitStack = request.getfixturevalue("_containers")
        return from_container(stack)
    infra: _LocalInfra = request.getfixturevalue("_local_infra")
    infra.ensure(name)
    from tickwire.infra.servers import env_exports

    return env_exports(infra.cfg)[env_key]


def _kafka_container(stack: contextlib.ExitStack) -> str:
    from testcontainers.community.kafka import KafkaContainer

    c: Any = stack.enter_context(KafkaContainer().with_kraft())
    return str(c.get_bootstrap_server())


def _redis_container(stack: contextlib.ExitStack) -> str:
    from testcontainers.community.redis import RedisContainer

    c: Any = stack.enter_context(RedisContainer())
    return f"redis://{c.get_container_host_ip()}:{c.get_exposed_port(6379)}/0"


def _nats_container(stack: contextlib.ExitStack) -> str:
    from testcontainers.community.nats import NatsContainer

    c: Any = stack.enter_context(NatsContainer(jetstream=True))
    return str(c.nats_uri())


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap servers of a real Kafka broker (see module doc for how it is found)."""
    return _resolve("KAFKA_BOOTSTRAP_SERVERS", "kafka", request, _kafka_container)


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    return _resolve("REDIS_URL", "redis", request, _redis_container)


@pytest.fixture(scope="session")
def nats_url(request: pytest.FixtureRequest) -> str:
    return _resolve("NATS_URL", "nats", request, _nats_container)


@pytest.fixture(scope="session")
def schema_registry_url(request: pytest.FixtureRequest) -> str:
    """Confluent-compatible Schema Registry base URL: ``SCHEMA_REGISTRY_URL``, else the local Apicurio.

    Skips only when this machine has no Java runtime the registry can run on.
    """
    value = os.environ.get("SCHEMA_REGISTRY_URL")
    if value:
        return value
    from tickwire.infra.servers import RegistryUnavailable, registry_java

    infra: _LocalInfra = request.getfixturevalue("_local_infra")
    try:
        registry_java(infra.cfg)
    except RegistryUnavailable as e:
        pytest.skip(f"schema registry cannot run here: {e}")
    infra.ensure("registry")
    return infra.cfg.registry_url


@pytest.fixture
def unique_topic() -> Callable[[str], str]:
    """Factory of topic names unique to this test run: ``unique_topic("trades")`` -> ``test.trades-<hex>``."""

    def make(base: str = "t") -> str:
        return "test." + unique_name(base)

    return make


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Factory of unique names for consumer groups, Redis key prefixes, NATS streams (``[A-Za-z0-9-]``)."""
    return unique_name
