"""Hybrid retrieval: dense (Chroma) + lexical (BM25), fused.

Each retriever proposes `candidates` chunks: dense by the chunk's own vector,
dense by its best-matching sentence (the sentence view, `rag.index.sentence_view`), and
BM25. The default fusion is a convex combination of min-max normalised scores,
w_d * dense' + w_s * sentence' + w_b * bm25' (weights normalised to sum 1 over
the rankings that returned anything): unlike reciprocal-rank fusion it keeps
*how much* better the top hit is, which is what wins at k=1 (ablation in
evals/README.md).
Weighted reciprocal-rank fusion, sum_i w_i / (rrf_k + rank_i), is available
as `fusion = "rrf"`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from rag.core.types import Chunk

MODES = ("hybrid", "dense", "bm25")


@dataclass
class Retrieval:
    """Fused results plus what abstention and evaluation need to know about them."""

    chunks: list[Chunk]
    dense_similarity: dict[str, float] = field(default_factory=dict)  # chunk_id -> cosine similarity
    bm25_score: dict[str, float] = field(default_factory=dict)

    @property
    def best_similarity(self) -> float:
        return max(self.dense_similarity.values(), default=0.0)


def convex_fuse(scored: list[tuple[list[tuple[str, float]], float]]) -> list[tuple[str, float]]:
    """Convex combination of min-max normalised scores: [([(id, score), ...], weight), ...].

    A single item normalises to 1.0. A list of several items that all tie cannot tell them apart
    (e.g. many identical chunks): like an empty list it gives its weight to the other rankings, and its
    items join with nothing from it, so a degenerate side cannot outvote the informative one.
    """
    def informative(items) -> bool:
        return bool(items) and (len(items) == 1 or max(v for _, v in items) - min(v for _, v in items) > 1e-12)

    total = sum(w for items, w in scored if w > 0 and informative(items)) or 1.0
    fused: dict[str, float] = {}
    for items, weight in scored:
        if weight <= 0 or not items:
            continue
        if not informative(items):
            for cid, _ in items:
                fused.setdefault(cid, 0.0)
            continue
        values = [v for _, v in items]
        lo, hi = min(values), max(values)
        for cid, value in items:
            norm = (value - lo) / (hi - lo) if hi - lo > 1e-12 else 1.0
            fused[cid] = fused.get(cid, 0.0) + weight / total * norm
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def fuse(rankings: list[tuple[list[str], float]], rrf_k: int) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion of id rankings: [(ids best first, weight), ...]."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        if weight <= 0:
            continue
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (rrf_k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class HybridRetriever:
    """Searches one collection; `mode` picks dense, bm25 or hybrid."""

    def __init__(self, store, lexical, embeddings, settings):
        self.store = store
        self.lexical = lexical
        self.embeddings = embeddings
        self.settings = settings  # RetrievalSettings
        self._exact = None  # rag.index.exact.DistinctVectors, made on first use

    def warm(self) -> None:
        """Read what the first search would (the vectors of exact dense search), so that it does not wait."""
        limit = self.settings.exact_max_chunks
        if limit and self.store.count() <= limit:
            self.dense([0.0] * self.store.dimension, 1, None)

    def dense(self, vector, n: int, sources: list[str] | None) -> list[tuple[str, float]]:
        """The `n` chunks nearest to `vector`: exactly, one per distinct vector, up to `exact_max_chunks`
        chunks (rag.index.exact); beyond, from Chroma's approximate index."""
        limit = self.settings.exact_max_chunks
        if limit and self.store.count() <= limit:
            if self._exact is None:
                from rag.index.exact import DistinctVectors

                self._exact = DistinctVectors(self.store)
            return self._exact.nearest(vector, n, sources)
        return self.store.nearest(vector, n, sources)

    def ensure_lexical_current(self) -> None:
        """Bring BM25 up to the store when another writer changed it (see `LexicalIndex.sync`)."""
        self.lexical.sync(self.store, index_text=index_text)

    def search(self, query: str, k: int | None = None, *, sources: Iterable[str] | None = None,
               mode: str | None = None) -> Retrieval:
        k = k or self.settings.k
        mode = mode or self.settings.mode
        if mode not in MODES:
            from rag.core.errors import ConfigError

            raise ConfigError(f"unknown retrieval mode {mode!r}: use one of {', '.join(MODES)}")
        sources = list(sources) if sources else None
        n = max(self.settings.candidates, k)
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        by_sentence: list[tuple[str, float]] = []
        if mode in ("dense", "hybrid"):
            vector = self.embeddings.embed_query(query)
            dense = self.dense(vector, n, sources)
            sentences = getattr(self.store, "sentences", None)
            if mode == "hybrid" and sentences is not None and self.settings.sentence_weight > 0:
                by_sentence = sentences.nearest(vector, n, sources)
        if mode in ("bm25", "hybrid"):
            self.ensure_lexical_current()
            lexical = self.lexical.search(query, n, sources)
        similarity = dict(dense)
        bm25 = dict(lexical)
        if mode == "dense":
            ranked = dense
        elif mode == "bm25":
            ranked = lexical
        elif self.settings.fusion == "rrf":
            ranked = fuse([([cid for cid, _ in dense], self.settings.dense_weight),
                           ([cid for cid, _ in by_sentence], self.settings.sentence_weight),
                           ([cid for cid, _ in lexical], self.settings.bm25_weight)], self.settings.rrf_k)
        else:
            ranked = convex_fuse([(dense, self.settings.dense_weight), (by_sentence, self.settings.sentence_weight),
                                  (lexical, self.settings.bm25_weight)])
        # text and metadata only for the chunks returned: one round trip, unless some are gone (the sentence
        # records of a chunk whose write was interrupted, rag.index.sentence_view): then the next ones take their place
        # A passage whose text (with its title and headings) equals one already returned is skipped: copies of
        # one text add nothing, and would push other passages out of the k.
        chunks: list[Chunk] = []
        texts: set[str] = set()
        at = 0
        while len(chunks) < k and at < len(ranked):
            top = ranked[at:at + k - len(chunks)]
            at += len(top)
            known = {c.chunk_id: c for c in self.store.get([cid for cid, _ in top])}
            for cid, score in top:
                if cid in known and (text := index_text(known[cid])) not in texts:
                    texts.add(text)
                    chunks.append(replace(known[cid], score=score))
        return Retrieval(chunks, similarity, bm25)


def index_text(chunk: Chunk) -> str:
    """What BM25 and the embedder see: the document title and the section's heading path give a passage its topic.

    A paragraph under "4.2 Configuring the network" that never repeats the heading is still found by
    "How do I configure the network?". The stored text (shown and quoted) stays the passage alone.
    """
    head = [part for part in (chunk.title, chunk.section) if part and not chunk.text.startswith(part)]
    return "\n".join([*head, chunk.text])
