"""`tickwire infra up|down|status|env [--only kafka|redis|nats|registry] [--brokers N]`: local servers."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from tickwire import logs
from tickwire.infra.config import ENV_VARS, InfraConfig, load_config
from tickwire.infra.process import InfraError, ServerStatus, tail
from tickwire.infra.servers import SERVERS, Server, env_exports, servers

log = logging.getLogger(__name__)


def up(cfg: InfraConfig, only: list[str] | None = None) -> dict[str, tuple[str, float]]:
    """Start (or reuse) servers concurrently; returns name -> (started|reused|external, seconds).

    Raises InfraError naming every server that failed, each with the tail of its log.
    """
    result: dict[str, tuple[str, float]] = {}
    errors: dict[str, str] = {}

    def run(s: Server) -> None:
        try:
            result[s.name] = s.up()
        except InfraError as e:
            errors[s.name] = str(e)
        except Exception as e:  # any failure must be reported, not lost in a thread
            errors[s.name] = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=run, args=(s,), name=f"infra-{s.name}") for s in servers(cfg, only)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise InfraError("\n".join(f"{name}: {msg}" for name, msg in errors.items()))
    return result


def down(cfg: InfraConfig, only: list[str] | None = None) -> dict[str, bool]:
    """Stop servers concurrently (the nodes of a cluster must go together: the last one standing
    cannot shut down cleanly once it has lost the quorum)."""
    targets = servers(cfg, only)
    result: dict[str, bool] = {}

    def run(s: Server) -> None:
        result[s.name] = s.down()

    threads = [threading.Thread(target=run, args=(s,), name=f"infra-down-{s.name}") for s in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {s.name: result.get(s.name, False) for s in targets}


def status(cfg: InfraConfig, only: list[str] | None = None) -> list[ServerStatus]:
    return [s.status() for s in servers(cfg, only)]


def _fmt(st: ServerStatus, extra: str = "") -> str:
    pid = str(st.pid) if st.pid else "-"
    version = st.version or "?"
    return f"{st.name:<8} {st.state:<10} {st.address:<16} pid={pid:<8} version={version:<8} {extra}".rstrip()


def _warn_version(cfg: InfraConfig, only: list[str] | None) -> None:
    if only and "kafka" not in only:
        return
    st = status(cfg, ["kafka"])[0]
    if st.pid and st.version and st.version != cfg.kafka_version:
        print(
            f"note: Kafka {st.version} is running on {st.address} but {cfg.kafka_version} is configured; "
            "`tickwire infra down --only kafka && tickwire infra up` switches (topics must be re-applied)",
            file=sys.stderr,
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tickwire infra",
        description=(
            "Start, stop or inspect the local Kafka (KRaft), Redis, NATS JetStream and Schema Registry "
            "servers."
        ),
        epilog="environment: " + "; ".join(f"{k}: {v}" for k, v in ENV_VARS.items()),
    )
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument(
        "--only", action="append", choices=list(SERVERS), help="limit to a server (repeatable)"
    )
    parser.add_argument(
        "--brokers",
        type=int,
        help="KRaft nodes in the Kafka cluster (default $TICKWIRE_KAFKA_BROKERS or 1); 3 = replication 3, "
        "min.insync.replicas 2; use the same value for up, status, env and down",
    )
    parser.add_argument(
        "--secure",
        action="store_true",
        help="the secured servers instead: Kafka SASL_SSL + ACLs (default port 28092), Redis, NATS",
    )
    args = parser.parse_args(argv)
    logs.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry request otherwise
    try:
        cfg = load_config() if args.brokers is None else load_config(kafka_brokers=args.brokers)
        if args.secure:
            from tickwire.infra.secure import secure_main

            return secure_main(cfg, args.action)
        if args.action == "up":
            t0 = time.monotonic()
            done = up(cfg, args.only)
            for st in status(cfg, args.only):
                action, secs = done[st.name]
                print(_fmt(st, f"{action} in {secs:.1f}s"))
            print(f"ready in {time.monotonic() - t0:.1f}s")
            _warn_version(cfg, args.only)
            for k, v in env_exports(cfg).items():
                print(f"export {k}={v}")
            return 0
        if args.action == "down":
            for name, stopped in down(cfg, args.only).items():
                print(f"{name:<8} {'stopped' if stopped else 'was not running'}")
            return 0
        if args.action == "env":
            for k, v in env_exports(cfg).items():
                print(f"export {k}={v}")
            return 0
        sts = status(cfg, args.only)
        for st in sts:
            print(_fmt(st, f"log={st.log}"))
            if st.state.startswith("stopped (crashed") and st.log is not None:
                print(
                    f"  last lines of {st.log}:\n"
                    + "\n".join("  " + ln for ln in tail(st.log, 10).splitlines())
                )
        return 0 if all(st.state in ("running", "external") for st in sts) else 1
    except (InfraError, ValueError) as e:
        print(f"tickwire infra {args.action}: {e}", file=sys.stderr)
        return 1
