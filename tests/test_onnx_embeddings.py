"""The ONNX backends of the real embedding model: exported offline, close to torch, same truncation."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import load_settings
from rag.embeddings import make_embedder

pytestmark = pytest.mark.integration

TEXTS = [
    "Super Bowl 50 was an American football game to determine the champion of the NFL for the 2015 season.",
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
    "Steam drives a turbine connected to an electrical generator.",
    "word " * 400,  # longer than the model reads: truncated at 256 word-pieces by every backend
]


@pytest.fixture(scope="module")
def embedders(tmp_path_factory):
    from tests.conftest import shared_cache

    home = tmp_path_factory.mktemp("onnx-home")
    return {b: make_embedder(load_settings(environ={}, home=home, cache=shared_cache(), embedding={"backend": b}))
            for b in ("torch", "onnx", "onnx-int8")}


def test_onnx_vectors_match_torch(embedders):
    torch_docs = np.array(embedders["torch"].embed_documents(TEXTS))
    for backend, floor in (("onnx", 0.9999), ("onnx-int8", 0.98)):
        emb = embedders[backend]
        docs = np.array(emb.embed_documents(TEXTS))
        assert docs.shape == torch_docs.shape
        assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
        assert (docs * torch_docs).sum(1).min() > floor, backend
        # the query path computes the same vector as the batch path; int8 quantises activations with one
        # scale per batch, so there a text's vector moves a little with the texts batched beside it
        query = np.array(emb.embed_query(TEXTS[2]))
        if backend == "onnx":
            assert np.allclose(query, docs[2], atol=1e-4)
        else:
            assert query @ docs[2] > 0.98
        assert emb.dimension == 384 and emb.max_wordpieces == embedders["torch"].max_wordpieces
        assert emb.count_wordpieces(TEXTS[0]) == embedders["torch"].count_wordpieces(TEXTS[0])


def test_export_is_provisioned_once(embedders, tmp_path):
    from rag.provision import ensure_onnx_embedding
    from tests.conftest import shared_cache

    settings = load_settings(environ={}, home=tmp_path, cache=shared_cache())
    paths = ensure_onnx_embedding(settings)
    stamp = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    assert ensure_onnx_embedding(settings) == paths
    assert {k: p.stat().st_mtime_ns for k, p in paths.items()} == stamp  # not exported again
    from rag.provision import provision_all

    assert provision_all(settings, include_llm=False)["embedding-onnx"] == paths["onnx-int8"]  # the default backend
