"""The sentence view (rag.index.sentence_view): one vector per sentence, kept exactly in step with the chunks (fake embeddings)."""

from __future__ import annotations

import pytest

from rag.core.errors import ConfigError, StoreDamagedError
from rag.index.sentence_view import SUFFIX, sentence_texts
from rag.index.store import ChunkStore, make_client
from rag.serve.api import DocQA

DOC = ("Harbour report\n\n"
       "The lighthouse keeper logs every ship that passes the northern cape. "
       "Fog closed the harbour on three mornings in March. "
       "The new pier was opened by the mayor in April.\n\n"
       "Fishing boats return before noon. The market sells the catch by one o'clock.")


def _records(qa):
    """{chunk_id: number of sentence records} and the sources they name."""
    got = qa.store.sentences._collection.get(include=["metadatas"])
    counts, sources = {}, set()
    for meta in got["metadatas"]:
        counts[meta["chunk_id"]] = counts.get(meta["chunk_id"], 0) + 1
        sources.add(meta["source"])
    return counts, sources


def _expected(qa):
    return {sc.chunk.chunk_id: len(sentence_texts(sc.chunk)) for sc in qa.store.scan() if sentence_texts(sc.chunk)}


def with_sentence_view(settings):
    return settings.model_copy(update={"retrieval": settings.retrieval.model_copy(
        update={"dense_weight": 0.25, "sentence_weight": 0.25})})


@pytest.fixture
def qa(fake_settings):
    return DocQA(with_sentence_view(fake_settings).model_copy(update={"chunking": fake_settings.chunking.model_copy(
        update={"chunk_tokens": 40, "overlap_tokens": 0, "tail_tokens": 0})}))  # several chunks per document


def test_the_sentence_view_is_off_by_default(fake_settings, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa = DocQA(fake_settings)
    qa.ingest([doc])
    assert qa.store.sentences is None and qa.collections() == [qa.settings.collection]


def test_every_chunk_gets_its_sentences_and_changes_leave_none_stale(qa, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa.ingest([doc])
    assert qa.store.sentences is not None and qa.store.count() >= 2
    counts, sources = _records(qa)
    assert counts == _expected(qa) and sources == {str(doc)}

    doc.write_text(DOC.replace("three mornings", "five mornings") + " A storm is expected in May.")
    qa.ingest([doc])
    counts, _ = _records(qa)
    assert counts == _expected(qa)  # the old version's sentences are gone, the new one's all there

    qa.delete(str(doc))
    assert qa.store.count() == 0 and _records(qa)[0] == {}


def test_a_renamed_file_keeps_its_sentence_vectors_without_embedding_again(qa, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa.ingest([doc])
    before = qa.store.sentences.vectors_of(_expected(qa))
    new = tmp_path / "port.txt"
    doc.rename(new)
    qa.ingestor.move_source(str(doc), str(new))
    counts, sources = _records(qa)
    assert counts == _expected(qa) and sources == {str(new)}
    after = qa.store.sentences.vectors_of(counts)
    def rounded(vectors):  # float32 in Chroma: compare to 5 places
        return sorted(tuple(round(x, 5) for x in v) for vs in vectors.values() for v in vs)

    assert rounded(before) == rounded(after)


def test_best_sentence_ranks_its_chunk(qa, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa.ingest([doc])
    sentence = "Fog closed the harbour on three mornings in March."
    owner = next(sc.chunk.chunk_id for sc in qa.store.scan() if sentence in sc.chunk.text)
    hits = qa.store.sentences.nearest(qa.embeddings.embed_query(sentence), 5)
    assert hits[0][0] == owner and hits[0][1] > 0.999  # the same text, the same (fake) vector
    assert len({cid for cid, _ in hits}) == len(hits)  # one entry per chunk: its best sentence
    assert qa.retrieve(sentence, k=1)[0].chunk_id == owner


def test_interrupted_write_leaves_orphans_that_search_skips_and_repair_removes(qa, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa.ingest([doc])
    # a write that stopped after the sentence records (they go first) and before its chunks
    ghost = "Ghost sentence about the harbour fog in March."
    qa.store.sentences.upsert([("ghost-chunk", str(doc), qa.embeddings.embed_documents([ghost]))])
    hits = qa.retrieve(ghost, k=2)
    assert len(hits) == 2 and "ghost-chunk" not in {c.chunk_id for c in hits}
    report = qa.check()
    assert [p.kind for p in report.problems] == ["sentences-orphan"]
    assert qa.check(repair=True).ok
    assert "ghost-chunk" not in _records(qa)[0]


class _Unloadable:
    """A Chroma collection as a process killed mid-write can leave it: every read fails."""

    def __getattr__(self, name):
        from chromadb.errors import InternalError

        def fail(*args, **kwargs):
            raise InternalError("Error executing plan: Error sending backfill request to compactor")
        return fail


def test_a_sentence_view_chroma_cannot_read_is_reported_and_embedded_again(qa, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa.ingest([doc])
    qa.store.sentences._collection = _Unloadable()
    report = qa.check()  # a report, not a traceback
    assert {p.kind for p in report.problems} == {"sentences-unreadable"}
    assert "rag check --repair" in report.summary()
    repaired = qa.check(repair=True)
    assert repaired.ok, repaired.problems
    assert any("could not load the sentence vectors" in line for line in repaired.repaired)
    assert _records(qa)[0] == _expected(qa)
    # the next writer does the same before it writes: the write goes through, with every sentence
    qa.store.sentences._collection = _Unloadable()
    doc.write_text(DOC + "\nA new paragraph about the harbour lights.")
    assert [f.status for f in qa.ingest([doc]).files] == ["updated"]
    assert any("could not load the sentence vectors" in line for line in qa.ingestor.recovered)
    assert qa.check().ok and _records(qa)[0] == _expected(qa)


def test_a_delete_beside_a_sentence_view_chroma_cannot_read_goes_through(qa, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa.ingest([doc])
    source = qa.sources()[0].source
    qa.store.sentences._collection = _Unloadable()
    qa.delete(source)  # the view is embedded again from the chunks first, then the document goes with its sentences
    assert qa.check().ok
    assert qa.sources() == [] and _records(qa)[0] == _expected(qa)


def test_a_chunk_collection_chroma_cannot_read_for_another_reason_says_what_to_run(qa, tmp_path):
    """Only an index Chroma cannot load is embedded again by a writer; another error of Chroma's stops the
    write with one line that says what to run, and nothing stored is touched."""
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa.ingest([doc])
    before, kept = qa.sources(), qa.store._collection
    qa.store._collection = _Unloadable()
    doc.write_text(DOC + "\nA new paragraph about the harbour lights.")
    with pytest.raises(StoreDamagedError, match="rag check --repair"):
        qa.ingest([doc])
    qa.store._collection = kept
    assert qa.check().ok and qa.sources() == before


def test_sentence_view_turned_on_later_is_reported_and_filled_in(fake_settings, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    before = DocQA(fake_settings)
    before.ingest([doc])
    assert before.store.sentences is None
    qa = DocQA(with_sentence_view(fake_settings))
    assert {p.kind for p in qa.check().problems} == {"sentences-missing"}
    assert qa.check(repair=True).ok
    assert _records(qa)[0] == _expected(qa)


def test_sentence_collections_are_not_listed_and_their_names_are_refused(qa, tmp_path):
    doc = tmp_path / "harbour.txt"
    doc.write_text(DOC)
    qa.ingest([doc])
    assert qa.collections() == [qa.settings.collection]
    with pytest.raises(ConfigError, match="sentence vectors"):
        ChunkStore(make_client(qa.settings), "notes" + SUFFIX, model_name="fake", dimension=8)
