"""The embedder the settings describe: PyTorch, ONNX Runtime or fake, behind the embedding cache.

The model is loaded by path (never by hub name), once per process, lazily. `make_embeddings`
puts the content-addressed cache (`rag.models.embedders.cache`) in front of it.
"""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from rag.models.embedders.fake import FakeEmbeddings
from rag.models.embedders.sentence_transformers import SentenceTransformerEmbeddings


def make_embeddings(settings) -> Embeddings:
    """The configured embedder (`embedding.backend`; `fake` for tests), behind the embedding cache."""
    return with_cache(make_embedder(settings), settings)


def make_embedder(settings) -> Embeddings:
    """The configured embedder without the cache."""
    if settings.embedding.provider == "fake":
        return FakeEmbeddings(name=settings.embedding.model_name)
    from rag.models.embedders.files import embedding_model_path

    path = embedding_model_path(settings)
    backend = settings.embedding.backend
    if backend in ("onnx", "onnx-int8"):
        from rag.models.embedders.files import ensure_onnx_embedding
        from rag.models.embedders.onnx import OnnxEmbeddings

        return OnnxEmbeddings(path, ensure_onnx_embedding(settings)[backend], name=settings.embedding.model_name,
                              backend=backend, batch_size=settings.embedding.batch_size)
    return SentenceTransformerEmbeddings(
        path,
        name=settings.embedding.model_name,
        device=settings.embedding.device,
        batch_size=settings.embedding.batch_size,
    )


def with_cache(embedder: Embeddings, settings) -> Embeddings:
    """`embedder` behind the content-addressed cache in `<home>/embeddings.sqlite` (unless `embedding.cache` is off)."""
    if not settings.embedding.cache:
        return embedder
    from rag.models.embedders.cache import CachedEmbeddings, EmbeddingCache

    backend = getattr(embedder, "backend", settings.embedding.backend)
    parts = [settings.embedding.provider, str(getattr(embedder, "name", settings.embedding.model_name)),
             backend, type(embedder).__name__]
    if hasattr(embedder, "version"):  # a graph exported anew (rag.models.embedders.onnx) computes slightly other vectors
        parts.append(f"v{embedder.version}")
    identity = "|".join(parts)
    cache = EmbeddingCache(settings.home / "embeddings.sqlite", max_entries=settings.embedding.cache_max_entries)
    return CachedEmbeddings(embedder, cache, identity=identity)
