"""The BM25 index (`rag/index/bm25.py`) beside tantivy's, side by side in one run, alternating.

    pip install -e ".[bench]"    # tantivy
    python bench/lexical.py [--copies 8] [--rounds 2]

squad-dev-mini's 620 paragraphs, repeated `--copies` times as distinct chunks, are indexed incrementally
in batches of 200 (as ingest writes them); its 360 questions are then searched (top 10). Prints the build
time, the mean query time and recall@1/@5 of the gold paragraph (meaningful with --copies 1: with more,
the copies of one paragraph fill the top ranks). tantivy uses its English stemmer and no stopwords; the
project's index uses Snowball stems, NLTK stopwords and folded accents.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "evals" / "datasets" / "squad-dev-mini"


def ours(batches, questions, tmp: Path):
    from rag.index.bm25 import LexicalIndex

    index = LexicalIndex(tmp / "ours")
    started = time.perf_counter()
    for i, batch in enumerate(batches):
        index.update(batch, [], f"g{i}")
    build = time.perf_counter() - started
    started = time.perf_counter()
    hits = [[cid for cid, _ in index.search(q, 10)] for q in questions]
    return build, (time.perf_counter() - started) / len(questions), hits


def tantivy_index(batches, questions, tmp: Path):
    import tantivy

    schema = tantivy.SchemaBuilder()
    schema.add_text_field("id", stored=True, tokenizer_name="raw")
    schema.add_text_field("body", stored=False, tokenizer_name="en_stem")
    (tmp / "tantivy").mkdir()
    index = tantivy.Index(schema.build(), path=str(tmp / "tantivy"))
    started = time.perf_counter()
    for batch in batches:
        writer = index.writer(heap_size=50_000_000, num_threads=1)
        for cid, _source, text in batch:
            writer.add_document(tantivy.Document(id=cid, body=text))
        writer.commit()
        writer.wait_merging_threads()
    index.reload()
    build = time.perf_counter() - started
    searcher = index.searcher()
    started = time.perf_counter()
    hits = []
    for q in questions:
        words = " ".join("".join(ch if ch.isalnum() else " " for ch in q).split())
        found = searcher.search(index.parse_query(words, ["body"]), 10).hits
        hits.append([searcher.doc(address)["id"][0] for _score, address in found])
    return build, (time.perf_counter() - started) / len(questions), hits


def recall(hits, golds, k: int) -> float:
    rows = [any(cid.rsplit("#", 1)[0] in gold for cid in h[:k]) for h, gold in zip(hits, golds) if gold]
    return sum(rows) / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    corpus = [json.loads(line) for line in (DATA / "corpus.jsonl").open()]
    rows = [json.loads(line) for line in (DATA / "questions.jsonl").open()]
    questions = [r["question"] for r in rows]
    golds = [set(r.get("gold_doc_ids") or []) for r in rows]
    docs = [(f"{d['doc_id']}#{c}", d["doc_id"], d["text"]) for c in range(args.copies) for d in corpus]
    batches = [docs[i:i + 200] for i in range(0, len(docs), 200)]
    runs: dict[str, list] = {"rag bm25": [], "tantivy": []}
    for rnd in range(args.rounds):
        order = [("rag bm25", ours), ("tantivy", tantivy_index)]
        for name, fn in order if rnd % 2 == 0 else order[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                runs[name].append(fn(batches, questions, Path(tmp)))
    print(f"{len(docs)} chunks in {len(batches)} batches of 200, {len(questions)} queries, {args.rounds} rounds")
    print(f"{'index':10s} {'build s':>8s} {'query ms':>9s} {'R@1':>6s} {'R@5':>6s}")
    base = None
    for name, results in runs.items():
        build = statistics.mean(r[0] for r in results)
        query = statistics.mean(r[1] for r in results) * 1000
        base = base or (build, query)
        print(f"{name:10s} {build:8.2f} {query:9.3f} {recall(results[0][2], golds, 1):6.3f} "
              f"{recall(results[0][2], golds, 5):6.3f}   build x{build / base[0]:.2f}, query x{query / base[1]:.2f}")


if __name__ == "__main__":
    main()
