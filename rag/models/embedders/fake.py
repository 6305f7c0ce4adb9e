"""The `fake` embedding provider: deterministic hash vectors for tests."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings


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
