"""Vendors, one folder each (settings, adapter, wire types, parser, simulator) and the registry of them.

Every subpackage defines ``SPEC`` (``tickwire.contract.vendor.VendorSpec``): discovering the folders is
the registry, so adding a vendor is adding a folder. Only ``SPEC`` is imported here; a vendor's modules
load when a process asks for them.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from tickwire.contract.parser import VendorParser
from tickwire.contract.vendor import VendorSpec


class UnknownVendorError(KeyError):
    def __str__(self) -> str:
        return f"unknown vendor {self.args[0]!r}; valid vendors: {', '.join(names())}"


@cache
def specs() -> dict[str, VendorSpec]:
    out: dict[str, VendorSpec] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        spec = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SPEC", None)
        if isinstance(spec, VendorSpec):
            out[spec.name] = spec
    return out


def names() -> list[str]:
    return sorted(specs())


def spec(name: str) -> VendorSpec:
    try:
        return specs()[name]
    except KeyError:
        raise UnknownVendorError(name) from None


def load(ref: str) -> Any:
    """``"module:attr"`` -> the attribute; ``"module"`` -> the module."""
    mod, _, attr = ref.partition(":")
    m = importlib.import_module(mod)
    return getattr(m, attr) if attr else m


@cache
def get_parser(name: str) -> VendorParser:
    parser: VendorParser = load(spec(name).parser)
    return parser


def with_(field_name: str) -> list[VendorSpec]:
    """The specs whose ``field_name`` is set (e.g. ``"ingest"``, ``"simulator"``), by name."""
    return [s for _, s in sorted(specs().items()) if getattr(s, field_name)]
