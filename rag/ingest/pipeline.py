"""Ingest: files -> documents -> chunks -> embeddings -> store, incrementally.

Unchanged files (same content hash) are skipped without embedding; changed
files have their chunks replaced; with `sync`, documents whose files vanished
from the ingested folders are removed. Chunks of many small files are embedded
together in large batches, so the pipeline runs close to the embedder's speed.
One writer at a time per collection (a file lock).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from rag.core.errors import DocumentError, IngestLockedError, RagError
from rag.core.types import SECTION_SEPARATOR, Chunk, FileResult, IngestReport
from rag.index.integrity import recover
from rag.index.retrieve import index_text
from rag.index.sentence_view import embed_with_sentences
from rag.index.store import INCOMPLETE, ChunkStore, StoredChunk

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
_MAX_TITLE_CHARS = 200
_MAX_SECTION_CHARS = 200  # a longer heading path keeps its deepest headings
_FLUSH_CHUNKS = 256  # chunks per embed-and-store batch; the writer overlaps the next batch's reading and chunking
_DEFER_CHUNKS = 32768  # chunks of large documents held in memory while the small files read with them go first
_LEXICAL_EVERY_S = 5.0  # how often a long ingest brings BM25 up to what it has stored


@dataclass
class _Pending:
    source: str
    status: str  # "added" or "updated"
    records: list[StoredChunk]
    note: str = ""  # what the loader left out (pages OCR could not read, ...)
    stored: set[str] = field(default_factory=set)  # ids already in the store (parts of an interrupted write)
    report: IngestReport | None = None

    def todo(self) -> list[StoredChunk]:
        return [r for r in self.records if r.chunk.chunk_id not in self.stored]


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
        self.stop = threading.Event()
        self.stop_reason = ""
        self.recovered: list[str] = []  # what the last lock taken had to embed again (rag.index.integrity.recover)

    # --- public --------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask a running ingest to stop after the batch being written (thread- and signal-safe)."""
        self.stop_reason = reason
        self.stop.set()

    def ingest_paths(self, paths: Iterable[Path | str], *, sync: bool = False,
                     progress: Progress | None = None, lock_timeout: float = 30.0,
                     reread: bool = False) -> IngestReport:
        """Ingest files and folders (recursively); `reread`: read unchanged files again too.

        After `request_stop` (the CLI calls it on Ctrl-C/SIGTERM) the batch being
        written is finished, BM25 is brought up to date and the report lists what
        was stored and what was not (`interrupted`); nothing stored is lost.
        """
        paths = [Path(p) for p in paths]
        started = time.perf_counter()
        report = IngestReport()
        with self._locked(lock_timeout), _Batch(self) as batch:
            # every stored document's state: from the manifest (rag.index.manifest) while it is current, else by a
            # full scan, which then becomes the manifest (a filtered read of only these files' records is
            # faster at 100k chunks, but Chroma 1.x crashed on it as the first read of a store killed mid-write)
            known = {s.source: s.content_hash for s in self.store.sources(save=True)}
            files = list(iter_files(paths))
            roots = {source_key(p) for p in paths if p.expanduser().is_dir()}  # the folders `sync` may prune
            max_bytes = int(self.settings.chunking.max_file_mb * 2**20)
            seen: set[str] = set()
            for done, (path, _root) in enumerate(files, start=1):
                if self.stop.is_set():
                    report.files.extend(FileResult(str(p), "interrupted", reason="not read before the stop")
                                        for p, _ in files[done - 1:])
                    break
                if progress:
                    progress(done, len(files), str(path))
                if not path.exists():
                    reason = "broken or looping symbolic link" if path.is_symlink() else "no such file or folder"
                    report.files.append(FileResult(str(path), "skipped", reason=reason))
                    continue
                source = source_key(path)
                if source in seen:  # the same file reached twice (overlapping folders, `..`, links)
                    continue
                seen.add(source)
                result = self._prepare(path, source, known, max_bytes, reread)
                if isinstance(result, FileResult):
                    report.files.append(result)
                else:
                    batch.add(result, report)
            self._finish(batch, report)
            if sync and not report.interrupted:  # after a stop, `seen` is not every file
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
        from rag.ingest.loaders import load_text

        rows = list(rows)
        started = time.perf_counter()
        report = IngestReport()
        with self._locked(lock_timeout), _Batch(self) as batch:
            known = {s.source: s.content_hash for s in self.store.sources(save=True)}
            for done, row in enumerate(rows, start=1):
                if self.stop.is_set():
                    report.files.extend(FileResult(str(r["source"]), "interrupted", reason="not read before the stop")
                                        for r in rows[done - 1:])
                    break
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
                batch.add(self._pending(source, known, digest, records), report)
            self._finish(batch, report)
            batch.commit_lexical()
        report.seconds = time.perf_counter() - started
        return report

    def delete(self, source: str) -> int:
        with self._locked(30.0):
            batch = _Batch(self)
            ids = self.store.chunk_ids(source)
            batch.removed.extend(ids)
            self.store.delete_source(source)
            batch.commit_lexical()
            return len(ids)

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

        lease = None
        if getattr(self.settings, "chroma_url", None):  # other homes share the collection: lock it on the server
            from rag.index.lease import ServerLease

            lease = ServerLease(self.store._client, self.store.name)

        class _Guard:
            def __enter__(_self):
                try:
                    lock.acquire()
                except Timeout as exc:
                    raise IngestLockedError(
                        f"another ingest is writing to collection {self.store.name!r} (lock {self.lock_path}); "
                        "wait for it to finish and run the command again"
                    ) from exc
                if lease is not None:
                    try:
                        lease.acquire(timeout)
                    except BaseException:
                        lock.release()
                        raise
                    self.store.before_write = lease.renew
                try:  # what a process killed mid-write left unreadable is embedded again before anything is read
                    self.recovered = recover(self.store, self.embeddings, index_text=index_text)
                except BaseException:
                    _self.__exit__(None, None, None)
                    raise
                for line in self.recovered:
                    log.warning("%s", line)

            def __exit__(_self, *exc):
                if lease is not None:
                    self.store.before_write = None
                    lease.release()
                lock.release()

        return _Guard()

    def _prepare(self, path: Path, source: str, known: dict[str, str], max_bytes: int,
                 reread: bool = False) -> FileResult | _Pending:
        """Read, hash, parse and chunk one file: its chunks to embed, or why it is skipped or unchanged.

        `reread`: an unchanged file is read again and its chunks replaced (after an upgrade that
        extracts documents better); the embedding cache, when on, serves the chunks that read the same.
        """
        from rag.ingest.loaders import SUPPORTED_SUFFIXES, load_document

        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            return FileResult(source, "skipped", reason=f"unsupported file type {path.suffix or '(none)'}")
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
                return FileResult(source, "skipped", reason="not a regular file")
            size = info.st_size
            if size > max_bytes:
                raise DocumentError(source, f"file is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit "
                                            "(raise RAG_CHUNKING__MAX_FILE_MB to ingest it)")
            digest = content_hash(path.read_bytes())
            if known.get(source) == digest and not reread:
                return FileResult(source, "unchanged")
            doc = load_document(path, max_bytes=max_bytes, ocr=self.settings.ocr)
            records = self._records(source, doc, digest)
        except DocumentError as exc:
            return FileResult(source, "skipped", reason=exc.reason)
        except OSError as exc:
            return FileResult(source, "skipped", reason=f"cannot read: {exc.strerror or exc}")
        return self._pending(source, known, digest, records, "; ".join(doc.notes))

    def _pending(self, source: str, known: dict[str, str], digest: str, records: list[StoredChunk],
                 note: str = "") -> _Pending:
        """The document to write; after an interrupted write of this same version, its stored parts are kept."""
        item = _Pending(source, "updated" if source in known else "added", records, note)
        if known.get(source) == INCOMPLETE:
            stored = {(r.chunk.chunk_id, r.index, r.total) for r in self.store.records(source) if r.content_hash == digest}
            item.stored = {r.chunk.chunk_id for r in records if (r.chunk.chunk_id, r.index, r.total) in stored}
        return item

    def _finish(self, batch: _Batch, report: IngestReport) -> None:
        """Write what is pending; after a stop, record what was not stored and why (and re-arm)."""
        batch.flush(report)
        if self.stop.is_set():
            batch.report_unfinished(report)
            report.interrupted = self.stop_reason
            self.stop.clear()  # the next ingest of a long-running process (the UI) runs normally

    def _chunk_spans(self):
        """The configured splitter, built once: (text, hard_limit) -> [(span, table header to repeat)]."""
        from rag.ingest.chunking import split_text_with_table_headers
        from rag.models.tokenizer import get_encoding

        if self._chunker is None:
            enc = get_encoding(self.settings.chunking.encoding, self.settings.cache_dir)
            self._chunker = lambda t, hard_limit: split_text_with_table_headers(
                t,
                count_tokens=lambda s: len(enc.encode(s, disallowed_special=())),
                chunk_tokens=self.settings.chunking.chunk_tokens,
                overlap_tokens=self.settings.chunking.overlap_tokens,
                tail_tokens=self.settings.chunking.tail_tokens,
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
        for page, start, end, section in _section_regions(regions, doc):
            # the embedder reads the heading path too ("title\nsection\ntext", `rag.index.retrieve.index_text`)
            section, limit = self._section_budget(section, hard_limit)
            for span, header in chunker(doc.text[start:end], limit):
                s, e = start + span.start, start + span.end
                text = header + doc.text[s:e]  # a table's rows keep their header (`rag.ingest.chunking`)
                chunk = Chunk(chunk_id(source, s, e, text), text, source, title, page, s, e, url=doc.url,
                              ocr=doc.is_ocr(page), section=section)
                records.append(StoredChunk(chunk, digest, now, len(records)))
        if not records:
            raise DocumentError(source, "no text to index after extraction")
        return [replace(r, total=len(records)) for r in records]

    def _section_budget(self, section: str, hard_limit: int) -> tuple[str, int]:
        """The heading path to store (its deepest headings when long) and the word pieces left for the text."""
        if not section:
            return "", hard_limit
        parts = section.split(SECTION_SEPARATOR)
        while parts:
            shown = SECTION_SEPARATOR.join(parts)
            if len(shown) <= _MAX_SECTION_CHARS:
                limit = hard_limit - 1 - self.embeddings.count_wordpieces(shown)
                if limit >= 32:
                    return shown, limit
            parts = parts[1:]
        return "", hard_limit


def _section_regions(regions, doc) -> list[tuple[int | None, int, int, str]]:
    """(page, start, end, heading path): the page regions cut where a section starts, so no chunk spans two."""
    sections = getattr(doc, "sections", ())
    cuts = [offset for offset, _ in sections]
    out = []
    for page, start, end in regions:
        i = bisect_right(cuts, start)  # sections[:i] start at or before the region
        at, path = start, sections[i - 1][1] if i else ""
        while i < len(cuts) and cuts[i] < end:
            out.append((page, at, cuts[i], path))
            at, path = cuts[i], sections[i][1]
            i += 1
        out.append((page, at, end, path))
    return out


class _Batch:
    """Embeds and stores documents in batches of about `_FLUSH_CHUNKS` chunks, in a writer thread.

    Small documents are gathered until a batch is full; a large document is
    cut into batch-sized parts that go out one after each batch of small ones
    (or all at once when too many large ones wait), so a huge file neither
    holds back the small files read with it nor makes one enormous batch.
    A document counts as stored when its last part is: every part records the
    document's chunk total, so an interrupted document is seen as incomplete
    and resumed (its stored parts are not embedded again). The writer overlaps
    the next files' reading and chunking; at most one more batch waits for it.
    A failed write stops the writer, and the error is raised to the caller at
    its next `add` or `flush`; batches written before it stay stored. After a
    stop request the batch being written is finished and nothing more is sent.
    BM25 follows the written batches every `_LEXICAL_EVERY_S` seconds.
    """

    def __init__(self, ingestor: Ingestor):
        self.ing = ingestor
        self.stop = ingestor.stop
        self.small: list[_Pending] = []
        self.large: deque[tuple[_Pending, list[StoredChunk]]] = deque()  # (document, its parts not yet sent)
        self.added: list[tuple[str, str, str]] = []
        self.removed: list[str] = []
        self.unfinished: dict[str, _Pending] = {}  # sent or queued, last part not yet written
        # BM25 may only be patched if it matched the store before our writes
        self.base = ingestor.store.generation
        self._last_lexical = time.monotonic()
        self._lexical_cost = 0.0
        self._queue = None
        self._writer = None
        self._error: BaseException | None = None

    def add(self, item: _Pending, report: IngestReport) -> None:
        self._raise_error()
        item.report = report
        if item.source in self.unfinished:
            self._drain()  # the same source twice (in-memory rows): the later one replaces the earlier
        self.unfinished[item.source] = item
        todo = item.todo()
        if len(todo) > _FLUSH_CHUNKS:
            self.large.append((item, todo))
            if sum(len(t) for _, t in self.large) > _DEFER_CHUNKS:
                self._send_small()
                while self.large:
                    self._send_large_part()
        else:
            self.small.append(item)
            if sum(len(p.todo()) for p in self.small) >= _FLUSH_CHUNKS:
                self._send_small()
                self._send_large_part()

    def flush(self, report: IngestReport) -> None:
        """Write everything pending (nothing after a stop request) and wait until it is stored."""
        self._drain()
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

    def _drain(self) -> None:
        self._send_small()
        while self.large:
            self._send_large_part()

    def _send_small(self) -> None:
        items, self.small = self.small, []
        if items:
            self._submit([(p, p.todo(), True) for p in items])

    def _send_large_part(self) -> None:
        if not self.large:
            return
        item, todo = self.large[0]
        part, rest = todo[:_FLUSH_CHUNKS], todo[_FLUSH_CHUNKS:]
        if rest:
            self.large[0] = (item, rest)
        else:
            self.large.popleft()
        self._submit([(item, part, not rest)])

    def _submit(self, job: list[tuple[_Pending, list[StoredChunk], bool]]) -> None:
        self._raise_error()
        if self.stop.is_set():
            return
        if self._writer is None:
            import queue
            import threading

            self._queue = queue.Queue(maxsize=1)
            self._writer = threading.Thread(target=self._write_loop, name="rag-ingest-writer", daemon=True)
            self._writer.start()
        self._queue.put(job)

    def _raise_error(self) -> None:
        if self._error is not None:
            self.close()
            raise self._error

    def _write_loop(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None and not self.stop.is_set():
                try:
                    self._write(job)
                    # BM25 is rebuilt whole on each commit: space them so it costs at most ~20% of the ingest
                    if time.monotonic() - self._last_lexical >= max(_LEXICAL_EVERY_S, 4 * self._lexical_cost):
                        started = time.monotonic()
                        self.commit_lexical()
                        self._lexical_cost = time.monotonic() - started
                except BaseException as exc:  # handed to the caller's thread
                    self._error = exc

    def _write(self, job: list[tuple[_Pending, list[StoredChunk], bool]]) -> None:
        records = [r for _, recs, _ in job for r in recs]
        texts = [index_text(r.chunk) for r in records]
        sentence_vectors = None
        try:
            if self.ing.store.sentences is not None:  # rag.index.sentence_view: each sentence gets a vector too, same call
                vectors, sentence_vectors = embed_with_sentences(self.ing.embeddings, texts, [r.chunk for r in records])
            else:
                vectors = self.ing.embeddings.embed_documents(texts) if texts else []
        except Exception as exc:
            raise RagError(f"embedding failed ({exc}); nothing from this batch was stored") from exc
        complete = [(p.source, {r.chunk.chunk_id for r in p.records}) for p, _, last in job if last]
        removed = self.ing.store.write_parts(records, vectors, complete, sentence_vectors)
        self.added.extend((r.chunk.chunk_id, r.chunk.source, t) for r, t in zip(records, texts))
        for p, recs, last in job:
            p.stored.update(r.chunk.chunk_id for r in recs)
            if last:
                self.removed.extend(removed.get(p.source, ()))
                if self.unfinished.get(p.source) is p:
                    del self.unfinished[p.source]
                p.report.files.append(FileResult(p.source, p.status, chunks=len(p.records), reason=p.note))

    def report_unfinished(self, report: IngestReport) -> None:
        """After a stop: say what happened to each document that was not stored whole."""
        for p in self.unfinished.values():
            done = len(p.stored)
            reason = (f"{done} of {len(p.records)} chunks stored before the stop; run the same command to finish it"
                      if done else "stopped before it was stored")
            report.files.append(FileResult(p.source, "interrupted", chunks=0, reason=reason))
        self.unfinished.clear()
        self.small.clear()
        self.large.clear()

    def commit_lexical(self) -> None:
        """Make the BM25 index match the store: patch it with our writes, or rebuild it."""
        store, lexical = self.ing.store, self.ing.lexical
        generation = store.generation
        added, removed = self.added, set(self.removed)
        self.added, self.removed = [], []
        self._last_lexical = time.monotonic()
        if lexical.generation() == generation:
            self.base = generation
            return
        if not lexical.update(added, removed, generation, base=self.base):
            # missing, or stale from another writer: derive it from the store
            items = ((s.chunk.chunk_id, s.chunk.source, index_text(s.chunk)) for s in store.scan())
            lexical.rebuild(items, generation)
        self.base = generation


def _under(source: str, root: str) -> bool:
    return source == root or source.startswith(root.rstrip("/") + "/")
