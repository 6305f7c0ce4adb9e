"""`rag eval`: measure retrieval (and, later, answers) on a dataset folder.

A dataset is a folder with `corpus.jsonl` (`doc_id`, `title`, `text`, optional
`url`) and `questions.jsonl` (`qid`, `question`, `answers`, `gold_doc_ids`,
`answerable`). The corpus is ingested into its own collection (named after the
dataset and the settings that shape the index, so a rerun reuses it), each row a
document whose source is its `doc_id`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag import metrics
from rag.errors import ConfigError

RECALL_KS = (1, 5, 10)


@dataclass
class Dataset:
    name: str
    corpus: list[dict]
    questions: list[dict]


def load_dataset(folder: Path) -> Dataset:
    folder = Path(folder)
    rows = {}
    for name in ("corpus.jsonl", "questions.jsonl"):
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"{path} not found: a dataset folder needs corpus.jsonl and questions.jsonl (see evals/README.md)")
        with open(path, encoding="utf-8") as fh:
            rows[name] = [json.loads(line) for line in fh if line.strip()]
    return Dataset(folder.name, rows["corpus.jsonl"], rows["questions.jsonl"])


@dataclass
class EvalResult:
    dataset: str
    config: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    per_question: list[dict] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "config": self.config, "metrics": self.metrics, "questions": self.per_question}

    def table(self) -> str:
        width = max(len(k) for k in self.metrics) if self.metrics else 10
        lines = [f"dataset {self.dataset}  " + "  ".join(f"{k}={v}" for k, v in self.config.items())]
        lines += [f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in self.metrics.items()]
        return "\n".join(lines)


def index_fingerprint(settings) -> str:
    c = settings.chunking
    key = f"{settings.embedding.model_name}|{c.chunk_tokens}|{c.overlap_tokens}|{c.encoding}"
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def open_dataset_index(settings, dataset: Dataset, *, progress: bool = False):
    """A DocQA over the dataset's own collection, ingested (incrementally) from its corpus."""
    from rag.api import DocQA

    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in dataset.name)
    collection = f"eval-{name}-{index_fingerprint(settings)}"
    qa = DocQA(settings.model_copy(update={"collection": collection}))
    rows = [{"source": r["doc_id"], "text": r["text"], "title": (r.get("title") or "").replace("_", " "),
             "url": r.get("url")} for r in dataset.corpus]
    qa.ingest_texts(rows, progress=_bar("ingesting corpus", len(rows)) if progress else None)
    return qa


def select_questions(questions: list[dict], limit: int | None, seed: int | None) -> list[dict]:
    qs = list(questions)
    if seed is not None:
        random.Random(seed).shuffle(qs)
    return qs[:limit] if limit else qs


def evaluate_retrieval(qa, questions: list[dict], *, k: int = 10, mode: str | None = None,
                       progress: bool = False) -> tuple[dict[str, float], list[dict]]:
    """Recall@1/5/10, MRR and nDCG@10 over answerable questions, plus latency."""
    answerable = [q for q in questions if q.get("answerable", True) and q.get("gold_doc_ids")]
    tick = _bar("retrieval", len(answerable)) if progress else None
    sums = {f"recall@{n}": 0.0 for n in RECALL_KS} | {"mrr": 0.0, "ndcg@10": 0.0}
    latencies, rows = [], []
    for i, q in enumerate(answerable, start=1):
        started = time.perf_counter()
        chunks = qa.retrieve(q["question"], k=max(k, max(RECALL_KS)), mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        docs = [c.source for c in chunks]
        gold = set(q["gold_doc_ids"])
        for n in RECALL_KS:
            sums[f"recall@{n}"] += metrics.recall_at_k(docs, gold, n)
        sums["mrr"] += metrics.reciprocal_rank(docs, gold)
        sums["ndcg@10"] += metrics.ndcg_at_k(docs, gold, 10)
        rows.append({"qid": q["qid"], "question": q["question"], "gold": sorted(gold),
                     "retrieved": docs[:10], "hit_rank": metrics.first_hit_rank(docs, gold)})
        if tick:
            tick(i, len(answerable), "")
    n = max(len(answerable), 1)
    out = {f"retrieval.{k_}": round(v / n, 4) for k_, v in sums.items()}
    out["retrieval.questions"] = len(answerable)
    out["latency.retrieval_ms_p50"] = round(metrics.percentile(latencies, 50), 2)
    out["latency.retrieval_ms_p95"] = round(metrics.percentile(latencies, 95), 2)
    return out, rows


def run_eval(settings, dataset_dir: Path, *, retrieval_only: bool = True, limit: int | None = None,
             seed: int | None = None, mode: str | None = None, progress: bool = False) -> EvalResult:
    dataset = load_dataset(dataset_dir)
    qa = open_dataset_index(settings, dataset, progress=progress)
    questions = select_questions(dataset.questions, limit, seed)
    mode = mode or settings.retrieval.mode
    config = {"mode": mode, "chunk_tokens": settings.chunking.chunk_tokens,
              "overlap_tokens": settings.chunking.overlap_tokens, "questions": len(questions)}
    result = EvalResult(dataset.name, config)
    result.metrics, result.per_question = evaluate_retrieval(qa, questions, mode=mode, progress=progress)
    if not retrieval_only:
        raise ConfigError("answer evaluation is not available yet: run with --retrieval-only")
    return result


def _bar(label: str, total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, leave=False, disable=None)

    def tick(done: int, _total: int, _name: str) -> None:
        bar.n = done
        bar.refresh()
        if done >= _total:
            bar.close()

    return tick
