"""The collections one server serves: one `DocQA` per collection, all sharing the models of the first.

The UI and the HTTP API both hold one `Collections`; a collection is opened on first use, under one
lock (Chroma's embedded client is not safe to create from two threads at once: two tabs loading, an
upload during page load).
"""

from __future__ import annotations

import threading

from rag.serve.api import DocQA


class Collections:
    """One `DocQA` per collection of a store, opened on first use with the same settings and models."""

    def __init__(self, base: DocQA):
        self.base = base
        self._open: dict[str, DocQA] = {base.settings.collection: base}
        self._lock = threading.Lock()

    @property
    def default(self) -> str:
        return self.base.settings.collection

    def get(self, name: str | None) -> DocQA:
        """The DocQA of `name` (blank: the default collection); a bad name or a model mismatch fails here."""
        name = (name or "").strip() or self.default
        with self._lock:
            qa = self._open.get(name)
            if qa is None:
                self.base.embeddings  # noqa: B018 -- load once, shared by every collection
                qa = self.base.with_collection(name)
            qa.store  # noqa: B018 -- opens the collection
            self._open[name] = qa
            return qa

    def names(self) -> list[str]:
        """The collections in the store, and any opened in this process."""
        with self._lock:
            opened = {n for n, q in self._open.items() if "store" in q.__dict__}
        return sorted(set(self.base.collections()) | opened)

    def opened(self) -> list[DocQA]:
        with self._lock:
            return list(self._open.values())
