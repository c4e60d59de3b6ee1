"""deploy/k8s/: structure of the manifests and their consistency with topics.yaml (the one source of
truth: deploy/k8s/topics.yaml must equal `tickwire topics export --format strimzi --replication 3`) and
with the role ACLs (deploy/k8s/users.yaml must equal `tickwire topics export --format strimzi-users`, and
every workload authenticates as its role's KafkaUser over SASL_SSL)."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import yaml

from tickwire.acls import ADMIN_USER, bindings, role_grants
from tickwire.contract.kafka_security import KafkaSecurity
from tickwire.infra.config import REPO_ROOT
from tickwire.resources import topics_file
from tickwire.topic_admin import main as topics_main
from tickwire.topic_export import k8s_name, strimzi_topics, strimzi_users
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


# --- Kafka security: KafkaUsers from tickwire.acls, SASL_SSL in every workload ---------------------------

# Kafka's ACL enum names -> Strimzi's AclRule spelling, written here independently of topic_export.
_S_RESOURCE = {"TOPIC": "topic", "GROUP": "group", "TRANSACTIONAL_ID": "transactionalId", "BROKER": "cluster"}
_S_PATTERN = {"LITERAL": "literal", "PREFIXED": "prefix"}
CA_SECRET = "tickwire-cluster-ca-cert"

Acl = tuple[str, str, str, str]  # (resource type, name, pattern type, operation), Strimzi spelling


def _strimzi_op(kafka_name: str) -> str:
    return "".join(w.capitalize() for w in kafka_name.split("_"))  # DESCRIBE_CONFIGS -> DescribeConfigs


def _granted(specs: list[Any], prefix: str = "") -> dict[str, set[Acl]]:
    """User -> its ACLs, from the bindings `tickwire topics apply --acls` creates."""
    out: dict[str, set[Acl]] = {}
    for b in bindings(specs, prefix):
        user = b.principal.removeprefix("User:")
        kind = _S_RESOURCE[b.restype.name]
        name = "" if kind == "cluster" else b.name  # a Strimzi cluster resource has no name
        pattern = "literal" if kind == "cluster" else _S_PATTERN[b.resource_pattern_type.name]
        out.setdefault(user, set()).add((kind, name, pattern, _strimzi_op(b.operation.name)))
    return out


def _declared(users: list[dict[str, Any]]) -> dict[str, set[Acl]]:
    out: dict[str, set[Acl]] = {}
    for u in users:
        acls = out.setdefault(u["metadata"]["name"], set())
        for rule in u["spec"]["authorization"]["acls"]:
            r = rule["resource"]
            assert rule.get("type", "allow") == "allow" and rule.get("host", "*") == "*", rule
            for op in rule["operations"]:
                acls.add((r["type"], r.get("name", ""), r.get("patternType", "literal"), op))
    return out


def _role_of(container: dict[str, Any]) -> str:
    """The acls.py role a workload runs as, from its command (both alpaca feeds write alpaca.raw)."""
    cmd, *rest = container["args"]
    return {"ingest": f"ingest-{rest[0]}", "normalize": "normalizer", "bridge": f"bridge-{rest[0]}"}[cmd]


def test_users_manifest_is_the_export_of_the_role_acls() -> None:
    want = strimzi_users(load_topics(topics_file()), cluster="tickwire")
    assert _docs("users.yaml") == want, (
        "deploy/k8s/users.yaml is stale: regenerate it with the command in deploy/README.md"
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert topics_main(["export", "--format", "strimzi-users", "--cluster", "tickwire"]) == 0
    assert [d for d in yaml.safe_load_all(out.getvalue()) if d] == want


@pytest.mark.parametrize("prefix", ["", "sandbox-"])
def test_every_kafka_user_holds_exactly_the_acls_of_its_role(prefix: str) -> None:
    specs = [s.with_prefix(prefix) for s in load_topics(topics_file())]
    users = _docs("users.yaml") if not prefix else strimzi_users(specs, cluster="tickwire", prefix=prefix)
    granted, declared = _granted(specs, prefix), _declared(users)
    assert list(declared) == list(role_grants(specs, prefix))  # every role once, admin is a super user
    assert ADMIN_USER not in declared
    for role, acls in granted.items():
        assert declared[role] == acls, role
    for u in users:
        assert u["apiVersion"] == "kafka.strimzi.io/v1beta2" and u["kind"] == "KafkaUser"
        assert u["metadata"]["labels"]["strimzi.io/cluster"] == "tickwire"
        assert u["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert u["spec"]["authorization"]["type"] == "simple"
        resources = [tuple(sorted(r["resource"].items())) for r in u["spec"]["authorization"]["acls"]]
        assert len(resources) == len(set(resources)), u["metadata"]["name"]  # one rule per resource
    # spot checks of the mapping itself, so a wrong table on both sides cannot agree by accident
    normalizer = declared["normalizer"]
    assert ("transactionalId", f"{prefix}tickwire-normalizer-", "prefix", "Write") in normalizer
    assert ("group", f"{prefix}tickwire-normalizer", "prefix", "Read") in normalizer
    assert ("cluster", "", "literal", "IdempotentWrite") in normalizer
    assert ("topic", f"{prefix}binance.raw", "literal", "Read") in normalizer
    assert ("topic", f"{prefix}binance.raw", "literal", "Write") not in normalizer
    assert ("topic", f"{prefix}binance.raw", "literal", "Write") in declared["ingest-binance"]


def _workload_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for w in _workloads():
        (c,) = w["spec"]["template"]["spec"]["containers"]
        yield w, c


def test_every_workload_authenticates_as_its_own_kafka_user_over_sasl_ssl() -> None:
    users = {u["metadata"]["name"] for u in _docs("users.yaml")}
    known = {f"KAFKA_{name.upper()}" for name in KafkaSecurity.model_fields}
    seen_roles = set()
    for w, c in _workload_containers():
        name = w["metadata"]["name"]
        env = {e["name"]: e for e in c["env"]}
        guarded = {k for k in env if k.startswith(("KAFKA_SSL_", "KAFKA_SASL_", "KAFKA_SECURITY_"))}
        assert guarded <= known, (name, guarded - known)  # load_security rejects unknown names
        assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL", name
        assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512", name
        user = env["KAFKA_SASL_USERNAME"]["value"]
        assert user in users and user == _role_of(c), name
        seen_roles.add(user)
        assert env["KAFKA_SASL_PASSWORD"] == {
            "name": "KAFKA_SASL_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": user, "key": "password"}},
        }, name
        assert "KAFKA_BOOTSTRAP_SERVERS" not in env, name  # the ConfigMap's TLS listener, nowhere else
        # the CA file is the cluster CA Secret's ca.crt, mounted read-only
        ca = env["KAFKA_SSL_CA_LOCATION"]["value"]
        volumes = {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}
        (mount,) = [m for m in c["volumeMounts"] if ca.startswith(m["mountPath"].rstrip("/") + "/")]
        assert mount["readOnly"] is True, name
        secret = volumes[mount["name"]]["secret"]
        assert secret["secretName"] == CA_SECRET, name
        rel = ca[len(mount["mountPath"].rstrip("/")) + 1 :]
        assert {"key": "ca.crt", "path": rel} in secret["items"], name
    assert {"normalizer", "bridge-redis", "bridge-nats", "ingest-binance", "ingest-alpaca"} <= seen_roles


def test_no_plaintext_bootstrap_is_left() -> None:
    (cm,) = _docs("config.yaml")
    assert cm["data"]["KAFKA_BOOTSTRAP_SERVERS"] == "tickwire-kafka-bootstrap:9093"
    assert "KAFKA_SECURITY_PROTOCOL" not in cm["data"]  # per workload, SASL_SSL (checked above)
    for path in K8S.glob("*.yaml"):
        assert ":9092" not in path.read_text(), path.name  # Strimzi's plain listener
        assert "PLAINTEXT" not in path.read_text(), path.name


_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|JAAS", re.IGNORECASE)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_no_secret_value_in_any_manifest() -> None:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _docs(path.name):
            assert doc["kind"] != "Secret", path.name  # Strimzi and the operator create them
            if doc["kind"] == "ConfigMap":
                assert not any(_SECRET_NAME.search(k) for k in doc["data"]), path.name
            if doc["kind"] == "KafkaUser":  # a given password would be a value in the manifest
                assert "password" not in doc["spec"]["authentication"], doc["metadata"]["name"]
            for node in _walk(doc):
                if isinstance(node.get("name"), str) and _SECRET_NAME.search(node["name"]):
                    assert "value" not in node, (path.name, node)  # only valueFrom a Secret
