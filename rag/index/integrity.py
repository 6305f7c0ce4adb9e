"""`rag check`: does the store agree with itself and with the BM25 index, and how to repair it.

What is verified on any home (embedded or a Chroma server):
- every document is stored whole: one version (content hash), each of its chunks
  (`index` 0..total-1) present once; an interrupted write shows up here;
- BM25 was built from the store's current generation, holds exactly the store's
  chunk ids, with the same source and the same tokens as the chunk's text gives;
- the manifest of documents (rag.index.manifest), where it claims to be current, lists
  exactly what the store holds.

`repair` re-ingests incomplete documents whose files still exist, keeps the
last complete version of the others (or removes what is left of them when
there is none), and rebuilds BM25 and the manifest from the store. A vector
index that Chroma can no longer load, which a process killed mid-write can
leave, is embedded again from the stored chunks (`recover`, which every ingest
runs first too); so is the sentence view (rag.index.sentence_view).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    kind: str  # incomplete-document, bm25-stale, bm25-missing, bm25-orphan, bm25-source, bm25-postings, dense-missing,
    # vectors-unreadable, vectors-rebuilding (recover), sentences-missing, sentences-orphan, sentences-unreadable,
    # sentences-rebuilding (rag.index.sentence_view), manifest (rag.index.manifest), changed
    detail: str
    source: str = ""


@dataclass
class CheckReport:
    """What `DocQA.check` found (and, with `repair`, what it did)."""

    chunks: int = 0
    documents: int = 0
    bm25_chunks: int = 0
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    writer_active: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = f"{self.documents} documents, {self.chunks} chunks in the store, {self.bm25_chunks} in BM25"
        if any(p.kind == "vectors-unreadable" for p in self.problems):
            head = "the store's vector index cannot be read (nothing else was checked)"
        if self.ok:
            return f"{head}: consistent"
        kinds = defaultdict(int)
        for p in self.problems:
            kinds[p.kind] += 1
        found = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        if self.writer_active:
            return f"{head}: {found} (an ingest is running: check again when it has finished)"
        return f"{head}: {found}: run `rag check --repair` to fix"

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok, "summary": self.summary()}


def check(store, lexical, *, index_text, tokenize) -> CheckReport:
    """Compare the store's chunks, per-document metadata, the BM25 index and the manifest (reads only)."""
    from rag.index.store import document_complete, source_summaries

    report = CheckReport(writer_active=lexical.writer_active())
    reason = store.vectors_unreadable()
    if reason:  # nothing else can be read through Chroma until it is rebuilt
        report.problems.append(Problem("vectors-unreadable", f"Chroma cannot load the vector index ({reason}); "
                                       "the chunks are safe: `rag check --repair` (or the next ingest) embeds them "
                                       "again"))
        return report
    if store.rebuilding:
        report.problems.append(Problem("vectors-rebuilding", "a rebuild of the vector index was cut short"))
    generation = store.generation
    chunks = {sc.chunk.chunk_id: sc for sc in store.scan()}
    by_source: dict[str, list] = defaultdict(list)
    for sc in chunks.values():
        by_source[sc.chunk.source].append(sc)
    report.chunks, report.documents = len(chunks), len(by_source)
    for source, items in sorted(by_source.items()):
        if not document_complete(items):
            versions = defaultdict(list)
            for sc in items:
                versions[sc.content_hash].append(sc)
            described = "; ".join(
                f"version {h[:8]}: {len(v)} of {v[0].total or '?'} chunks" for h, v in versions.items())
            report.problems.append(Problem("incomplete-document", f"interrupted write ({described})", source))
    lex_generation = lexical.generation()
    postings = lexical.postings()
    report.bm25_chunks = len(postings)
    if lex_generation != generation:
        report.problems.append(Problem(
            "bm25-stale", "BM25 was built from another state of the store" if lex_generation else "no BM25 index"))
    for cid in sorted(set(chunks) - set(postings)):
        report.problems.append(Problem("bm25-missing", f"chunk {cid} is stored but not in BM25", chunks[cid].chunk.source))
    for cid in sorted(set(postings) - set(chunks)):
        report.problems.append(Problem("bm25-orphan", f"chunk {cid} is in BM25 but not stored", postings[cid][0]))
    for cid in sorted(set(postings) & set(chunks)):
        chunk = chunks[cid].chunk
        source, tokens = postings[cid]
        if source != chunk.source:
            report.problems.append(Problem("bm25-source", f"chunk {cid}: BM25 says {source!r}", chunk.source))
        elif tokens != sorted(tokenize(index_text(chunk))):
            report.problems.append(Problem("bm25-postings", f"chunk {cid}: BM25 terms differ from its text", chunk.source))
    from chromadb.errors import InternalError

    try:
        found = sentence_problems(store, chunks)
    except InternalError as exc:  # Chroma cannot load the collection (killed mid-write): repair rebuilds it
        report.problems.append(Problem("sentences-unreadable", f"the sentence vectors cannot be read "
                                       f"({type(exc).__name__}: {exc}); repair embeds them again"))
        found = []
    if getattr(store, "sentences", None) is not None and store.sentences.rebuilding:
        report.problems.append(Problem("sentences-rebuilding", "a rebuild of the sentence vectors was cut short"))
    for kind, cid in found:
        text = ("chunk {} has no sentence vectors (rag.index.sentence_view)" if kind == "sentences-missing"
                else "sentence vectors of chunk {}, which is not stored")
        source = chunks[cid].chunk.source if cid in chunks else ""
        report.problems.append(Problem(kind, text.format(cid), source))
    manifest = getattr(store, "manifest", None)  # rag.index.manifest: trusted while stamped with this generation
    listed = manifest.load(generation) if manifest is not None else None
    if listed is not None and listed != source_summaries(by_source):
        report.problems.append(Problem("manifest", "the list of documents kept beside the store differs from "
                                                   "the store (changed by something other than this tool?)"))
    for cid in _probe_dense(store, _sample(chunks)):
        report.problems.append(Problem("dense-missing", f"chunk {cid} is stored but its vector is not found",
                                       chunks[cid].chunk.source))
    if store.generation != generation:
        report.problems.append(Problem("changed", "the collection changed during the check (an ingest is running?)"))
    return report


def sentence_problems(store, chunks: dict) -> list[tuple[str, str]]:
    """("sentences-missing" | "sentences-orphan", chunk id) pairs, when the store keeps a sentence view."""
    if getattr(store, "sentences", None) is None:
        return []
    from rag.index.sentence_view import sentence_texts

    have = store.sentences.chunk_ids()
    missing = [("sentences-missing", cid) for cid in sorted(set(chunks) - have) if sentence_texts(chunks[cid].chunk)]
    return missing + [("sentences-orphan", cid) for cid in sorted(have - set(chunks))]


def _sample(ids) -> list[str]:
    """Up to 20 chunk ids spread over the sorted ids, for `_probe_dense`."""
    ids = sorted(ids)
    return ids[:: max(1, len(ids) // 20)][:20]


def _probe_dense(store, ids: list[str]) -> list[str]:
    """Of a sample of chunks, those the vector index cannot find by their own stored vector."""
    if not ids:
        return []
    from chromadb.errors import InternalError

    try:
        vectors = store.vectors(ids)
    except InternalError:  # Chroma fails the whole read when one has no vector (a rebuild cut short): one by one
        vectors = {}
        for cid in ids:
            try:
                vectors.update(store.vectors([cid]))
            except InternalError:
                pass
    lost = [cid for cid in ids if cid not in vectors]
    for cid, vector in vectors.items():
        hits = store.nearest(vector, 10)
        # identical texts have identical vectors: finding one at similarity 1 is enough
        if cid not in {h for h, _ in hits} and not (hits and hits[0][1] > 0.999):
            lost.append(cid)
    return lost


def repair(store, lexical, ingestor, *, index_text, lock_timeout: float = 30.0) -> list[str]:
    """Make the store whole and BM25 equal to it; returns what was done, one line each."""
    from rag.index.store import document_complete

    done: list[str] = []
    with ingestor._locked(lock_timeout):  # which first embeds again what Chroma cannot read (`recover`)
        done += ingestor.recovered
        sample = _sample(store.all_ids())
        lost = _probe_dense(store, sample)
        if lost:  # an index Chroma loads but whose vectors are gone or damaged: a new one from the stored text
            count = store.rebuild_vectors(ingestor.embeddings.embed_documents, index_text, fresh=True)
            done.append(f"{len(lost)} of {len(sample)} chunks probed were not found in the vector index: embedded "
                        f"the {count} stored chunks again")
    if getattr(store, "manifest", None) is not None:  # it may hide the damage from ingest: rebuilt at the end
        store.manifest.invalidate()
    incomplete: dict[str, list] = defaultdict(list)
    for sc in store.scan(include_text=False):
        incomplete[sc.chunk.source].append(sc)
    incomplete = {s: items for s, items in incomplete.items() if not document_complete(items)}
    files = [s for s in incomplete if Path(s).is_file()]
    if files:  # a plain ingest redoes them (stored parts are kept, not embedded again)
        report = ingestor.ingest_paths([Path(s) for s in files], lock_timeout=lock_timeout)
        done += [f"re-ingested {f.path}: {f.status}" + (f" ({f.reason})" if f.reason else "") for f in report.files]
    with ingestor._locked(lock_timeout):
        for source, items in sorted(incomplete.items()):
            if source in files:
                continue
            versions = defaultdict(list)
            for sc in items:
                versions[sc.content_hash].append(sc)
            whole = [v for v in versions.values() if document_complete(v)]
            if whole:
                keep = max(whole, key=lambda v: max(sc.ingested_at for sc in v))
                drop = {sc.chunk.chunk_id for sc in items} - {sc.chunk.chunk_id for sc in keep}
                store.delete_ids(drop)
                done.append(f"{source}: kept its last complete version, removed {len(drop)} chunks of an interrupted write")
            else:
                store.delete_ids(sc.chunk.chunk_id for sc in items)
                done.append(f"{source}: removed {len(items)} chunks of an interrupted write (no complete version, "
                            "file not found): ingest it again")
        done += _repair_sentences(store, ingestor.embeddings)
        generation = store.generation
        lexical.rebuild(((sc.chunk.chunk_id, sc.chunk.source, index_text(sc.chunk)) for sc in store.scan()), generation)
        done.append(f"rebuilt BM25 from the store ({store.count()} chunks)")
        if getattr(store, "manifest", None) is not None:
            store.sources(save=True)
            done.append("rebuilt the list of documents kept beside the store")
    return done


def recover(store, embeddings, *, index_text) -> list[str]:
    """Embed again what Chroma cannot read, before anything else reads or writes; one line per thing done.

    A process killed while Chroma writes a vector index's files can leave the collection unloadable (every read
    and write fails, `rag.index.damage.unreadable`); the records themselves are safe. The chunks' index is then
    rebuilt from their stored text, and the sentence view (rag.index.sentence_view) from the chunks. A rebuild
    cut short is marked in its collection and done again. Called by every writer holding the ingest lock, so a
    plain re-ingest after a crash converges, and by `rag check --repair`.
    """
    done: list[str] = []
    reason = store.vectors_unreadable()
    if reason or store.rebuilding:
        log.debug("vector index: %s", reason or "rebuild cut short")
        count = store.rebuild_vectors(embeddings.embed_documents, index_text, fresh=bool(reason))  # read once
        done.append(("Chroma could not load the vector index (a process stopped while writing it?)" if reason else
                     "a rebuild of the vector index was cut short") + f": embedded the {count} stored chunks again")
    sentences = getattr(store, "sentences", None)
    if sentences is not None:
        reason = sentences.unreadable()
        if reason or sentences.rebuilding:
            log.debug("sentence view: %s", reason or "rebuild cut short")
            sentences.reset()
            done.append("Chroma could not load the sentence vectors: embedding them again" if reason else
                        "a rebuild of the sentence vectors was cut short")
            done += _repair_sentences(store, embeddings)
            sentences.rebuilt()
    return done


def _repair_sentences(store, embeddings) -> list[str]:
    """Remove sentence vectors of chunks that are gone; embed those a chunk lacks (an interrupted write)."""
    from rag.index.sentence_view import embed_with_sentences

    chunks = {sc.chunk.chunk_id: sc for sc in store.scan()}
    done = []
    found = sentence_problems(store, chunks)
    orphans = [cid for kind, cid in found if kind == "sentences-orphan"]
    missing = [chunks[cid].chunk for kind, cid in found if kind == "sentences-missing"]
    if orphans:
        store.sentences.delete_chunks(orphans)
        done.append(f"removed the sentence vectors of {len(orphans)} chunks that are not stored")
    if missing:
        _, grouped = embed_with_sentences(embeddings, [], missing)
        store.sentences.upsert([(c.chunk_id, c.source, vectors) for c, vectors in zip(missing, grouped)])
        done.append(f"embedded the sentences of {len(missing)} chunks that had none")
    return done
