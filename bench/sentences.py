"""The sentence view (rag.index.sentence_view, dense 0.25 + best sentence 0.25) beside chunk vectors alone, in one process.

On squad-dev-mini (ingested once, with the sentence view): recall@1/@5 and MRR per
split with the sentence ranking in the fusion and without it (its weight given to
the chunk vectors, the previous default), search p50/p95 of both, alternating
question by question, and what ingest embeds with and without it.

    python bench/sentences.py [--home DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rag.core.config import load_settings
from rag.eval import metrics
from rag.eval.datasets import load_dataset, load_split, split_dataset
from rag.eval.runner import open_dataset_index
from rag.eval.scoring import retrieval_metrics
from rag.index.sentence_view import sentence_texts

SQUAD = Path(__file__).resolve().parent.parent / "evals" / "datasets" / "squad-dev-mini"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="data dir (default: a temporary one)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="rag-bench-sentences-"))
    settings = load_settings(home=home, retrieval={"dense_weight": 0.25, "sentence_weight": 0.25})
    dataset = load_dataset(SQUAD)
    qa = open_dataset_index(settings, dataset)
    with_view = settings.retrieval
    without = with_view.model_copy(update={"dense_weight": with_view.dense_weight + with_view.sentence_weight,
                                           "sentence_weight": 0.0})
    configs = {"with sentence view": with_view, "chunk vectors only": without}
    chunks = [sc.chunk for sc in qa.store.scan()]
    sentences = sum(len(sentence_texts(c)) for c in chunks)
    print(f"ingest embeds {len(chunks)} chunk texts + {sentences} sentence texts "
          f"({(len(chunks) + sentences) / len(chunks):.2f}x the texts of chunk vectors only)")
    ms = {name: [] for name in configs}
    for split in ("dev", "seen"):  # "seen": the half once called test
        questions = [q for q in split_dataset(dataset, load_split(SQUAD, split)).questions
                     if q["answerable"] and q["gold_doc_ids"]]
        ranked = {name: [] for name in configs}
        for q in questions:
            for name, cfg in configs.items():  # alternating, so the machine's noise falls on both alike
                qa.retriever.settings = cfg
                started = time.perf_counter()
                found = qa.retrieve(q["question"], k=10)
                ms[name].append((time.perf_counter() - started) * 1000)
                ranked[name].append([c.source for c in found])
        golds = [set(q["gold_doc_ids"]) for q in questions]
        for name in configs:
            m = retrieval_metrics(ranked[name], golds)
            print(f"{split:4s} {name:20s} recall@1 {m['retrieval.recall@1']:.4f}  recall@5 {m['retrieval.recall@5']:.4f}  "
                  f"mrr {m['retrieval.mrr']:.4f}  ({len(questions)} questions)")
    for name, values in ms.items():
        print(f"search {name:20s} p50 {statistics.median(values):.1f} ms  "
              f"p95 {metrics.percentile(values, 95):.1f} ms")
    ratio = statistics.median(ms["with sentence view"]) / statistics.median(ms["chunk vectors only"])
    print(f"search p50 ratio (with / without): {ratio:.2f}")


if __name__ == "__main__":
    main()
