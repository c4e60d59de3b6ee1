"""The runner's default link: one WebSocket connection (websocket-client)."""

from __future__ import annotations

import time

import websocket

from tickwire.contract.adapter import Frame, Received


class WsLink:
    def __init__(self, url: str, timeout: float, headers: list[str]) -> None:
        self.ws = websocket.create_connection(
            url,
            timeout=timeout,
            header=headers,
            skip_utf8_validation=True,
            enable_multithread=True,
        )

    def recv(self, timeout: float) -> list[Received] | None:
        self.ws.settimeout(timeout)
        try:
            opcode, frame = self.ws.recv_data_frame(True)
        except websocket.WebSocketTimeoutException:
            return None
        ts_recv = time.time_ns()  # first thing after the read returns
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionError(f"server closed: {bytes(frame.data[2:])!r}")
        if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return []  # ping/pong: liveness only
        data: bytes = frame.data if isinstance(frame.data, bytes) else bytes(frame.data)
        return [Received(data, ts_recv)]

    def send(self, data: Frame) -> None:
        opcode = websocket.ABNF.OPCODE_BINARY if isinstance(data, bytes) else websocket.ABNF.OPCODE_TEXT
        self.ws.send(data, opcode)

    def ping(self) -> None:
        self.ws.ping()

    def close(self) -> list[Received]:
        self.ws.close(timeout=1)
        return []

    def abort(self) -> None:
        self.ws.abort()  # type: ignore[no-untyped-call]
