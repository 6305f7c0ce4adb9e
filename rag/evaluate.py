"""`rag eval`: measure retrieval, answers, citations, abstention and latency on a dataset folder.

A dataset is a folder with `corpus.jsonl` (`doc_id`, `title`, `text`, optional
`url`) and `questions.jsonl` (`qid`, `question`, `answers`, `gold_doc_ids`,
`answerable`, optional `history`: earlier questions of the same conversation).
The corpus is ingested into its own collection (named after the dataset and the
settings that shape the index, so a rerun reuses it), each row a document whose
source is its `doc_id`. Metric formulas: evals/README.md; report: `rag.report`.
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
CATEGORIES = ("retrieval miss", "model error", "citation error", "wrong abstention", "missed abstention")


# --- datasets -------------------------------------------------------------------------------
@dataclass
class Dataset:
    name: str
    corpus: list[dict]
    questions: list[dict]


def load_dataset(folder: Path) -> Dataset:
    """Read and check a dataset folder; every problem names the file and line to fix.

    Raises:
        ConfigError: a file is missing, a line is not a JSON object, a field is
            missing or mistyped, an id repeats, or a gold document is not in the corpus.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"dataset folder {folder} not found: give a folder with corpus.jsonl and questions.jsonl")
    corpus, doc_ids = [], set()
    for row, where in _read_jsonl(folder / "corpus.jsonl"):
        doc = _corpus_row(row, where)
        if doc["doc_id"] in doc_ids:
            raise ConfigError(f"{where}: doc_id {doc['doc_id']!r} appears twice")
        doc_ids.add(doc["doc_id"])
        corpus.append(doc)
    questions, qids = [], set()
    for row, where in _read_jsonl(folder / "questions.jsonl"):
        q = _question_row(row, where)
        if q["qid"] in qids:
            raise ConfigError(f"{where}: qid {q['qid']!r} appears twice")
        unknown = [d for d in q["gold_doc_ids"] if d not in doc_ids]
        if unknown:
            raise ConfigError(f"{where}: gold_doc_ids {unknown} are not doc_ids in corpus.jsonl")
        qids.add(q["qid"])
        questions.append(q)
    if not corpus or not questions:
        raise ConfigError(f"{folder}: corpus.jsonl and questions.jsonl must each hold at least one row")
    return Dataset(folder.name, corpus, questions)


def _read_jsonl(path: Path):
    if not path.is_file():
        raise ConfigError(f"{path} not found: a dataset folder needs corpus.jsonl and questions.jsonl (see evals/README.md)")
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ConfigError(f"{where}: expected a JSON object")
            yield row, where


def _field(row: dict, name: str, kind: type, where: str, default: Any = ...) -> Any:
    if name not in row or row[name] is None:
        if default is ...:
            raise ConfigError(f"{where}: missing field {name!r}")
        return default
    value = row[name]
    if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{where}: {name!r} must be a list of strings")
    if kind is not list and not isinstance(value, kind):
        names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{where}: {name!r} must be a {names}")
    return value


def _corpus_row(row: dict, where: str) -> dict:
    out = {"doc_id": str(_field(row, "doc_id", (str, int), where)), "text": _field(row, "text", str, where),
           "title": _field(row, "title", str, where, ""), "url": _field(row, "url", str, where, None)}
    if not out["text"].strip():
        raise ConfigError(f"{where}: 'text' is empty")
    return out


def _question_row(row: dict, where: str) -> dict:
    q = {"qid": str(_field(row, "qid", (str, int), where)), "question": _field(row, "question", str, where),
         "answers": _field(row, "answers", list, where, []), "gold_doc_ids": _field(row, "gold_doc_ids", list, where, []),
         "answerable": _field(row, "answerable", bool, where, True), "history": _field(row, "history", list, where, [])}
    if q["answerable"] and not q["answers"]:
        raise ConfigError(f"{where}: an answerable question needs at least one gold answer in 'answers'")
    return q


def select_questions(questions: list[dict], limit: int | None, seed: int | None) -> list[dict]:
    """Shuffle with `seed` (if given), then keep the first `limit`."""
    qs = list(questions)
    if seed is not None:
        random.Random(seed).shuffle(qs)
    return qs[:limit] if limit else qs


# --- the index ------------------------------------------------------------------------------
def index_fingerprint(settings) -> str:
    c = settings.chunking
    key = f"{settings.embedding.model_name}|{c.chunk_tokens}|{c.overlap_tokens}|{c.encoding}"
    if settings.embedding.backend != "torch":  # torch indexes keep their names from before backends existed
        key += f"|{settings.embedding.backend}"
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def open_dataset_index(settings, dataset: Dataset, *, progress: bool = False, **components):
    """A DocQA over the dataset's own collection, ingested (incrementally) from its corpus."""
    from rag.api import DocQA

    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in dataset.name)
    collection = f"eval-{name}-{index_fingerprint(settings)}"
    qa = DocQA(settings.model_copy(update={"collection": collection}), **components)
    rows = [{"source": r["doc_id"], "text": r["text"], "title": (r.get("title") or "").replace("_", " "),
             "url": r.get("url")} for r in dataset.corpus]
    qa.ingest_texts(rows, progress=_bar("ingesting corpus", len(rows)) if progress else None)
    return qa


# --- results --------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """Flat metrics (`retrieval.recall@5`, `answer.f1`, ...), the run's configuration and per-question rows."""

    dataset: str
    config: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    per_question: list[dict] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "config": self.config, "metrics": self.metrics,
                "failures": self.failure_counts(), "questions": self.per_question}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EvalResult":
        return cls(data.get("dataset", "?"), data.get("config", {}), data.get("metrics", {}), data.get("questions", []))

    def failure_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(CATEGORIES, 0)
        for row in self.per_question:
            if row.get("category"):
                counts[row["category"]] += 1
        return {k: v for k, v in counts.items() if v or not self.config.get("retrieval_only")}

    def table(self) -> str:
        """The metrics as an aligned two-column text table, grouped by prefix."""
        width = max((len(k) for k in self.metrics), default=10)
        config = "  ".join(f"{k}={v}" for k, v in self.config.items() if v is not None)
        lines = [f"dataset {self.dataset}  {config}", f"{'metric':<{width}}  value", "-" * (width + 10)]
        group = None
        for key, value in self.metrics.items():
            if group is not None and key.split(".")[0] != group:
                lines.append("")
            group = key.split(".")[0]
            lines.append(f"{key:<{width}}  {_fmt(value)}")
        counts = self.failure_counts()
        if counts:
            lines += ["", "failures: " + ", ".join(f"{k} {v}" for k, v in counts.items())]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


# --- retrieval ------------------------------------------------------------------------------
def retrieval_metrics(ranked_docs: list[list[str]], golds: list[set[str]]) -> dict[str, float]:
    """Recall@1/5/10, MRR and nDCG@10 averaged over questions (ranked_docs: each question's sources, best first)."""
    n = max(len(golds), 1)
    out = {f"retrieval.recall@{k}": sum(metrics.recall_at_k(d, g, k) for d, g in zip(ranked_docs, golds)) / n
           for k in RECALL_KS}
    out["retrieval.mrr"] = sum(metrics.reciprocal_rank(d, g) for d, g in zip(ranked_docs, golds)) / n
    out["retrieval.ndcg@10"] = sum(metrics.ndcg_at_k(d, g, 10) for d, g in zip(ranked_docs, golds)) / n
    return {k: round(v, 4) for k, v in out.items()}


def evaluate_retrieval(qa, questions: list[dict], *, k: int = 5, mode: str | None = None,
                       progress: bool = False) -> tuple[dict[str, float], list[dict]]:
    """Recall@1/5/10, MRR and nDCG@10 over answerable questions with gold documents, plus latency.

    The question is searched as written (a follow-up is not rewritten here). A
    question whose gold document is not in the top `k` is a "retrieval miss".
    """
    answerable = [q for q in questions if q["answerable"] and q["gold_doc_ids"]]
    tick = _bar("retrieval", len(answerable)) if progress else None
    latencies, ranked, golds, rows = [], [], [], []
    for i, q in enumerate(answerable, start=1):
        started = time.perf_counter()
        chunks = qa.retrieve(q["question"], k=max(k, *RECALL_KS), mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        docs = [c.source for c in chunks]
        gold = set(q["gold_doc_ids"])
        ranked.append(docs)
        golds.append(gold)
        rank = metrics.first_hit_rank(docs, gold)
        rows.append({"qid": q["qid"], "question": q["question"], "answerable": True, "gold": q["answers"],
                     "gold_docs": sorted(gold), "retrieved": docs[:10],
                     "hit_rank": rank, "category": "retrieval miss" if rank is None or rank > k else None})
        if tick:
            tick(i, len(answerable), "")
    out = retrieval_metrics(ranked, golds)
    out["retrieval.questions"] = len(answerable)
    out["latency.retrieval_ms_p50"] = round(metrics.percentile(latencies, 50), 2)
    out["latency.retrieval_ms_p95"] = round(metrics.percentile(latencies, 95), 2)
    return out, rows


# --- answers --------------------------------------------------------------------------------
def ask_in_context(qa, q: dict, k: int | None, cache: dict) -> Any:
    """Ask `q`, first replaying its `history` questions (answers cached, so a conversation is asked once)."""
    previous = None
    turns = [*q["history"], q["question"]]
    for i in range(len(turns)):
        key = tuple(turns[: i + 1])
        if key not in cache:
            cache[key] = qa.ask(turns[i], history=previous, k=k)
        previous = cache[key]
    return previous


def score_answer(q: dict, answer) -> dict:
    """One question's answer scores, citation judgements and failure category (see evals/README.md)."""
    golds = q["answers"]
    gold_docs = set(q["gold_doc_ids"])
    short = answer.short_answer or answer.text
    supported = [c.n for c in answer.citations if c.supported]
    sentences_ok, sentences = (0, 0) if answer.abstained else metrics.faithful_sentences(answer.text, supported)
    citations = []
    for c in answer.citations:
        correct = c.source in gold_docs or (q["answerable"] and metrics.contains_answer(c.text, golds))
        citations.append({"n": c.n, "source": c.source, "chunk_id": c.chunk_id, "quote": c.quote,
                          "support": c.support, "supported": c.supported, "correct": bool(correct)})
    row = {
        "qid": q["qid"], "question": q["question"], "history": q["history"], "answerable": q["answerable"],
        "gold": golds, "gold_docs": sorted(gold_docs), "answer": answer.text, "short_answer": answer.short_answer,
        "standalone_question": answer.standalone_question, "abstained": answer.abstained,
        "passages": [p.source for p in answer.passages], "citations": citations,
        "dropped_citations": answer.dropped_citations, "faithful_sentences": sentences_ok, "sentences": sentences,
        "timings": dict(answer.timings),
    }
    if q["answerable"]:
        row |= {"em": metrics.exact_match(answer.text, golds), "f1": round(metrics.token_f1(answer.text, golds), 4),
                "short_em": metrics.exact_match(short, golds), "short_f1": round(metrics.token_f1(short, golds), 4)}
        # right = a gold answer (or alias) appears as whole words in the short answer or the full text
        row["correct"] = not answer.abstained and metrics.contains_answer(f"{short} \n {answer.text}", golds)
    row["category"] = categorize(row)
    return row


def categorize(row: dict) -> str | None:
    """The failure category of a scored question, or None when it went right."""
    if not row["answerable"]:
        return None if row["abstained"] else "missed abstention"
    if row["abstained"]:
        return "wrong abstention"
    if not row["correct"]:
        gold_retrieved = not row["gold_docs"] or set(row["gold_docs"]) & set(row["passages"])
        return "model error" if gold_retrieved else "retrieval miss"
    return None if any(c["correct"] for c in row["citations"]) else "citation error"


def answer_metrics(rows: list[dict]) -> dict[str, float]:
    """Aggregate scored rows into the `answer.*`, `citation.*`, `abstention.*`, `faithfulness` and latency keys."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if not r["abstained"]]
    cites = [c for r in answered for c in r["citations"]]
    all_cites = [c for r in rows if not r["abstained"] for c in r["citations"]]
    sentences = sum(r["sentences"] for r in rows)
    mean = metrics.mean
    out = {
        "answer.questions": len(answerable),
        "answer.em": mean([r["em"] for r in answerable]),
        "answer.f1": mean([r["f1"] for r in answerable]),
        "answer.short_em": mean([r["short_em"] for r in answerable]),
        "answer.short_f1": mean([r["short_f1"] for r in answerable]),
        "answer.accuracy": mean([float(r["correct"]) for r in answerable]),
        "citation.precision": mean([float(c["correct"]) for c in cites]),
        "citation.recall": mean([float(any(c["correct"] for c in r["citations"])) for r in answered]),
        "citation.unsupported_rate": mean([float(not c["supported"]) for c in all_cites]),
        "citation.per_answer": mean([len(r["citations"]) for r in rows if not r["abstained"]]),
        "citation.dropped": sum(r["dropped_citations"] for r in rows),
        "abstention.unanswerable_questions": len(unanswerable),
        "abstention.unanswerable_abstained": mean([float(r["abstained"]) for r in unanswerable]),
        "abstention.answerable_abstained": mean([float(r["abstained"]) for r in answerable]),
        "faithfulness": sum(r["faithful_sentences"] for r in rows) / sentences if sentences else 0.0,
    }
    for name in ("retrieval_ms", "first_token_ms", "total_ms"):
        values = [r["timings"][name] for r in rows if name in r["timings"]]
        out[f"latency.{name}_p50"] = metrics.percentile(values, 50)
        out[f"latency.{name}_p95"] = metrics.percentile(values, 95)
    out["latency.tokens_per_s_mean"] = mean([r["timings"]["tokens_per_s"] for r in rows
                                             if r["timings"].get("tokens_per_s")])
    # what the model had to read per answer (question + evidence shown + follow-up context), and what
    # llama.cpp actually evaluated (the local model reports it; the rest was cached)
    for name in ("necessary_tokens", "prompt_evaluated"):
        values = [r["timings"][name] for r in rows if name in r["timings"]]
        if values:
            out[f"prompt.{name}_p50"] = metrics.percentile(values, 50)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def evaluate_answers(qa, questions: list[dict], *, k: int | None = None,
                     progress: bool = False) -> tuple[dict[str, float], list[dict]]:
    """Ask every question (replaying follow-up history) and score the answers."""
    tick = _bar("answers", len(questions)) if progress else None
    cache: dict = {}
    rows = []
    for i, q in enumerate(questions, start=1):
        rows.append(score_answer(q, ask_in_context(qa, q, k, cache)))
        if tick:
            tick(i, len(questions), "")
    return answer_metrics(rows), rows


# --- the whole run --------------------------------------------------------------------------
def eval_settings(settings, *, mode: str | None = None, llm: str | None = None):
    """`settings` with the retrieval mode and LLM provider chosen on the command line."""
    update = {}
    if mode:
        update["retrieval"] = settings.retrieval.model_copy(update={"mode": mode})
    if llm:
        update["llm"] = settings.llm.model_copy(update={"provider": llm})
    return settings.model_copy(update=update) if update else settings


def run_eval(settings, dataset: Path | Dataset, *, retrieval_only: bool = False, limit: int | None = None,
             seed: int | None = None, mode: str | None = None, llm: str | None = None, k: int | None = None,
             progress: bool = False, **components) -> EvalResult:
    """Evaluate on a dataset folder (or a loaded `Dataset`).

    Args:
        settings: loaded settings; `mode` and `llm` override its retrieval mode and LLM provider.
        dataset: a folder (corpus.jsonl + questions.jsonl) or a `Dataset`.
        retrieval_only: skip the answers (no LLM).
        limit, seed: shuffle the questions with `seed`, then keep the first `limit`.
        k: passages per answer (default `retrieval.k`); retrieval misses are counted at this k.
        progress: show tqdm progress bars (hidden when not on a terminal).
        **components: `embeddings=` / `chat_model=` passed to `DocQA` (tests).
    """
    if mode and mode not in ("hybrid", "dense", "bm25"):
        raise ConfigError(f"unknown retrieval mode {mode!r}: use hybrid, dense or bm25")
    if llm and llm not in ("local", "openai", "fake"):
        raise ConfigError(f"unknown llm {llm!r}: use local, openai or fake")
    settings = eval_settings(settings, mode=mode, llm=llm)
    dataset = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    questions = select_questions(dataset.questions, limit, seed)
    k = k or settings.retrieval.k
    qa = open_dataset_index(settings, dataset, progress=progress, **components)
    from rag.llm import describe_llm

    config = {"mode": settings.retrieval.mode, "fusion": settings.retrieval.fusion, "k": k,
              "chunk_tokens": settings.chunking.chunk_tokens, "overlap_tokens": settings.chunking.overlap_tokens,
              "embedding": settings.embedding.model_name, "embedding_backend": settings.embedding.backend,
              "llm": None if retrieval_only else describe_llm(settings),
              "questions": len(questions), "limit": limit, "seed": seed, "retrieval_only": retrieval_only}
    result = EvalResult(dataset.name, config)
    result.metrics, retrieval_rows = evaluate_retrieval(qa, questions, k=k, progress=progress)
    if retrieval_only:
        result.per_question = retrieval_rows
        return result
    scores, rows = evaluate_answers(qa, questions, k=k, progress=progress)
    ranks = {r["qid"]: r["hit_rank"] for r in retrieval_rows}
    for row in rows:
        row["hit_rank"] = ranks.get(row["qid"])
    # the answer path's own retrieval timing replaces the bare search's
    result.metrics = {key: v for key, v in result.metrics.items() if not key.startswith("latency.")} | scores
    result.per_question = rows
    return result


def check_floors(scores: dict[str, float], floors: dict[str, Any]) -> list[str]:
    """The metrics that break their committed bound (evals/floors.json), as readable lines.

    A number is a floor (the metric must be at least that); `{"max": x}` is a
    ceiling, for metrics where lower is better.
    """
    problems = []
    for key, bound in floors.items():
        if key not in scores:
            problems.append(f"{key}: not measured")
            continue
        value = scores[key]
        if isinstance(bound, dict):
            if value > bound["max"]:
                problems.append(f"{key} = {value} is above its ceiling {bound['max']}")
        elif value < bound:
            problems.append(f"{key} = {value} is below its floor {bound}")
    return problems


def _bar(label: str, total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, leave=False, disable=None)

    def tick(done: int, _total: int, _name: str) -> None:
        bar.n = done
        bar.refresh()
        if done >= _total:
            bar.close()

    return tick

