"""Kafka client security settings, role ACLs, local certificates, secret redaction, control-token rules."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tickwire.acls import bindings, role_grants, roles, topic_class
from tickwire.bridges.config import NatsBridgeSettings, RedisBridgeSettings
from tickwire.contract.kafka_security import (
    KafkaSecurity,
    KafkaSecurityError,
    client_conf,
    explain,
    load_security,
)
from tickwire.infra.certs import ensure_server_cert
from tickwire.infra.config import load_config
from tickwire.infra.secure import SecureKafka
from tickwire.simulators.base import SimServer
from tickwire.topics import load_topics

PW = "pw-Zq81-never-printed"


def sasl_env(tmp_path: Path) -> dict[str, str]:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "normalizer",
        "KAFKA_SASL_PASSWORD": PW,
        "KAFKA_SSL_CA_LOCATION": str(ca),
        "KAFKA_BOOTSTRAP_SERVERS": "b:1",  # other KAFKA_* variables are not ours to reject
    }


def test_default_is_plaintext() -> None:
    assert load_security({}).librdkafka() == {"security.protocol": "plaintext"}


def test_sasl_ssl_becomes_librdkafka_config_and_the_password_stays_hidden(tmp_path: Path) -> None:
    sec = load_security(sasl_env(tmp_path))
    conf = sec.librdkafka()
    assert conf == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "normalizer",
        "sasl.password": PW,
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.endpoint.identification.algorithm": "https",
    }
    for text in (repr(sec), str(sec), sec.model_dump_json()):
        assert PW not in text
    assert sec.secrets() == [PW]


def test_client_conf_applies_security_and_the_callers_keys_win(tmp_path: Path) -> None:
    sec = load_security(sasl_env(tmp_path))
    conf = client_conf("h:9", {"client.id": "x", "sasl.username": "other"}, security=sec)
    assert conf["bootstrap.servers"] == "h:9" and conf["security.protocol"] == "sasl_ssl"
    assert conf["sasl.username"] == "other" and conf["client.id"] == "x" and callable(conf["error_cb"])


def test_client_certificate_and_hostname_verification(tmp_path: Path) -> None:
    for name in ("c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    env = {
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_SSL_CERTIFICATE_LOCATION": str(tmp_path / "c.pem"),
        "KAFKA_SSL_KEY_LOCATION": str(tmp_path / "k.pem"),
        "KAFKA_SSL_KEY_PASSWORD": PW,
        "KAFKA_SSL_ENDPOINT_IDENTIFICATION": "false",
    }
    conf = load_security(env).librdkafka()
    assert conf["ssl.certificate.location"] == str(tmp_path / "c.pem")
    assert conf["ssl.key.password"] == PW and conf["ssl.endpoint.identification.algorithm"] == "none"
    assert "sasl.username" not in conf


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KAFKA_SASL_PASWORD": "x"}, "KAFKA_SASL_PASWORD"),  # a typo fails loudly
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, "no such file"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL: Input should be"),
    ],
)
def test_invalid_settings_are_rejected_with_the_cause(env: dict[str, str], needle: str) -> None:
    with pytest.raises(KafkaSecurityError, match=needle):
        load_security(env)


def test_a_rejected_password_is_not_echoed() -> None:
    with pytest.raises(KafkaSecurityError) as ei:
        load_security({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": PW})
    assert PW not in str(ei.value)


def test_explain_names_the_likely_cause(tmp_path: Path) -> None:
    sec = load_security(sasl_env(tmp_path))
    assert "KAFKA_SASL_PASSWORD" in explain("SASL authentication error: Authentication failed", sec)
    assert "KAFKA_SSL_CA_LOCATION" in explain("SSL handshake failed: certificate verify failed", sec)
    assert "User:normalizer" in explain("Broker: Topic authorization failed", sec)
    plain = KafkaSecurity()
    assert "is not TLS" in explain("Local: Broker transport failure", plain)
    assert explain("Local: Broker transport failure", sec) == "Local: Broker transport failure"


def test_role_acls_are_least_privilege() -> None:
    specs = [s.with_prefix("p.") for s in load_topics()]
    grants = role_grants(specs, "p.")

    def topics(role: str, op: AclOperation) -> set[str]:
        return {
            g.name
            for g in grants[role]
            if g.resource == ResourceType.TOPIC and g.pattern == ResourcePatternType.LITERAL and op in g.ops
        }

    assert topics("ingest-alpaca", AclOperation.WRITE) == {
        "p.alpaca.raw",
        "p.alpaca.raw.dlq",
        "p.tickwire.gaps",
        "p.tickwire.health",
        "p.tickwire.sessions",
    }
    assert topics("ingest-alpaca", AclOperation.READ) == {
        "p.control.subscriptions",
        "p.alpaca.raw",
        "p.tickwire.sessions",
    }
    writers = {r for r in grants if "p.control.subscriptions" in topics(r, AclOperation.WRITE)}
    assert writers == {"subscriptions", "bridge-redis"}
    assert topics("bridge-nats", AclOperation.WRITE) == {"p.bridge.nats.dlq"}
    assert topics("bridge-redis", AclOperation.READ) >= {"p.stock_trades_realtime", "p.crypto_book_realtime"}
    assert not any(topic_class(t[2:]) == "raw" for t in topics("bridge-redis", AclOperation.READ))
    norm_w = topics("normalizer", AclOperation.WRITE)
    assert (
        "p.stock_trades_realtime" in norm_w and "p.alpaca.raw.dlq" in norm_w and "p.tickwire.gaps" in norm_w
    )
    assert not any(t.endswith(".raw") for t in norm_w) and "p.control.subscriptions" not in norm_w
    assert {g.name for g in grants["normalizer"] if g.resource == ResourceType.TRANSACTIONAL_ID} == {
        "p.tickwire-normalizer-"
    }
    assert roles(specs, "p.")[0] == "admin" and "ingest-databento" in roles(specs, "p.")
    acls = [str(b) for b in bindings(specs, "p.")]
    assert len(acls) == len(set(acls))  # the broker refuses duplicates in one request


def test_certificates_chain_to_the_ca_and_keys_are_private(tmp_path: Path) -> None:
    sc = ensure_server_cert(tmp_path, "broker", "tickwire-broker")
    cert = x509.load_pem_x509_certificate(sc.cert.read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert cert.issuer == ca.subject
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    for key in (sc.key, sc.bundle, tmp_path / "ca.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert ensure_server_cert(tmp_path, "broker", "tickwire-broker").cert.read_bytes() == sc.cert.read_bytes()


def test_secure_broker_properties_and_credentials(tmp_path: Path) -> None:
    k = SecureKafka(load_config({"TICKWIRE_LOCAL_DIR": str(tmp_path)}))
    props = dict(ln.split("=", 1) for ln in k.server_properties().splitlines())
    assert k.port == 28092 and props["listeners"].startswith("SASL_SSL://127.0.0.1:28092,")
    assert "PLAINTEXT" not in props["listener.security.protocol.map"]
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["super.users"] == "User:admin;User:CN=tickwire-broker"
    pw_file = k.password_file("normalizer")
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    env = k.role_env("normalizer")
    assert k.password("normalizer") not in "".join(env.values())  # a shell read of the file instead
    assert env["KAFKA_SASL_PASSWORD"] == f'"$(cat {pw_file})"'
    assert f"name=normalizer,password={k.password('normalizer')}" in " ".join(k.format_args())


def test_bridge_urls_are_secret() -> None:
    r = RedisBridgeSettings(redis_url=f"redis://bridge:{PW}@127.0.0.1:1/0")
    n = NatsBridgeSettings(nats_url=f"nats://bridge:{PW}@127.0.0.1:1")
    for s in (r, n):
        assert PW not in repr(s) and PW not in s.model_dump_json()
    assert r.redis_url.get_secret_value().endswith("@127.0.0.1:1/0")
    assert r.metrics_host == "127.0.0.1" and n.metrics_host == "127.0.0.1"


def test_simulator_control_needs_a_token_off_loopback() -> None:
    local, exposed = SimServer("127.0.0.1"), SimServer("0.0.0.0")
    assert local._control_refused("") == ""
    assert "token" in exposed._control_refused("")
    exposed.control_token = "t0k"
    assert exposed._control_refused("Bearer t0k") == ""
    assert exposed._control_refused("Bearer nope") and exposed._control_refused("")
