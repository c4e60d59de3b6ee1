"""deploy/: the compose stack's structure (host networking, loopback only, the images `make images`
builds, one consistent 3-node cluster) and the image builder's pure pieces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tickwire.infra.config import load_config
from tickwire.infra.deploy import COMPOSE_FILE, ONE_SHOT, compose_env
from tickwire.infra.images import IMAGE_TAGS, RUNTIME_EXCLUDE, host_mirror, runtime_requirements
from tickwire.infra.kafka import PER_NODE_KEYS, Kafka

DOC: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, Any] = DOC["services"]


def _env(svc: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (svc.get("environment") or {}).items()}


def test_every_service_uses_host_networking_and_a_locally_built_image() -> None:
    assert len(SERVICES) >= 12
    for name, svc in SERVICES.items():
        assert svc["network_mode"] == "host", name
        assert "ports" not in svc and "networks" not in svc, name
        assert svc["image"] in IMAGE_TAGS.values(), name
        assert "build" not in svc, name  # images come from `make images` only


def test_nothing_binds_beyond_loopback() -> None:
    text = COMPOSE_FILE.read_text()
    assert "0.0.0.0" not in text
    for name, svc in SERVICES.items():
        cmd = [str(c) for c in svc.get("command") or []]
        for flag in ("--bind", "-a", "--host"):
            if flag in cmd:
                assert cmd[cmd.index(flag) + 1] == "127.0.0.1", name


def test_three_brokers_form_one_cluster_that_the_roles_bootstrap_from() -> None:
    brokers = {n: _env(s) for n, s in SERVICES.items() if s["image"] == IMAGE_TAGS["kafka"]}
    assert sorted(brokers) == ["kafka-1", "kafka-2", "kafka-3"]
    assert len({e["KAFKA_VOTERS"] for e in brokers.values()}) == 1
    assert len({e["KAFKA_CLUSTER_ID"] for e in brokers.values()}) == 1
    voters = next(iter(brokers.values()))["KAFKA_VOTERS"].split(",")
    want = [f"{e['KAFKA_NODE_ID']}@127.0.0.1:{e['KAFKA_CONTROLLER_PORT']}" for e in brokers.values()]
    assert voters == want
    ports = [e["KAFKA_PORT"] for e in brokers.values()]
    assert compose_env()["KAFKA_BOOTSTRAP_SERVERS"] == ",".join(f"127.0.0.1:{p}" for p in ports)
    all_ports = ports + [e["KAFKA_CONTROLLER_PORT"] for e in brokers.values()]
    assert len(set(all_ports)) == 6
    # Every tickwire role reads the same cluster.
    for name, svc in SERVICES.items():
        if svc["image"] == IMAGE_TAGS["tickwire"]:
            assert _env(svc)["KAFKA_BOOTSTRAP_SERVERS"] == compose_env()["KAFKA_BOOTSTRAP_SERVERS"], name


def test_roles_two_normalizers_in_one_group_and_health() -> None:
    cmds = {n: [str(c) for c in s.get("command") or []] for n, s in SERVICES.items()}
    normalizers = [n for n, c in cmds.items() if c[:1] == ["normalize"]]
    assert len(normalizers) == 2
    assert all("--group" not in cmds[n] for n in normalizers)  # both in the default group
    slots = {cmds[n][cmds[n].index("--instance-id") + 1] for n in normalizers}
    assert len(slots) == 2  # distinct transactional ids
    assert {"bridge redis", "bridge nats"} <= {" ".join(c[:2]) for c in cmds.values()}
    assert cmds["topics"][:4] == ["topics", "apply", "--replication", "3"]
    metrics = []
    for name, svc in SERVICES.items():
        if svc["image"] != IMAGE_TAGS["tickwire"] or name in ONE_SHOT:
            continue
        url = _env(svc)["TICKWIRE_HEALTH_URL"]  # each long-running role is health-checked on its own port
        assert url.startswith("http://127.0.0.1:"), name
        if "--metrics-port" in cmds[name]:
            port = cmds[name][cmds[name].index("--metrics-port") + 1]
            assert url == f"http://127.0.0.1:{port}/healthz", name  # liveness: fatal error or wedged loop
            metrics.append(port)
    assert len(metrics) == len(set(metrics)) == 5


def test_kafka_image_properties_are_the_process_clusters_less_the_per_node_keys() -> None:
    node = Kafka(load_config({"TICKWIRE_LOCAL_DIR": "/nonexistent"}, kafka_brokers=3))
    shared = dict(ln.split("=", 1) for ln in node.cluster_properties().splitlines())
    full = dict(ln.split("=", 1) for ln in node.server_properties().splitlines())
    assert set(full) - set(shared) == set(PER_NODE_KEYS)
    assert shared["min.insync.replicas"] == "2" and shared["default.replication.factor"] == "3"
    assert shared["transaction.state.log.min.isr"] == "2"


def test_runtime_requirements_are_the_pinned_dependencies_less_the_local_registry_java() -> None:
    reqs = runtime_requirements()
    assert reqs and all("==" in r for r in reqs)
    names = {r.split("[")[0].split("==")[0].lower() for r in reqs}
    assert "confluent-kafka" in names and not names & RUNTIME_EXCLUDE


def test_host_mirror_reads_deb822_and_one_line_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    assert host_mirror([deb822]) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://other.example/debian bookworm main\n")
    assert host_mirror([one_line]) == "http://other.example/debian"
    assert host_mirror([tmp_path / "missing"]) == "http://deb.debian.org/debian"
