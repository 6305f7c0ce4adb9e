"""Ingest, incremental re-ingest, sync, delete and bad input, with fake embeddings."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from rag.core.errors import (
    IndexMismatchError,
    IngestLockedError,
    NoDocumentsError,
    UnknownSourceError,
)
from rag.serve.api import DocQA

ALPHA = "Alpha Corp makes anvils in Springfield.\n\nIts founder, Ada Stone, started it in 1921 with six workers."
BETA = "Beta Labs studies volcanoes.\n\nThe lab's seismometers recorded 4,000 tremors on Mount Hekla last year."


class CountingEmbeddings:
    """Wraps an embedder and counts how many texts were embedded."""

    def __init__(self, inner):
        self.inner, self.embedded = inner, 0
        self.name, self.dimension, self.max_wordpieces = inner.name, inner.dimension, inner.max_wordpieces

    def count_wordpieces(self, text):
        return self.inner.count_wordpieces(text)

    def embed_documents(self, texts):
        self.embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.fixture
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "alpha.txt").write_text(ALPHA)
    (folder / "beta.md").write_text("# Beta Labs\n\n" + BETA)
    return folder


@pytest.fixture
def qa(fake_settings):
    from rag.models.embedders.factory import make_embeddings

    return DocQA(fake_settings, embeddings=CountingEmbeddings(make_embeddings(fake_settings)))


def all_ids(qa):
    return sorted(s.chunk.chunk_id for s in qa.store.scan(include_text=False))


def test_ingest_then_search(qa, docs):
    report = qa.ingest([docs])
    assert report.count("added") == 2 and report.count("skipped") == 0
    chunks = qa.retrieve("How many tremors were recorded on Mount Hekla?", k=2)
    assert chunks and "tremors" in chunks[0].text
    top = chunks[0]
    assert top.source.endswith("beta.md") and top.title == "Beta Labs"
    doc_text = (docs / "beta.md").read_text()
    assert doc_text[top.start:top.end] == top.text  # offsets point at the chunk text


def test_reingest_is_idempotent_and_skips_embedding(qa, docs):
    qa.ingest([docs])
    ids, embedded = all_ids(qa), qa.embeddings.embedded
    report = qa.ingest([docs])
    assert report.count("unchanged") == 2 and report.chunks_written == 0
    assert qa.embeddings.embedded == embedded  # nothing re-embedded
    assert all_ids(qa) == ids


def test_changed_file_replaces_its_chunks(qa, docs):
    qa.ingest([docs])
    (docs / "alpha.txt").write_text("Alpha Corp moved to Shelbyville in 1990 and now makes rockets.")
    report = qa.ingest([docs])
    assert report.count("updated") == 1 and report.count("unchanged") == 1
    texts = " ".join(s.chunk.text for s in qa.store.scan())
    assert "rockets" in texts and "anvils" not in texts  # nothing stale
    assert [c.text for c in qa.retrieve("anvils Springfield founder", k=5) if "anvils" in c.text] == []
    assert "rockets" in qa.retrieve("rockets Shelbyville", k=1, mode="bm25")[0].text  # BM25 updated too


def test_reread_replaces_an_unchanged_file_read_differently_before(qa, docs, monkeypatch):
    """After an upgrade that reads a format better, `reread` brings stored documents up to date."""
    import rag.ingest.loaders as loaders

    real = loaders.load_document

    def old_reader(path, **kwargs):  # an older version of the reader: words run together
        doc = real(path, **kwargs)
        return type(doc)(**{**doc.__dict__, "text": doc.text.replace(" ", "")})

    monkeypatch.setattr(loaders, "load_document", old_reader)
    qa.ingest([docs])
    monkeypatch.setattr(loaders, "load_document", real)
    assert qa.ingest([docs]).count("unchanged") == 2  # the files did not change: nothing is read again
    assert "AlphaCorpmakesanvils" in " ".join(s.chunk.text for s in qa.store.scan())

    report = qa.ingest([docs], reread=True)
    assert report.count("updated") == 2, report.files
    texts = " ".join(s.chunk.text for s in qa.store.scan())
    assert "Alpha Corp makes anvils" in texts and "AlphaCorp" not in texts  # nothing stale
    assert qa.retrieve("anvils Springfield", k=1, mode="bm25")[0].text.startswith("Alpha Corp makes anvils")

    ids, before = all_ids(qa), qa.embeddings.embedded
    report = qa.ingest([docs], reread=True)  # read the same way again: the same chunks
    assert report.count("updated") == 2 and all_ids(qa) == ids
    assert qa.embeddings.embedded - before == len(ids)  # read and embedded again (the embedding cache, when on, serves them)


def test_sync_removes_vanished_files_only_with_flag(qa, docs):
    qa.ingest([docs])
    (docs / "beta.md").unlink()
    qa.ingest([docs])
    assert len(qa.sources()) == 2
    report = qa.ingest([docs], sync=True)
    assert report.count("removed") == 1
    assert [Path(s.source).name for s in qa.sources()] == ["alpha.txt"]
    assert all("Hekla" not in c.text for c in qa.retrieve("Hekla tremors", k=5))


def test_sync_prunes_a_folder_given_from_home_even_once_it_is_empty(qa, docs, monkeypatch):
    """`rag ingest ~/notes --sync`: the folder is named with ~, and every file in it is gone."""
    monkeypatch.setenv("HOME", str(docs.parent))
    qa.ingest(["~/docs"])
    for f in docs.iterdir():
        f.unlink()
    report = qa.ingest(["~/docs"], sync=True)
    assert report.count("removed") == 2 and qa.sources() == []


def test_delete_by_name_and_unknown(qa, docs):
    qa.ingest([docs])
    assert qa.delete("alpha.txt") > 0
    assert [Path(s.source).name for s in qa.sources()] == ["beta.md"]
    with pytest.raises(UnknownSourceError, match="rag sources"):
        qa.delete("nope.txt")


def test_bad_files_are_skipped_and_index_kept(qa, docs, tmp_path):
    qa.ingest([docs])
    before = all_ids(qa)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_text("")
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (bad / "corrupt.pdf").write_bytes(b"%PDF-1.4\n%garbage" + bytes(500))
    (bad / "corrupt.docx").write_bytes(b"not a zip at all")
    (bad / "latin1.txt").write_bytes("Caf\xe9 na\xefve r\xe9sum\xe9 about zebras.".encode("latin-1"))
    (bad / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))  # a broken image (OCR'd when valid)
    (bad / "drawing.bmp").write_bytes(b"BM" + bytes(100))
    huge = bad / "huge.txt"
    with open(huge, "wb") as fh:  # a sparse 50 MB file: the size is checked before anything is read
        fh.truncate(50 * 2**20)
    report = qa.ingest([bad])
    reasons = {Path(f.path).name: f.reason for f in report.files if f.status == "skipped"}
    assert set(reasons) == {"empty.txt", "binary.txt", "corrupt.pdf", "corrupt.docx", "image.png", "drawing.bmp",
                            "huge.txt"}
    assert all(reasons.values())
    assert "limit" in reasons["huge.txt"] and "unsupported" in reasons["drawing.bmp"]
    assert "image" in reasons["image.png"]
    assert report.count("added") == 1  # the wrongly-encoded file still lands
    assert set(before) <= set(all_ids(qa))
    assert "Café" in qa.retrieve("zebras", k=1, mode="bm25")[0].text


def test_missing_path_is_reported(qa, tmp_path):
    report = qa.ingest([tmp_path / "does-not-exist.txt"])
    assert report.files[0].status == "skipped" and "no such file" in report.files[0].reason


def test_empty_index_search_is_a_clear_error(qa):
    with pytest.raises(NoDocumentsError, match="rag ingest"):
        qa.retrieve("anything")


def test_source_filter(qa, docs):
    qa.ingest([docs])
    only = qa.retrieve("founder workers tremors", k=5, sources=["alpha.txt"])
    assert only and all(c.source.endswith("alpha.txt") for c in only)


def test_other_embedding_model_is_refused(fake_settings, docs):
    DocQA(fake_settings).ingest([docs])
    other = fake_settings.model_copy(update={"embedding": fake_settings.embedding.model_copy(update={"model_name": "other"})})
    with pytest.raises(IndexMismatchError, match="re-index"):
        DocQA(other).sources()


def test_concurrent_ingest_fails_clearly(qa, docs):
    from filelock import FileLock

    qa.ingest([docs])
    lock = FileLock(str(qa.ingestor.lock_path))
    holder = threading.Event()

    def hold():
        with lock:
            holder.set()
            time.sleep(1.5)

    t = threading.Thread(target=hold)
    t.start()
    holder.wait()
    with pytest.raises(IngestLockedError, match="another ingest"):
        qa.ingestor.ingest_paths([docs], lock_timeout=0.2)
    t.join()
    assert qa.ingest([docs]).count("unchanged") == 2  # works again once the other writer is done


def test_lexical_index_rebuilds_when_store_changed_elsewhere(fake_settings, docs):
    first = DocQA(fake_settings)
    first.ingest([docs])
    # a second client writes behind the first one's back (as with a shared Chroma server)
    other_home = fake_settings.model_copy(update={"home": fake_settings.home})
    second = DocQA(other_home)
    second.lexical.directory = second.lexical.directory.parent / "elsewhere"
    (docs / "gamma.txt").write_text("Gamma Inc breeds alpacas in Peru.")
    second.ingest([docs])
    hits = first.retrieve("alpacas Peru", k=1, mode="bm25")
    assert hits and "alpacas" in hits[0].text


def test_dataset_rows_ingest(qa):
    report = qa.ingest_texts([{"source": "d1", "text": "Paris is the capital of France.", "title": "France"},
                              {"source": "d2", "text": "   "}])
    assert report.count("added") == 1 and report.count("skipped") == 1
    assert qa.retrieve("capital of France", k=1)[0].source == "d1"
    assert qa.ingest_texts([{"source": "d1", "text": "Paris is the capital of France.", "title": "France"}]).count("unchanged") == 1


def test_collections_listing_and_switching(qa, docs):
    qa.ingest([docs])
    notes = qa.with_collection("notes")
    assert notes.embeddings is qa.embeddings  # models shared, not reloaded
    notes.ingest([docs / "alpha.txt"])
    assert qa.collections() == ["default", "notes"]
    assert len(notes.sources()) == 1 and len(qa.sources()) == 2


class FailingAfter(CountingEmbeddings):
    """Embeds the first `ok` calls, then fails like a crashed model."""

    def __init__(self, inner, ok):
        super().__init__(inner)
        self.ok, self.calls = ok, 0

    def embed_documents(self, texts):
        self.calls += 1
        if self.calls > self.ok:
            raise RuntimeError("out of memory")
        return super().embed_documents(texts)


def test_embedding_failure_midway_keeps_earlier_batches_and_releases_the_lock(fake_settings, tmp_path, monkeypatch):
    from rag.core.errors import RagError
    from rag.ingest import pipeline as ingest_mod
    from rag.models.embedders.factory import make_embeddings

    monkeypatch.setattr(ingest_mod, "_FLUSH_CHUNKS", 2)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(8):
        (folder / f"doc{i}.txt").write_text(f"Document number {i} talks about topic {i}.")
    threads_before = threading.active_count()
    qa = DocQA(fake_settings, embeddings=FailingAfter(make_embeddings(fake_settings), ok=2))
    with pytest.raises(RagError, match="embedding failed .*out of memory"):
        qa.ingest([folder])
    stored = {s.source for s in qa.sources()}
    assert len(stored) == 4  # the two batches embedded before the failure are stored whole
    assert threading.active_count() == threads_before  # no writer thread left behind
    # the lock is free and a healthy embedder finishes the job, re-embedding only what is missing
    qa2 = DocQA(fake_settings, embeddings=CountingEmbeddings(make_embeddings(fake_settings)))
    report = qa2.ingest([folder])
    assert report.count("unchanged") == 4 and report.count("added") == 4
    assert len(qa2.sources()) == 8
    assert qa2.retrieve("topic 7", k=1)[0].source.endswith("doc7.txt")


def test_a_small_tail_is_not_a_chunk_of_its_own(fake_settings, tmp_path):
    """A document a little over chunk_tokens is one chunk (`chunking.tail_tokens`), not a full chunk plus a
    second one that is mostly a copy of the overlap; with tail_tokens=0 it is two."""
    from rag.models.embedders.factory import make_embeddings

    folder = tmp_path / "tail"
    folder.mkdir()
    (folder / "doc.txt").write_text(" ".join(f"Sentence {i} tells the reader one more small fact." for i in range(17)))
    counts = {}
    for tail in (0, 40):
        settings = fake_settings.model_copy(update={
            "home": tmp_path / f"home-{tail}",
            "chunking": fake_settings.chunking.model_copy(update={"tail_tokens": tail})})
        qa = DocQA(settings, embeddings=make_embeddings(settings))
        qa.ingest([folder])
        counts[tail] = qa.store.count()
    assert counts == {0: 2, 40: 1}


def test_count_tokens_counts_as_the_chunker_does(qa, tmp_path):
    """`DocQA.count_tokens` is the chunker's measure: chunks of a long text fill up to chunk_tokens, no more."""
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "doc.txt").write_text(" ".join(f"Fact {i} is stated here in plain words, once." for i in range(120)))
    qa.ingest([folder])
    cfg = qa.settings.chunking
    sizes = [qa.count_tokens(s.chunk.text) for s in sorted(qa.store.scan(), key=lambda s: s.chunk.start)]
    assert len(sizes) > 3
    assert max(sizes) <= cfg.chunk_tokens + cfg.tail_tokens
    assert min(sizes[:-1]) > cfg.chunk_tokens - 20  # every chunk but the last is full to within a sentence
    assert qa.count_tokens("") == 0 and qa.count_tokens("one two three") == 3
