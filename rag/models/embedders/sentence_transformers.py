"""The `torch` backend of the local embedding model: sentence-transformers (PyTorch).

Loaded by path (never by hub name), once per process, lazily.
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
