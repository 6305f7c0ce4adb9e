"""The embedder: a LangChain `Embeddings` around the local model, PyTorch or ONNX Runtime.

Loaded by path (never by hub name), once per process, lazily. `make_embeddings`
puts the content-addressed cache (`rag.models.embed_cache`) in front of it.
"""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path

from langchain_core.embeddings import Embeddings

_MODELS: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()


def _load(path: Path, device: str):
    key = (str(path), device)
    with _LOCK:
        if key not in _MODELS:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()  # we count word-pieces of long texts on purpose
            hf_logging.disable_progress_bar()
            _MODELS[key] = SentenceTransformer(str(path), device=device, local_files_only=True)
        return _MODELS[key]


class SentenceTransformerEmbeddings(Embeddings):
    """Normalised sentence-transformers embeddings (cosine = dot product)."""

    backend = "torch"

    def __init__(self, path: Path, *, name: str, device: str = "cpu", batch_size: int = 64):
        self.path = Path(path)
        self.name = name
        self.device = device
        self.batch_size = batch_size

    @cached_property
    def model(self):
        return _load(self.path, self.device)

    @property
    def dimension(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_wordpieces(self) -> int:
        """Word-pieces the model reads; longer input would be silently truncated."""
        return int(self.model.max_seq_length)

    def count_wordpieces(self, text: str) -> int:
        """Word-pieces of `text` without the [CLS]/[SEP] the model adds."""
        return len(self._counter(text, add_special_tokens=False))

    @cached_property
    def _counter(self):
        """`encode` of a private copy of the fast tokenizer, never truncating.

        The chunker counts thousands of pieces per document: calling the Rust
        tokenizer directly skips the Python wrapper, which costs as much again.
        """
        tokenizer = self.model.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:  # a slow (Python) tokenizer
            return lambda text, add_special_tokens: tokenizer(
                text, add_special_tokens=add_special_tokens, truncation=False)["input_ids"]
        from tokenizers import Tokenizer

        own = Tokenizer.from_str(backend.to_str())
        own.no_truncation()
        own.no_padding()
        return lambda text, add_special_tokens: own.encode(text, add_special_tokens=add_special_tokens).ids

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        """One text, straight through the model's modules.

        The same computation as `encode` (equal vectors), without its per-call
        batching, sorting and mode switching, which cost a short query ~15%.
        """
        import torch

        model = self.model
        if model.training:
            model.eval()
        preprocess = getattr(model, "preprocess", None) or model.tokenize
        with torch.inference_mode():
            features = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in preprocess([text]).items()}
            vector = model(features)["sentence_embedding"]
            vector = torch.nn.functional.normalize(vector, p=2, dim=-1)
        return vector[0].float().cpu().tolist()


class FakeEmbeddings(Embeddings):
    """Deterministic hash vectors for tests: same text, same vector; no meaning.

    Word-pieces are approximated by whitespace words, with the same 256 window.
    """

    def __init__(self, size: int = 32, name: str = "fake"):
        from langchain_core.embeddings import DeterministicFakeEmbedding

        self._fake = DeterministicFakeEmbedding(size=size)
        self.name = name
        self.backend = "fake"
        self.dimension = size
        self.max_wordpieces = 256

    def count_wordpieces(self, text: str) -> int:
        return len(text.split())

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        import numpy as np

        v = np.asarray(self._fake.embed_query(text))
        return (v / (np.linalg.norm(v) or 1.0)).tolist()


def make_embeddings(settings) -> Embeddings:
    """The configured embedder (`embedding.backend`; `fake` for tests), behind the embedding cache."""
    return with_cache(make_embedder(settings), settings)


def make_embedder(settings) -> Embeddings:
    """The configured embedder without the cache."""
    if settings.embedding.provider == "fake":
        return FakeEmbeddings(name=settings.embedding.model_name)
    from rag.models.provision import embedding_model_path

    path = embedding_model_path(settings)
    backend = settings.embedding.backend
    if backend in ("onnx", "onnx-int8"):
        from rag.models.onnx_embeddings import OnnxEmbeddings
        from rag.models.provision import ensure_onnx_embedding

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
    from rag.models.embed_cache import CachedEmbeddings, EmbeddingCache

    backend = getattr(embedder, "backend", settings.embedding.backend)
    parts = [settings.embedding.provider, str(getattr(embedder, "name", settings.embedding.model_name)),
             backend, type(embedder).__name__]
    if hasattr(embedder, "version"):  # a graph exported anew (rag.models.onnx_embeddings) computes slightly other vectors
        parts.append(f"v{embedder.version}")
    identity = "|".join(parts)
    cache = EmbeddingCache(settings.home / "embeddings.sqlite", max_entries=settings.embedding.cache_max_entries)
    return CachedEmbeddings(embedder, cache, identity=identity)
