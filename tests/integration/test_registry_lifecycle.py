"""Schema registry lifecycle on spare ports with a throw-away state dir (the shared one is untouched):
start + seed, idempotent up, crash detection and restart, clean stop; default-set and env wiring."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tickwire.contract.codec import LOCAL_IDS, NAMESPACE
from tickwire.infra.config import load_config
from tickwire.infra.process import free_port, pid_alive
from tickwire.infra.servers import Registry, RegistryUnavailable, env_exports, registry_java, servers

pytestmark = pytest.mark.integration


def test_default_set_and_env(tmp_path: Path) -> None:
    on = load_config({"TICKWIRE_LOCAL_DIR": str(tmp_path)})
    assert [s.name for s in servers(on)] == ["kafka", "redis", "nats", "registry"]
    assert env_exports(on)["SCHEMA_REGISTRY_URL"] == "http://127.0.0.1:18081/apis/ccompat/v7"
    off = load_config({"TICKWIRE_LOCAL_DIR": str(tmp_path), "TICKWIRE_REGISTRY": "0"})
    assert "registry" not in [s.name for s in servers(off)]
    assert "SCHEMA_REGISTRY_URL" not in env_exports(off)
    assert [s.name for s in servers(off, ["registry"])] == ["registry"]  # --only still reaches it


def test_lifecycle(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config(
        {"TICKWIRE_LOCAL_DIR": str(tmp_path / "local")},
        registry_port=free_port(),
        registry_management_port=free_port(),
    )
    try:
        registry_java(cfg)
    except RegistryUnavailable as e:
        pytest.skip(str(e))
    # Reuse the shared extracted distribution when present (no second 160 MB extraction).
    shared = load_config({}).registry_home
    if (shared / "dist.stamp").exists():
        cfg.registry_home.mkdir(parents=True)
        (cfg.registry_home / "dist").symlink_to(shared / "dist")
        (cfg.registry_home / "dist.stamp").write_text((shared / "dist.stamp").read_text())
    reg = Registry(cfg)
    try:
        assert reg.up()[0] == "started"
        st = reg.status()
        assert st.state == "running" and st.pid is not None and st.version == cfg.registry_version
        # Seeded on start: a fresh registry's ids equal the offline ids, subjects are BACKWARD.
        with urllib.request.urlopen(f"{cfg.registry_url}/subjects", timeout=10) as r:
            assert sorted(json.loads(r.read())) == sorted(f"{NAMESPACE}.{n}" for n in LOCAL_IDS)
        for name, sid in LOCAL_IDS.items():
            url = f"{cfg.registry_url}/subjects/{NAMESPACE}.{name}/versions/latest"
            with urllib.request.urlopen(url, timeout=10) as r:
                assert json.loads(r.read())["id"] == sid, name
        with urllib.request.urlopen(f"{cfg.registry_url}/config/{NAMESPACE}.Trade", timeout=10) as r:
            assert json.loads(r.read())["compatibilityLevel"] == "BACKWARD"
        assert reg.up()[0] == "reused" and reg.status().pid == st.pid

        os.kill(st.pid, signal.SIGKILL)
        wait_for(lambda: reg.status().state.startswith("stopped (crashed"), timeout=10, what="crash seen")
        assert reg.up()[0] == "started"
        assert "registry had died; last lines of" in caplog.text
        pid = reg.status().pid
        assert pid is not None and pid != st.pid
        assert reg.down() is True
        assert not pid_alive(pid)
        assert reg.status().state == "stopped"
        assert reg.down() is False
    finally:
        reg.down()
