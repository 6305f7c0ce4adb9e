"""Ingest: files -> documents -> chunks -> embeddings -> store, incrementally.

Unchanged files (same content hash) are skipped without embedding; changed
files have their chunks replaced; with `sync`, documents whose files vanished
from the ingested folders are removed. Chunks of many small files are embedded
together in large batches, so the pipeline runs close to the embedder's speed.
One writer at a time per collection (a file lock).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rag.errors import DocumentError, IngestLockedError, RagError
from rag.retrieve import index_text
from rag.store import ChunkStore, StoredChunk
from rag.types import Chunk, FileResult, IngestReport

Progress = Callable[[int, int, str], None]
_MAX_TITLE_CHARS = 200
_FLUSH_CHUNKS = 256  # chunks per embed-and-store batch; the writer overlaps the next batch's reading and chunking


@dataclass
class _Pending:
    source: str
    status: str  # "added" or "updated"
    records: list[StoredChunk]
    note: str = ""  # what the loader left out (pages OCR could not read, ...)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def chunk_id(source: str, start: int, end: int, text: str) -> str:
    """Deterministic: the same document text always yields the same ids."""
    return hashlib.sha256(f"{source}\0{start}\0{end}\0{text}".encode()).hexdigest()[:32]


def source_key(path: Path) -> str:
    """How a file is named in the index: its absolute path, so any cwd finds the same document."""
    return path.expanduser().resolve().as_posix()


def iter_files(paths: Iterable[Path]) -> Iterator[tuple[Path, Path | None]]:
    """(file, root folder it was found under or None), hidden files and folders excluded, sorted."""
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if not name.startswith("."):
                        yield Path(dirpath) / name, p
        else:
            yield p, None


class Ingestor:
    """Writes documents into one collection and keeps the BM25 index in step."""

    def __init__(self, store: ChunkStore, lexical, embeddings, settings, *, lock_path: Path):
        self.store = store
        self.lexical = lexical
        self.embeddings = embeddings
        self.settings = settings
        self.lock_path = lock_path
        self._chunker = None

    # --- public --------------------------------------------------------------------------
    def ingest_paths(self, paths: Iterable[Path | str], *, sync: bool = False,
                     progress: Progress | None = None, lock_timeout: float = 30.0) -> IngestReport:
        """Ingest files and folders (recursively)."""
        paths = [Path(p) for p in paths]
        started = time.perf_counter()
        report = IngestReport()
        with self._locked(lock_timeout), _Batch(self) as batch:
            known = {s.source: s.content_hash for s in self.store.sources()}
            files = list(iter_files(paths))
            roots = {source_key(root) for _, root in files if root is not None}
            roots |= {source_key(p) for p in paths if p.is_dir()}
            max_bytes = int(self.settings.chunking.max_file_mb * 2**20)
            seen: set[str] = set()
            for done, (path, _root) in enumerate(files, start=1):
                if progress:
                    progress(done, len(files), str(path))
                if not path.exists():
                    report.files.append(FileResult(str(path), "skipped", reason="no such file or folder"))
                    continue
                source = source_key(path)
                seen.add(source)
                result = self._prepare(path, source, known, max_bytes)
                if isinstance(result, FileResult):
                    report.files.append(result)
                else:
                    batch.add(result, report)
            batch.flush(report)
            if sync:
                for source in sorted(known):
                    if source not in seen and any(_under(source, r) for r in roots) and not Path(source).exists():
                        ids = self.store.chunk_ids(source)
                        self.store.delete_source(source)
                        batch.removed.extend(ids)
                        report.files.append(FileResult(source, "removed", chunks=len(ids)))
            batch.commit_lexical()
        report.seconds = time.perf_counter() - started
        return report

    def ingest_texts(self, rows: Iterable[dict], *, progress: Progress | None = None,
                     lock_timeout: float = 30.0) -> IngestReport:
        """Ingest in-memory documents: dicts with `source`, `text`, optional `title`, `url`."""
        from rag.loaders import load_text

        rows = list(rows)
        started = time.perf_counter()
        report = IngestReport()
        with self._locked(lock_timeout), _Batch(self) as batch:
            known = {s.source: s.content_hash for s in self.store.sources()}
            for done, row in enumerate(rows, start=1):
                if progress:
                    progress(done, len(rows), row["source"])
                source = str(row["source"])
                digest = content_hash("\0".join([row.get("title") or "", row.get("url") or "", row["text"]]).encode())
                if known.get(source) == digest:
                    report.files.append(FileResult(source, "unchanged"))
                    continue
                try:
                    doc = load_text(row["text"], name=source, title=row.get("title"), url=row.get("url"))
                    records = self._records(source, doc, digest)
                except DocumentError as exc:
                    report.files.append(FileResult(source, "skipped", reason=exc.reason))
                    continue
                batch.add(_Pending(source, "updated" if source in known else "added", records), report)
            batch.flush(report)
            batch.commit_lexical()
        report.seconds = time.perf_counter() - started
        return report

    def delete(self, source: str) -> int:
        with self._locked(30.0):
            batch = _Batch(self)
            batch.removed.extend(self.store.chunk_ids(source))
            self.store.delete_source(source)
            batch.commit_lexical()
            return len(batch.removed)

    def move_source(self, old: str, new: str, *, lock_timeout: float = 30.0) -> int:
        """Re-key a document whose file was renamed, reusing its stored embeddings; returns its chunk count.

        Chunk ids and the source change; text, offsets and vectors stay. A title
        that was the old file name becomes the new file name (the stored vectors
        keep the old one: a file name adds little to a passage's meaning).
        """
        from dataclasses import replace

        old_stem, new_stem = Path(old).stem, Path(new).stem

        def rename(chunk: Chunk) -> Chunk:
            title = new_stem if chunk.title == old_stem else chunk.title
            moved = replace(chunk, source=new, title=title)
            return replace(moved, chunk_id=chunk_id(new, chunk.start, chunk.end, chunk.text))

        with self._locked(lock_timeout):
            batch = _Batch(self)
            pairs = self.store.move_source(old, rename)
            batch.removed.extend(cid for cid, _ in pairs)
            batch.added.extend((r.chunk.chunk_id, r.chunk.source, index_text(r.chunk)) for _, r in pairs)
            batch.commit_lexical()
            return len(pairs)

    # --- internals ---------------------------------------------------------------------
    def _locked(self, timeout: float):
        from filelock import FileLock, Timeout

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path), timeout=timeout)

        class _Guard:
            def __enter__(_self):
                try:
                    lock.acquire()
                except Timeout as exc:
                    raise IngestLockedError(
                        f"another ingest is writing to collection {self.store.name!r} (lock {self.lock_path}); "
                        "wait for it to finish and run the command again"
                    ) from exc

            def __exit__(_self, *exc):
                lock.release()

        return _Guard()

    def _prepare(self, path: Path, source: str, known: dict[str, str], max_bytes: int) -> FileResult | _Pending:
        """Read, hash, parse and chunk one file: its chunks to embed, or why it is skipped or unchanged."""
        from rag.loaders import SUPPORTED_SUFFIXES, load_document

        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            return FileResult(source, "skipped", reason=f"unsupported file type {path.suffix or '(none)'}")
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise DocumentError(source, f"file is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit "
                                            "(raise RAG_CHUNKING__MAX_FILE_MB to ingest it)")
            digest = content_hash(path.read_bytes())
            if known.get(source) == digest:
                return FileResult(source, "unchanged")
            doc = load_document(path, max_bytes=max_bytes, ocr=self.settings.ocr)
            records = self._records(source, doc, digest)
        except DocumentError as exc:
            return FileResult(source, "skipped", reason=exc.reason)
        except OSError as exc:
            return FileResult(source, "skipped", reason=f"cannot read: {exc.strerror or exc}")
        return _Pending(source, "updated" if source in known else "added", records, "; ".join(doc.notes))

    def _chunk_spans(self):
        """The configured splitter, built once: (text, hard_limit) -> [(span, table header to repeat)]."""
        from rag.chunking import split_text_with_table_headers
        from rag.provision import get_encoding

        if self._chunker is None:
            enc = get_encoding(self.settings.chunking.encoding, self.settings.cache_dir)
            self._chunker = lambda t, hard_limit: split_text_with_table_headers(
                t,
                count_tokens=lambda s: len(enc.encode(s, disallowed_special=())),
                chunk_tokens=self.settings.chunking.chunk_tokens,
                overlap_tokens=self.settings.chunking.overlap_tokens,
                hard_count=self.embeddings.count_wordpieces,
                hard_limit=hard_limit,
            )
        return self._chunker

    def _records(self, source: str, doc, digest: str) -> list[StoredChunk]:
        title = (doc.title or Path(source).stem)[:_MAX_TITLE_CHARS]
        # the embedder reads "title\ntext" and adds [CLS]/[SEP]: the chunk gets what is left
        hard_limit = self.embeddings.max_wordpieces - 2 - self.embeddings.count_wordpieces(title)
        if hard_limit < 32:
            title, hard_limit = title[:60], self.embeddings.max_wordpieces - 2 - self.embeddings.count_wordpieces(title[:60])
        chunker = self._chunk_spans()
        regions = [(p, s, e) for p, s, e in doc.pages] if doc.pages else [(None, 0, len(doc.text))]
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        records: list[StoredChunk] = []
        for page, start, end in regions:
            for span, header in chunker(doc.text[start:end], hard_limit):
                s, e = start + span.start, start + span.end
                text = header + doc.text[s:e]  # a table's rows keep their header (`rag.chunking`)
                chunk = Chunk(chunk_id(source, s, e, text), text, source, title, page, s, e, url=doc.url,
                              ocr=doc.is_ocr(page))
                records.append(StoredChunk(chunk, digest, now, len(records)))
        if not records:
            raise DocumentError(source, "no text to index after extraction")
        return records


class _Batch:
    """Collects documents until enough chunks are pending, then embeds and stores them together.

    Full batches are written (embedded, then stored) by one writer thread while
    the caller goes on reading and chunking the next files; at most one more
    batch waits for the writer. `flush` writes what is left and waits for all.
    A failed write stops the writer, and the error is raised to the caller at
    its next `add` or `flush`; batches written before it stay stored.
    """

    def __init__(self, ingestor: Ingestor):
        self.ing = ingestor
        self.pending: list[_Pending] = []
        self.added: list[tuple[str, str, str]] = []
        self.removed: list[str] = []
        # BM25 may only be patched if it matched the store before our writes
        self.generation_before = ingestor.store.generation
        self._queue = None
        self._writer = None
        self._error: BaseException | None = None

    def add(self, item: _Pending, report: IngestReport) -> None:
        if any(p.source == item.source for p in self.pending):
            self._send(report)  # the same source twice (in-memory rows): the later one replaces the earlier
        self.pending.append(item)
        if sum(len(p.records) for p in self.pending) >= _FLUSH_CHUNKS:
            self._send(report)

    def flush(self, report: IngestReport) -> None:
        """Write everything pending and wait until it is stored."""
        self._send(report)
        self.close()
        self._raise_error()

    def close(self) -> None:
        """Let the writer finish what it was given, and stop it (no error raised)."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = self._queue = None

    def __enter__(self) -> _Batch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # never leave a writer running past the ingest lock

    def _send(self, report: IngestReport) -> None:
        self._raise_error()
        if not self.pending:
            return
        items, self.pending = self.pending, []
        if self._writer is None:
            import queue
            import threading

            self._queue = queue.Queue(maxsize=1)
            self._writer = threading.Thread(target=self._write_loop, name="rag-ingest-writer", daemon=True)
            self._writer.start()
        self._queue.put((items, report))

    def _raise_error(self) -> None:
        if self._error is not None:
            self.close()
            raise self._error

    def _write_loop(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(*job)
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def _write(self, items: list[_Pending], report: IngestReport) -> None:
        texts = [index_text(r.chunk) for p in items for r in p.records]
        try:
            vectors = self.ing.embeddings.embed_documents(texts)
        except Exception as exc:
            raise RagError(f"embedding failed ({exc}); nothing from this batch was stored") from exc
        removed = self.ing.store.replace_sources([(p.source, p.records) for p in items], vectors)
        for p in items:
            self.removed.extend(removed.get(p.source, ()))
            self.added.extend((r.chunk.chunk_id, r.chunk.source, index_text(r.chunk)) for r in p.records)
            report.files.append(FileResult(p.source, p.status, chunks=len(p.records), reason=p.note))

    def commit_lexical(self) -> None:
        store, lexical = self.ing.store, self.ing.lexical
        generation = store.generation
        if lexical.generation() == generation:
            return
        if lexical.generation() != self.generation_before:
            # missing, or stale from another writer: derive it from the store
            items = ((s.chunk.chunk_id, s.chunk.source, index_text(s.chunk)) for s in store.scan())
            lexical.rebuild(items, generation)
        else:
            lexical.update(self.added, set(self.removed), generation)


def _under(source: str, root: str) -> bool:
    return source == root or source.startswith(root.rstrip("/") + "/")
