"""One writer per collection on a shared Chroma server: a lease kept in the collection's metadata.

Two homes (two machines) pointing at one `chroma run` server do not share the
ingest file lock, so the rule "one writer at a time" is enforced on the server:
the writer records `rag:writer` (a random token plus who it is) and
`rag:writer_until` (expiry) in the collection metadata, renews it before every
batch, and clears it when done. Chroma offers no compare-and-swap, so taking a
lease is write-then-confirm: write our token, wait `settle` seconds, read it
back; of two writers racing, the later write wins and the other one backs off.
A writer whose lease was taken over (it stalled past the expiry) is refused at
its next batch with `IngestLockedError` instead of writing beside the new one.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from rag.core.errors import IngestLockedError

WRITER_KEY, UNTIL_KEY = "rag:writer", "rag:writer_until"


class ServerLease:
    """The single-writer lease of one collection on a Chroma server."""

    def __init__(self, client, name: str, *, ttl: float = 120.0, settle: float = 0.5):
        self.client = client
        self.name = name
        self.ttl = ttl
        self.settle = settle
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    def _collection(self):
        return self.client.get_collection(self.name, embedding_function=None)

    def _holder(self) -> tuple[str, float]:
        meta = self._collection().metadata or {}
        return str(meta.get(WRITER_KEY, "")), float(meta.get(UNTIL_KEY, 0) or 0)

    def _write(self, token: str, until: float) -> None:
        coll = self._collection()
        meta = dict(coll.metadata or {})
        meta[WRITER_KEY], meta[UNTIL_KEY] = token, until
        coll.modify(metadata=meta)

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            holder, until = self._holder()
            if not holder or holder == self.token or until < time.time():
                self._write(self.token, time.time() + self.ttl)
                time.sleep(self.settle)
                if self._holder()[0] == self.token:
                    return
                continue  # another writer took it at the same moment
            if time.monotonic() >= deadline:
                raise IngestLockedError(
                    f"collection {self.name!r} on the Chroma server is being written by {holder.rsplit(':', 1)[0]} "
                    f"(lease until {time.strftime('%H:%M:%S', time.localtime(until))}): one writer at a time per "
                    "server collection; wait for it to finish and run the command again")
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def renew(self) -> None:
        """Extend the lease before a write; refuse if another writer has taken it over."""
        holder, _ = self._holder()
        if holder != self.token:
            raise IngestLockedError(
                f"lost the writer lease of collection {self.name!r} to {holder.rsplit(':', 1)[0] or 'nobody'} "
                "(this ingest stalled past its expiry): nothing more was written; run the command again")
        self._write(self.token, time.time() + self.ttl)

    def release(self) -> None:
        try:
            if self._holder()[0] == self.token:
                self._write("", 0.0)
        except Exception:  # the server went away: the lease expires by itself
            pass
