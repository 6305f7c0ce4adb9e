"""Hybrid search latency (k=5) on a 10k-chunk collection; dense and BM25 alone beside it.

    python bench/search.py [--chunks 10000] [--queries 200]

The collection holds real text (sentences of squad-dev-mini recombined into
passages) with random unit vectors for the stored chunks, so building it takes
seconds; queries go through the real path: the real query embedder, Chroma's
HNSW index, BM25 and fusion. Prints p50/p95 per mode (target: hybrid p50 <= 30 ms).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def build(qa, n_chunks: int, rng: random.Random) -> None:
    from rag.core.types import Chunk
    from rag.index.retrieve import index_text
    from rag.index.store import StoredChunk
    from rag.ingest.pipeline import chunk_id

    rows = [json.loads(l) for l in open(REPO / "evals/datasets/squad-dev-mini/corpus.jsonl")]
    sentences = [s for r in rows for s in re.split(r"(?<=[.!?])\s+", r["text"]) if len(s) > 20]
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    dim = qa.embeddings.dimension
    per_doc = 10
    for d in range(0, n_chunks, per_doc):
        source = f"synthetic/doc{d // per_doc:05d}.txt"
        records = []
        for i in range(per_doc):
            text = " ".join(rng.sample(sentences, 4))
            c = Chunk(chunk_id(source, i, i + 1, text), text, source, f"Doc {d // per_doc}", None, i, i + 1)
            records.append(StoredChunk(c, "bench", now, i))
        vectors = np.random.default_rng(d).normal(size=(len(records), dim))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        qa.store.replace_source(source, records, vectors.tolist())
    items = ((s.chunk.chunk_id, s.chunk.source, index_text(s.chunk)) for s in qa.store.scan())
    qa.lexical.rebuild(items, qa.store.generation)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    from rag.core.config import load_settings
    from rag.serve.api import DocQA

    rng = random.Random(0)
    questions = [json.loads(l)["question"] for l in open(REPO / "evals/datasets/squad-dev-mini/questions.jsonl")]
    with tempfile.TemporaryDirectory() as tmp:
        qa = DocQA(load_settings(home=Path(tmp)))
        t = time.perf_counter()
        build(qa, args.chunks, rng)
        print(f"collection: {qa.store.count()} chunks built in {time.perf_counter() - t:.1f} s")
        qa.retrieve("warm up", k=5)
        sample = [rng.choice(questions) for _ in range(args.queries)]
        results = {}
        for mode in ("hybrid", "dense", "bm25"):
            times = []
            for q in sample:
                t = time.perf_counter()
                qa.retrieve(q, k=5, mode=mode)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            results[mode] = (statistics.median(times), times[int(0.95 * (len(times) - 1))])
        t = time.perf_counter()
        for q in sample:
            qa.embeddings.embed_query(q)
        embed_ms = (time.perf_counter() - t) * 1000 / len(sample)
    for mode, (p50, p95) in results.items():
        print(f"{mode:7} k=5  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    print(f"query embedding alone: {embed_ms:.1f} ms mean")
    print(f"hybrid p50 / target 30 ms: {results['hybrid'][0] / 30:.2f}")


if __name__ == "__main__":
    main()
