"""Per-session persistent state: next inbound/outbound MsgSeqNum and the MDReqID of every subscription.

One small JSON file per session, replaced atomically (write to a temporary file, then ``os.replace``), so
a restart continues the FIX session where it stopped instead of resetting it, and resubscribes with the
original MDReqIDs. The file is saved before outbound bytes go on the wire: the peer never sees a sequence
number the store does not know.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(slots=True)
class SessionSeqs:
    next_out: int = 1  # MsgSeqNum of the next message we send
    next_in: int = 1  # MsgSeqNum we expect next from the peer
    md_req_ids: dict[str, str] = field(default_factory=dict)  # symbol -> MDReqID (stable across restarts)
    id_counter: int = 0

    def reset(self) -> None:
        self.next_out = 1
        self.next_in = 1


class SeqStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: str | None = None

    def load(self) -> SessionSeqs:
        try:
            d = json.loads(self.path.read_text())
        except FileNotFoundError:
            return SessionSeqs()
        seqs = SessionSeqs(
            next_out=int(d["next_out"]),
            next_in=int(d["next_in"]),
            md_req_ids={str(k): str(v) for k, v in d.get("md_req_ids", {}).items()},
            id_counter=int(d.get("id_counter", 0)),
        )
        if seqs.next_out < 1 or seqs.next_in < 1:
            raise ValueError(f"{self.path}: sequence numbers must be >= 1")
        self._last = self._dump(seqs)
        return seqs

    @staticmethod
    def _dump(seqs: SessionSeqs) -> str:
        return json.dumps(
            {
                "next_out": seqs.next_out,
                "next_in": seqs.next_in,
                "md_req_ids": seqs.md_req_ids,
                "id_counter": seqs.id_counter,
            },
            sort_keys=True,
        )

    def save(self, seqs: SessionSeqs) -> bool:
        """Write when anything changed; returns True when the file was written."""
        text = self._dump(seqs)
        if text == self._last:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, self.path)
        self._last = text
        return True
