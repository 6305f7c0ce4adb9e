"""The sentence view: a vector for every sentence of every chunk, in a sibling collection.

A chunk's vector is the mean of its sentences' meaning, so the one sentence that
answers a question is diluted by its neighbours. Hybrid retrieval can therefore
also rank chunks by their best-matching sentence (`rag.index.retrieve`), when
`retrieval.sentence_weight` is above 0 (off by default). On squad-dev-mini
(`python bench/sentences.py`, one index, side by side) it lifted MRR from 0.881 to
0.890 on the dev split and from 0.870 to 0.891 on the test split (recall@1 0.809 ->
0.816 and 0.799 -> 0.842), for about twice the embedding work at ingest and a
search p50 1.17x as long. The gain on dev, where settings are chosen, is one
question at rank 1, too little to double every user's ingest time by default.

The vectors live in their own Chroma collection, `<collection>__sentences`, one
record per sentence with its chunk id and source in the metadata and no text,
so they work the same embedded and on a Chroma server. `ChunkStore` writes them
before their chunk's own record and deletes them after it, and a finished
document write removes every other sentence record of that document. So an
interrupted write leaves at worst sentences of chunks that are not stored
(search skips them; the next write of the document, or `rag check --repair`,
removes them), never a stored chunk without its sentences, which a re-ingest
would not notice. Chunks stored before the sentence view was turned on have
none: `rag check` reports them and `--repair` embeds them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence

from rag.core.types import Chunk
from rag.index.damage import REBUILD_KEY, marked, set_aside, unreadable
from rag.text.sentences import sentence_spans

SUFFIX = "__sentences"
OF_KEY = "rag:sentences_of"
_MIN_CHARS = 4
_PAGE = 5000  # records read per round trip
_DELETE = 500  # ids per delete: SQLite limits the variables of one statement


def sentence_collection(name: str) -> str:
    return f"{name}{SUFFIX}"


def is_sentence_collection(name: str) -> bool:
    return name.endswith(SUFFIX)


def sentence_texts(chunk: Chunk) -> list[str]:
    """The sentences of a chunk's text that get a vector of their own."""
    spans = sentence_spans(chunk.text)
    texts = [chunk.text[s.start:s.end].strip() for s in spans]
    return [t for t in texts if len(t) >= _MIN_CHARS]


def embed_with_sentences(embeddings, texts: Sequence[str], chunks: Sequence[Chunk]):
    """Embed `texts` and every sentence of `chunks` in one call (one batching for both).

    Returns (a vector per text, [the vectors of each chunk's sentences]).
    """
    per_chunk = [sentence_texts(c) for c in chunks]
    flat = list(texts) + [t for ts in per_chunk for t in ts]
    vectors = embeddings.embed_documents(flat) if flat else []
    grouped, at = [], len(texts)
    for ts in per_chunk:
        grouped.append(vectors[at:at + len(ts)])
        at += len(ts)
    return vectors[:len(texts)], grouped


class SentenceVectors:
    """Sentence records of one chunk collection: (chunk id, source, vector) each."""

    def __init__(self, client, chunks_name: str):
        self.name = sentence_collection(chunks_name)
        self._client = client
        self._of = chunks_name
        self._collection = self._open()

    def _open(self, rebuilding: bool = False):
        return self._client.get_or_create_collection(
            self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}},
            metadata={OF_KEY: self._of, **({REBUILD_KEY: True} if rebuilding else {})},
        )

    def unreadable(self) -> str:
        """Chroma's error when it cannot read these records (rag.index.damage.unreadable), else "". Any error of
        Chroma's counts: the view is derived from the chunks, so what cannot be read is embedded again."""
        from chromadb.errors import InternalError

        try:
            return unreadable(self._collection)
        except InternalError as exc:
            return str(exc) or type(exc).__name__

    @property
    def rebuilding(self) -> bool:
        """`reset` began a new collection whose records were not all written yet (`rebuilt` was not called)."""
        return marked(self._client, self.name)

    def reset(self) -> None:
        """Drop every sentence record and start an empty collection, marked as being rebuilt until `rebuilt`
        (when the records cannot be read: Chroma can leave a collection it cannot load after a process is killed
        mid-write). The index's folder is set aside first, then removed (Chroma leaves it behind otherwise)."""
        moved = set_aside(self._client, self._collection)
        self._client.delete_collection(self.name)
        self._collection = self._open(rebuilding=True)
        for folder in moved:
            shutil.rmtree(folder, ignore_errors=True)

    def rebuilt(self) -> None:
        """Every chunk's sentences are written again after `reset`."""
        self._collection.modify(metadata={OF_KEY: self._of, REBUILD_KEY: False})

    def upsert(self, items: Sequence[tuple[str, str, Sequence[Sequence[float]]]]) -> None:
        """Write the sentence vectors of chunks: [(chunk_id, source, [vector per sentence]), ...]."""
        ids, vectors, metas = [], [], []
        for chunk_id, source, chunk_vectors in items:
            for i, vector in enumerate(chunk_vectors):
                ids.append(f"{chunk_id}#{i}")
                vectors.append(list(vector))
                metas.append({"chunk_id": chunk_id, "source": source})
        batch = max(1, min(self._client.get_max_batch_size(), _PAGE))
        for i in range(0, len(ids), batch):
            self._collection.upsert(ids=ids[i:i + batch], embeddings=vectors[i:i + batch],
                                    metadatas=metas[i:i + batch])

    def delete_chunks(self, chunk_ids: Iterable[str]) -> None:
        """Remove the sentence records of these chunks (those it has)."""
        chunk_ids = sorted(set(chunk_ids))
        for i in range(0, len(chunk_ids), _DELETE):
            part = chunk_ids[i:i + _DELETE]
            self._collection.delete(where={"chunk_id": part[0]} if len(part) == 1 else {"chunk_id": {"$in": part}})

    def delete_other(self, source: str, keep: set[str]) -> None:
        """Remove the sentence records of `source` whose chunk is not in `keep` (its finished version)."""
        stale, offset = [], 0
        while True:
            got = self._collection.get(where={"source": source}, include=["metadatas"], limit=_PAGE, offset=offset)
            if not got["ids"]:
                break
            stale += [sid for sid, meta in zip(got["ids"], got["metadatas"]) if meta["chunk_id"] not in keep]
            offset += len(got["ids"])
        for i in range(0, len(stale), _DELETE):
            self._collection.delete(ids=stale[i:i + _DELETE])

    def vectors_of(self, chunk_ids: Iterable[str]) -> dict[str, list[list[float]]]:
        """The stored sentence vectors of some chunks, in sentence order."""
        chunk_ids = sorted(set(chunk_ids))
        found: dict[str, dict[int, list[float]]] = {}
        for i in range(0, len(chunk_ids), _DELETE):
            part = chunk_ids[i:i + _DELETE]
            got = self._collection.get(where={"chunk_id": part[0]} if len(part) == 1 else {"chunk_id": {"$in": part}},
                                       include=["metadatas", "embeddings"])
            for sid, meta, vector in zip(got["ids"], got["metadatas"], got["embeddings"]):
                found.setdefault(meta["chunk_id"], {})[int(sid.rsplit("#", 1)[1])] = [float(x) for x in vector]
        return {cid: [v for _, v in sorted(by_n.items())] for cid, by_n in found.items()}

    def chunk_ids(self) -> set[str]:
        """Every chunk that has sentence records (paged; metadata only)."""
        out: set[str] = set()
        offset = 0
        while True:
            got = self._collection.get(include=["metadatas"], limit=_PAGE, offset=offset)
            if not got["ids"]:
                return out
            out.update(m["chunk_id"] for m in got["metadatas"])
            offset += len(got["ids"])

    def nearest(self, embedding: Sequence[float], n: int, sources: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """(chunk_id, similarity of its best sentence), best first, for up to `n` chunks."""
        sources = list(sources) if sources else None
        where = None if not sources else ({"source": sources[0]} if len(sources) == 1 else {"source": {"$in": sources}})
        try:
            # the record id names its chunk ("<chunk id>#<n>"): no metadata to fetch, which costs more than the search
            got = self._collection.query(query_embeddings=[list(embedding)], n_results=2 * n, where=where,
                                         include=["distances"])
        except Exception as exc:
            if "Nothing found on disk" not in str(exc):
                raise
            return []  # another process's first sentences are not on disk yet
        best: dict[str, float] = {}
        for sid, dist in zip(got["ids"][0], got["distances"][0]):
            cid = sid.rsplit("#", 1)[0]
            best[cid] = max(best.get(cid, -1.0), 1.0 - float(dist))
        return sorted(best.items(), key=lambda kv: -kv[1])[:n]
