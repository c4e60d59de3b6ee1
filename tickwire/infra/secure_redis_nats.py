"""Secured local Redis and NATS for ``tickwire infra up --secure`` (beside the shared dev servers).

Redis (default port 26379, ``TICKWIRE_SECURE_REDIS_PORT``; TLS on the next port, ``tls_url``): protected
mode, the ``default`` user off, an ACL file (0600, passwords stored as SHA-256) with ``admin`` and
``bridge-redis``, the latter limited to the key patterns and channels the Redis bridge uses
(``redis_bridge_rules``).

NATS (default port 24222, ``TICKWIRE_SECURE_NATS_PORT``, TLS required): a config file (0600) with users
``admin`` and ``bridge-nats``; the bridge may publish only on ``market.>`` and the JetStream API calls it
makes (stream create/update/info, account info) and subscribe only to its reply inboxes.

Server certificates come from the secured broker's CA (``tickwire.infra.certs``). Passwords: one random
file per user under ``credentials/`` (0600); URLs with them are secrets (``SecretStr`` in the bridges).
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from pathlib import Path

from tickwire.infra.certs import ServerCert, ensure_server_cert, secret_file, write_private
from tickwire.infra.config import InfraConfig
from tickwire.infra.redis_nats import Nats, Redis

SECURE_REDIS_PORT = 26379
SECURE_NATS_PORT = 24222
# Key patterns / channels of the Redis bridge (tickwire/bridges: shapes, idempotence, control, status).
REDIS_BRIDGE_KEYS = (
    "market:*",
    "tickwire:*",
    "monitoring:*",
    "options:*",
    "sentiment:*",
    "technicals:*",
    "heartbeat:*",
    "active_subscriptions:*",
)
REDIS_BRIDGE_CHANNELS = ("market_trades:*", "market_data:*", "system:subscription_updates")
NATS_BRIDGE_PUBLISH = (
    "market.>",
    "$JS.API.INFO",
    "$JS.API.STREAM.CREATE.*",
    "$JS.API.STREAM.UPDATE.*",
    "$JS.API.STREAM.INFO.*",
)


def _tls(cfg: InfraConfig, name: str) -> tuple[Path, ServerCert]:
    """(CA file, server certificate) from the secured broker's CA directory."""
    from tickwire.infra.secure import SecureKafka

    tls_dir = SecureKafka(cfg).tls_dir
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return tls_dir / "ca.pem", ensure_server_cert(tls_dir, name, f"tickwire-{name}")


def redis_bridge_rules(key_prefix: str = "") -> list[str]:
    """ACL rules of the bridge user: its keys and channels (with ``key_prefix``), data commands only."""
    return [
        "resetkeys",
        "resetchannels",
        *(f"~{key_prefix}{k}" for k in REDIS_BRIDGE_KEYS),
        *(f"&{key_prefix}{c}" for c in REDIS_BRIDGE_CHANNELS),
        "-@all",
        "+@read",
        "+@write",
        "+@scripting",
        "+@pubsub",
        "+@transaction",
        "+@connection",
        "-@dangerous",
    ]


class SecureRedis(Redis):
    name = "redis-secure"
    port_env = "TICKWIRE_SECURE_REDIS_PORT"
    users = ("admin", "bridge-redis")

    @property
    def port(self) -> int:
        return int(os.environ.get(self.port_env) or SECURE_REDIS_PORT)

    @property
    def dir(self) -> Path:
        return self.cfg.local_dir / f"secure-redis-{self.port}"

    def password(self, user: str) -> str:
        return secret_file(self.dir / "credentials" / f"{user}.password")

    def url(self, user: str) -> str:
        """A credential-bearing URL: a secret (never print it)."""
        return f"redis://{user}:{self.password(user)}@{self.cfg.host}:{self.port}/0"

    @property
    def tls_port(self) -> int:
        return self.port + 1

    @property
    def ca_file(self) -> Path:
        return _tls(self.cfg, "redis")[0]

    def tls_url(self, user: str) -> str:
        """The same over TLS (redis-py reads the CA from the URL's ``ssl_ca_certs``)."""
        pw = self.password(user)
        return f"rediss://{user}:{pw}@{self.cfg.host}:{self.tls_port}/0?ssl_ca_certs={self.ca_file}"

    def owns(self, argv: list[str]) -> bool:
        return bool(argv) and "redis-server" in argv[0] and f":{self.port}" in argv[0]

    def prepare(self) -> None:
        super().prepare()
        os.chmod(self.dir, 0o700)
        rules = {"admin": ["~*", "&*", "+@all"], "bridge-redis": redis_bridge_rules()}
        lines = ["user default off resetkeys resetchannels -@all"]
        for user in self.users:
            digest = hashlib.sha256(self.password(user).encode()).hexdigest()
            lines.append(f"user {user} on #{digest} {' '.join(rules[user])}")
        write_private(self.dir / "users.acl", ("\n".join(lines) + "\n").encode())

    def argv(self) -> list[str]:
        argv = super().argv()
        i = argv.index("--protected-mode")
        argv[i + 1] = "yes"
        ca, cert = _tls(self.cfg, "redis")
        tls = [
            "--tls-port",
            str(self.tls_port),
            "--tls-cert-file",
            str(cert.cert),
            "--tls-key-file",
            str(cert.key),
        ]
        tls += ["--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
        return [*argv, "--aclfile", str(self.dir / "users.acl"), *tls]

    def is_ready(self) -> bool:
        try:
            with socket.create_connection((self.cfg.host, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False


class SecureNats(Nats):
    name = "nats-secure"
    port_env = "TICKWIRE_SECURE_NATS_PORT"
    users = ("admin", "bridge-nats")

    def __init__(self, cfg: InfraConfig) -> None:
        super().__init__(cfg)

    @property
    def port(self) -> int:
        return int(os.environ.get(self.port_env) or SECURE_NATS_PORT)

    @property
    def dir(self) -> Path:
        return self.cfg.local_dir / f"secure-nats-{self.port}"

    def password(self, user: str) -> str:
        return secret_file(self.dir / "credentials" / f"{user}.password")

    def url(self, user: str) -> str:
        """A credential-bearing URL: a secret (never print it). The server requires TLS: see ``tls``."""
        return f"tls://{user}:{self.password(user)}@{self.cfg.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return _tls(self.cfg, "nats")[0]

    def tls(self) -> ssl.SSLContext:
        """A client TLS context trusting the local CA (nats-py's ``tls=``)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def owns(self, argv: list[str]) -> bool:
        return bool(argv) and "nats-server" in argv[0] and str(self.dir / "nats.conf") in argv

    def config_text(self) -> str:
        def q(items: tuple[str, ...]) -> str:
            return ", ".join(f'"{i}"' for i in items)

        admin, bridge = self.password("admin"), self.password("bridge-nats")
        ca, cert = _tls(self.cfg, "nats")
        return (
            f"listen: {self.cfg.host}:{self.port}\n"
            f'tls {{ cert_file: "{cert.cert}", key_file: "{cert.key}", ca_file: "{ca}", timeout: 2 }}\n'
            f"server_name: tickwire-secure-{self.port}\n"
            f'jetstream {{ store_dir: "{self.dir / "jetstream"}" }}\n'
            "authorization {\n  users = [\n"
            f'    {{ user: "admin", password: "{admin}" }}\n'
            f'    {{ user: "bridge-nats", password: "{bridge}", permissions: {{\n'
            f"      publish: {{ allow: [{q(NATS_BRIDGE_PUBLISH)}] }}\n"
            '      subscribe: { allow: ["_INBOX.>"] }\n'
            "    } }\n  ]\n}\n"
        )

    def prepare(self) -> None:
        super().prepare()
        os.chmod(self.dir, 0o700)
        write_private(self.dir / "nats.conf", self.config_text().encode())

    def argv(self) -> list[str]:
        return [super().argv()[0], "-c", str(self.dir / "nats.conf")]
