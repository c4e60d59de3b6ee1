"""`tickwire run`: the whole pipeline on embedded defaults, under a supervisor, with a live view.

Order: local servers -> topics -> simulators -> producers -> normalizer -> bridges. Ctrl-C (or the end
of --duration) stops everything in reverse order. A vendor whose real credentials are in the
environment (e.g. ALPACA_API_KEY/ALPACA_SECRET_KEY) connects to the real endpoint instead of its
simulator.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tickwire import logs, vendors
from tickwire.bridges.config import CANONICAL_TOPICS as BRIDGED
from tickwire.contract.vendor import RunContext
from tickwire.infra.process import free_port
from tickwire.monitor import (
    LatencySampler,
    RateTracker,
    Samples,
    group_lag,
    maximum,
    scrape,
    topic_end_offsets,
    total,
)
from tickwire.resources import REPO_ROOT
from tickwire.supervisor import ComponentSpec, Supervisor

log = logging.getLogger(__name__)

REPO = REPO_ROOT
CANONICAL = [
    f"{a}_{k}"
    for a in ("stock", "crypto", "future", "option", "fx")
    for k in ("trades_realtime", "quotes_realtime", "bars_staging", "book_realtime")
]
RAW = [s.raw_topic for s in vendors.specs().values()]
GROUPS = {
    "normalizer": ("tickwire-normalizer", RAW),
    # The bridges' lag over the topics they consume (not every canonical topic has a legacy shape).
    "bridge-redis": ("tickwire-bridge-redis", list(BRIDGED)),
    "bridge-nats": ("tickwire-bridge-nats", list(BRIDGED)),
}


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h)?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 60s, 5m, 1h)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def build_specs(rate: float, with_dbn: bool) -> list[ComponentSpec]:
    """Every vendor's components (its registry row), then the normalizer and the bridges."""
    tw = [sys.executable, "-m", "tickwire.cli"]
    ctx = RunContext(rate=rate, free_port=free_port, with_replay=with_dbn)
    specs: list[ComponentSpec] = []
    for vendor in vendors.with_("run"):
        for c in vendors.load(vendor.run or "")(ctx):
            port = free_port() if c.wants_metrics_port else None
            argv = [*tw, *c.argv, *(["--metrics-port", str(port)] if port else [])]
            specs.append(ComponentSpec(c.name, argv, c.role, metrics_port=port, one_shot=c.one_shot))
    for name, argv, role in (
        # A stable slot id: a restarted normalizer aborts its dead predecessor's transaction at once.
        ("normalizer", ["normalize", "--instance-id", "0"], "normalizer"),
        ("bridge-redis", ["bridge", "redis"], "bridge"),
        ("bridge-nats", ["bridge", "nats"], "bridge"),
    ):
        port = free_port()
        specs.append(ComponentSpec(name, [*tw, *argv, "--metrics-port", str(port)], role, metrics_port=port))
    return specs


def _prepare(skip_infra: bool) -> str:
    tw = [sys.executable, "-m", "tickwire.cli"]
    if not skip_infra:
        subprocess.run([*tw, "infra", "up"], check=True)
        from tickwire.infra.config import load_config
        from tickwire.infra.servers import env_exports

        for k, v in env_exports(load_config()).items():  # what `infra env` prints, without parsing it
            os.environ.setdefault(k, v)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    subprocess.run([*tw, "topics", "apply", "--bootstrap", bootstrap], check=True)
    return bootstrap


class View:
    """Collects the numbers the live view and the final summary show."""

    def __init__(self, sup: Supervisor, bootstrap: str) -> None:
        self.sup = sup
        self.bootstrap = bootstrap
        self.rates = RateTracker()
        self.latency = LatencySampler(bootstrap, CANONICAL)
        self.events: list[str] = []
        self.topic_rates: dict[str, float] = {}
        self.topic_totals: dict[str, int] = {}
        self.lags: dict[str, int | None] = {}
        self._last_kafka = 0.0

    def refresh_kafka(self) -> None:
        if time.monotonic() - self._last_kafka < 2:
            return
        self._last_kafka = time.monotonic()
        topics = (
            RAW
            + CANONICAL
            + [f"{t}.dlq" for t in RAW]
            + ["tickwire.gaps", "bridge.redis.dlq", "bridge.nats.dlq"]
        )
        try:
            ends = topic_end_offsets(self.bootstrap, topics)
            for t, n in ends.items():
                self.topic_totals[t] = n
                r = self.rates.observe(f"topic:{t}", n)
                if r is not None:
                    self.topic_rates[t] = r
            for comp, (group, tps) in GROUPS.items():
                self.lags[comp] = group_lag(self.bootstrap, group, tps)
        except Exception as exc:
            self.events.append(f"kafka stats unavailable: {exc}")

    def component_rows(self) -> list[tuple[str, str, str, str, str, str, str, str]]:
        rows = []
        for st in self.sup.states:
            s = scrape(st.spec.metrics_port) if st.spec.metrics_port else None
            recv = (
                total(s, "tickwire_ingest_messages_received_total")
                or total(s, "tickwire_normalizer_raw_records_total")
                or total(s, "tickwire_bridge_records_in_total")
            )
            rate = self.rates.observe(f"comp:{st.spec.name}", recv)
            age = maximum(s, "tickwire_ingest_last_message_age_seconds")
            recon = total(s, "tickwire_ingest_reconnects_total")
            subs = total(s, "tickwire_ingest_subscribed_symbols")
            recentres = total(s, "tickwire_strikes_recentres_total")  # a producer that moves its set
            subs_text = "-" if subs is None else f"{subs:.0f}"
            if recentres is not None:
                subs_text += f" ({recentres:.0f} re-centres)"
            subs_text += _session_text(s) + _rest_text(s)
            rows.append(
                (
                    st.spec.name,
                    st.state,
                    str(st.proc.pid if st.proc else "-"),
                    f"{rate:,.0f}" if rate is not None else "-",
                    f"{age:.1f}s" if age is not None else "-",
                    f"{recon:.0f}" if recon is not None else "-",
                    subs_text,
                    str(st.restarts),
                )
            )
        return rows

    def render(self) -> object:
        from rich.console import Group
        from rich.table import Table

        comp = Table(title="components", expand=True)
        for c in ("component", "state", "pid", "msgs/s", "last msg", "reconnects", "subscribed", "restarts"):
            comp.add_column(c)
        for row in self.component_rows():
            style = "" if row[1] in ("running", "done") else "bold red"
            comp.add_row(*row, style=style)
        topics = Table(title="topics", expand=True)
        for c in ("topic", "records/s", "total"):
            topics.add_column(c)
        for t in sorted(self.topic_totals):
            if self.topic_totals[t]:
                topics.add_row(t, f"{self.topic_rates.get(t, 0):,.0f}", f"{self.topic_totals[t]:,}")
        lat = self.latency.percentiles()
        info = Table(title="pipeline", expand=True)
        info.add_column("what")
        info.add_column("value")
        for comp_name, lag in self.lags.items():
            info.add_row(f"lag {comp_name}", "-" if lag is None else f"{lag:,}")
        dlq = sum(n for t, n in self.topic_totals.items() if t.endswith(".dlq"))
        info.add_row("DLQ records", f"{dlq:,}")
        info.add_row("gap records", f"{self.topic_totals.get('tickwire.gaps', 0):,}")
        info.add_row(
            "e2e latency ms (canonical append - ts_recv)",
            " ".join(f"{k}={v:.1f}" for k, v in lat.items()) or "-",
        )
        for e in self.events[-5:]:
            info.add_row("event", e)
        return Group(info, comp, topics)  # the summary first: it must fit on any terminal


def _rest_text(s: Samples | None) -> str:
    """A REST poller's limiter and breakers (tokens left, calls in the last 60 s, suspended feeds)."""
    tokens = total(s, "tickwire_ingest_rest_tokens_left")
    if tokens is None:
        return ""
    per_min = total(s, "tickwire_ingest_rest_calls_per_minute") or 0.0
    suspended = sorted(
        labels.get("feed", "?") for labels, v in (s or {}).get("tickwire_ingest_rest_feed_suspended", []) if v
    )
    return f" | tokens {tokens:.0f} calls/min {per_min:.0f} suspended {','.join(suspended) or '-'}"


def _session_text(s: Samples | None) -> str:
    """A session-layer producer's state (logged on, seq in/out, last heartbeat, rejects), else ''."""
    if total(s, "tickwire_ingest_session", field="logged_on") is None:
        return ""
    f = {k: total(s, "tickwire_ingest_session", field=k) or 0.0 for k in ("seq_in", "seq_out", "rejects")}
    up = "logged on" if total(s, "tickwire_ingest_session", field="logged_on") else "logged off"
    hb = total(s, "tickwire_ingest_session", field="heartbeat_age_s")
    return (
        f" | {up} in {f['seq_in']:.0f} out {f['seq_out']:.0f}"
        f" hb {'-' if hb is None or hb < 0 else f'{hb:.0f}s'} rejects {f['rejects']:.0f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tickwire run", description=__doc__)
    p.add_argument("--duration", type=parse_duration, help="run this long, then stop (e.g. 60s); headless")
    p.add_argument("--headless", action="store_true", help="no live view (implied by --duration)")
    p.add_argument("--rate", type=float, default=200.0, help="events/s per simulator (generate mode)")
    p.add_argument("--no-infra", action="store_true", help="use servers named by the environment")
    p.add_argument("--no-replay", "--no-dbn", action="store_true", help="skip the vendors' file replays")
    p.add_argument("--log-dir", type=Path, default=REPO / ".local" / "run", help="component logs")
    args = p.parse_args(argv)
    logs.setup()
    bootstrap = _prepare(args.no_infra)
    sup = Supervisor(build_specs(args.rate, not args.no_replay), args.log_dir)
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
        signal.signal(sig, _stop)
    sup.start_all(settle=0.3)
    view = View(sup, bootstrap)
    view.latency.start()
    deadline = time.monotonic() + args.duration if args.duration else None
    headless = args.headless or args.duration is not None or not sys.stdout.isatty()
    try:
        if headless:
            next_report = time.monotonic() + 10
            while not stop and (deadline is None or time.monotonic() < deadline):
                view.events += sup.check()
                view.refresh_kafka()
                if time.monotonic() >= next_report:
                    next_report += 10
                    log.info("status %s", " ".join(f"{r[0]}={r[1]}" for r in view.component_rows()))
                time.sleep(0.5)
        else:
            from rich.live import Live

            # The alternate screen: the view is redrawn in place whatever the terminal's height.
            with Live(view.render(), refresh_per_second=1, screen=True) as live:  # type: ignore[arg-type]
                while not stop and (deadline is None or time.monotonic() < deadline):
                    view.events += sup.check()
                    view.refresh_kafka()
                    live.update(view.render())  # type: ignore[arg-type]
                    time.sleep(1)
    finally:
        view.refresh_kafka()
        rows = view.component_rows()
        sup.stop_all()
        view.latency.stop()
    return _summary(sup, view, rows)


def _summary(sup: Supervisor, view: View, rows: Sequence[tuple[str, ...]]) -> int:
    from rich.console import Console

    con = Console(stderr=False)
    con.print(view.render())
    died = [st for st in sup.states if st.deaths]
    for st in died:
        con.print(f"[bold red]{st.spec.name} died {st.deaths}x (last exit {st.last_exit})[/]; log tail:")
        con.print(sup.tail(st.spec.name))
    con.print(
        f"summary: components={len(sup.states)} died={len(died)} "
        f"canonical={sum(view.topic_totals.get(t, 0) for t in CANONICAL):,}"
    )
    return 1 if died else 0


if __name__ == "__main__":
    sys.exit(main())
