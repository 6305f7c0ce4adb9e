"""The real embedding model: chunks fit its window, search finds the right passage."""

from __future__ import annotations

import pytest

from rag.serve.api import DocQA

from .conftest import SEED_DIR

pytestmark = pytest.mark.integration


def test_seed_article_ingest_and_search(real_settings):
    qa = DocQA(real_settings)
    report = qa.ingest([SEED_DIR])
    assert report.count("added") == 1
    src = qa.sources()[0]
    assert src.url == "https://english.shanghai.gov.cn/en-Latest-WhatsNew/20241120/60e7fc3d653148baa8b08b505d6dfb73.html"
    top = qa.retrieve("How many companies changed their business scope?", k=3)
    assert "six foreign-invested biotechnology companies" in " ".join(c.text for c in top[:2])
    # no chunk is silently truncated by the embedder: title + text fit the 256 word-piece window
    emb = qa.embeddings
    for stored in qa.store.scan():
        c = stored.chunk
        assert emb.count_wordpieces(f"{c.title}\n{c.text}") + 2 <= emb.max_wordpieces
    ids = sorted(s.chunk.chunk_id for s in qa.store.scan(include_text=False))
    assert qa.ingest([SEED_DIR]).count("unchanged") == 1
    assert sorted(s.chunk.chunk_id for s in qa.store.scan(include_text=False)) == ids


def test_web_page_leftovers_are_not_indexed(real_settings):
    qa = DocQA(real_settings)
    qa.ingest([SEED_DIR])
    text = " ".join(s.chunk.text for s in qa.store.scan())
    assert "Be the first to share" not in text and "Coupons" not in text


def test_query_fast_path_gives_the_same_vector_as_encode(real_settings):
    import numpy as np

    emb = DocQA(real_settings).embeddings
    for text in ["How many companies changed their business scope?", "word " * 600, "é 中文 ☃"]:
        fast = np.asarray(emb.embed_query(text))
        full = np.asarray(emb.embed_documents([text])[0])
        assert fast.shape == full.shape == (emb.dimension,)
        assert np.allclose(fast, full, atol=1e-5)
        assert abs(np.linalg.norm(fast) - 1.0) < 1e-5


def test_wordpiece_count_matches_the_model_tokenizer(real_settings):
    torch_settings = real_settings.model_copy(
        update={"embedding": real_settings.embedding.model_copy(update={"backend": "torch"})})
    tok = DocQA(torch_settings).embeddings.model.tokenizer
    for settings in (torch_settings, real_settings):  # torch, and the default (onnx-int8) backend
        emb = DocQA(settings).embeddings
        for text in ["Merck Testing, headquartered in Germany.", "word " * 900, "é 中文 ☃ CAR-T", ""]:
            expected = len(tok(text, add_special_tokens=False, truncation=False)["input_ids"])
            assert emb.count_wordpieces(text) == expected
