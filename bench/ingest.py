"""Ingest throughput of the whole pipeline vs the raw embedder, side by side in one run.

    python bench/ingest.py [--docs N]

Writes the squad-dev-mini paragraphs as .txt files, then measures:
  raw     SentenceTransformer.encode on exactly the texts the pipeline embeds
  full    DocQA.ingest(folder): read, hash, parse, chunk, embed, store, BM25
  again   re-ingest of the unchanged folder
and prints chunks/s for raw and full, their ratio (target >= 0.85), and the
first-ingest / re-ingest speed-up (target >= 100x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=620)
    args = ap.parse_args()

    from rag.api import DocQA
    from rag.config import load_settings
    from rag.retrieve import index_text

    rows = [json.loads(l) for l in open(REPO / "evals/datasets/squad-dev-mini/corpus.jsonl")][: args.docs]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for r in rows:
            (folder / f"{r['doc_id']}.txt").write_text(f"{r['title'].replace('_', ' ')}\n\n{r['text']}")
        qa = DocQA(load_settings(home=Path(tmp) / "home"))
        model = qa.embeddings.model
        model.encode(["warm up"] * 8)  # load weights before any timing

        t = time.perf_counter()
        report = qa.ingest([folder])
        full_s = time.perf_counter() - t
        texts = [index_text(s.chunk) for s in qa.store.scan()]
        n = len(texts)

        raw_times = []
        for _ in range(2):
            t = time.perf_counter()
            model.encode(texts, batch_size=qa.settings.embedding.batch_size, normalize_embeddings=True)
            raw_times.append(time.perf_counter() - t)
        raw_s = statistics.median(raw_times)

        t = time.perf_counter()
        again = qa.ingest([folder])
        again_s = time.perf_counter() - t

    assert again.count("unchanged") == report.count("added")
    print(f"documents            {report.count('added')}")
    print(f"chunks               {n}")
    print(f"raw encode           {n / raw_s:8.1f} chunks/s  ({raw_s:.1f} s, median of {len(raw_times)})")
    print(f"full pipeline        {n / full_s:8.1f} chunks/s  ({full_s:.1f} s)")
    print(f"pipeline / raw       {raw_s / full_s:8.3f}   (target >= 0.85)")
    print(f"re-ingest unchanged  {again_s:8.3f} s")
    print(f"first / re-ingest    {full_s / again_s:8.1f}x  (target >= 100x)")


if __name__ == "__main__":
    main()
