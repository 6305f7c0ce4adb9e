"""A content-addressed embedding cache: each distinct chunk text is embedded once.

Vectors are kept in one SQLite file under the data directory, keyed by the
sha256 of (embedder identity, text), where the identity names the provider,
model, backend and dimension, so vectors of different models or backends never
mix. Repeated boilerplate, re-chunking with new settings (unchanged chunks keep
their text) and an interrupted ingest started again all read their vectors
back instead of recomputing them. The file is bounded: past `max_entries` the
least recently used vectors are pruned.

Example::

    cached = CachedEmbeddings(embedder, EmbeddingCache(home / "embeddings.sqlite"), identity="local|MiniLM|onnx-int8|384")
    cached.embed_documents(["same", "same", "other"])  # the embedder sees ["same", "other"]
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

_LOOKUP_BATCH = 500  # keys per SELECT (SQLite's variable limit is 32766; smaller keeps statements cheap)


class EmbeddingCache:
    """Vectors by key in one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path, *, max_entries: int = 500_000):
        self.path = Path(path)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._writes_since_prune = 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS vectors "
                         "(key BLOB PRIMARY KEY, vector BLOB NOT NULL, used REAL NOT NULL) WITHOUT ROWID")
            conn.execute("CREATE INDEX IF NOT EXISTS vectors_used ON vectors(used)")
            self._conn = conn
        return self._conn

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors of those keys that are present (float32 arrays)."""
        out: dict[bytes, np.ndarray] = {}
        if not keys:
            return out
        with self._lock:
            db = self._db()
            for i in range(0, len(keys), _LOOKUP_BATCH):
                part = list(keys[i:i + _LOOKUP_BATCH])
                marks = ",".join("?" * len(part))
                for key, blob in db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part):
                    out[bytes(key)] = np.frombuffer(blob, dtype=np.float32)
            if out:  # mark as recently used, so pruning keeps what is being read
                now = time.time()
                db.executemany("UPDATE vectors SET used = ? WHERE key = ?", [(now, k) for k in out])
        return out

    def put_many(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        if not items or self.max_entries == 0:
            return
        now = time.time()
        rows = [(k, np.asarray(v, dtype=np.float32).tobytes(), now) for k, v in items]
        with self._lock:
            db = self._db()
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO vectors (key, vector, used) VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
            self._writes_since_prune += len(rows)
            if self._writes_since_prune >= max(1000, self.max_entries // 20):
                self._prune(db)

    def prune(self) -> int:
        """Drop the least recently used vectors beyond `max_entries`; returns how many went."""
        with self._lock:
            return self._prune(self._db())

    def _prune(self, db: sqlite3.Connection) -> int:
        self._writes_since_prune = 0
        (count,) = db.execute("SELECT count(*) FROM vectors").fetchone()
        extra = count - self.max_entries
        if extra <= 0:
            return 0
        db.execute("DELETE FROM vectors WHERE key IN (SELECT key FROM vectors ORDER BY used LIMIT ?)", (extra,))
        return extra

    def __len__(self) -> int:
        with self._lock:
            return self._db().execute("SELECT count(*) FROM vectors").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class CachedEmbeddings(Embeddings):
    """An `Embeddings` that asks `inner` only for texts it has not embedded before.

    Queries go straight to `inner` (no cache look-up on the answer path).
    Every other attribute (`name`, `dimension`, `count_wordpieces`, ...) is `inner`'s.
    """

    def __init__(self, inner: Embeddings, cache: EmbeddingCache, *, identity: str):
        self.inner = inner
        self.cache = cache
        self.identity = identity

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (unpickling): avoid recursing
            raise AttributeError(name)
        return getattr(self.inner, name)

    def key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.identity}\0{text}".encode()).digest()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        keys = [self.key(t) for t in texts]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        missing: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in found and k not in missing:
                missing[k] = t
        if missing:
            vectors = self.inner.embed_documents(list(missing.values()))
            fresh = [(k, np.asarray(v, dtype=np.float32)) for k, v in zip(missing, vectors)]
            self.cache.put_many(fresh)
            found.update(fresh)
        return [found[k].tolist() for k in keys]

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)
