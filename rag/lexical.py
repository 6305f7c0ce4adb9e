"""BM25 over the stored chunks (bm25s), persisted beside the store and kept in step with it.

The index is derived data: it records the store's generation stamp, is updated
incrementally by ingest (only new chunks are tokenized), and is rebuilt from the
store when the stamps differ (e.g. another client wrote to a shared Chroma server).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# NLTK's English list: function words carry no topical signal for BM25.
STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between
both but by can couldn't did didn't do does doesn't doing don't down during each few for from further had hadn't
has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll
i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only
or other ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some such than
that that's the their theirs them themselves then there there's these they they'd they'll they're they've this
those through to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when when's
where where's which while who who's whom why why's with won't would wouldn't you you'd you'll you're you've your
yours yourself yourselves s t d ll m o re ve y also
""".split())
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_stemmer_lock = threading.Lock()
_stemmer = None


def _stem(words: list[str]) -> list[str]:
    global _stemmer
    with _stemmer_lock:
        if _stemmer is None:
            import Stemmer

            _stemmer = Stemmer.Stemmer("english")
        return _stemmer.stemWords(words)


def tokenize(text: str) -> list[str]:
    """Lower-case, split on non-letters/digits, drop stopwords, Snowball-stem; CJK as single characters."""
    words: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            words.extend(ch for ch in word if not ch.isspace())
        elif word not in STOPWORDS:
            words.append(word)
    return _stem(words)


class LexicalIndex:
    """A persisted BM25 index of chunk ids; `search` returns (chunk_id, score) pairs.

    Every write makes a new version folder (`v-*`: the bm25s arrays, the tokens
    and `meta.json` with ids and generation) and then switches the `CURRENT`
    pointer to it with an atomic rename, so a reader in another process always
    loads one whole version: never old ids with new score arrays. Writers take
    a file lock; the previous version is kept for readers still loading it.
    """

    def __init__(self, directory: Path, *, writer_lock: Path | None = None):
        self.directory = Path(directory)
        self.writer_lock = writer_lock  # the ingest lock: held while another writer keeps this index current
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._sources: list[str] = []
        self._generation: str | None = None
        self._version: str | None = None
        self._tokens: dict[str, tuple[str, list[str]]] | None = None
        self._bm25 = None

    # --- persistence ---------------------------------------------------------------------
    @property
    def _pointer(self) -> Path:
        return self.directory / "CURRENT"

    def _current_name(self) -> str | None:
        try:
            return self._pointer.read_text().strip() or None
        except FileNotFoundError:
            return None

    def refresh(self) -> None:
        """Load the newest version on disk if it is not the one in memory."""
        with self._lock:
            for _attempt in range(5):
                name = self._current_name()
                if name == self._version:
                    return
                if name is None:
                    self._set([], [], None, None, None, None)
                    return
                try:
                    self._load(name)
                    return
                except (OSError, json.JSONDecodeError, ValueError):
                    continue  # replaced and removed while we read it: read the pointer again
            raise RuntimeError(f"BM25 index in {self.directory} keeps changing while it is read")

    def _load(self, name: str) -> None:
        folder = self.directory / name
        meta = json.loads((folder / "meta.json").read_text())
        bm25 = None
        if meta["ids"]:
            import bm25s

            bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False, verbosity=0)
        self._set(meta["ids"], meta["sources"], meta["generation"], name, bm25, None)

    def _set(self, ids, sources, generation, version, bm25, tokens) -> None:
        self._ids, self._sources, self._generation = ids, sources, generation
        self._version, self._bm25, self._tokens = version, bm25, tokens

    def _rows(self) -> dict[str, tuple[str, list[str]]]:
        """(source, tokens) per chunk id of the loaded version."""
        if self._tokens is None:
            out: dict[str, tuple[str, list[str]]] = {}
            if self._version is not None:
                with open(self.directory / self._version / "tokens.jsonl", encoding="utf-8") as fh:
                    for line in fh:
                        row = json.loads(line)
                        out[row[0]] = (row[1], row[2])
            self._tokens = out
        return self._tokens

    def _file_lock(self):
        from filelock import FileLock

        self.directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.directory / ".write.lock"), timeout=600)

    def _write(self, rows: dict[str, tuple[str, list[str]]], generation: str) -> None:
        """Persist `rows` as a new version and make it current (caller holds both locks)."""
        import shutil
        import time
        import uuid

        import bm25s

        name = f"v-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        folder = self.directory / name
        folder.mkdir(parents=True)
        ids = sorted(rows)
        bm25 = None
        if ids:
            bm25 = bm25s.BM25()
            # an empty token list would make bm25s drop the row; keep rows aligned with ids
            bm25.index([rows[i][1] or ["\x00"] for i in ids], show_progress=False)
            bm25.save(str(folder / "bm25"), show_progress=False)
        with open(folder / "tokens.jsonl", "w", encoding="utf-8") as fh:
            for i in ids:
                fh.write(json.dumps([i, rows[i][0], rows[i][1]], ensure_ascii=False) + "\n")
        sources = [rows[i][0] for i in ids]
        (folder / "meta.json").write_text(json.dumps({"ids": ids, "sources": sources, "generation": generation}))
        previous = self._current_name()
        tmp = self.directory / f"CURRENT.{name}.tmp"
        tmp.write_text(name)
        tmp.replace(self._pointer)  # the switch: readers see the old version or the new one, whole
        self._set(ids, sources, generation, name, bm25, rows)
        for old in self.directory.iterdir():  # keep the previous version for readers still loading it
            if old.name not in (name, previous) and (old.name.startswith("v-") or old.name.endswith(".tmp")):
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        for legacy in ("meta.json", "tokens.jsonl", "bm25"):  # the unversioned layout of earlier releases
            path = self.directory / legacy
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

    # --- updates -----------------------------------------------------------------------
    def generation(self) -> str | None:
        """The store generation the newest version on disk was built from (None: no index)."""
        with self._lock:
            self.refresh()
            return self._generation

    @property
    def exists(self) -> bool:
        with self._lock:
            self.refresh()
            return self._version is not None

    def postings(self) -> dict[str, tuple[str, list[str]]]:
        """(source, tokens) per chunk id of the current version: what `rag check` compares."""
        with self._lock:
            self.refresh()
            return dict(self._rows())

    def update(self, added: Iterable[tuple[str, str, str]], removed: Iterable[str], generation: str,
               *, base: str | None = None) -> bool:
        """Apply (chunk_id, source, text) additions and id removals, then persist.

        With `base`, only if the index on disk was built from that generation
        (else nothing is written and False is returned: the caller rebuilds).
        """
        added = [(cid, source, tokenize(text)) for cid, source, text in added]  # outside the locks
        with self._lock, self._file_lock():
            self.refresh()
            if base is not None and self._generation != base:
                return False
            rows = dict(self._rows())
            for cid in removed:
                rows.pop(cid, None)
            for cid, source, tokens in added:
                rows[cid] = (source, tokens)
            self._write(rows, generation)
            return True

    def rebuild(self, items: Iterable[tuple[str, str, str]], generation: str) -> None:
        """Replace the whole index with (chunk_id, source, text) items."""
        rows = {cid: (source, tokenize(text)) for cid, source, text in items}
        with self._lock, self._file_lock():
            self._write(rows, generation)

    def writer_active(self) -> bool:
        """Whether an ingest holds the writer lock (it keeps this index current as it goes)."""
        if self.writer_lock is None or not self.writer_lock.exists():
            return False
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.writer_lock), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False

    def sync(self, store, *, index_text) -> None:
        """Bring the index up to the store's generation, cheaply.

        Reload the version another process saved if it is current; while an
        ingest holds the writer lock, keep using the (consistent, slightly
        older) version it last saved; else catch up with the store: fetch and
        tokenize only the chunks added since, drop the removed ones.
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
            rows = dict(self._rows())
            for cid in set(rows) - ids:
                del rows[cid]
            new = sorted(ids - set(rows))
            for i in range(0, len(new), 1000):
                for chunk in store.get(new[i:i + 1000]):
                    rows[chunk.chunk_id] = (chunk.source, tokenize(index_text(chunk)))
            # written under the generation read first: a write during the scan leaves it stale, not wrong
            self._write(rows, generation)

    # --- search ------------------------------------------------------------------------
    def search(self, query: str, n: int, sources: Iterable[str] | None = None) -> list[tuple[str, float]]:
        with self._lock:
            self.refresh()
            if self._bm25 is None:
                return []
            bm25, ids, srcs = self._bm25, self._ids, self._sources
            tokens = [t for t in tokenize(query) if t in bm25.vocab_dict]
            if not tokens:
                return []
            scores = bm25.get_scores(tokens)
            if sources:
                allowed = set(sources)
                scores = np.where([s in allowed for s in srcs], scores, 0.0)
            n = min(n, len(scores))
            top = np.argpartition(-scores, n - 1)[:n]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(ids[i], float(scores[i])) for i in top if scores[i] > 0]
