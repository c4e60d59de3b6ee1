"""deploy/k8s/: structure of the manifests and their consistency with topics.yaml (the one source of
truth: deploy/k8s/topics.yaml must equal `tickwire topics export --format strimzi --replication 3`)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from typing import Any

import pytest
import yaml

from tickwire.infra.config import REPO_ROOT
from tickwire.resources import topics_file
from tickwire.topic_admin import main as topics_main
from tickwire.topic_export import k8s_name, strimzi_topics
from tickwire.topics import load_topics

K8S = REPO_ROOT / "deploy" / "k8s"
ROLES = {"ingest", "normalize", "bridge"}


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _workloads() -> list[dict[str, Any]]:
    return [d for d in _docs("workloads.yaml") if d["kind"] in ("Deployment", "StatefulSet")]


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kust["resources"]) == files


def test_topics_manifest_is_the_export_of_topics_yaml() -> None:
    specs = load_topics(topics_file())
    want = strimzi_topics(
        [s.__class__(**{**s.__dict__, "replication": 3}) for s in specs], cluster="tickwire"
    )
    assert _docs("topics.yaml") == want, (
        "deploy/k8s/topics.yaml is stale: regenerate it with the command in its header"
    )
    by_topic = {d["spec"]["topicName"]: d for d in want}
    assert list(by_topic) == [s.name for s in specs]  # every topic once, in order
    for s in specs:
        d = by_topic[s.name]
        assert d["metadata"]["labels"]["strimzi.io/cluster"] == "tickwire"
        assert d["spec"]["partitions"] == s.partitions and d["spec"]["replicas"] == 3
        assert d["spec"]["config"] == s.configs
        assert all(isinstance(v, str) for v in d["spec"]["config"].values())


def test_the_cli_prints_the_same_export() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert topics_main(["export", "--format", "strimzi", "--replication", "3"]) == 0
    assert [d for d in yaml.safe_load_all(out.getvalue()) if d] == _docs("topics.yaml")


def test_kubernetes_names() -> None:
    assert k8s_name("stock_trades_realtime") == "stock-trades-realtime"
    assert k8s_name("binance.raw.dlq") == "binance.raw.dlq"
    with pytest.raises(ValueError, match="same Kubernetes name"):
        s = load_topics(topics_file())[0]
        strimzi_topics([s, replace(s, name=s.name.upper())], cluster="c")


def test_every_role_has_image_probes_resources_config_and_runs_non_root() -> None:
    workloads = _workloads()
    names = {w["metadata"]["name"] for w in workloads}
    assert {"normalizer", "bridge-redis", "bridge-nats", "ingest-binance"} <= names
    for w in workloads:
        name = w["metadata"]["name"]
        pod = w["spec"]["template"]["spec"]
        assert (
            w["spec"]["selector"]["matchLabels"].items()
            <= w["spec"]["template"]["metadata"]["labels"].items()
        )
        (c,) = pod["containers"]
        assert c["image"] == "tickwire:local", name
        assert c["args"][0] in ROLES, name
        port = int(c["args"][c["args"].index("--metrics-port") + 1])
        assert c["ports"] == [{"name": "metrics", "containerPort": port}], name
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            assert c[probe]["httpGet"] == {"path": path, "port": "metrics"}, (name, probe)
        for kind in ("requests", "limits"):
            assert set(c["resources"][kind]) == {"cpu", "memory"}, name
        refs = c["envFrom"]
        assert {"configMapRef": {"name": "tickwire-config"}} in refs, name
        assert {"secretRef": {"name": "tickwire-secrets", "optional": True}} in refs, name
        assert not any("value" in e and "KEY" in e["name"] for e in c.get("env", [])), (
            name
        )  # no secrets inline
        sc = c["securityContext"]
        assert (
            sc["runAsNonRoot"] is True
            and sc["runAsUser"] == 10001
            and sc["allowPrivilegeEscalation"] is False
        )


def test_normalizer_is_a_statefulset_whose_pod_name_is_the_worker_slot() -> None:
    (n,) = [w for w in _workloads() if w["metadata"]["name"] == "normalizer"]
    assert n["kind"] == "StatefulSet" and n["spec"]["replicas"] == 2
    env = {e["name"]: e for e in n["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NORMALIZER_INSTANCE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    services = [d for d in _docs("workloads.yaml") if d["kind"] == "Service"]
    assert any(
        s["metadata"]["name"] == n["spec"]["serviceName"] and s["spec"]["clusterIP"] == "None"
        for s in services
    )
    producers = [w for w in _workloads() if w["metadata"]["name"].startswith("ingest-")]
    assert producers and all(
        p["spec"]["replicas"] == 1 and p["spec"]["strategy"]["type"] == "Recreate" for p in producers
    )


def test_config_map_holds_the_shared_settings() -> None:
    (cm,) = _docs("config.yaml")
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "tickwire-config"
    assert {"KAFKA_BOOTSTRAP_SERVERS", "SCHEMA_REGISTRY_URL", "REDIS_URL", "NATS_URL"} <= set(cm["data"])
    assert all(isinstance(v, str) for v in cm["data"].values())
    assert not any("SECRET" in k or k.endswith("_KEY") for k in cm["data"])  # credentials live in the Secret


def test_k8s_dir_is_only_yaml() -> None:
    assert sorted(p.suffix for p in K8S.iterdir()) == [".yaml"] * len(list(K8S.iterdir()))
