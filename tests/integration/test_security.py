"""tickwire against the secured local broker (`tickwire infra up --secure`: SASL_SSL, SCRAM-SHA-512,
StandardAuthorizer with the role ACLs of tickwire.acls).

One secured broker for the module (started once, reused when running); topics and ACLs with a unique
prefix applied by `tickwire topics apply --acls` as the admin role. Then: every refusal (wrong password,
no CA, plaintext against the TLS listener, a role outside its ACL) per client type, with the cause in the
error; the pipeline end to end, each process as its own role; no secret in any output of the run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import SecretStr

from tests.helpers import unique_name, wait_for
from tests.integration.test_bridge_helpers import REPO, TICKWIRE, Proc, bridge_proc
from tickwire.contract.kafka_security import KafkaSecurity, client_conf, explain
from tickwire.infra.config import load_config
from tickwire.infra.secure import SecureKafka
from tickwire.infra.secure_redis_nats import SecureNats, SecureRedis, redis_bridge_rules

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "wrong-pw-8d1f0c"
OUTPUTS: list[str] = []  # every captured output of this module, grepped for secrets at the end
SECRETS: list[str] = []  # passwords made by the tests themselves


def _served(server: Any) -> Iterator[Any]:
    """Up for the module; stopped at its end when this module started it (as tests/conftest.py does)."""
    action, _ = server.up()
    yield server
    if action == "started" and os.environ.get("TICKWIRE_KEEP_INFRA") != "1":
        server.down()


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureKafka]:
    yield from _served(SecureKafka(load_config()))


def run_as(secure: SecureKafka, role: str, argv: list[str], timeout: float = 60) -> str:
    env = {**os.environ, **secure.role_env(role, reveal=True), "TICKWIRE_LOG_LEVEL": "INFO"}
    res = subprocess.run(
        argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )
    out = res.stdout + res.stderr
    OUTPUTS.append(out)
    assert res.returncode == 0, out
    return out


@pytest.fixture(scope="module")
def prefix(secure: SecureKafka) -> str:
    p = unique_name("sec") + "."
    out = run_as(secure, "admin", [TICKWIRE, "topics", "apply", "--prefix", p, "--acls", "--timeout", "20"])
    assert "role ACL binding(s) applied" in out
    return p


def _errors_of(make: Callable[[dict[str, Any]], Any], conf: dict[str, Any]) -> list[str]:
    """Errors a client reports (error callback or exception) while it tries to reach the cluster."""
    errors: list[str] = []
    client = make({**conf, "error_cb": lambda e: errors.append(e.str()), "socket.timeout.ms": 3000})

    def seen() -> bool:
        try:
            client.list_topics(timeout=1)
        except KafkaException as e:
            errors.append(str(e))
        client.poll(0.1)
        return bool(errors)

    wait_for(seen, 15, interval=0.1, what="the client to report an error")
    if isinstance(client, Consumer):
        client.close()
    return errors


CLIENTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "producer": Producer,
    "consumer": lambda c: Consumer({**c, "group.id": unique_name("sec-g")}),
    "admin": AdminClient,
}


@pytest.mark.parametrize("kind", list(CLIENTS))
def test_wrong_password_no_ca_and_plaintext_are_refused(
    secure: SecureKafka, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    good = secure.security("ingest-alpaca")
    cases = {
        "Authentication failed": good.model_copy(update={"sasl_password": SecretStr(WRONG_PASSWORD)}),
        "certificate verify failed": good.model_copy(update={"ssl_ca_location": None}),
        "PLAINTEXT is not TLS": KafkaSecurity(security_protocol="PLAINTEXT"),
    }
    for cause, sec in cases.items():
        # what tickwire logs for a client error: librdkafka's text with the likely cause (explain)
        errors = [
            explain(e, sec) for e in _errors_of(CLIENTS[kind], client_conf(secure.address, security=sec))
        ]
        OUTPUTS.extend(errors)
        assert any(cause in e for e in errors), (kind, cause, errors)
    # the right settings work for the same client type (the refusals above are about the setting)
    md = CLIENTS[kind](client_conf(secure.address, security=good)).list_topics(timeout=10)
    assert md.brokers
    OUTPUTS.append("".join(capfd.readouterr()))  # librdkafka's own log lines


def _deliver(bootstrap: str, sec: KafkaSecurity, topic: str) -> KafkaError | None:
    result: list[KafkaError | None] = []

    def report(err: KafkaError | None, _msg: Message) -> None:
        result.append(err)

    p = Producer(client_conf(bootstrap, {"message.timeout.ms": 10000}, security=sec))
    p.produce(topic, b"x", key=b"k", on_delivery=report)  # a key: the control topic is compacted
    p.flush(15)
    assert result, "no delivery report"
    return result[0]


def test_roles_outside_their_acl_are_refused(
    secure: SecureKafka, prefix: str, capfd: pytest.CaptureFixture[str]
) -> None:
    b = secure.address
    ingest, nats, redis_ = (secure.security(r) for r in ("ingest-alpaca", "bridge-nats", "bridge-redis"))
    control = prefix + "control.subscriptions"
    # producer: its raw topic yes, a canonical topic or another vendor's raw topic no
    assert _deliver(b, ingest, prefix + "alpaca.raw") is None
    for topic in (prefix + "stock_trades_realtime", prefix + "binance.raw"):
        err = _deliver(b, ingest, topic)
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, (topic, err)
        assert "authorization failed" in err.str().lower()
    # bridges: only the Redis (control) bridge writes the control topic
    assert _deliver(b, redis_, control) is None
    err = _deliver(b, nats, control)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # consumer: a bridge reads canonical topics, never raw ones
    c = Consumer(
        client_conf(secure.address, security=nats)
        | {"group.id": prefix + "tickwire-bridge-nats", "auto.offset.reset": "earliest"}
    )
    c.subscribe([prefix + "alpaca.raw"])
    try:
        seen: list[KafkaError] = []

        def refused() -> bool:
            m = c.poll(0.5)
            if m is not None and m.error() is not None:
                seen.append(m.error())
            return any(e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED for e in seen)

        wait_for(refused, 20, interval=0.01, what="consumer refused on a raw topic")
    finally:
        c.close()
    # admin: a producer creates no topics
    admin = AdminClient(client_conf(secure.address, security=ingest))
    fut = admin.create_topics([NewTopic(prefix + "rogue", 1, 1)], request_timeout=10)[prefix + "rogue"]
    with pytest.raises(KafkaException) as ei:
        fut.result(15)
    assert ei.value.args[0].code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    )
    # transactional producer: only the normalizer's transactional ids
    p = Producer(client_conf(secure.address, {"transactional.id": "rogue-txn"}, security=ingest))
    with pytest.raises(KafkaException) as ei:
        p.init_transactions(15)
    assert ei.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    OUTPUTS.append("".join(capfd.readouterr()))


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.stop()


@pytest.fixture(scope="module")
def sredis() -> Iterator[SecureRedis]:
    yield from _served(SecureRedis(load_config()))


@pytest.fixture(scope="module")
def snats() -> Iterator[SecureNats]:
    yield from _served(SecureNats(load_config()))


def redis_bridge_user(sredis: SecureRedis, key_prefix: str, *, tls: bool = False) -> str:
    """A bridge user limited to ``key_prefix``'s keys and channels (the rules of the shipped one)."""
    import redis

    user, pw = unique_name("bridge-redis"), uuid.uuid4().hex
    SECRETS.append(pw)
    admin = redis.Redis.from_url(sredis.url("admin"))
    admin.execute_command("ACL", "SETUSER", user, "on", f">{pw}", *redis_bridge_rules(key_prefix))
    if tls:
        return f"rediss://{user}:{pw}@127.0.0.1:{sredis.tls_port}/0?ssl_ca_certs={sredis.ca_file}"
    return f"redis://{user}:{pw}@{sredis.address}/0"


def test_redis_and_nats_refuse_anonymous_wrong_password_and_foreign_keys(
    sredis: SecureRedis, snats: SecureNats
) -> None:
    import nats
    import redis

    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"redis://127.0.0.1:{sredis.port}/0").ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"redis://bridge-redis:{WRONG_PASSWORD}@{sredis.address}/0").ping()
    bridge = redis.Redis.from_url(redis_bridge_user(sredis, "kp1:"))
    assert bridge.set("kp1:market:X:ticker", "1") and bridge.get("kp1:market:X:ticker") == b"1"
    for denied in (lambda: bridge.set("kp2:market:X:ticker", "1"), bridge.flushall, lambda: bridge.keys("*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            denied()

    async def nats_checks() -> None:
        with pytest.raises(Exception, match=r"[Aa]uthorization"):
            await nats.connect(
                f"tls://bridge-nats:{WRONG_PASSWORD}@{snats.address}",
                tls=snats.tls(),
                allow_reconnect=False,
                connect_timeout=3,
            )
        errors: list[str] = []

        async def on_error(e: Exception) -> None:
            errors.append(str(e))

        with pytest.raises(Exception, match=r"(?i)certificate.verify.failed"):  # no CA: TLS refused
            await nats.connect(snats.url("bridge-nats"), allow_reconnect=False, connect_timeout=3)
        nc = await nats.connect(snats.url("bridge-nats"), tls=snats.tls(), error_cb=on_error)
        try:
            await nc.publish("control.elsewhere", b"x")
            await nc.flush()
            await asyncio.sleep(0.3)  # the server's -ERR arrives asynchronously
        finally:
            await nc.close()
        assert any("permissions violation for publish" in e for e in errors), errors

    asyncio.run(nats_checks())


@pytest.mark.timeout(180)
def test_pipeline_end_to_end_as_roles_and_no_secret_printed(
    secure: SecureKafka,
    prefix: str,
    sredis: SecureRedis,
    snats: SecureNats,
    tmp_path: Path,
    procs: list[Proc],
) -> None:
    import json

    import redis

    from tickwire.vendors.alpaca.simulator import AlpacaSimulator

    kp = unique_name("seck") + ":"
    stream = unique_name("SEC").replace("-", "_").upper()
    redis_url, nats_url = redis_bridge_user(sredis, kp, tls=True), snats.url("bridge-nats")
    asyncio.run(_delete_streams(snats))  # the bridge user may publish on market.> only

    def env(role: str) -> dict[str, str]:
        return {**secure.role_env(role, reveal=True), "TICKWIRE_LOG_LEVEL": "INFO"}

    sim = AlpacaSimulator(mode="manual", symbols=["AAPL", "MSFT"], seed=5)
    sim.start()
    try:
        ingest_argv = [TICKWIRE, "ingest", "alpaca", "--feed", "stocks", "--url", sim.url + "/v2/iex"]
        ingest_env = {**env("ingest-alpaca"), "ALPACA_SYMBOLS": "AAPL", "ALPACA_STOCK_CHANNELS": "trades"}
        common = ["--topic-prefix", prefix, "--metrics-port", "0"]
        procs.append(Proc([*ingest_argv, *common], tmp_path / "ingest.log", ingest_env).start())
        norm_argv = [TICKWIRE, "normalize", *common, "--vendors", "alpaca"]
        procs.append(Proc(norm_argv, tmp_path / "normalize.log", env("normalizer")).start())
        # credential-bearing URLs from the environment, never argv (process titles)
        redis_env = {**env("bridge-redis"), "REDIS_URL": redis_url}
        nats_env = {**env("bridge-nats"), "NATS_URL": nats_url, "NATS_BRIDGE_TLS_CA_FILE": str(snats.ca_file)}
        redis_args, nats_args = [*common, "--key-prefix", kp], [*common, "--stream", stream]
        procs.append(bridge_proc("redis", redis_args, tmp_path / "bridge-redis.log", redis_env).start())
        procs.append(bridge_proc("nats", nats_args, tmp_path / "bridge-nats.log", nats_env).start())
        wait_for(lambda: bool(sim.connections) and sim.connections[0].subscriptions, 60, what="subscribed")
        r = redis.Redis.from_url(sredis.url("admin"))
        for _ in range(20):
            sim.publish([next(e for e in iter(lambda: sim.make_event("AAPL"), None) if e["T"] == "t")])
        wait_for(lambda: r.llen(f"{kp}market:AAPL:trades") == 20, 60, what="20 AAPL trades in Redis")
        head = json.loads(r.lindex(f"{kp}market:AAPL:trades", 0) or b"{}")
        assert head["symbol"] == "AAPL" and head["tickType"] == "trade" and head["price"] > 0
        # the subscriptions tooling (its own role) changes what the running producer subscribes
        sub_argv = [TICKWIRE, "subscriptions", "add", "alpaca", "trades", "MSFT", "--topic-prefix", prefix]
        run_as(secure, "subscriptions", sub_argv)
        wait_for(lambda: "trades:MSFT" in sim.connections[-1].subscriptions, 60, what="MSFT subscribed")
        sim.publish([next(e for e in iter(lambda: sim.make_event("MSFT"), None) if e["T"] == "t")])
        wait_for(lambda: r.llen(f"{kp}market:MSFT:trades") == 1, 60, what="MSFT trade in Redis")
        # JetStream: every trade exactly once (20 AAPL + 1 MSFT)
        wait_for(lambda: _jetstream_count(snats, stream) == 21, 30, what="21 JetStream messages")
        assert all(p.alive() for p in procs), [p.argv[1:3] for p in procs if not p.alive()]
    finally:
        for p in reversed(procs):
            p.stop()
        procs.clear()
        sim.stop()
        asyncio.run(_delete_streams(snats))
    logs = {f.name: f.read_text(errors="replace") for f in tmp_path.glob("*.log")}
    assert sorted(logs) == ["bridge-nats.log", "bridge-redis.log", "ingest.log", "normalize.log"]
    assert all(" INFO " in text for text in logs.values())
    secrets = {f"kafka {r}": secure.password(r) for r in secure.roles()}
    secrets |= {f"redis {u}": sredis.password(u) for u in sredis.users}
    secrets |= {f"nats {u}": snats.password(u) for u in snats.users}
    secrets |= {f"other {i}": pw for i, pw in enumerate([WRONG_PASSWORD, *SECRETS])}
    for what, pw in secrets.items():
        for text in [*logs.values(), *OUTPUTS]:
            assert pw not in text, f"the {what} password appears in output"


def _jetstream_count(snats: SecureNats, stream: str) -> int:
    import asyncio

    import nats

    async def count() -> int:
        nc = await nats.connect(snats.url("admin"), tls=snats.tls())
        try:
            info = await nc.jetstream().stream_info(stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            return asyncio.run(count())
        except Exception:  # the bridge creates the stream at start
            time.sleep(0.3)
    return 0


async def _delete_streams(snats: SecureNats) -> None:
    import nats

    nc = await nats.connect(snats.url("admin"), tls=snats.tls())
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            await js.delete_stream(info.config.name)
    finally:
        await nc.close()


def test_unreachable_nats_at_start_never_prints_its_url(
    secure: SecureKafka, prefix: str, tmp_path: Path
) -> None:
    pw = uuid.uuid4().hex
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **secure.role_env("bridge-nats", reveal=True),
        "NATS_URL": f"nats://bridge-nats:{pw}@127.0.0.1:{port}",
        "TICKWIRE_LOG_LEVEL": "DEBUG",
    }
    log = tmp_path / "bridge-nats.log"
    p = bridge_proc("nats", ["--topic-prefix", prefix, "--metrics-port", "0"], log, env).start()
    try:
        # two failed connect attempts logged (the bridge keeps retrying)
        wait_for(lambda: log.read_text(errors="replace").count(str(port)) >= 2, 20, what="connect attempts")
    finally:
        p.stop(signal.SIGKILL)  # only its output matters here
    text = log.read_text(errors="replace")
    assert pw not in text


def test_infra_cli_secure_status_and_env_print_no_password(
    secure: SecureKafka, sredis: SecureRedis, snats: SecureNats
) -> None:
    status = subprocess.run(
        [TICKWIRE, "infra", "status", "--secure"], capture_output=True, text=True, timeout=60, check=False
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert [ln.split()[:2] for ln in status.stdout.splitlines()] == [
        ["kafka-secure", "running"],
        ["redis-secure", "running"],
        ["nats-secure", "running"],
    ]
    env = subprocess.run(
        [TICKWIRE, "infra", "env", "--secure"], capture_output=True, text=True, timeout=60, check=False
    )
    OUTPUTS.extend([status.stdout + status.stderr, env.stdout + env.stderr])
    assert env.returncode == 0 and "export KAFKA_SASL_USERNAME=normalizer" in env.stdout
    pw_file = sredis.dir / "credentials" / "bridge-redis.password"
    assert f'export REDIS_URL="redis://bridge-redis:$(cat {pw_file})@{sredis.address}/0"' in env.stdout
    for pw in [
        *(secure.password(r) for r in secure.roles()),
        sredis.password("admin"),
        snats.password("admin"),
    ]:
        assert pw not in env.stdout
