"""`python -m tickwire.infra.deploy up|down|status` (`make deploy-up|deploy-down|deploy-status`): the
compose stack of ``deploy/compose.yaml`` on the project's Docker engine (``docker_engine``).

``up`` starts the engine when none answers (and leaves a marker so ``down`` stops it again), runs
``docker-compose up -d`` and waits until every long-running container is healthy. ``status`` prints each
container's state and health, then every consumer group of the stack's cluster: members with their
assigned partitions, and lag (end offset minus committed, per group). ``down`` removes the containers and
their volumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tickwire import logs
from tickwire.contract.kafka_security import client_conf
from tickwire.infra.config import REPO_ROOT, load_config
from tickwire.infra.docker_engine import Engine
from tickwire.infra.images import IMAGE_TAGS
from tickwire.infra.process import InfraError
from tickwire.logs import kv
from tickwire.monitor import committed_lag

log = logging.getLogger(__name__)

COMPOSE_FILE = REPO_ROOT / "deploy" / "compose.yaml"
PROJECT = "tickwire"
ONE_SHOT = {"topics"}  # services that run to completion


@dataclass(frozen=True)
class Container:
    service: str
    name: str
    state: str  # running | exited | ...
    health: str  # healthy | starting | unhealthy | none
    exit_code: int


def compose_env(compose_file: Path = COMPOSE_FILE) -> dict[str, str]:
    """The environment the stack's tickwire roles share (``x-tickwire-env``): bootstrap servers, URLs."""
    doc = yaml.safe_load(compose_file.read_text())
    return {k: str(v) for k, v in doc["x-tickwire-env"].items()}


def services(compose_file: Path = COMPOSE_FILE) -> list[str]:
    return list(yaml.safe_load(compose_file.read_text())["services"])


class Stack:
    def __init__(self, engine: Engine, compose_file: Path = COMPOSE_FILE) -> None:
        self.engine = engine
        self.compose_file = compose_file

    def compose(self, *args: str, capture: bool = False, check: bool = True) -> str:
        argv = ["docker-compose", "--ansi", "never", "-p", PROJECT, "-f", str(self.compose_file), *args]
        return self.engine.run(argv, capture=capture, check=check)

    def containers(self) -> list[Container]:
        ids = self.compose("ps", "-a", "-q", capture=True).split()
        if not ids:
            return []
        raw = json.loads(self.engine.run(["docker", "inspect", *ids], capture=True))
        out = []
        for c in raw:
            st: dict[str, Any] = c["State"]
            out.append(
                Container(
                    service=c["Config"]["Labels"].get("com.docker.compose.service", "?"),
                    name=c["Name"].lstrip("/"),
                    state=st["Status"],
                    health=(st.get("Health") or {}).get("Status", "none"),
                    exit_code=int(st.get("ExitCode", 0)),
                )
            )
        return sorted(out, key=lambda c: c.service)

    def healthy(self) -> tuple[bool, list[str]]:
        """Whether every service is up (one-shots: exited 0; the rest: running and healthy if checked)."""
        by_service = {c.service: c for c in self.containers()}
        waiting = []
        for svc in services(self.compose_file):
            c = by_service.get(svc)
            if c is None:
                waiting.append(f"{svc}: no container")
            elif svc in ONE_SHOT:
                if c.state != "exited" or c.exit_code != 0:
                    waiting.append(f"{svc}: {c.state} (exit {c.exit_code})")
            elif c.state != "running" or c.health not in ("healthy", "none"):
                waiting.append(f"{svc}: {c.state}/{c.health}")
        return not waiting, waiting

    def wait_healthy(self, timeout: float) -> float:
        t0 = time.monotonic()
        waiting: list[str] = []
        while time.monotonic() - t0 < timeout:
            ok, waiting = self.healthy()
            if ok:
                return time.monotonic() - t0
            failed = [w for w in waiting if "exited" in w and "(exit 0)" not in w]
            if any(w.startswith(tuple(ONE_SHOT)) for w in failed):
                break
            time.sleep(2)
        raise InfraError(f"stack not healthy after {time.monotonic() - t0:.0f}s: {'; '.join(waiting)}")

    def up(self, timeout: float = 300.0) -> tuple[bool, float]:
        """Engine (started if needed) + images present + compose up; returns (engine started, seconds)."""
        t0 = time.monotonic()
        started = self.engine.start()
        if started:
            self.engine.marker.write_text("make deploy-up\n")
        missing = [
            t
            for t in IMAGE_TAGS.values()
            if self.engine.run(["docker", "image", "inspect", t], check=False, capture=True).startswith("[]")
        ]
        if missing:
            raise InfraError(f"images missing: {', '.join(missing)}; build them with `make images`")
        # docker-compose 1.x gives up on a dependency that is (still) unhealthy, e.g. a JVM slow to start
        # on a loaded machine; `up` is idempotent, so retry until the deadline.
        deadline = t0 + timeout
        while True:
            try:
                self.compose("up", "-d", "--no-build", capture=True)
                break
            except InfraError as e:
                if time.monotonic() > deadline:
                    raise
                log.warning("compose up incomplete, retrying %s", kv(error=str(e).splitlines()[-1][:200]))
                time.sleep(5)
        self.wait_healthy(max(30.0, deadline - time.monotonic()))
        return started, time.monotonic() - t0

    def down(self) -> bool:
        """Remove the stack (containers, volumes); stop the engine when deploy-up started it."""
        if self.engine.socket_path() is not None:
            self.compose("down", "-v", "--remove-orphans", "-t", "20")
        if self.engine.marker.exists():
            return self.engine.stop()
        return False


def _lag(bootstrap: str, group: str, tps: list[Any]) -> int:
    """End offset (read_uncommitted: what kafka-consumer-groups shows) minus committed, summed."""
    from confluent_kafka import Consumer

    c = Consumer(
        client_conf(bootstrap)
        | {
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
        }
    )
    try:
        return committed_lag(c, tps)
    finally:
        c.close()


def _by_topic(tps: list[Any]) -> str:
    parts: dict[str, list[int]] = {}
    for tp in tps:
        parts.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(p)))}]" for t, p in sorted(parts.items()))


def group_report(bootstrap: str, timeout: float = 10.0) -> list[str]:
    """One block per consumer group: state, lag over its committed partitions, members with their
    assigned partitions (``topic[0,1]``)."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_conf(bootstrap))
    groups = sorted(g.group_id for g in admin.list_consumer_groups(request_timeout=timeout).result().valid)
    if not groups:
        return ["no consumer groups yet"]
    lines = []
    described = admin.describe_consumer_groups(groups, request_timeout=timeout)
    for gid in groups:
        desc = described[gid].result()
        req = [ConsumerGroupTopicPartitions(gid)]
        committed = admin.list_consumer_group_offsets(req, request_timeout=timeout)[gid].result()
        tps = list(committed.topic_partitions or [])
        lag = _lag(bootstrap, gid, tps) if tps else None
        state, n = desc.state.name.lower(), len(desc.members)
        lines.append(f"group {gid:<28} state={state:<12} members={n} lag={lag}")
        for m in sorted(desc.members, key=lambda m: m.client_id):
            assigned = list(m.assignment.topic_partitions) if m.assignment else []
            lines.append(f"  member {m.client_id} ({m.host}): {_by_topic(assigned) or '-'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tickwire.infra.deploy", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for health (up)")
    args = parser.parse_args(argv)
    logs.setup()
    stack = Stack(Engine.for_config(load_config()))
    try:
        if args.action == "up":
            started, secs = stack.up(args.timeout)
            print(f"stack healthy in {secs:.1f}s" + (" (docker engine started for it)" if started else ""))
            args.action = "status"
        if args.action == "down":
            stopped = stack.down()
            print("stack removed" + ("; docker engine stopped" if stopped else ""))
            return 0
        print(stack.engine.describe())
        if stack.engine.socket_path() is None:
            return 1
        for c in stack.containers():
            extra = f" exit={c.exit_code}" if c.state == "exited" else ""
            print(f"{c.service:<16} {c.state:<10} health={c.health:<10}{extra}")
        ok, waiting = stack.healthy()
        try:
            for line in group_report(compose_env()["KAFKA_BOOTSTRAP_SERVERS"]):
                print(line)
        except Exception as e:  # the cluster may be down: the container table above says why
            print(f"consumer groups unavailable: {type(e).__name__}: {e}")
        log.debug("status %s", kv(healthy=ok, waiting=len(waiting)))
        return 0 if ok else 1
    except InfraError as e:
        print(f"deploy {args.action}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
