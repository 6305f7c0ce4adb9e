"""Which documents a collection holds, kept beside it so that nobody has to scan every chunk to know.

`ChunkStore.sources()` reads the metadata of every stored chunk: 0.5 s at 10k chunks, 12-20 s
at 100k, paid by every ingest (to learn which files are unchanged), by asking within one
document, by `rag delete` and by the UI's list. The manifest is a derived copy of that answer,
like the BM25 index: a small SQLite table stamped with the store's generation, written only by
writers holding the ingest lock, and trusted only while the stamp matches the store's.

- An ingest that finds it stale scans the store, as before, and saves what it read.
- Each write of ours patches it: the documents it touched are read back from the store (one
  filtered read, after the write) and the stamp moves to the store's new generation, if and only
  if the manifest was current before the write (compare and set).
- Anything else makes it stale: a write by another client of a shared Chroma server, a process
  killed mid-write (the store's stamp changes before every write starts), an older version of
  this tool. The next ingest then scans, as every ingest did before.

Example::

    manifest = SourceManifest(state_dir / "sources.sqlite")
    manifest.replace(store.generation, store.scan_sources())
    manifest.load(store.generation)  # the same list, without a scan; None once the store changed
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from rag.core.types import SourceInfo

_FORMAT = "1"
_FIELDS = ("source", "title", "chunks", "content_hash", "ingested_at", "url")


class SourceManifest:
    """The documents of one collection at one generation of the store (see the module docstring)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE IF NOT EXISTS sources (source TEXT PRIMARY KEY, title TEXT, chunks INTEGER, "
                   "content_hash TEXT, ingested_at TEXT, url TEXT)")
        return db

    def generation(self) -> str | None:
        """The store generation the manifest describes; None when there is none (or it is unreadable)."""
        if not self.path.exists():
            return None
        try:
            with closing(self._connect()) as db:
                return _stamp(db)
        except sqlite3.Error:
            return None

    def load(self, generation: str) -> list[SourceInfo] | None:
        """The documents, sorted by source, if the manifest describes `generation`; else None."""
        if not generation or not self.path.exists():
            return None
        try:
            with closing(self._connect()) as db:
                db.execute("BEGIN")  # the stamp and the rows from one snapshot
                if _stamp(db) != generation:
                    db.execute("ROLLBACK")
                    return None
                rows = db.execute(f"SELECT {', '.join(_FIELDS)} FROM sources ORDER BY source").fetchall()
                db.execute("COMMIT")
        except sqlite3.Error:
            return None  # damaged: the caller scans the store, and the next ingest rewrites it
        return [SourceInfo(source=s, title=t or "", chunks=int(c), content_hash=h, ingested_at=a or "", url=u)
                for s, t, c, h, a, u in rows]

    def replace(self, generation: str, sources: Iterable[SourceInfo]) -> None:
        """Make the manifest `sources` at `generation` (what a scan of the store read)."""
        rows = [_row(s) for s in sources]
        try:
            with closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("DELETE FROM sources")
                db.executemany(f"INSERT OR REPLACE INTO sources VALUES ({', '.join('?' * len(_FIELDS))})", rows)
                _set_stamp(db, generation)
                db.execute("COMMIT")
        except sqlite3.Error:
            self.invalidate()

    def patch(self, expected: str, generation: str, upserts: Iterable[SourceInfo], removed: Iterable[str]) -> bool:
        """Apply one write's changes, moving the stamp from `expected` to `generation`; False (nothing
        changed) when the manifest did not describe `expected`."""
        rows = [_row(s) for s in upserts]
        try:
            with closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")
                if _stamp(db) != expected:
                    db.execute("ROLLBACK")
                    return False
                db.executemany("DELETE FROM sources WHERE source = ?", [(s,) for s in removed])
                db.executemany(f"INSERT OR REPLACE INTO sources VALUES ({', '.join('?' * len(_FIELDS))})", rows)
                _set_stamp(db, generation)
                db.execute("COMMIT")
                return True
        except sqlite3.Error:
            self.invalidate()
            return False

    def invalidate(self) -> None:
        """Forget the stamp: the next ingest scans the store."""
        try:
            with closing(self._connect()) as db:
                db.execute("DELETE FROM meta")
        except sqlite3.Error:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass


def _stamp(db: sqlite3.Connection) -> str | None:
    format_row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    if not format_row or format_row[0] != _FORMAT:
        return None
    row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return row[0] if row else None


def _set_stamp(db: sqlite3.Connection, generation: str) -> None:
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [("format", _FORMAT), ("generation", generation)])


def _row(s: SourceInfo) -> tuple:
    return (s.source, s.title, s.chunks, s.content_hash, s.ingested_at, s.url)
