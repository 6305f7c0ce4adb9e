"""BM25 over the stored chunks, persisted beside the store and kept in step with it.

The index is derived data: it records the store's generation stamp, is updated
incrementally by ingest, and catches up with the store when the stamps differ
(e.g. another process or another client of a shared Chroma server wrote).

It is a small log-structured index: each ingest writes one immutable segment
(the term frequencies of its new chunks, term-major) and marks replaced or
removed chunks as deleted; segments of similar size are merged, so adding 1% to
a large collection costs about 1% of a rebuild. Scores are computed at query
time from the live documents' statistics, with the formula bm25s uses
(Lucene's BM25, k1=1.5, b=0.75), so they equal a full re-index's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rag.text.tokens import search_tokens

_K1, _B = 1.5, 0.75  # bm25s' defaults
_FORMAT = 5  # 3: terms with Latin accents folded (`fold_latin`); 4: "100Hz" as "100" and "hz"; 5:
# identifiers with underscores also whole (`search_tokens`)
_SEP = "\0"  # never inside a term, a chunk id or a path


def _join(items: list[str]) -> np.ndarray:
    return np.frombuffer(_SEP.join(items).encode("utf-8"), dtype=np.uint8)


def _split(arr: np.ndarray, n: int) -> list[str]:
    return arr.tobytes().decode("utf-8").split(_SEP) if n else []


class _Segment:
    """Term frequencies of some chunks, term-major: the postings of term t are docs/tfs[indptr[t]:indptr[t+1]]."""

    def __init__(self, name: str, ids: list[str], sources: list[str], lengths: np.ndarray,
                 terms: list[str], indptr: np.ndarray, docs: np.ndarray, tfs: np.ndarray):
        self.name, self.ids, self.sources, self.lengths = name, ids, sources, lengths
        self.terms = {t: i for i, t in enumerate(terms)}
        self.term_list, self.indptr, self.docs, self.tfs = terms, indptr, docs, tfs
        self.alive = np.ones(len(ids), dtype=bool)
        self._signatures: np.ndarray | None = None

    @property
    def signatures(self) -> np.ndarray:
        """A 64-bit fingerprint of each document's bag of words (equal for identical texts), from the postings."""
        if self._signatures is None:
            term_hash = np.array([int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
                                  for t in self.term_list], dtype=np.uint64)
            per_term = np.diff(self.indptr)
            values = np.repeat(term_hash, per_term) * (2 * self.tfs.astype(np.uint64) + 1)
            values ^= values >> np.uint64(29)
            sig = self.lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            np.add.at(sig, self.docs, values)
            self._signatures = sig
        return self._signatures

    @classmethod
    def build(cls, name: str, rows: list[tuple[str, str, list[str]]]) -> "_Segment":
        vocab: dict[str, int] = {}
        term_ids: list[int] = []
        docs: list[int] = []
        tfs: list[int] = []
        for d, (_, _, tokens) in enumerate(rows):
            for term, tf in Counter(tokens).items():
                term_ids.append(vocab.setdefault(term, len(vocab)))
                docs.append(d)
                tfs.append(tf)
        lengths = np.array([len(r[2]) for r in rows], dtype=np.int32)
        return cls._from_postings(name, [r[0] for r in rows], [r[1] for r in rows], lengths, list(vocab),
                                  np.array(term_ids, dtype=np.int64), np.array(docs, dtype=np.int32),
                                  np.array(tfs, dtype=np.float32))

    @classmethod
    def _from_postings(cls, name, ids, sources, lengths, terms, term_ids, docs, tfs) -> "_Segment":
        order = np.argsort(term_ids, kind="stable")
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_ids, minlength=len(terms)), out=indptr[1:])
        return cls(name, ids, sources, lengths, terms, indptr, docs[order], tfs[order])

    @classmethod
    def merge(cls, name: str, segments: list["_Segment"]) -> "_Segment":
        """One segment holding the live documents of `segments` (deleted ones are dropped)."""
        vocab: dict[str, int] = {}
        ids: list[str] = []
        sources: list[str] = []
        lengths, term_ids, docs, tfs = [], [], [], []
        for seg in segments:
            new_doc = np.cumsum(seg.alive, dtype=np.int64) - 1 + len(ids)  # old local index -> merged index
            remap = np.array([vocab.setdefault(t, len(vocab)) for t in seg.term_list], dtype=np.int64)
            per_term = np.diff(seg.indptr)
            keep = seg.alive[seg.docs]
            term_ids.append(np.repeat(remap, per_term)[keep])
            docs.append(new_doc[seg.docs[keep]].astype(np.int32))
            tfs.append(seg.tfs[keep])
            ids += [i for i, a in zip(seg.ids, seg.alive) if a]
            sources += [s for s, a in zip(seg.sources, seg.alive) if a]
            lengths.append(seg.lengths[seg.alive])
        cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)  # noqa: E731
        return cls._from_postings(name, ids, sources, cat(lengths, np.int32), list(vocab), cat(term_ids, np.int64),
                                  cat(docs, np.int32), cat(tfs, np.float32))

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        t = self.terms.get(term)
        if t is None:
            return None
        lo, hi = self.indptr[t], self.indptr[t + 1]
        return self.docs[lo:hi], self.tfs[lo:hi]

    def save(self, directory: Path) -> None:
        tmp = directory / f".{self.name}.{os.getpid()}.tmp.npz"
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=_join(self.ids), sources=_join(self.sources), terms=_join(self.term_list),
                     lengths=self.lengths, indptr=self.indptr, docs=self.docs, tfs=self.tfs)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(directory / f"{self.name}.npz")

    @classmethod
    def load(cls, directory: Path, name: str) -> "_Segment":
        with np.load(directory / f"{name}.npz") as z:
            n = len(z["lengths"])
            return cls(name, _split(z["ids"], n), _split(z["sources"], n), z["lengths"],
                       _split(z["terms"], len(z["indptr"]) - 1), z["indptr"], z["docs"], z["tfs"])


def lock_held(path: Path) -> bool:
    """Whether another holder has the file lock at `path` right now (probed without waiting)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


class LexicalIndex:
    """A persisted BM25 index of chunk ids; `search` returns (chunk_id, score) pairs.

    Readers in other processes always see one whole state: segment files are
    immutable and written before `meta.json` (which names the live segments and
    the deleted rows) is atomically replaced; a commit keeps the previous
    state's segment files, so a reader that read the old `meta.json` still finds
    them. Every read checks whether `meta.json` was replaced (one `stat`) and
    reloads. Writers take a file lock and re-read the newest state first, so
    updates from several processes compose.
    """

    def __init__(self, directory: Path, *, writer_lock: Path | None = None):
        self.directory = Path(directory)
        self.writer_lock = writer_lock  # the ingest lock: held while another writer keeps this index current
        self._lock = threading.RLock()
        self._segments: list[_Segment] = []
        self._where: dict[str, tuple[_Segment, int]] = {}
        self._generation: str | None = None
        self._stamp: tuple | None = None  # (inode, mtime, size) of the meta.json in memory; None: none read

    # --- persistence ---------------------------------------------------------------------
    @property
    def _meta_path(self) -> Path:
        return self.directory / "meta.json"

    def refresh(self) -> None:
        """Load the newest state on disk if it is not the one in memory."""
        with self._lock:
            for _attempt in range(5):
                try:
                    st = self._meta_path.stat()
                except FileNotFoundError:
                    if self._stamp is not None:
                        self._set([], None)
                        self._stamp = None
                    return
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if stamp == self._stamp:
                    return
                try:
                    meta = json.loads(self._meta_path.read_text())
                    if meta.get("format") != _FORMAT:  # an older layout: stale, rebuilt from the store on first use
                        self._set([], None)
                        self._stamp = stamp
                        return
                    segments = []
                    for entry in meta["segments"]:
                        seg = self._cached_segment(entry["name"])
                        seg.alive[:] = True
                        seg.alive[np.asarray(entry["deleted"], dtype=np.int64)] = False
                        segments.append(seg)
                except FileNotFoundError:
                    continue  # replaced while we read it: read meta.json again
                except (OSError, ValueError, KeyError) as exc:  # damaged: treat as missing, it is rebuilt
                    import logging

                    logging.getLogger(__name__).warning("BM25 index in %s unreadable (%s); it will be rebuilt",
                                                        self.directory, exc)
                    self._set([], None)
                    self._stamp = stamp
                    return
                self._set(segments, meta["generation"])
                self._stamp = stamp
                return
            raise RuntimeError(f"BM25 index in {self.directory} keeps changing while it is read")

    def _cached_segment(self, name: str) -> _Segment:
        for seg in self._segments:  # segments are immutable on disk: reuse what is loaded (a fresh alive mask)
            if seg.name == name:
                return _Segment(seg.name, seg.ids, seg.sources, seg.lengths, seg.term_list, seg.indptr, seg.docs,
                                seg.tfs)
        return _Segment.load(self.directory, name)

    def _set(self, segments: list[_Segment], generation: str | None) -> None:
        self._segments, self._generation = segments, generation
        self._where = {cid: (seg, i) for seg in segments for i, cid in enumerate(seg.ids) if seg.alive[i]}

    def _file_lock(self):
        from filelock import FileLock

        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.directory / ".write.lock"), timeout=600)

    def _commit(self, segments: list[_Segment], generation: str) -> None:
        """Persist (caller holds both locks): new segment files, then meta.json, then remove the segment
        files that neither this state nor the previous one uses."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for seg in segments:
            if not (self.directory / f"{seg.name}.npz").is_file():
                seg.save(self.directory)
        previous = {f"{s.name}.npz" for s in self._segments}
        meta = {"format": _FORMAT, "generation": generation,
                "segments": [{"name": s.name, "deleted": np.flatnonzero(~s.alive).tolist()} for s in segments]}
        tmp = self._meta_path.with_name(f".meta.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "w") as fh:
            fh.write(json.dumps(meta))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self._meta_path)  # the switch: readers see the old state or the new one, whole
        keep = {f"{s.name}.npz" for s in segments} | previous
        for path in self.directory.glob("*.npz"):  # merged or replaced segments
            if path.name not in keep:
                path.unlink(missing_ok=True)
        (self.directory / "tokens.jsonl").unlink(missing_ok=True)  # the layouts before segments
        shutil.rmtree(self.directory / "bm25", ignore_errors=True)
        self._set(segments, generation)
        st = self._meta_path.stat()
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)

    # --- updates -----------------------------------------------------------------------
    def generation(self) -> str | None:
        """The store generation the newest state on disk was built from (None: no index)."""
        with self._lock:
            self.refresh()
            return self._generation

    @property
    def exists(self) -> bool:
        with self._lock:
            self.refresh()
            return self._generation is not None

    def postings(self) -> dict[str, tuple[str, list[str]]]:
        """(source, sorted terms with repeats) per live chunk id: what `rag check` compares."""
        with self._lock:
            self.refresh()
            out: dict[str, tuple[str, list[str]]] = {}
            for seg in self._segments:
                terms: list[list[str]] = [[] for _ in seg.ids]
                counts = np.diff(seg.indptr)
                for t, term in enumerate(seg.term_list):
                    lo = seg.indptr[t]
                    for d, tf in zip(seg.docs[lo:lo + counts[t]], seg.tfs[lo:lo + counts[t]]):
                        terms[d].extend([term] * int(tf))
                for i, cid in enumerate(seg.ids):
                    if seg.alive[i]:
                        out[cid] = (seg.sources[i], sorted(terms[i]))
            return out

    def update(self, added: Iterable[tuple[str, str, str]], removed: Iterable[str], generation: str,
               *, base: str | None = None) -> bool:
        """Apply (chunk_id, source, text) additions and id removals, then persist.

        Costs what the new chunks cost to tokenize, plus an occasional merge of
        segments of similar size (amortised: each chunk is merged O(log n) times).
        With `base`, only if the index on disk was built from that generation
        (else nothing is written and False is returned: the caller rebuilds).
        """
        rows = {cid: (cid, source, search_tokens(text)) for cid, source, text in added}  # outside the locks
        removed = list(removed)
        with self._lock, self._file_lock():
            self.refresh()
            if base is not None and self._generation != base:
                return False
            self._apply(rows, removed, generation)
            return True

    def _apply(self, rows: dict[str, tuple[str, str, list[str]]], removed: Iterable[str], generation: str) -> None:
        segments = [_Segment(s.name, s.ids, s.sources, s.lengths, s.term_list, s.indptr, s.docs, s.tfs)
                    for s in self._segments]  # new alive masks: the state in memory stays whole until the commit
        for new, old in zip(segments, self._segments):
            new.alive[:] = old.alive
        where = {cid: (seg, i) for seg in segments for i, cid in enumerate(seg.ids) if seg.alive[i]}
        for cid in [*removed, *rows]:  # an id added again replaces its earlier version
            hit = where.get(cid)
            if hit is not None:
                hit[0].alive[hit[1]] = False
        segments = [s for s in segments if s.alive.any()]
        if rows:
            segments.append(_Segment.build(uuid.uuid4().hex, list(rows.values())))
        self._commit(self._compact(segments), generation)

    def rebuild(self, items: Iterable[tuple[str, str, str]], generation: str) -> None:
        """Replace the whole index with (chunk_id, source, text) items."""
        rows = {cid: (cid, source, search_tokens(text)) for cid, source, text in items}
        with self._lock, self._file_lock():
            self.refresh()
            segments = [_Segment.build(uuid.uuid4().hex, list(rows.values()))] if rows else []
            self._commit(segments, generation)

    def writer_active(self) -> bool:
        """Whether an ingest holds the writer lock (it keeps this index current as it goes)."""
        return self.writer_lock is not None and self.writer_lock.exists() and lock_held(self.writer_lock)

    def sync(self, store, *, index_text) -> None:
        """Bring the index up to the store's generation, cheaply.

        Reload the state another process saved if it is current; while an ingest
        holds the writer lock, keep using the (consistent, slightly older) state it
        last saved; else catch up with the store: fetch and tokenize only the
        chunks added since, drop the removed ones.
        """
        generation = store.generation
        if self.generation() == generation:
            return
        if self.exists and self.writer_active():
            return
        with self._lock, self._file_lock():
            self.refresh()
            if self._generation == generation:
                return
            ids = store.all_ids()
            have = set(self._where)
            rows = {}
            new = sorted(ids - have)
            for i in range(0, len(new), 1000):
                for chunk in store.get(new[i:i + 1000]):
                    rows[chunk.chunk_id] = (chunk.chunk_id, chunk.source, search_tokens(index_text(chunk)))
            # written under the generation read first: a write during the scan leaves it stale, not wrong
            self._apply(rows, sorted(have - ids), generation)

    @staticmethod
    def _compact(segments: list[_Segment]) -> list[_Segment]:
        """Merge the newest segment into the one before while that one is under twice its size
        (a binary-counter schedule), and everything once a quarter of the documents are deleted."""
        total = sum(len(s.ids) for s in segments)
        dead = sum(int((~s.alive).sum()) for s in segments)
        if len(segments) > 1 and dead * 4 > total:
            return [_Segment.merge(uuid.uuid4().hex, segments)]
        segments = list(segments)
        while len(segments) > 1 and segments[-2].alive.sum() <= 2 * segments[-1].alive.sum():
            segments[-2:] = [_Segment.merge(uuid.uuid4().hex, segments[-2:])]
        return segments

    # --- search ------------------------------------------------------------------------
    def search(self, query: str, n: int, sources: Iterable[str] | None = None) -> list[tuple[str, float]]:
        with self._lock:
            self.refresh()
            alive = [s for s in self._segments if s.alive.any()]
            if not alive:
                return []
            counts = [int(s.alive.sum()) for s in alive]
            total = sum(counts)
            avgdl = sum(float(s.lengths[s.alive].sum()) for s in alive) / total
            offsets = np.cumsum([0] + [len(s.ids) for s in alive])
            scores = np.zeros(offsets[-1], dtype=np.float64)
            hit = False
            for term, times in Counter(search_tokens(query)).items():
                found = [(i, p) for i, s in enumerate(alive) if (p := s.postings(term)) is not None]
                live = [(i, docs[s_alive], tfs[s_alive]) for i, (docs, tfs) in found
                        if (s_alive := alive[i].alive[docs]).any()]
                df = sum(len(docs) for _, docs, _ in live)
                if not df:
                    continue
                hit = True
                idf = np.log(1 + (total - df + 0.5) / (df + 0.5))
                for i, docs, tfs in live:
                    dl = alive[i].lengths[docs]
                    tfc = tfs / (_K1 * ((1 - _B) + _B * dl / avgdl) + tfs)
                    scores[offsets[i] + docs] += times * idf * tfc
            if not hit:
                return []
            if sources:
                allowed = set(sources)
                mask = np.fromiter((src in allowed for s in alive for src in s.sources), dtype=bool, count=len(scores))
                scores = np.where(mask, scores, 0.0)
            top = _distinct_top(scores, np.concatenate([s.signatures for s in alive]), n)
            out = []
            for g in top:
                i = int(np.searchsorted(offsets, g, side="right") - 1)
                out.append((alive[i].ids[g - offsets[i]], float(scores[g])))
            return out

    def size_bytes(self) -> int:
        """Bytes on disk (for benchmarks)."""
        return sum(p.stat().st_size for p in self.directory.glob("*") if p.is_file()) if self.directory.is_dir() else 0


def _distinct_top(scores: np.ndarray, signatures: np.ndarray, n: int) -> list[int]:
    """The positions of the `n` best positive scores, best first, one per distinct text (`signatures`).

    Identical chunks (a log of one repeated line) score alike: without this they would fill every
    candidate slot and crowd out the rest. The first of each text stands for all its copies.
    """
    work = np.where(scores > 0, scores, 0.0)
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < n:
        left = int(np.count_nonzero(work))
        if not left:
            break
        m = min(n, left)
        top = np.argpartition(-work, m - 1)[:m]
        top = top[np.argsort(-work[top], kind="stable")]
        repeated = False
        for g in top:
            sig = int(signatures[g])
            if sig in seen:
                repeated = True
                continue
            seen.add(sig)
            chosen.append(int(g))
            if len(chosen) == n:
                break
        work[top] = 0.0
        if repeated:  # drop every other copy of the texts already taken, not just those seen so far
            work[np.isin(signatures, np.fromiter(seen, dtype=np.uint64, count=len(seen)))] = 0.0
    return chosen
