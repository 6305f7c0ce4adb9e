"""Ingest throughput of the whole pipeline vs the raw embedder, side by side in one run.

    python bench/ingest.py [--docs N] [--rounds R]

Writes the squad-dev-mini paragraphs as .txt files, then, after one warm-up
ingest (which also yields the exact texts the pipeline embeds), runs R rounds of
  raw     SentenceTransformer.encode on exactly those texts
  full    DocQA.ingest(folder) into a fresh collection: read, hash, parse,
          chunk, embed, store, BM25
alternating the two so that machine noise hits both alike, and prints chunks/s
for each, the median of the per-round ratios (target >= 0.85), and the speed-up
of re-ingesting the unchanged folder (target >= 100x).
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
    ap.add_argument("--rounds", type=int, default=3)
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

        # warm-up: loads the weights and gives both sides the same warm kernels
        warm = DocQA(load_settings(home=Path(tmp) / "home-warm"))
        report = warm.ingest([folder])
        texts = [index_text(s.chunk) for s in warm.store.scan()]
        model, batch_size = warm.embeddings.model, warm.settings.embedding.batch_size
        n = len(texts)

        raw_s, full_s, ratios = [], [], []
        for round_ in range(args.rounds):
            t = time.perf_counter()
            model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
            raw_s.append(time.perf_counter() - t)
            qa = DocQA(load_settings(home=Path(tmp) / f"home-{round_}"))
            t = time.perf_counter()
            qa.ingest([folder])
            full_s.append(time.perf_counter() - t)
            assert qa.store.count() == n
            ratios.append(raw_s[-1] / full_s[-1])
            print(f"round {round_ + 1}: raw {n / raw_s[-1]:.1f} chunks/s, full {n / full_s[-1]:.1f} chunks/s, "
                  f"ratio {ratios[-1]:.3f}", flush=True)

        t = time.perf_counter()
        again = qa.ingest([folder])
        again_s = time.perf_counter() - t

    assert again.count("unchanged") == report.count("added")
    raw, full = statistics.median(raw_s), statistics.median(full_s)
    print(f"documents            {report.count('added')}")
    print(f"chunks               {n}")
    print(f"raw encode           {n / raw:8.1f} chunks/s  (median {raw:.1f} s of {args.rounds})")
    print(f"full pipeline        {n / full:8.1f} chunks/s  (median {full:.1f} s of {args.rounds})")
    print(f"pipeline / raw       {statistics.median(ratios):8.3f}   (median of per-round ratios; target >= 0.85)")
    print(f"re-ingest unchanged  {again_s:8.3f} s")
    print(f"first / re-ingest    {full / again_s:8.1f}x  (target >= 100x)")


if __name__ == "__main__":
    main()
