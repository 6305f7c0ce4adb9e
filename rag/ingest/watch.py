"""Keep a collection in sync with a folder: `rag ingest DIR --watch`, and the UI's watched folders.

`FolderWatcher` listens to file-system events (watchdog) and works in batches:

- a changed path is handled once it has been quiet for `debounce_s` and its
  size and modification time were the same at two looks `debounce_s` apart;
  on Linux a file written to and not yet closed also waits (inotify's
  close-after-write event), so a half-written file is never indexed;
- everything ready is ingested together, so a burst of 1,000 events costs a
  few batches, not 1,000 ingests;
- a file that vanished has its chunks removed; a new file whose content
  hash is that of a vanished document is a rename: its chunks are re-keyed
  with their stored vectors, nothing is embedded again;
- a file that fails to parse (still being copied, say) is retried a few times
  with growing delays before it is reported as skipped.

Example::

    watcher = FolderWatcher(qa, "~/notes", on_batch=lambda r: print(r.summary()))
    watcher.start()          # syncs the folder once, then follows it
    ...
    watcher.stop()
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rag.core.types import FileResult, IngestReport

log = logging.getLogger(__name__)

_TEMP_SUFFIXES = (".tmp", ".part", ".crdownload", ".swp", ".swx", "~")
_WRITE_TIMEOUT_S = 120.0  # a file held open for writing this long without change is read anyway


class FolderWatcher:
    """Follows one folder and keeps the collection of `qa` in step with it (start/stop, background threads)."""

    def __init__(self, qa, folder: str | Path, *, debounce_s: float = 1.0, max_wait_s: float = 10.0,
                 retries: int = 4, retry_s: float = 2.0, on_batch: Callable[[IngestReport], None] | None = None):
        """
        Args:
            qa: the `DocQA` whose collection mirrors the folder.
            folder: the folder to follow (recursively; hidden files and folders are ignored).
            debounce_s: how long a file must stay unchanged before it is read.
            max_wait_s: under a steady stream of events, handle what is ready at least this often.
            retries: how many times a file that fails to parse is tried again before it is reported skipped.
            retry_s: delay before the first retry (doubling each time).
            on_batch: called with the `IngestReport` of every batch (from the watcher's thread).
        """
        self.qa = qa
        self.folder = Path(folder).expanduser().resolve()
        self.debounce_s = debounce_s
        self.max_wait_s = max_wait_s
        self.retries = retries
        self.retry_s = retry_s
        self.on_batch = on_batch
        self.batches = 0  # batches handled since start (the initial sync not counted)
        self.last_report: IngestReport | None = None
        self.error: str | None = None  # the last batch's failure, if any
        self._cond = threading.Condition()
        self._dirty: dict[str, float] = {}  # path -> time of its last event (or of its retry)
        self._writing: set[str] = set()  # written to and not closed yet (Linux)
        self._signatures: dict[str, tuple[int, int] | None] = {}
        self._tries: dict[str, int] = {}
        self._busy = False
        self._stop = threading.Event()
        self._observer = None
        self._thread: threading.Thread | None = None
        self._tracks_close = sys.platform.startswith("linux")  # inotify reports close-after-write

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, *, initial_sync: bool = True) -> IngestReport | None:
        """Sync the folder once (new, changed and vanished files), then follow it in the background."""
        from rag.core.errors import RagError

        if not self.folder.is_dir():
            raise RagError(f"cannot watch {self.folder}: not a folder (create it, or give an existing folder)")
        from watchdog.observers import Observer

        self._observer = Observer()
        self._observer.schedule(_Handler(self), str(self.folder), recursive=True)
        self._observer.daemon = True
        self._observer.start()  # before the sync: nothing written during it is missed
        report = self.qa.ingest([self.folder], sync=True) if initial_sync else None
        self._thread = threading.Thread(target=self._run, name=f"rag-watch-{self.folder.name}", daemon=True)
        self._thread.start()
        return report

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following the folder; a batch being written is finished first."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no event is pending and no batch is running (tests, scripts); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._dirty or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    # --- events ------------------------------------------------------------------------------
    def _event(self, kind: str, *paths: str, is_dir: bool = False) -> None:
        now = time.monotonic()
        with self._cond:
            for path in paths:
                if not self._relevant(path, is_dir=is_dir):
                    continue
                if kind == "modified":
                    self._writing.add(path)
                elif kind == "closed":
                    self._writing.discard(path)
                self._dirty[path] = now
                self._tries.pop(path, None)
            self._cond.notify_all()

    def _relevant(self, path: str, *, is_dir: bool = False) -> bool:
        from rag.ingest.loaders import SUPPORTED_SUFFIXES

        try:
            rel = Path(path).relative_to(self.folder)
        except ValueError:
            return False
        if any(part.startswith(".") for part in rel.parts) or path.endswith(_TEMP_SUFFIXES):
            return False
        return is_dir or Path(path).suffix.lower() in SUPPORTED_SUFFIXES

    # --- the worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            ready = self._next_batch()
            if ready is None:
                continue
            try:
                report = self._apply(ready)
            except Exception as exc:  # keep following the folder; the error is shown and the paths retried
                log.exception("watching %s: batch failed", self.folder)
                self.error = f"{type(exc).__name__}: {exc}"
                with self._cond:
                    later = time.monotonic() + self.retry_s
                    for path in ready:
                        self._dirty.setdefault(path, later)
                report = None
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if report is not None:
                self.batches += 1
                self.last_report = report
                self.error = None
                if self.on_batch is not None and report.files:
                    try:
                        self.on_batch(report)
                    except Exception:  # a display callback must not stop the watcher
                        log.exception("on_batch callback failed")

    def _next_batch(self) -> list[str] | None:
        """Wait until some paths are ready; return them (marked busy), or None to look again."""
        with self._cond:
            while not self._dirty and not self._stop.is_set():
                self._cond.wait(0.5)
            if self._stop.is_set():
                return None
            now = time.monotonic()
            seen = [t for t in self._dirty.values() if t <= now]  # retries are due in the future
            if seen and now - max(seen) < self.debounce_s and now - min(seen) < self.max_wait_s:
                self._cond.wait(min(self.debounce_s - (now - max(seen)), 0.5))
                return None  # events still arriving: wait for the burst to end
            ready, waiting = [], []
            for path, seen in self._dirty.items():
                if now - seen < self.debounce_s:
                    waiting.append(path)
                elif self._tracks_close and path in self._writing and now - seen < _WRITE_TIMEOUT_S:
                    waiting.append(path)  # still open for writing: its close event will bring it back
                elif self._stable(path):
                    ready.append(path)
                else:
                    self._dirty[path] = now  # changed since the last look: look again after the debounce
            for path in ready:
                del self._dirty[path]
                self._writing.discard(path)
            if not ready:
                self._cond.wait(min(self.debounce_s, 0.5))
                return None
            self._busy = True
            return ready

    def _stable(self, path: str) -> bool:
        """Same size and modification time (or still absent) as at the previous look.

        Vanished paths take two looks too, so both ends of a rename become
        ready in the same batch, where the rename is recognised.
        """
        try:
            st = os.stat(path)
            signature = (st.st_size, st.st_mtime_ns)
        except OSError:
            signature = None
        previous = self._signatures.get(path, "unseen")
        self._signatures[path] = signature
        return previous == signature

    # --- applying a batch ----------------------------------------------------------------------
    def _apply(self, paths: list[str]) -> IngestReport:
        from rag.ingest.loaders import SUPPORTED_SUFFIXES
        from rag.ingest.pipeline import content_hash, iter_files, source_key

        started = time.perf_counter()
        report = IngestReport()
        files: dict[str, Path] = {}
        gone: list[str] = []
        for path in paths:
            p = Path(path)
            if p.is_dir():
                for f, _root in iter_files([p]):
                    if f.suffix.lower() in SUPPORTED_SUFFIXES and self._relevant(str(f)):
                        files[source_key(f)] = f
            elif p.is_file():
                files[source_key(p)] = p
            else:
                gone.append(source_key(p))
            self._signatures.pop(path, None)
        stored = {s.source: s for s in self.qa.sources()} if files or gone else {}
        vanished = [s for s in stored if any(s == g or s.startswith(g.rstrip("/") + "/") for g in gone)
                    and not Path(s).exists()]
        # a new file with the content of a vanished one is that file renamed: move its chunks. Any stored
        # document of this folder whose file is gone counts, as the two events of a rename may reach
        # different batches when the system is busy.
        missing = set(vanished)
        if any(key not in stored for key in files):
            root = self.folder.as_posix().rstrip("/") + "/"
            missing |= {s for s in stored if s.startswith(root) and not Path(s).exists()}
        by_hash = {stored[s].content_hash: s for s in sorted(missing)}
        for key, f in list(files.items()):
            if key in stored or not by_hash:
                continue
            try:
                digest = content_hash(f.read_bytes())
            except OSError:
                continue
            old = by_hash.pop(digest, None)
            if old is not None:
                n = self.qa.ingestor.move_source(old, key)
                if old in vanished:
                    vanished.remove(old)
                del files[key]
                report.files.append(FileResult(key, "renamed", chunks=n, reason=f"from {old}"))
        if files:
            ingested = self.qa.ingest(sorted(files.values()))
            for result in ingested.files:
                if result.status == "skipped" and self._retry(result):
                    continue
                report.files.append(result)
        for source in vanished:
            n = self.qa.ingestor.delete(source)
            report.files.append(FileResult(source, "removed", chunks=n))
        report.seconds = time.perf_counter() - started
        return report

    def _retry(self, result: FileResult) -> bool:
        """Queue a file that failed to parse for another try (it may still be arriving); False when out of tries."""
        if result.reason.startswith("unsupported"):
            return False
        path = result.path
        tries = self._tries.get(path, 0)
        if tries >= self.retries:
            self._tries.pop(path, None)
            return False
        self._tries[path] = tries + 1
        with self._cond:
            # due after retry_s * 2**tries, counted from when the debounce would let it through
            self._dirty[path] = time.monotonic() + self.retry_s * 2**tries - self.debounce_s
            self._cond.notify_all()
        return True


class _Handler:
    """watchdog event handler feeding `FolderWatcher._event` (only what changes content counts)."""

    def __init__(self, watcher: FolderWatcher):
        self.watcher = watcher

    def dispatch(self, event) -> None:
        kind = event.event_type  # created, modified, deleted, moved, closed, opened, closed_no_write, attrib
        src = os.fsdecode(event.src_path)
        if kind == "moved":
            self.watcher._event("moved", src, os.fsdecode(event.dest_path), is_dir=event.is_directory)
        elif kind in ("created", "deleted", "closed"):
            self.watcher._event(kind, src, is_dir=event.is_directory)
        elif kind == "modified" and not event.is_directory:
            self.watcher._event("modified", src)


# --------------------------------------------------------------------------- registered folders (the UI)


def registry_path(home: Path) -> Path:
    return Path(home) / "watched.json"


def load_watched(home: Path) -> list[dict[str, str]]:
    """The folders registered for watching: `[{"folder": ..., "collection": ...}, ...]`."""
    path = registry_path(home)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s (%s)", path, exc)
        return []
    return [e for e in entries if isinstance(e, dict) and e.get("folder") and e.get("collection")]


def save_watched(home: Path, entries: list[dict[str, str]]) -> None:
    """Write the registry atomically (a crash leaves the old or the new list, never half of one)."""
    path = registry_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    os.replace(tmp, path)
