"""One registry maps vendor ids to parsers."""

from __future__ import annotations

import importlib

from normalize.parsers.base import VendorParser

# vendor id -> module under normalize.parsers exposing PARSER
_MODULES: dict[str, str] = {
    "alpaca": "normalize.parsers.alpaca",
    "binance": "normalize.parsers.binance",
    "coinbase": "normalize.parsers.coinbase",
    "databento": "normalize.parsers.databento",
}

_cache: dict[str, VendorParser] = {}


class UnknownVendorError(KeyError):
    def __str__(self) -> str:
        return f"unknown vendor {self.args[0]!r}; valid vendors: {', '.join(sorted(_MODULES))}"


def vendors() -> list[str]:
    return sorted(_MODULES)


def get_parser(source: str) -> VendorParser:
    if source not in _MODULES:
        raise UnknownVendorError(source)
    if source not in _cache:
        parser: VendorParser = importlib.import_module(_MODULES[source]).PARSER
        _cache[source] = parser
    return _cache[source]
