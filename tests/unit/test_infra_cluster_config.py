"""Config of a multi-node KRaft cluster (`tickwire infra --brokers N`): ports, voters, properties."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from tickwire.infra import kafka as kafka_mod
from tickwire.infra.config import load_config
from tickwire.infra.kafka import Kafka
from tickwire.infra.servers import env_exports, servers


def test_three_nodes_have_their_own_ports_dirs_and_pid_files(tmp_path: Path) -> None:
    cfg = load_config({"TICKWIRE_LOCAL_DIR": str(tmp_path)}, kafka_brokers=3)
    nodes = [s for s in servers(cfg, ["kafka"]) if isinstance(s, Kafka)]
    assert [k.name for k in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [k.port for k in nodes] == [19192, 19194, 19196]  # beside the single node on 19092
    assert [k.controller_port for k in nodes] == [19193, 19195, 19197]
    assert len({k.node_dir for k in nodes}) == 3 and len({k.pid_file for k in nodes}) == 3
    assert all(k.node_dir.parent == cfg.kafka_cluster_dir for k in nodes)
    assert cfg.kafka_voters == "1@127.0.0.1:19193,2@127.0.0.1:19195,3@127.0.0.1:19197"
    assert env_exports(cfg)["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:19192,127.0.0.1:19194,127.0.0.1:19196"
    assert not any(k.reuse_external for k in nodes)


def test_cluster_properties_replicate_everything_three_times() -> None:
    cfg = load_config({"TICKWIRE_LOCAL_DIR": "/nonexistent"}, kafka_brokers=3)
    props = dict(line.split("=", 1) for line in Kafka(cfg, node=2).server_properties().splitlines() if line)
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == cfg.kafka_voters
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19194,CONTROLLER://127.0.0.1:19195"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"


def test_single_node_is_unchanged() -> None:
    cfg = load_config({"TICKWIRE_LOCAL_DIR": "/nonexistent"})
    k = Kafka(cfg)
    props = dict(line.split("=", 1) for line in k.server_properties().splitlines() if line)
    assert (k.name, k.port, k.node_dir) == ("kafka", 19092, cfg.kafka_node_dir)
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["min.insync.replicas"] == "1" and props["transaction.state.log.replication.factor"] == "1"
    assert cfg.kafka_bootstrap == "127.0.0.1:19092" and k.reuse_external


def test_env_and_bad_values() -> None:
    cfg = load_config({"TICKWIRE_KAFKA_BROKERS": "3", "TICKWIRE_KAFKA_PORT": "39092"})
    assert cfg.kafka_bootstrap == "127.0.0.1:39092,127.0.0.1:39094,127.0.0.1:39096"
    assert cfg.kafka_ports(3) == (39096, 19197)
    with pytest.raises(ValueError, match="brokers must be"):
        load_config({"TICKWIRE_KAFKA_BROKERS": "0"})
    with pytest.raises(ValueError, match="overlap"):
        load_config({}, kafka_brokers=3, kafka_port=39092, kafka_controller_port=39094)


def test_cluster_ids_never_begin_with_a_dash_and_decode_to_16_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first uuid encodes to a '-'-leading id (0xf8.. → '-'); the generator must draw again.
    dash = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))
    other = uuid.UUID(bytes=bytes(range(16)))
    drawn = iter([dash, other])
    monkeypatch.setattr(kafka_mod.uuid, "uuid4", lambda: next(drawn))
    got = kafka_mod.new_cluster_id()
    assert base64.urlsafe_b64encode(dash.bytes).decode().startswith("-")
    assert got == base64.urlsafe_b64encode(other.bytes).decode().rstrip("=")
    assert len(base64.urlsafe_b64decode(got + "==")) == 16
