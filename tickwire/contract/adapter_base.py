"""What most vendor adapters (``tickwire.contract.adapter.VendorAdapter``) do the same way.

`AdapterBase` holds the protocol's common answers: one fixed URL (``self._url``) whatever the
subscriptions, no extra HTTP headers, no REST side fetches, no handshake; subscribe and unsubscribe frames
from one builder, `action_frames(verb, subs)`, that differs only by the verb. An adapter overrides what
its vendor does otherwise. `await_frame` is the handshake's read loop; `link_address` the host and port of
an adapter that brings its own TCP link; `settings_overrides` and `add_rest_url_argument` the
``tickwire ingest <vendor>`` wiring.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlparse

from tickwire.contract.adapter import Conn, Frame, Subs


class AdapterBase:
    _url: str
    subscribe_verb = "subscribe"
    unsubscribe_verb = "unsubscribe"

    def url(self, subs: Subs) -> str:
        return self._url

    def http_headers(self) -> list[str]:
        return []

    def handshake(self, conn: Conn) -> None:
        """Nothing to authenticate (or the link authenticates itself before it is handed over)."""

    def rest_requests(self, added: Subs, reconnected: bool) -> list[tuple[str, str, str | None]]:
        return []

    def subscribe_frames(self, subs: Subs) -> list[Frame]:
        return self.action_frames(self.subscribe_verb, subs)

    def unsubscribe_frames(self, subs: Subs) -> list[Frame]:
        return self.action_frames(self.unsubscribe_verb, subs)

    def action_frames(self, verb: str, subs: Subs) -> list[Frame]:
        """The frames that ask the vendor to ``verb`` (subscribe / unsubscribe) ``subs``."""
        raise NotImplementedError


def await_frame(
    conn: Conn, timeout: float, check: Callable[[bytes], object], found: Callable[[bytes], bool]
) -> None:
    """Read frames until one is ``found``; each goes through ``check`` first, so a vendor error frame raises
    its error instead of being waited past. ``timeout`` applies to each read."""
    while True:
        frame = conn.recv(timeout)
        check(frame)
        if found(frame):
            return


def link_address(url: str, scheme: str, what: str) -> tuple[str, int]:
    """``scheme://HOST:PORT`` -> (host, port); anything else is a ValueError naming the form ``what``
    needs."""
    u = urlparse(url)
    if u.scheme != scheme or not u.hostname or not u.port:
        raise ValueError(f"{what} URL must be {scheme}://HOST:PORT, got {url!r}")
    return u.hostname, u.port


def settings_overrides(
    args: argparse.Namespace, fields: Mapping[str, str], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The runner's settings ``overrides``, then the vendor's own command line options that were given
    (``fields``: option dest -> settings field); an option left out (None) keeps the settings' value."""
    given = {f: getattr(args, a) for a, f in fields.items() if getattr(args, a, None) is not None}
    return {**overrides, **given}


def add_rest_url_argument(p: argparse.ArgumentParser) -> None:
    """``--rest-url``: the REST base URL of an adapter's side fetches (``rest_requests``)."""
    p.add_argument("--rest-url", help="REST base URL for side fetches")
