"""The content-addressed embedding cache and the backend recorded in a collection (fake embeddings)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.config import load_settings
from rag.core.errors import IndexMismatchError
from rag.models.embedders.cache import CachedEmbeddings, EmbeddingCache
from rag.models.embedders.factory import with_cache
from rag.models.embedders.fake import FakeEmbeddings
from rag.serve.api import DocQA


class CountingFake(FakeEmbeddings):
    """Fake embeddings that count the calls and texts that reach the model."""

    def __init__(self):
        super().__init__(name="fake")
        self.calls, self.texts = 0, 0

    def embed_documents(self, texts):
        self.calls += 1
        self.texts += len(texts)
        return super().embed_documents(texts)


def cached(tmp_path, identity="fake|a", **kw):
    inner = CountingFake()
    return inner, CachedEmbeddings(inner, EmbeddingCache(tmp_path / "e.sqlite", **kw), identity=identity)


def test_identical_texts_are_embedded_once_with_the_same_vectors(tmp_path):
    inner, emb = cached(tmp_path)
    texts = ["same text", "other", "same text", "same text"]
    vectors = emb.embed_documents(texts)
    assert inner.texts == 2
    # stored as float32, what the real models compute in: exact for them, rounded for the float64 fake
    assert np.allclose(vectors, FakeEmbeddings(name="fake").embed_documents(texts), atol=1e-7)
    assert emb.embed_documents(["other", "same text"]) == [vectors[1], vectors[0]]
    assert inner.texts == 2  # all from the cache


def test_cache_persists_and_separates_identities(tmp_path):
    _, first = cached(tmp_path)
    first.embed_documents(["a", "b"])
    first.cache.close()
    again, second = cached(tmp_path)  # a new process, the same file
    second.embed_documents(["a", "b"])
    assert again.texts == 0
    other, third = cached(tmp_path, identity="fake|b")  # another model or backend: never shared
    third.embed_documents(["a"])
    assert other.texts == 1


def test_cache_is_bounded(tmp_path):
    inner, emb = cached(tmp_path, max_entries=10)
    for i in range(30):
        emb.embed_documents([f"text {i}"])
    emb.cache.prune()
    assert len(emb.cache) == 10
    emb.embed_documents(["text 29"])  # the most recent are kept
    assert inner.texts == 30


def test_queries_bypass_the_cache_and_attributes_are_the_models(tmp_path):
    inner, emb = cached(tmp_path)
    assert emb.embed_query("q") == inner.embed_query("q")
    assert emb.dimension == inner.dimension and emb.count_wordpieces("a b c") == 3 and emb.name == "fake"
    assert inner.calls == 0


def test_repeated_sentences_file_embeds_far_fewer_texts_than_chunks(fake_settings, tmp_path):
    """A 2 MB file of one repeated paragraph: thousands of chunks, a handful of distinct texts."""
    paragraph = ("The quarterly report is attached for your review. Please confirm receipt by Friday. "
                 "Questions go to the finance desk.\n\n")
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "repeated.txt").write_text(paragraph * (2_000_000 // len(paragraph)))
    inner = CountingFake()
    qa = DocQA(fake_settings, embeddings=with_cache(inner, fake_settings))
    report = qa.ingest([folder])
    chunks = qa.store.count()
    assert report.count("added") == 1 and chunks > 1000
    assert inner.texts < chunks / 50, (inner.texts, chunks)
    assert inner.calls <= report.chunks_written / 256 + 2  # one call per flushed batch at most

    # re-chunking with new settings into another collection: the texts that recur are not embedded again
    before = inner.texts
    again = DocQA(fake_settings.model_copy(update={"collection": "second"}),
                  embeddings=with_cache(inner, fake_settings))
    again.ingest([folder])
    assert inner.texts == before


def test_cache_can_be_turned_off(tmp_path):
    settings = load_settings(environ={"RAG_EMBEDDING__CACHE": "false"}, home=tmp_path / "h",
                             embedding={"provider": "fake"})
    inner = CountingFake()
    assert with_cache(inner, settings) is inner


def test_backend_setting_parses_and_rejects_unknown(tmp_path):
    s = load_settings(environ={"RAG_EMBEDDING__BACKEND": "onnx-int8"}, home=tmp_path)
    assert s.embedding.backend == "onnx-int8"
    from rag.core.errors import ConfigError

    with pytest.raises(ConfigError, match="RAG_EMBEDDING__BACKEND"):  # one line naming the variable
        load_settings(environ={"RAG_EMBEDDING__BACKEND": "tensorflow"}, home=tmp_path)


def test_collection_remembers_its_backend(fake_settings, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha Corp makes anvils in Springfield.")
    def backend(name):
        return fake_settings.model_copy(
            update={"embedding": fake_settings.embedding.model_copy(update={"backend": name})})

    DocQA(backend("torch")).ingest([folder])
    with pytest.raises(IndexMismatchError, match="RAG_EMBEDDING__BACKEND=torch"):
        DocQA(backend("onnx-int8")).sources()
    assert DocQA(backend("torch")).sources()  # the backend that built it still opens it


def test_collection_from_before_backends_counts_as_torch(fake_settings):
    from rag.index.store import BACKEND_KEY, ChunkStore, make_client

    client = make_client(fake_settings)
    client.get_or_create_collection("legacy", embedding_function=None, metadata={
        "rag:embedding_model": "fake", "rag:embedding_dim": 32, "rag:generation": "x"})
    assert ChunkStore(client, "legacy", model_name="fake", dimension=32, backend="torch").backend == "torch"
    with pytest.raises(IndexMismatchError):
        ChunkStore(client, "legacy", model_name="fake", dimension=32, backend="onnx")
    assert BACKEND_KEY not in (client.get_collection("legacy").metadata or {})
