"""Retrieval (and optionally answer) ablations on a dataset folder; prints Markdown tables.

    python evals/ablate.py --dataset evals/datasets/squad-dev-mini
    python evals/ablate.py --dataset evals/datasets/squad-dev-mini --answers 40   # + k for answers (slow)

For each chunk size (each needs its own index; they are cached in the data
directory like `rag eval`'s) the dense and BM25 candidate lists of every
answerable question are computed once, and every retrieval method is ranked
from them exactly as `rag.index.retrieve.HybridRetriever.search` does: dense, BM25,
hybrid with convex fusion (the default) and hybrid with reciprocal-rank fusion.
k = 1, 5, 10 are the recall@k columns.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rag.core.config import load_settings
from rag.eval.datasets import load_dataset, select_questions
from rag.eval.runner import evaluate_answers, open_dataset_index
from rag.eval.scoring import retrieval_metrics
from rag.index.retrieve import convex_fuse, fuse

COLUMNS = ("retrieval.recall@1", "retrieval.recall@5", "retrieval.recall@10", "retrieval.mrr", "retrieval.ndcg@10")
ANSWER_COLUMNS = ("answer.accuracy", "answer.short_f1", "answer.f1", "citation.precision", "citation.recall",
                  "abstention.answerable_abstained", "abstention.unanswerable_abstained", "faithfulness",
                  "latency.total_ms_p50")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """"112:24,160:32" -> [(112, 24), (160, 32)]."""
    return [tuple(int(x) for x in part.split(":")) for part in text.split(",") if part]


def rankings(qa, question: str, n: int) -> dict[str, list[str]]:
    """Chunk ids best first for each method, from one dense and one BM25 candidate list."""
    cfg = qa.settings.retrieval
    vector = qa.embeddings.embed_query(question)
    dense_scored = qa.store.nearest(vector, n)
    lexical = qa.lexical.search(question, n)
    by_sentence = qa.store.sentences.nearest(vector, n) if qa.store.sentences is not None else []
    dense_side = cfg.dense_weight + cfg.sentence_weight  # without the sentence view its weight goes to the chunk vectors
    three = [(dense_scored, cfg.dense_weight), (by_sentence, cfg.sentence_weight), (lexical, cfg.bm25_weight)]
    return {
        "dense": [cid for cid, _ in dense_scored],
        "bm25": [cid for cid, _ in lexical],
        "best sentence": [cid for cid, _ in by_sentence],
        "hybrid (convex)": [cid for cid, _ in convex_fuse(three)],  # the default, as rag.index.retrieve fuses
        "hybrid (rrf)": [cid for cid, _ in fuse([([c for c, _ in items], w) for items, w in three], cfg.rrf_k)],
        "hybrid (convex, no sentence view)": [cid for cid, _ in convex_fuse([(dense_scored, dense_side),
                                                                             (lexical, cfg.bm25_weight)])],
    }


def ablate_retrieval(dataset, sizes: list[tuple[int, int]]) -> list[dict]:
    # One fresh process per index: a process that already searched another collection can return slightly
    # different approximate-nearest-neighbour results, and the rows should match `rag eval --retrieval-only`.
    rows = []
    for size in sizes:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows += pool.submit(ablate_one_size, dataset, size).result()
    return rows


def ablate_one_size(dataset, size: tuple[int, int]) -> list[dict]:
    chunk_tokens, overlap = size
    answerable = [q for q in dataset.questions if q["answerable"] and q["gold_doc_ids"]]
    golds = [set(q["gold_doc_ids"]) for q in answerable]
    settings = load_settings(chunking={"chunk_tokens": chunk_tokens, "overlap_tokens": overlap})
    started = time.perf_counter()
    qa = open_dataset_index(settings, dataset, progress=True)
    print(f"index {chunk_tokens}/{overlap}: {qa.store.count()} chunks ({time.perf_counter() - started:.0f}s)",
          file=sys.stderr)
    qa.retriever.ensure_lexical_current()
    n = max(settings.retrieval.candidates, 10)
    per_method: dict[str, list[list[str]]] = {}
    for q in answerable:
        for method, ids in rankings(qa, q["question"], n).items():
            per_method.setdefault(method, []).append(ids[:10])
    ids = sorted({i for ranked in per_method.values() for top in ranked for i in top})
    source = {c.chunk_id: c.source for c in qa.store.get(ids)}
    return [{"chunk_tokens": chunk_tokens, "overlap_tokens": overlap, "chunks": qa.store.count(), "method": method,
             **retrieval_metrics([[source[i] for i in top] for top in ranked], golds)}
            for method, ranked in per_method.items()]


def ablate_answer_k(dataset, n_questions: int, ks: list[int], seed: int) -> list[dict]:
    settings = load_settings()
    qa = open_dataset_index(settings, dataset, progress=True)
    questions = select_questions(dataset.questions, n_questions, seed)
    rows = []
    for k in ks:
        scores, _ = evaluate_answers(qa, questions, k=k, progress=True)
        rows.append({"k": k, **scores})
        print(f"k={k}: " + ", ".join(f"{c}={scores[c]}" for c in ANSWER_COLUMNS), file=sys.stderr)
    return rows


def markdown(rows: list[dict], keys: list[str], columns: tuple[str, ...]) -> str:
    head = [*keys, *(c.split(".", 1)[-1] for c in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(keys) + ["---:"] * len(columns)) + "|"]
    best = {c: max(r[c] for r in rows) for c in columns if not c.startswith("latency")}
    for r in rows:
        cells = [str(r[k]) for k in keys]
        for c in columns:
            v = f"{r[c]:.4f}" if isinstance(r[c], float) and r[c] < 100 else f"{r[c]:.0f}"
            cells.append(f"**{v}**" if best.get(c) == r[c] and len(rows) > 1 else v)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="Folder with corpus.jsonl and questions.jsonl.")
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("112:24,160:32,224:48"),
                        help="chunk_tokens:overlap_tokens pairs (default 112:24,160:32,224:48).")
    parser.add_argument("--answers", type=int, default=0, metavar="N",
                        help="Also ablate k for answers on N questions with the configured LLM (slow).")
    parser.add_argument("--answer-ks", default="1,3,5,8", help="k values for --answers (default 1,3,5,8).")
    parser.add_argument("--seed", type=int, default=0, help="Shuffle seed for --answers' questions.")
    parser.add_argument("--out", type=Path, help="Also write the tables to this Markdown file.")
    args = parser.parse_args(argv)

    dataset = load_dataset(args.dataset)
    answerable = sum(1 for q in dataset.questions if q["answerable"] and q["gold_doc_ids"])
    parts = [f"Retrieval on {dataset.name} ({answerable} answerable questions); recall@k is k = 1, 5, 10.", "",
             markdown(ablate_retrieval(dataset, args.sizes), ["chunk_tokens", "overlap_tokens", "chunks", "method"],
                      COLUMNS)]
    if args.answers:
        ks = [int(k) for k in args.answer_ks.split(",")]
        rows = ablate_answer_k(dataset, args.answers, ks, args.seed)
        parts += ["", f"Answers on {args.answers} questions (seed {args.seed}), default index and retrieval:", "",
                  markdown(rows, ["k"], ANSWER_COLUMNS)]
    text = "\n".join(parts)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
