"""Exact dense search over the distinct stored vectors, held in memory.

Chroma's approximate (HNSW) index breaks down when many chunks share one vector:
a log file or templated report of one repeated sentence stores thousands of
identical vectors, the graph's neighbour lists fill with them, and a search that
enters that cluster never leaves it, so a question about any other document gets
only the repeated chunk back. Here each distinct vector is kept once, with the
chunks that have it, and a query is scored against all of them (a matrix product:
about a millisecond per 10,000 distinct vectors on a laptop core). Identical
chunks therefore count as one candidate, the best-named of them standing for the
rest, and the remaining candidates are the nearest *other* texts.

The vectors are read from the store once; after a write of this process its journal
(`ChunkStore.journal`) says what changed, and after another process's write the chunk ids are read
and only the vectors of new ones.
Collections with more chunks than `retrieval.exact_max_chunks` use Chroma's
index instead (`ChunkStore.nearest`).

Example::

    vectors = DistinctVectors(store)
    vectors.nearest(embeddings.embed_query("Who built the lighthouse?"), 50)  # [(chunk_id, cosine), ...]
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

_FETCH = 5000  # records read per round trip


class DistinctVectors:
    """The distinct vectors of one `ChunkStore`, with the chunk ids (and sources) that have each."""

    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._row_of: dict[str, int] = {}  # chunk id -> row of its vector
        self._source_of: dict[str, str] = {}
        self._rows: dict[bytes, int] = {}  # vector bytes -> row
        self._vectors: list[np.ndarray] = []  # unit vectors, one per row
        self._members: list[set[str]] = []  # chunk ids per row
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        """Distinct vectors that some stored chunk has."""
        return sum(1 for m in self._members if m)

    def refresh(self) -> None:
        """Catch up with the store: read the vectors of chunks added since, forget removed ones."""
        generation = self.store.generation
        if generation == self._generation:
            return
        with self._lock:
            if generation == self._generation:
                return
            self.store.follow_other_writers()
            changes = self.store.changes_since(self._generation, generation)
            gone: set[str] = set()
            if changes is not None:  # only this process wrote since: apply its writes, no re-read
                for added, removed in changes:
                    gone.update(removed)
                    self._remove(removed)
                    for cid, source, vector in added:
                        self._add(cid, source, vector)
            else:
                ids = self.store.all_ids()
                gone = set(self._row_of) - ids
                self._remove(gone)
                new = sorted(ids - set(self._row_of))
                for i in range(0, len(new), _FETCH):
                    for cid, source, vector in self.store.vectors_with_sources(new[i:i + _FETCH]):
                        self._add(cid, source, vector)
            if gone and len(self) * 2 < len(self._members):  # mostly empty rows: rebuild compactly
                self._compact()
            self._matrix = np.vstack(self._vectors) if self._vectors else np.zeros((0, 1), dtype=np.float32)
            self._generation = generation

    def _remove(self, ids) -> None:
        for cid in ids:
            row = self._row_of.pop(cid, None)
            if row is not None:
                self._members[row].discard(cid)
            self._source_of.pop(cid, None)

    def _add(self, cid: str, source: str, vector) -> None:
        self._remove([cid])  # written again (a new version of its document): its vector may have changed
        v = np.asarray(vector, dtype=np.float32)
        norm = float(np.linalg.norm(v))
        v = v / norm if norm > 0 else v
        key = v.tobytes()
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self._vectors)
            self._vectors.append(v)
            self._members.append(set())
        self._members[row].add(cid)
        self._row_of[cid] = row
        self._source_of[cid] = source

    def _compact(self) -> None:
        keep = [r for r, m in enumerate(self._members) if m]
        self._vectors = [self._vectors[r] for r in keep]
        self._members = [self._members[r] for r in keep]
        self._rows = {v.tobytes(): i for i, v in enumerate(self._vectors)}
        self._row_of = {cid: i for i, m in enumerate(self._members) for cid in m}

    def nearest(self, embedding, n: int, sources: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """(chunk_id, cosine similarity) of the `n` nearest distinct vectors, best first: one chunk each
        (the smallest id among those in `sources`, when given)."""
        self.refresh()
        with self._lock:
            matrix, members, source_of = self._matrix, self._members, self._source_of
            if matrix is None or not len(matrix) or n <= 0:
                return []
            q = np.asarray(embedding, dtype=np.float32)
            q = q / (float(np.linalg.norm(q)) or 1.0)
            scores = matrix @ q
            allowed = set(sources) if sources else None
            if allowed is not None or len(self) < len(members):
                ok = np.fromiter((any(allowed is None or source_of.get(c) in allowed for c in m) for m in members),
                                 dtype=bool, count=len(members))
                scores = np.where(ok, scores, -np.inf)
            n = min(n, int(np.isfinite(scores).sum()))
            if n <= 0:
                return []
            top = np.argpartition(-scores, n - 1)[:n]
            top = top[np.argsort(-scores[top], kind="stable")]
            out = []
            for row in top:
                chosen = min(c for c in members[row] if allowed is None or source_of.get(c) in allowed)
                out.append((chosen, float(scores[row])))
            return out
