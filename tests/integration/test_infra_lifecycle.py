"""Server lifecycle through tickwire.infra on spare ports and a throw-away state dir (shared ones untouched):
idempotent up, crash detection, clear start-up failures with the log tail, busy ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tickwire.infra.config import InfraConfig, load_config
from tickwire.infra.process import InfraError, free_port, pid_alive
from tickwire.infra.servers import Kafka, Redis

pytestmark = pytest.mark.integration


@pytest.fixture
def cfg(tmp_path: Path) -> InfraConfig:
    return load_config(
        {"TICKWIRE_LOCAL_DIR": str(tmp_path / "local")},
        redis_port=free_port(),
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
    )


@pytest.fixture
def redis_server(cfg: InfraConfig) -> Iterator[Redis]:
    r = Redis(cfg)
    yield r
    r.down()


def test_up_twice_reuses_and_down_stops(redis_server: Redis) -> None:
    action, _ = redis_server.up()
    assert action == "started"
    st = redis_server.status()
    assert st.state == "running" and st.pid is not None and st.version and st.version.startswith("7.")
    action, _ = redis_server.up()
    assert action == "reused"
    assert redis_server.status().pid == st.pid
    assert redis_server.down() is True
    assert not pid_alive(st.pid)
    assert redis_server.status().state == "stopped"
    assert redis_server.down() is False


def test_crash_is_reported_and_up_restarts(redis_server: Redis, caplog: pytest.LogCaptureFixture) -> None:
    redis_server.up()
    pid = redis_server.status().pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: redis_server.status().state.startswith("stopped (crashed"), timeout=10, what="crash seen"
    )
    action, _ = redis_server.up()
    assert action == "started" and redis_server.status().pid != pid
    assert "redis had died; last lines of" in caplog.text


def test_busy_port_with_another_program_is_a_clear_error(redis_server: Redis) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", redis_server.port))
        s.listen()
        assert redis_server.status().state == "foreign"
        with pytest.raises(InfraError, match=r"is taken by a process that is not a working redis server"):
            redis_server.up()


def test_kafka_start_failure_shows_log_tail(cfg: InfraConfig) -> None:
    # Reuse the jars of the shared state dir when present (no second Maven resolution).
    shared = load_config({}).kafka_home
    if (shared / "libs.stamp").exists():
        cfg.kafka_home.mkdir(parents=True)
        (cfg.kafka_home / "libs").symlink_to(shared / "libs")
        shutil.copy(shared / "libs.stamp", cfg.kafka_home / "libs.stamp")
    k = Kafka(
        load_config(
            {"TICKWIRE_LOCAL_DIR": str(cfg.local_dir)},
            kafka_port=cfg.kafka_port,
            kafka_controller_port=cfg.kafka_controller_port,
            kafka_heap="1k",
        )
    )
    with pytest.raises(InfraError) as err:
        k.up()
    msg = str(err.value)
    assert "exited during start-up; last lines of" in msg
    assert "heap" in msg.lower()
    assert k.status().state == "stopped"
