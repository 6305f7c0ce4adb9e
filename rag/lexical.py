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
    """A persisted BM25 index of chunk ids; `search` returns (chunk_id, score) pairs."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._sources: list[str] = []
        self._generation: str | None = None
        self._bm25 = None
        self._loaded = False

    # --- persistence ---------------------------------------------------------------------
    @property
    def _tokens_path(self) -> Path:
        return self.directory / "tokens.jsonl"

    @property
    def _meta_path(self) -> Path:
        return self.directory / "meta.json"

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self._meta_path.is_file():
            return
        meta = json.loads(self._meta_path.read_text())
        self._ids, self._sources, self._generation = meta["ids"], meta["sources"], meta["generation"]
        if self._ids:
            import bm25s

            self._bm25 = bm25s.BM25.load(str(self.directory / "bm25"), show_progress=False, verbosity=0)

    def _read_tokens(self) -> dict[str, tuple[str, list[str]]]:
        out: dict[str, tuple[str, list[str]]] = {}
        if self._tokens_path.is_file():
            with open(self._tokens_path, encoding="utf-8") as fh:
                for line in fh:
                    row = json.loads(line)
                    out[row[0]] = (row[1], row[2])
        return out

    def _write(self, rows: dict[str, tuple[str, list[str]]], generation: str) -> None:
        import bm25s

        self.directory.mkdir(parents=True, exist_ok=True)
        ids = sorted(rows)
        bm25 = None
        if ids:
            bm25 = bm25s.BM25()
            # an empty token list would make bm25s drop the row; keep rows aligned with ids
            bm25.index([rows[i][1] or ["\x00"] for i in ids], show_progress=False)
            bm25.save(str(self.directory / "bm25"), show_progress=False)
        tmp = self._tokens_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for i in ids:
                fh.write(json.dumps([i, rows[i][0], rows[i][1]], ensure_ascii=False) + "\n")
        tmp.replace(self._tokens_path)
        meta_tmp = self._meta_path.with_suffix(".tmp")
        meta_tmp.write_text(json.dumps({"ids": ids, "sources": [rows[i][0] for i in ids], "generation": generation}))
        meta_tmp.replace(self._meta_path)  # written last: it is what marks the index current
        self._ids, self._sources, self._generation, self._bm25 = ids, [rows[i][0] for i in ids], generation, bm25
        self._loaded = True

    # --- updates -----------------------------------------------------------------------
    def generation(self) -> str | None:
        with self._lock:
            self._load()
            return self._generation

    def update(self, added: Iterable[tuple[str, str, str]], removed: Iterable[str], generation: str) -> None:
        """Apply (chunk_id, source, text) additions and id removals, then persist."""
        with self._lock:
            rows = self._read_tokens()
            for cid in removed:
                rows.pop(cid, None)
            for cid, source, text in added:
                rows[cid] = (source, tokenize(text))
            self._write(rows, generation)

    def rebuild(self, items: Iterable[tuple[str, str, str]], generation: str) -> None:
        """Replace the whole index with (chunk_id, source, text) items."""
        with self._lock:
            self._write({cid: (source, tokenize(text)) for cid, source, text in items}, generation)

    # --- search ------------------------------------------------------------------------
    def search(self, query: str, n: int, sources: Iterable[str] | None = None) -> list[tuple[str, float]]:
        with self._lock:
            self._load()
            if self._bm25 is None:
                return []
            tokens = [t for t in tokenize(query) if t in self._bm25.vocab_dict]
            if not tokens:
                return []
            scores = self._bm25.get_scores(tokens)
            if sources:
                allowed = set(sources)
                scores = np.where([s in allowed for s in self._sources], scores, 0.0)
            n = min(n, len(scores))
            top = np.argpartition(-scores, n - 1)[:n]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(self._ids[i], float(scores[i])) for i in top if scores[i] > 0]
