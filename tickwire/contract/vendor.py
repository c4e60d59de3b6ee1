"""One registry row per vendor: the vendor's facts as data, and where its parts live.

Each vendor folder ``tickwire/vendors/<name>/`` defines ``SPEC = VendorSpec(...)`` in its ``__init__.py``
(cheap: names of modules, imported only when a process needs them). Shared code asks the registry
(``tickwire.vendors``) instead of naming vendors: the CLI's ``ingest``/``simulate``/``parse``/``replay``
subcommands, the normalizer's parser lookup and bar/gap rules, and ``make run``'s component list.

Module contracts, by field:
- ``parser``: ``"module:NAME"`` of a ``tickwire.contract.parser.VendorParser``.
- ``ingest``: module with ``add_arguments(parser)`` and
  ``build(args, overrides) -> (IngestSettings, VendorAdapter, Subs)`` for ``tickwire ingest <name>``.
- ``simulator``: module with ``add_arguments(parser)`` and ``build(args, common) -> SimServer`` for
  ``tickwire simulate <name>``.
- ``replay``: ``(target, module)``: ``tickwire replay <target>`` runs ``module.main(argv)``.
- ``run``: ``"module:function"``; ``function(ctx) -> list[RunComponent]`` for ``tickwire run``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RunComponent:
    """One process of ``tickwire run``; ``argv`` follows ``tickwire`` (``["simulate", "alpaca", ...]``)."""

    name: str
    argv: list[str]
    role: str  # simulator | producer
    one_shot: bool = False
    wants_metrics_port: bool = False  # the supervisor appends ``--metrics-port N`` and scrapes it


@dataclass(frozen=True, slots=True)
class RunContext:
    """What ``tickwire run`` hands a vendor's ``run`` function."""

    rate: float  # generated events per second per simulator
    free_port: Callable[[], int]
    with_replay: bool = True


@dataclass(frozen=True, slots=True)
class VendorSpec:
    name: str  # source id: raw topic ``<name>.raw``, envelope ``tw-source``
    summary: str
    parser: str
    ingest: str | None = None
    simulator: str | None = None
    replay: tuple[str, str] | None = None
    run: str | None = None
    # Trades of this vendor are aggregated into 1-minute bars (the vendor has no usable bars of its own).
    bar_source: bool = False
    # Raw records are keyed by stream, so one partition holds every seq of a stream and a forward seq
    # jump is a real gap; symbol-keyed raw topics scatter a stream's seqs over partitions.
    seq_gap: bool = False
    # Legacy Redis control plane (seed 000): subscription type ("stock", "crypto") -> the
    # control.subscriptions keys ("vendor:stream_type") a legacy subscribe event of that type drives.
    legacy_control: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Envelope content type of its raw payloads when a file does not say (``tickwire parse``).
    content_type: str = "json"
    # control.subscriptions vendor keys this vendor's producers follow (e.g. a crypto feed of its own).
    control_vendors: tuple[str, ...] = field(default=())
    # Its 5 s vendor bars are rolled up into 1-minute bars by the normalizer (``normalize/rollup.py``).
    bar_rollup: bool = False
    # Its BookUpdates are per-venue books (venue = exchange): the normalizer aggregates them into NBBO
    # quotes (``normalize/nbbo.py``), the Redis bridge keys them per venue and its ticker follows the NBBO.
    venue_books: bool = False
    # Legacy Redis status keys the Redis bridge derives from this vendor's producer Heartbeats on
    # ``tickwire.health`` (``bridges/redis_status.py``): (key, shape), shape ``connected`` ("1"/"0"),
    # ``metrics`` (JSON of the heartbeat's stats) or ``heartbeat`` (JSON: time, status, instance).
    status_keys: tuple[tuple[str, str], ...] = ()

    @property
    def raw_topic(self) -> str:
        return f"{self.name}.raw"


def folder_spec(
    package: str,
    doc: str | None,
    *,
    ingest: bool = True,
    simulator: bool = True,
    run: bool = True,
    replay: str | None = None,
    **facts: Any,
) -> VendorSpec:
    """The SPEC of a vendor folder laid out by convention: ``parser.py`` (``PARSER``), ``adapter.py``
    (ingest), ``simulator.py``, ``run_components`` in the package, ``replay.py`` for ``replay=TARGET``.
    ``facts`` are the other ``VendorSpec`` fields; ``control_vendors`` defaults to the vendor's own name
    when it has a producer."""
    name = package.rpartition(".")[2]
    if ingest:
        facts.setdefault("control_vendors", (name,))
    return VendorSpec(
        name=name,
        summary=doc or "",
        parser=f"{package}.parser:PARSER",
        ingest=f"{package}.adapter" if ingest else None,
        simulator=f"{package}.simulator" if simulator else None,
        replay=(replay, f"{package}.replay") if replay else None,
        run=f"{package}:run_components" if run else None,
        **facts,
    )


def simulated_feed(
    ctx: RunContext,
    vendor: str,
    *,
    ws_path: str = "",
    rest: bool = False,
    name: str | None = None,
    sim_args: tuple[str, ...] = (),
    ingest_args: tuple[str, ...] = (),
) -> list[RunComponent]:
    """The usual pair for ``tickwire run``: a vendor simulator on a free port and a producer pointed at it."""
    port = ctx.free_port()
    base = f"127.0.0.1:{port}"
    suffix = f"-{name}" if name else ""
    sim = ["simulate", vendor, "--port", str(port), "--rate", str(ctx.rate), *sim_args]
    ingest = ["ingest", vendor, "--url", f"ws://{base}{ws_path}", *ingest_args]
    if rest:
        ingest += ["--rest-url", f"http://{base}"]
    return [
        RunComponent(f"sim-{vendor}{suffix}", sim, "simulator"),
        RunComponent(f"ingest-{vendor}{suffix}", ingest, "producer", wants_metrics_port=True),
    ]
