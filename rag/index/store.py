"""The vector store: one Chroma collection of chunks, embedded or behind `chroma run`.

This is the one place where our `Chunk` meets Chroma's records. Each chunk's
metadata carries its document's identity (source, title, url, content hash,
ingest time), so the collection is the single source of truth: listing sources,
incremental ingest and the BM25 index are all derived from it.
"""

from __future__ import annotations

import re
import shutil
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlparse

from rag.core.errors import ConfigError, IndexMismatchError, StoreDamagedError, StoreUnavailableError
from rag.core.types import Chunk, SourceInfo
from rag.index.damage import REBUILD_KEY, marked, set_aside, unreadable

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
_PAGE = 1000  # records fetched per round trip when scanning the collection
_REOPEN_LOCK = threading.Lock()
_LOADED: dict[tuple[int, str], str] = {}  # (Chroma client, collection) -> generation its vector index has loaded
MODEL_KEY, DIM_KEY, GEN_KEY = "rag:embedding_model", "rag:embedding_dim", "rag:generation"
BACKEND_KEY = "rag:embedding_backend"  # absent in collections made before backends existed: those are torch


@dataclass(frozen=True)
class StoredChunk:
    """A chunk with the document-level fields that travel in its metadata."""

    chunk: Chunk
    content_hash: str
    ingested_at: str
    index: int
    total: int = 0  # chunks of this document version; 0: not recorded (written before it was)


def check_collection_name(name: str) -> str:
    from rag.index.sentence_view import SUFFIX

    if name.endswith(SUFFIX):
        raise ConfigError(f"invalid collection name {name!r}: names ending in {SUFFIX!r} hold another "
                          "collection's sentence vectors; choose another name")
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid collection name {name!r}: use 3-512 characters from a-z, A-Z, 0-9, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def make_client(settings):
    """An embedded `PersistentClient` under the data dir, or an `HttpClient` for `chroma_url`."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ConfigError(f"RAG_CHROMA_URL must look like http://host:8000, got {settings.chroma_url!r}")
        token = settings.chroma_token.get_secret_value() if getattr(settings, "chroma_token", None) else None
        if token:
            chroma_settings = token_auth_settings(chroma_settings, token)
        try:
            return chromadb.HttpClient(
                host=url.hostname, port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https", settings=chroma_settings,
            )
        except Exception as exc:  # chromadb raises plain ValueError/ConnectError variants
            if _is_auth_refusal(exc):
                raise StoreUnavailableError(
                    f"the Chroma server at {settings.chroma_url} refused the connection as unauthorized: "
                    + ("check RAG_CHROMA_TOKEN" if token else "set RAG_CHROMA_TOKEN to its token")
                ) from exc
            raise StoreUnavailableError(
                f"cannot reach the Chroma server at {settings.chroma_url} ({exc}): start it with "
                "`chroma run --path <dir> --port <port>` or unset RAG_CHROMA_URL"
            ) from exc
    path = settings.home / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def token_auth_settings(chroma_settings, token: str):
    """Chroma client settings that send `token` as `Authorization: Bearer <token>` on every request.

    This is Chroma's own token auth client provider. A Chroma 1.x `chroma run`
    server does not check tokens itself; put it behind a proxy that does (README).
    """
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(**{**chroma_settings.model_dump(),
                             "chroma_client_auth_provider": "chromadb.auth.token_authn.TokenAuthClientProvider",
                             "chroma_client_auth_credentials": token,
                             "chroma_auth_token_transport_header": "Authorization"})


def _is_auth_refusal(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(word in text for word in ("401", "403", "unauthorized", "forbidden", "authorization", "authn"))


class ChunkStore:
    """Chunks of one collection, with the embedding model recorded and checked."""

    def __init__(self, client, name: str, *, model_name: str, dimension: int, backend: str = "torch",
                 sentences: bool = False, manifest=None):
        check_collection_name(name)
        self.name = name
        self.manifest = manifest  # rag.index.manifest.SourceManifest: sources() without a scan; None: always a scan
        self.model_name = model_name
        self.dimension = dimension
        self.backend = backend
        self._client = client
        self._counted: tuple[str, int] | None = None  # (generation, count)
        self.before_write = None  # called before every write (the server writer lease renews itself here)
        # this process's recent writes: (generation before, after, added (id, source, vector), removed ids), so
        # that derived in-memory data (rag.index.exact) follows them without re-reading every id
        self.journal: list[tuple[str, str, list[tuple[str, str, object]], list[str]]] = []
        self._collection = self._open()
        # rag.index.sentence_view: a vector per sentence, written and deleted with the chunks (None: not kept)
        self.sentences = None
        if sentences:
            from rag.index.sentence_view import SentenceVectors

            self.sentences = SentenceVectors(client, name)
        # what this process's Chroma client has loaded is shared by every store on the same client
        _LOADED.setdefault(self._loaded_key, self.generation)

    def _open(self):
        coll = self._client.get_or_create_collection(
            self.name,
            embedding_function=None,  # we always pass vectors: Chroma's default would download a model
            configuration={"hnsw": {"space": "cosine"}},
            metadata={MODEL_KEY: self.model_name, DIM_KEY: self.dimension, BACKEND_KEY: self.backend,
                      GEN_KEY: uuid.uuid4().hex},
        )
        meta = coll.metadata or {}
        if meta.get(MODEL_KEY) != self.model_name or int(meta.get(DIM_KEY, -1)) != self.dimension:
            raise IndexMismatchError(
                f"collection {self.name!r} was built with embedding model {meta.get(MODEL_KEY)!r} "
                f"(dimension {meta.get(DIM_KEY)}), but {self.model_name!r} (dimension {self.dimension}) "
                f"is configured: re-index into a new collection with `rag ingest <paths> --collection <new name>`, "
                f"or configure the embedding model it was built with to use this one"
            )
        built_with = meta.get(BACKEND_KEY, "torch")
        if built_with != self.backend:
            raise IndexMismatchError(
                f"collection {self.name!r} was embedded with the {built_with!r} backend of {self.model_name!r}, "
                f"but {self.backend!r} is configured (their vectors differ slightly): set "
                f"RAG_EMBEDDING__BACKEND={built_with}, or re-index with `rag ingest <paths> --collection <new name>`"
            )
        return coll

    # --- reading -----------------------------------------------------------------------
    def count(self) -> int:
        """Stored chunks; counted once per generation (a count is a round trip, a query needs it)."""
        generation = self.generation
        if self._counted is None or self._counted[0] != generation:
            with _damage_reported("read"):
                self._counted = (generation, self._collection.count())
        return self._counted[1]

    @property
    def generation(self) -> str:
        """Changes on every write; derived indexes compare it to know they are stale."""
        return str(self._client.get_collection(self.name, embedding_function=None).metadata.get(GEN_KEY, ""))

    def scan(self, *, include_text: bool = True, where: dict | None = None) -> Iterator[StoredChunk]:
        """Every stored chunk, paged."""
        include = ["metadatas", "documents"] if include_text else ["metadatas"]
        offset = 0
        while True:
            with _damage_reported("read"):
                got = self._collection.get(include=include, where=where, limit=_PAGE, offset=offset)
            ids = got["ids"]
            if not ids:
                return
            texts = got.get("documents") or [""] * len(ids)
            for cid, meta, text in zip(ids, got["metadatas"], texts):
                yield from_record(cid, text or "", meta)
            offset += len(ids)

    def sources(self, *, save: bool = False) -> list[SourceInfo]:
        """Indexed documents with chunk counts: from the manifest while it describes the store as it is
        (rag.index.manifest), else by one scan of the metadata. `save`: a writer holding the ingest lock makes
        what it scanned the manifest."""
        generation = self.generation if self.manifest is not None else ""
        if generation:
            known = self.manifest.load(generation)
            if known is not None:
                return known
        out = self.scan_sources()
        if save and generation and self.generation == generation:  # nobody wrote while we read
            self.manifest.replace(generation, out)
        return out

    def scan_sources(self) -> list[SourceInfo]:
        """Indexed documents with chunk counts, by one scan of every chunk's metadata."""
        agg: dict[str, list[StoredChunk]] = defaultdict(list)
        for sc in self.scan(include_text=False):
            agg[sc.chunk.source].append(sc)
        return source_summaries(agg)

    def all_ids(self) -> set[str]:
        """Every stored chunk id (no text, no metadata), paged."""
        ids: set[str] = set()
        offset = 0
        while True:
            got = self._collection.get(include=[], limit=_PAGE, offset=offset)["ids"]
            if not got:
                return ids
            ids.update(got)
            offset += len(got)

    def records(self, source: str) -> list[StoredChunk]:
        """The stored chunks of one document, without text."""
        got = self._collection.get(where=source_filter([source]), include=["metadatas"])
        return [from_record(cid, "", meta) for cid, meta in zip(got["ids"], got["metadatas"])]

    def vectors(self, ids: list[str]) -> dict[str, list[float]]:
        """The stored vectors of some chunks (read from the vector index)."""
        self.follow_other_writers()
        got = self._collection.get(ids=list(ids), include=["embeddings"])
        return {cid: [float(x) for x in vec] for cid, vec in zip(got["ids"], got["embeddings"])}

    def vectors_with_sources(self, ids: list[str]) -> list[tuple[str, str, list[float]]]:
        """(chunk id, source, stored vector) of some chunks, in one round trip (`rag.index.exact`)."""
        if not ids:
            return []
        got = self._collection.get(ids=list(ids), include=["embeddings", "metadatas"])
        return [(cid, (meta or {}).get("source", ""), vec)
                for cid, meta, vec in zip(got["ids"], got["metadatas"], got["embeddings"])]

    def delete_ids(self, ids: Iterable[str]) -> None:
        ids = sorted(set(ids))
        if not ids:
            return
        before = self._manifest_current()
        touched = set()
        if before:
            for i in range(0, len(ids), 5000):
                got = self._collection.get(ids=ids[i:i + 5000], include=["metadatas"])
                touched.update(meta.get("source", "") for meta in got["metadatas"])
        start = self.generation
        self._bump()
        with _damage_reported("delete from"):
            for i in range(0, len(ids), 5000):
                self._collection.delete(ids=ids[i:i + 5000])
            self._delete_sentences(ids)  # after their chunks: see rag.index.sentence_view
        self._bump()
        self._log(start, [], ids)
        self._patch_manifest(before, touched)

    def write_parts(self, records: list[StoredChunk], embeddings, complete: list[tuple[str, set[str]]],
                    sentence_vectors=None) -> dict[str, set[str]]:
        """Upsert `records` (parts of documents), then finish the documents in `complete`.

        `complete` holds (source, all chunk ids of its new version) for each
        document whose last part is among `records` (or already stored): its
        chunks outside that set (the previous version) are deleted. With a
        sentence view, `sentence_vectors` holds each record's sentence vectors
        (rag.index.sentence_view): they are written before the chunks, and a finished
        document keeps exactly its chunks' sentences. Returns the removed ids
        per finished source.
        """
        if len(embeddings) != len(records):
            raise ValueError(f"{len(embeddings)} embeddings for {len(records)} records")
        if sentence_vectors is not None and len(sentence_vectors) != len(records):
            raise ValueError(f"sentence vectors for {len(sentence_vectors)} of {len(records)} records")
        with _damage_reported("write to"):
            return self._write_parts(records, embeddings, complete, sentence_vectors)

    def _write_parts(self, records, embeddings, complete, sentence_vectors) -> dict[str, set[str]]:
        before = self._manifest_current()
        start = self.generation
        self._bump()  # before writing too: a crash mid-write must leave derived indexes stale, not "current"
        if self.sentences is not None and sentence_vectors is not None:  # before their chunks: see rag.index.sentence_view
            self.sentences.upsert([(r.chunk.chunk_id, r.chunk.source, v) for r, v in zip(records, sentence_vectors)])
        batch = max(1, min(self._client.get_max_batch_size(), 5000))
        for i in range(0, len(records), batch):
            part = records[i:i + batch]
            self._collection.upsert(
                ids=[r.chunk.chunk_id for r in part],
                embeddings=embeddings[i:i + batch],
                documents=[r.chunk.text for r in part],
                metadatas=[to_metadata(r) for r in part],
            )
        old = self.ids_by_source(source for source, _ in complete)
        removed = {source: old.get(source, set()) - keep for source, keep in complete}
        stale = sorted(set().union(*removed.values())) if removed else []
        if stale:
            self._collection.delete(ids=stale)
        if self.sentences is not None:  # a finished document keeps exactly its chunks' sentences
            for source, keep in complete:
                self.sentences.delete_other(source, keep)
        self._bump()
        self._log(start, [(r.chunk.chunk_id, r.chunk.source, v) for r, v in zip(records, embeddings)], stale)
        self._patch_manifest(before, {r.chunk.source for r in records} | {source for source, _ in complete})
        return removed

    def chunk_ids(self, source: str) -> set[str]:
        return self.ids_by_source([source])[source]

    def get(self, ids: list[str]) -> list[Chunk]:
        if not ids:
            return []
        got = self._collection.get(ids=ids, include=["metadatas", "documents"])
        by_id = {cid: from_record(cid, t, m).chunk for cid, t, m in zip(got["ids"], got["documents"], got["metadatas"])}
        return [by_id[i] for i in ids if i in by_id]

    def nearest(self, embedding: list[float], n: int, sources: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """(chunk_id, cosine similarity) of the nearest chunks, best first, without their text.

        Fetching text and metadata for every candidate costs more than the
        vector search itself; callers fetch (`get`) only the chunks they keep.
        """
        self.follow_other_writers()
        try:
            # Chroma returns what there is when asked for more (or from an empty collection)
            with _damage_reported("search"):
                got = self._collection.query(
                    query_embeddings=[embedding], n_results=n, where=source_filter(sources),
                    include=["distances"],
                )
        except Exception as exc:
            if "Nothing found on disk" not in str(exc):
                raise
            return []  # another process's first chunks are not on disk yet: no dense results until they are
        return [(cid, 1.0 - float(dist)) for cid, dist in zip(got["ids"][0], got["distances"][0])]

    # --- writing -----------------------------------------------------------------------
    def ids_by_source(self, sources: Iterable[str]) -> dict[str, set[str]]:
        """The stored chunk ids of each given source, in one round trip."""
        sources = list(dict.fromkeys(sources))
        out: dict[str, set[str]] = {s: set() for s in sources}
        if not sources:
            return out
        got = self._collection.get(where=source_filter(sources), include=["metadatas"])
        for cid, meta in zip(got["ids"], got["metadatas"]):
            out.setdefault(meta.get("source", ""), set()).add(cid)
        return out

    def replace_source(self, source: str, records: list[StoredChunk], embeddings) -> int:
        """Make `records` the chunks of `source` (see `replace_sources`)."""
        self.replace_sources([(source, records)], embeddings)
        return len(records)

    def replace_sources(self, docs: list[tuple[str, list[StoredChunk]]], embeddings) -> dict[str, set[str]]:
        """Make each document's records its chunks: upsert all new ones first, then delete the rest.

        `embeddings` lines up with the records of all documents in order. Writes
        go in as few round trips as Chroma allows (many small documents cost
        one upsert, not one each). Upserting before deleting means a crash in
        between leaves the old and the new version of a document (detected as
        'inconsistent' and redone), never neither. Returns the removed ids per source.
        """
        if not docs:
            return {}
        records = [r for _, recs in docs for r in recs]
        return self.write_parts(records, embeddings, [(source, {r.chunk.chunk_id for r in recs}) for source, recs in docs])

    def move_source(self, old: str, rename) -> list[tuple[str, StoredChunk]]:
        with _damage_reported("write to"):
            return self._move_source(old, rename)

    def _move_source(self, old: str, rename) -> list[tuple[str, StoredChunk]]:
        """Give the chunks of `old` to another source without re-embedding them (a renamed file).

        `rename(chunk) -> chunk` makes each moved chunk (new source, id, title);
        the stored vectors are reused as they are. New records are written
        before the old ones are deleted, as in `replace_sources`. Returns
        (old id, new record) pairs.
        """
        got = self._collection.get(where=source_filter([old]), include=["metadatas", "documents", "embeddings"])
        if not len(got["ids"]):
            return []
        before = self._manifest_current()
        self._bump()  # before writing too: a crash mid-move must leave derived indexes stale
        pairs, vectors = [], []
        for cid, text, meta, vector in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            sc = from_record(cid, text or "", meta)
            pairs.append((cid, StoredChunk(rename(sc.chunk), sc.content_hash, sc.ingested_at, sc.index)))
            vectors.append([float(x) for x in vector])
        if self.sentences is not None:  # the sentence vectors move with their chunks, not embedded again
            kept = self.sentences.vectors_of(cid for cid, _ in pairs)
            self.sentences.upsert([(r.chunk.chunk_id, r.chunk.source, kept[cid]) for cid, r in pairs if cid in kept])
        batch = max(1, min(self._client.get_max_batch_size(), 5000))
        for i in range(0, len(pairs), batch):
            part = [rec for _, rec in pairs[i:i + batch]]
            self._collection.upsert(
                ids=[r.chunk.chunk_id for r in part], embeddings=vectors[i:i + batch],
                documents=[r.chunk.text for r in part], metadatas=[to_metadata(r) for r in part],
            )
        stale = sorted({cid for cid, _ in pairs} - {r.chunk.chunk_id for _, r in pairs})
        if stale:
            self._collection.delete(ids=stale)
            self._delete_sentences(stale)
        self._bump()
        self._patch_manifest(before, {old} | {r.chunk.source for _, r in pairs})
        return pairs

    def delete_source(self, source: str) -> int:
        ids = sorted(self.chunk_ids(source))
        if ids:
            before = self._manifest_current()
            start = self.generation
            self._bump()
            with _damage_reported("delete from"):
                self._collection.delete(ids=ids)
                self._delete_sentences(ids)
            self._bump()
            self._log(start, [], ids)
            self._patch_manifest(before, {source})
        return len(ids)

    # --- the manifest (rag.index.manifest) ---------------------------------------------------------
    def _manifest_current(self) -> str | None:
        """The store's generation if the manifest describes it (read before a write), else None."""
        if self.manifest is None:
            return None
        generation = self.generation
        return generation if self.manifest.generation() == generation else None

    def _patch_manifest(self, before: str | None, touched: Iterable[str]) -> None:
        """After a write: the touched documents as the store now holds them, read back in one filtered read
        (per 500 names), replace theirs in the manifest, if it described the store before the write."""
        if before is None:
            return
        touched = sorted(set(touched))
        agg: dict[str, list[StoredChunk]] = defaultdict(list)
        for i in range(0, len(touched), 500):
            got = self._collection.get(where=source_filter(touched[i:i + 500]), include=["metadatas"])
            for cid, meta in zip(got["ids"], got["metadatas"]):
                sc = from_record(cid, "", meta)
                agg[sc.chunk.source].append(sc)
        self.manifest.patch(before, self.generation, source_summaries(agg), [s for s in touched if s not in agg])

    def _delete_sentences(self, ids: list[str]) -> None:
        if self.sentences is not None:
            self.sentences.delete_chunks(ids)

    def _log(self, start: str, added: list, removed: list[str]) -> None:
        """Record a write of this process in `journal` (the last 32)."""
        self.journal = [*self.journal[-31:], (start, _LOADED[self._loaded_key], added, list(removed))]

    def changes_since(self, generation: str | None, current: str) -> list | None:
        """This process's writes that lead from `generation` to `current`, oldest first, or None when
        they are not all known (another process wrote, or too long ago): then the caller re-reads."""
        if generation is None:
            return None
        chain, at = [], generation
        for before, after, added, removed in self.journal:
            if before == at:
                chain.append((added, removed))
                at = after
        return chain if at == current else None

    def _bump(self, **also) -> None:
        if self.before_write is not None:
            self.before_write()
        self.follow_other_writers()  # never write through a client that missed another process's writes
        # the metadata as stored now, not as cached when opened: it also holds the writer lease (rag.index.lease)
        meta = {**self._stored_metadata(), **also}
        meta[GEN_KEY] = _LOADED[self._loaded_key] = uuid.uuid4().hex  # ours: known before anyone can read it
        self._collection.modify(metadata=meta)

    # --- recovery ----------------------------------------------------------------------
    def vectors_unreadable(self) -> str:
        """Chroma's error when it cannot load this collection's vector index (see `unreadable`), else ""."""
        with _damage_reported("read"):  # another error of Chroma's: said as one line, with what to run
            return unreadable(self._collection)

    @property
    def rebuilding(self) -> bool:
        """A rebuild of the vector index (`rebuild_vectors`) began and did not finish."""
        return marked(self._client, self.name)

    def rebuild_vectors(self, embed, text_of, *, fresh: bool = False, batch: int = 256) -> int:
        """Embed every stored chunk again into a new vector index; the number of chunks.

        For an index Chroma cannot load (or any, `fresh`: one that loads but has lost vectors): its folder is
        set aside (`set_aside`), Chroma starts an empty one, and each record (id, text, metadata, all unchanged)
        is written again with a vector computed from its text (`embed(texts)`, `text_of(chunk)` the text ingest
        embeds). The collection is marked while this runs, so that a rebuild cut short is done again
        (`rebuilding`). A Chroma server's index cannot be set aside from here: that raises `StoreDamagedError`.
        """
        anew = fresh or bool(self.vectors_unreadable())
        if anew and not self._client.get_settings().is_persistent:
            raise StoreDamagedError(
                f"the Chroma server cannot use the vector index of collection {self.name!r}: restore the server's "
                "data folder from a backup, or re-index into a new collection with "
                "`rag ingest <paths> --collection <new name>`")
        self._mark(REBUILD_KEY, True)  # before the folder moves: a kill from here on leaves the mark
        moved = []
        if anew:
            moved = set_aside(self._client, self._collection)
            self._reload()  # this process may hold the old index in memory: read the folder again
            if not moved and unreadable(self._collection):
                self._mark(REBUILD_KEY, False)  # nothing was begun
                raise StoreDamagedError(
                    f"Chroma cannot load the vector index of collection {self.name!r} and its folder was not found "
                    "under the data directory: re-index into a new collection with "
                    "`rag ingest <paths> --collection <new name>`")
        ids = sorted(self.all_ids())
        for i in range(0, len(ids), batch):
            got = self._collection.get(ids=ids[i:i + batch], include=["documents", "metadatas"])
            records = [from_record(cid, text or "", meta)
                       for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"])]
            self._collection.upsert(ids=got["ids"], embeddings=embed([text_of(r.chunk) for r in records]),
                                    documents=got["documents"], metadatas=got["metadatas"])
        self._bump(**{REBUILD_KEY: False})
        for folder in moved:
            shutil.rmtree(folder, ignore_errors=True)
        return len(ids)

    def _mark(self, key: str, value) -> None:
        self._collection.modify(metadata={**self._stored_metadata(), key: value})

    def _stored_metadata(self) -> dict:
        """The collection's metadata as stored now, not as cached when opened (it also holds the writer lease)."""
        return dict(self._client.get_collection(self.name, embedding_function=None).metadata or {})

    @property
    def _loaded_key(self) -> tuple[int, str]:
        return id(getattr(self._client, "_server", self._client)), self.name

    def _reload(self) -> None:
        """Have the embedded client load the vector index from disk again (Chroma keeps what it loaded)."""
        with _REOPEN_LOCK:
            self._restart_client()
            self._collection = self._client.get_collection(self.name, embedding_function=None)

    def _restart_client(self) -> None:
        """New bindings for an embedded client (they load indexes from disk again); calls in flight keep the old
        object alive. A client of a Chroma server has nothing to restart."""
        server = getattr(self._client, "_server", None)
        if getattr(server, "bindings", None) is not None and hasattr(server, "start"):
            server.start()

    def follow_other_writers(self) -> None:
        """Reload the embedded client's vector index when another process wrote to the collection.

        Chroma's embedded client keeps the HNSW index it loaded in memory: after
        another process (a CLI ingest beside the UI) writes, its dense searches
        miss the new chunks, or fail ("Nothing found on disk") if the collection
        was empty when opened, and a write through it could persist the stale
        index. The generation stamp (read from SQLite, always current) tells.
        """
        generation = self.generation
        if generation == _LOADED.get(self._loaded_key):
            return
        with _REOPEN_LOCK:
            if generation != _LOADED.get(self._loaded_key):
                self._restart_client()
                _LOADED[self._loaded_key] = generation


@contextmanager
def _damage_reported(action: str):
    """Chroma's InternalError on a write or delete (a collection a process killed mid-write left unloadable,
    a damaged segment) as a `StoreDamagedError` that says what to run."""
    from chromadb.errors import InternalError

    try:
        yield
    except InternalError as exc:
        raise StoreDamagedError(
            f"Chroma could not {action} the collection ({exc}); what was stored before is kept: run "
            "`rag check --repair` (or `rag ingest` again) to rebuild what is damaged") from exc


def source_filter(sources: Iterable[str] | None) -> dict | None:
    if not sources:
        return None
    sources = list(sources)
    return {"source": sources[0]} if len(sources) == 1 else {"source": {"$in": sources}}


def to_metadata(rec: StoredChunk) -> dict:
    c = rec.chunk
    meta = {
        "source": c.source, "title": c.title, "start": c.start, "end": c.end,
        "content_hash": rec.content_hash, "ingested_at": rec.ingested_at, "index": rec.index,
    }
    if rec.total:
        meta["chunks"] = rec.total
    if c.page is not None:
        meta["page"] = c.page
    if c.url:
        meta["url"] = c.url
    if c.ocr:
        meta["ocr"] = True
    if c.section:
        meta["section"] = c.section
    return meta


def from_record(chunk_id: str, text: str, meta: dict) -> StoredChunk:
    """Chroma record -> our types (the only place this conversion happens)."""
    chunk = Chunk(
        chunk_id=chunk_id, text=text, source=meta.get("source", ""), title=meta.get("title", ""),
        page=meta.get("page"), start=int(meta.get("start", 0)), end=int(meta.get("end", 0)), url=meta.get("url"),
        ocr=bool(meta.get("ocr", False)), section=str(meta.get("section", "")),
    )
    return StoredChunk(chunk, meta.get("content_hash", ""), meta.get("ingested_at", ""), int(meta.get("index", 0)),
                       int(meta.get("chunks", 0)))


INCOMPLETE = "inconsistent"  # the content hash reported for a document whose last write was interrupted


def source_summaries(agg: dict[str, list[StoredChunk]]) -> list[SourceInfo]:
    """One SourceInfo per document from its stored chunks, sorted by source."""
    out = []
    for source, items in agg.items():
        first = items[0]
        out.append(SourceInfo(
            source=source, title=first.chunk.title, chunks=len(items),
            # an interrupted write (two versions, or a version short of its chunks) is redone by ingest
            content_hash=first.content_hash if document_complete(items) else INCOMPLETE,
            ingested_at=max(i.ingested_at for i in items), url=first.chunk.url,
        ))
    return sorted(out, key=lambda s: s.source)


def document_complete(items: list[StoredChunk]) -> bool:
    """One version, holding every chunk it was split into (each index once)."""
    if len({i.content_hash for i in items}) != 1:
        return False
    total = items[0].total
    if not total:  # written before chunk totals were recorded: one version is all we can tell
        return True
    return len(items) == total and {i.index for i in items} == set(range(total))
