"""The secured local broker of ``tickwire infra up --secure``: SASL_SSL, SCRAM-SHA-512 users, ACLs.

A separate single KRaft node beside the shared dev broker (default ports 28092/28093,
``TICKWIRE_SECURE_KAFKA_PORT``), all of its files under ``.local/secure-<port>/`` (mode 0700):

- ``tls/``: a CA and the broker certificate made by ``tickwire.infra.certs`` (clients trust ``ca.pem``);
- ``credentials/<role>.password``: one random password per role of ``tickwire.acls`` (mode 0600), given
  to the storage format as SCRAM-SHA-512 users (``--add-scram``), so they exist from the first start;
- the node: listener ``SASL_SSL`` for clients and between brokers, the controller listener on mutual
  TLS (the broker's certificate is its principal), ``StandardAuthorizer`` with no access unless an ACL
  grants it; ``User:admin`` is the one super user.

``after_start`` applies the role ACLs of topics.yaml (``tickwire.acls``) as admin.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from pydantic import SecretStr

from tickwire.acls import ADMIN_USER, apply_acls, roles
from tickwire.contract.kafka_security import KafkaSecurity, client_conf
from tickwire.infra.certs import ensure_server_cert, secret_file
from tickwire.infra.config import InfraConfig
from tickwire.infra.kafka import Kafka
from tickwire.infra.process import InfraError
from tickwire.topics import load_topics

SECURE_KAFKA_PORT = 28092  # not 29092: test-kafka-alt runs the other Kafka line there
BROKER_CN = "tickwire-broker"
_SCRAM = "SCRAM-SHA-512"


def secure_config(cfg: InfraConfig) -> InfraConfig:
    port = int(os.environ.get("TICKWIRE_SECURE_KAFKA_PORT") or SECURE_KAFKA_PORT)
    return replace(cfg, kafka_port=port, kafka_controller_port=port + 1, kafka_brokers=1)


class SecureKafka(Kafka):
    name = "kafka-secure"
    port_env = "TICKWIRE_SECURE_KAFKA_PORT"

    def __init__(self, cfg: InfraConfig) -> None:
        super().__init__(secure_config(cfg))

    @property
    def reuse_external(self) -> bool:
        return False

    @property
    def secure_dir(self) -> Path:
        return self.cfg.local_dir / f"secure-{self.port}"

    @property
    def tls_dir(self) -> Path:
        return self.secure_dir / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def node_dir(self) -> Path:
        return self.secure_dir / "kafka"

    def owns(self, argv: list[str]) -> bool:
        return "kafka.Kafka" in argv and str(self.props_file) in argv

    def roles(self) -> list[str]:
        return roles(load_topics())

    def password(self, role: str) -> str:
        """The role's password (made on first use, kept in a 0600 file)."""
        return secret_file(self.secure_dir / "credentials" / f"{role}.password")

    def password_file(self, role: str) -> Path:
        self.password(role)
        return self.secure_dir / "credentials" / f"{role}.password"

    def security(self, role: str) -> KafkaSecurity:
        """Client settings of ``role`` against this broker."""
        return KafkaSecurity.model_validate(
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": _SCRAM,
                "sasl_username": role,
                "sasl_password": SecretStr(self.password(role)),
                "ssl_ca_location": str(self.ca_file),
            }
        )

    def role_env(self, role: str, *, reveal: bool = False) -> dict[str, str]:
        """The KAFKA_* variables of ``role``; the password as a shell read of its file unless ``reveal``."""
        pw = self.password(role) if reveal else f'"$(cat {self.password_file(role)})"'
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.address,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": _SCRAM,
            "KAFKA_SASL_USERNAME": role,
            "KAFKA_SASL_PASSWORD": pw,
            "KAFKA_SSL_CA_LOCATION": str(self.ca_file),
        }

    def server_properties(self) -> str:
        base = dict(ln.split("=", 1) for ln in super().server_properties().splitlines() if "=" in ln)
        h = self.cfg.host
        bundle = self.tls_dir / "broker.bundle.pem"
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN_USER}" password="{self.password(ADMIN_USER)}";'
        )
        base |= {
            "listeners": f"SASL_SSL://{h}:{self.port},CONTROLLER://{h}:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://{h}:{self.port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": _SCRAM,
            "sasl.mechanism.inter.broker.protocol": _SCRAM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(bundle),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_USER};User:CN={BROKER_CN}",
            "allow.everyone.if.no.acl.found": "false",
            # Secured clients create nothing implicitly: topics come from `tickwire topics apply`.
            "auto.create.topics.enable": "false",
        }
        return "".join(f"{k}={v}\n" for k, v in base.items())

    def prepare(self) -> None:
        self.secure_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.secure_dir, 0o700)
        ensure_server_cert(self.tls_dir, "broker", BROKER_CN)
        super().prepare()
        os.chmod(self.props_file, 0o600)

    def format_args(self) -> list[str]:
        out: list[str] = []
        for role in self.roles():
            out += ["--add-scram", f"{_SCRAM}=[name={role},password={self.password(role)}]"]
        return out

    def responds(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(client_conf(self.address, {"log_level": 0}, security=self.security(ADMIN_USER)))
        try:
            return bool(admin.list_topics(timeout=5).brokers)
        except Exception:
            return False

    def after_start(self) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(client_conf(self.address, {"log_level": 0}, security=self.security(ADMIN_USER)))
        try:
            apply_acls(admin, load_topics())
        except Exception as e:
            raise InfraError(f"{self.name}: creating the role ACLs failed: {e}") from None


def secure_main(cfg: InfraConfig, action: str) -> int:
    """``tickwire infra up|down|status|env --secure``: the secured servers only (never the shared ones).

    ``up``/``env`` print each role's variables; passwords stay in their files (read by the shell)."""
    from tickwire.infra.secure_redis_nats import SecureNats, SecureRedis

    k, r, n = SecureKafka(cfg), SecureRedis(cfg), SecureNats(cfg)
    if action == "up":
        for server in (k, r, n):
            done, secs = server.up()
            print(f"{server.name} {done} in {secs:.1f}s on {server.address}")
        print(f"# clients trust {k.ca_file}")
    elif action in ("down", "status"):
        ok = True
        for server in (k, r, n):
            if action == "down":
                print(f"{server.name} {'stopped' if server.down() else 'was not running'}")
                continue
            st = server.status()
            ok = ok and st.state == "running"
            print(f"{st.name} {st.state} {st.address} pid={st.pid or '-'} log={st.log}")
        return 0 if ok else 1
    for role in k.roles():
        print(f"# role {role}")
        for key, value in k.role_env(role).items():
            print(f"export {key}={value}")
        if role in r.users:
            pw = f"$(cat {r.dir / 'credentials' / f'{role}.password'})"
            print(f'export REDIS_URL="redis://{role}:{pw}@{r.address}/0"')
            print(
                f'# over TLS: REDIS_URL="rediss://{role}:{pw}@{r.cfg.host}:{r.tls_port}/0?ssl_ca_certs={k.ca_file}"'
            )
        if role in n.users:
            pw = f"$(cat {n.dir / 'credentials' / f'{role}.password'})"
            print(f'export NATS_URL="tls://{role}:{pw}@{n.address}" NATS_BRIDGE_TLS_CA_FILE={k.ca_file}')
    return 0
