"""The collections one server serves: one `DocQA` per collection, all sharing the models of the first.

The UI and the HTTP API both hold one `Collections`; a collection is opened on first use, under one
lock (Chroma's embedded client is not safe to create from two threads at once: two tabs loading, an
upload during page load). Uploads go through `add_uploads` and `delete_document` here, whichever front
received them, so the same limits apply and a deleted document's stored file goes with it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from rag.core.config import Settings
from rag.core.types import FileResult
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

    # --- uploads: one path for the UI and the HTTP API -------------------------------------------
    def add_uploads(self, name: str | None, files: list[str | Path], *, progress=None) -> list[FileResult]:
        """Store uploaded files under `<home>/uploads` and ingest them into collection `name`.

        The same limits apply however the files came (the UI, `POST /v1/documents`): accepted types, size
        per file (`ui.upload_max_mb`), files per upload (`ui.upload_max_files`), the uploads folder's total
        (`ui.uploads_max_total_mb`), and parsing time in a child process (`ui.parse_timeout_s`). A stored
        file that is not ingested is removed again. `files` keep the user's file names; the caller removes
        them. Returns a result per file: ingested ones first, then those skipped.
        """
        from rag.ingest.loaders import SUPPORTED_SUFFIXES
        from rag.ingest.uploads import remove_upload, save_uploads

        qa = self.get(name)
        settings = qa.settings
        ui = settings.ui
        stored, rejected = save_uploads(files, settings.uploads_dir, allowed=SUPPORTED_SUFFIXES,
                                        max_bytes=upload_limit(settings), max_files=ui.upload_max_files,
                                        max_total_bytes=int(ui.uploads_max_total_mb * 2**20))
        stored, slow = _drop_slow_to_parse(stored, settings)
        rejected += slow
        report = qa.ingest(stored, progress=progress) if stored else None
        ingested = report.files if report else []
        for r in ingested:  # a stored upload that could not be ingested only takes space
            if r.status == "skipped":
                remove_upload(r.path, settings.uploads_dir)
        return [*ingested, *rejected]

    def delete_document(self, name: str | None, source: str) -> tuple[str, int]:
        """Remove a document from collection `name`, and its stored upload unless another collection holds it.

        Returns (the document's source as stored, chunks removed).
        """
        from rag.ingest.uploads import remove_upload

        qa = self.get(name)
        resolved = qa.resolve_source(source)
        removed = qa.delete(resolved)
        if not self._used_elsewhere(resolved, qa.settings.collection):
            remove_upload(resolved, qa.settings.uploads_dir)
        return resolved, removed

    def _used_elsewhere(self, source: str, collection: str) -> bool:
        """Whether another collection of this store still holds `source` (uploads are shared by collections)."""
        from rag.core.errors import RagError

        for other in self.names():
            if other == collection:
                continue
            try:
                if Collections.get(self, other).store.chunk_ids(source):
                    return True
            except RagError:  # e.g. built with another embedding model: cannot tell, so keep the file
                return True
        return False


def upload_limit(settings: Settings) -> int:
    """The largest accepted upload in bytes."""
    return int(settings.ui.upload_max_mb * 2**20)


def _drop_slow_to_parse(stored: list[Path], settings: Settings) -> tuple[list[Path], list[FileResult]]:
    """Parse the stored uploads in a child process first; files over the time limit are skipped and removed."""
    from rag.ingest.uploads import remove_upload

    timeout = settings.ui.parse_timeout_s
    if not stored or timeout <= 0:
        return stored, []
    from rag.ingest.parsecheck import files_over_time_limit

    max_bytes = int(settings.chunking.max_file_mb * 2**20)
    slow = files_over_time_limit(stored, timeout_s=timeout, max_bytes=max_bytes)
    for path in slow:
        remove_upload(path, settings.uploads_dir)
    return ([p for p in stored if p not in slow],
            [FileResult(p.name, "skipped", reason=reason) for p, reason in slow.items()])
