"""`rag eval`: measure retrieval, answers, citations, abstention and latency on a dataset folder.

The dataset (`rag.eval.datasets`) is read and checked, its corpus is ingested into its own
collection (named after the dataset and the settings that shape the index, so a rerun reuses it),
each row a document whose source is its `doc_id`; the questions are searched and asked, and the
answers scored (`rag.eval.scoring`). Metric formulas: evals/README.md; report: `rag.eval.report`.

A file-backed dataset (documents.json) is ingested from its files with `DocQA.ingest`, like a user's
files; each chunk's source (the file's path) is mapped back to its doc_id by the file's stem.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError
from rag.eval import metrics
from rag.eval.coverage import risk_coverage
from rag.eval.datasets import (
    Dataset,
    DocumentFile,
    dataset_files,
    default_files_dir,
    gold_spans,
    load_dataset,
    select_kind,
    select_questions,
    select_split,
)
from rag.eval.scoring import (
    CATEGORIES,
    RECALL_KS,
    abstention_table,
    answer_metrics,
    by_kind,
    on_gold_page,
    page_recall_metrics,
    retrieval_metrics,
    score_answer,
    standard_errors,
)
from rag.eval.sweeps import confidence_sweep, verification_sweep


# --- the index ------------------------------------------------------------------------------
def index_fingerprint(settings) -> str:
    c = settings.chunking
    key = f"{settings.embedding.model_name}|{c.chunk_tokens}|{c.overlap_tokens}|{c.encoding}"
    if settings.embedding.backend != "torch":  # torch indexes keep their names from before backends existed
        key += f"|{settings.embedding.backend}"
    if settings.embedding.backend.startswith("onnx"):  # a graph exported anew gives a new index, not a mixed one
        from rag.models.embedders.onnx import EXPORT_VERSION

        key += f"|graph{EXPORT_VERSION}"
    if c.tail_tokens:  # indexes chunked before small tails were joined keep their names
        key += f"|tail{c.tail_tokens}"
    return hashlib.sha256(key.encode()).hexdigest()[:8]


# rag/ingest modules that do not shape a file's chunks (watching, uploads, page pictures, locks); every other
# module there (loaders/*, chunking, tables, layout, OCR, the pipeline, and any added later) and every module
# of rag/text (the sentence splitter and tokenizer that chunking uses) counts as extraction code: a change to
# it re-ingests a file-backed dataset (`files_fingerprint`)
EXTRACTION_PACKAGES = ("ingest", "text")
NOT_EXTRACTION = frozenset({"ingest/watch.py", "ingest/uploads.py", "ingest/parsecheck.py", "ingest/pages.py",
                            "ingest/pdfium_lock.py"})


def loader_code_hash(root: Path | None = None) -> str:
    """A hash of the extraction code's source: the .py files of `EXTRACTION_PACKAGES` under the rag package
    (or `root`) but `NOT_EXTRACTION`."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in EXTRACTION_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel not in NOT_EXTRACTION and "__pycache__" not in rel:
                digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def files_fingerprint(settings, files: list[DocumentFile], code_hash: str | None = None) -> str:
    """`index_fingerprint` plus the files' sha256, the extraction code and the OCR settings: a changed file,
    loader or chunker gets a fresh collection instead of answers from the old extraction."""
    key = json.dumps({"index": index_fingerprint(settings), "files": sorted((f.doc_id, f.sha256) for f in files),
                      "code": code_hash or loader_code_hash(), "ocr": settings.ocr.model_dump(mode="json")},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def doc_id_of(source: str) -> str:
    """A file-backed dataset's doc_id for a chunk's source: the file's stem (`<files>/<doc_id>.<ext>`)."""
    return Path(source).stem


def open_dataset_index(settings, dataset: Dataset, *, progress: bool = False,
                       files: Path | list[DocumentFile] | None = None, **components):
    """A DocQA over the dataset's own collection, ingested (incrementally) from its corpus.

    A file-backed dataset is ingested from `files` (a folder, default `default_files_dir`, or the
    checked `dataset_files`); any other document in its collection (a file moved since) is removed.
    """
    from rag.serve.api import DocQA

    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in dataset.name)
    if dataset.from_files:
        if not isinstance(files, list):
            files = dataset_files(dataset, files or default_files_dir(dataset.name))
        collection = f"eval-{name}-{files_fingerprint(settings, files)}"
        qa = DocQA(settings.model_copy(update={"collection": collection}), **components)
        _ingest_files(qa, files, progress)
        return qa
    collection = f"eval-{name}-{index_fingerprint(settings)}"
    qa = DocQA(settings.model_copy(update={"collection": collection}), **components)
    rows = [{"source": r["doc_id"], "text": r["text"], "title": (r.get("title") or "").replace("_", " "),
             "url": r.get("url")} for r in dataset.corpus]
    qa.ingest_texts(rows, progress=_bar("ingesting corpus", len(rows)) if progress else None)
    return qa


def _ingest_files(qa, files: list[DocumentFile], progress: bool) -> None:
    from rag.core.errors import DocumentError

    report = qa.ingest([f.path for f in files], progress=_bar("ingesting files", len(files)) if progress else None)
    failed = [r for r in report.files if r.status not in ("added", "updated", "unchanged")]
    if failed:
        raise DocumentError("; ".join(f"{r.path}: {r.status} ({r.reason or 'no reason given'})" for r in failed)
                            + ": an evaluation needs every document; fix or refetch these files")
    wanted = {str(f.path.expanduser().resolve().as_posix()) for f in files}
    for info in qa.sources():
        if info.source not in wanted:
            qa.delete(info.source)


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
                "failures": self.failure_counts(), "abstentions": abstention_table(self.per_question),
                "standard_errors": standard_errors(self.per_question) if not self.config.get("retrieval_only") else {},
                "verification_sweep": verification_sweep(self.per_question)
                if any(r.get("verify_p_yes") is not None for r in self.per_question) else [],
                "confidence_sweep": confidence_sweep(self.per_question)
                if any(r.get("confidence") is not None for r in self.per_question) else [],
                **({"by_kind": kinds} if (kinds := by_kind(self.per_question)) else {}),
                **({"risk_coverage": risk_coverage(self.per_question)}
                   if any(r.get("confidence") is not None for r in self.per_question) else {}),
                "questions": self.per_question}

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
        steps = abstention_table(self.per_question)
        if steps:
            lines += ["abstentions by step (answerable/unanswerable): "
                      + ", ".join(f"{k} {v['answerable']}/{v['unanswerable']}" for k, v in steps.items())]
        kinds = by_kind(self.per_question)
        if kinds:
            cols = list(next(iter(kinds.values())))
            lines += ["", "by kind", f"{'kind':<12}" + "".join(f"{c:>{len(c) + 2}}" for c in cols)]
            lines += [f"{name:<12}" + "".join(f"{'-' if v.get(c) is None else _fmt(v[c]):>{len(c) + 2}}" for c in cols)
                      for name, v in kinds.items()]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


# --- retrieval ------------------------------------------------------------------------------
def evaluate_retrieval(qa, questions: list[dict], *, k: int = 5, mode: str | None = None,
                       progress: bool = False,
                       doc_of: Callable[[str], str] | None = None) -> tuple[dict[str, float], list[dict]]:
    """Recall@1/5/10, MRR and nDCG@10 over answerable questions with gold documents, plus latency.

    The question is searched as written (a follow-up is not rewritten here). A
    question whose gold document is not in the top `k` is a "retrieval miss".
    Questions with `gold_pages` are also scored at page level (`page_recall@1/5/10`, `on_gold_page`).
    `doc_of`: a chunk's doc_id from its source (file-backed datasets: `doc_id_of`).
    """
    answerable = [q for q in questions if q["answerable"] and q["gold_doc_ids"]]
    tick = _bar("retrieval", len(answerable)) if progress else None
    latencies, ranked, golds, rows, page_ranks = [], [], [], [], []
    for i, q in enumerate(answerable, start=1):
        started = time.perf_counter()
        chunks = qa.retrieve(q["question"], k=max(k, *RECALL_KS), mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
        docs = [doc_of(c.source) if doc_of else c.source for c in chunks]
        gold = set(q["gold_doc_ids"])
        ranked.append(docs)
        golds.append(gold)
        rank = metrics.first_hit_rank(docs, gold)
        rows.append({"qid": q["qid"], "question": q["question"], "answerable": True, "gold": q["answers"],
                     "gold_docs": sorted(gold), "retrieved": docs[:10],
                     "hit_rank": rank, "category": "retrieval miss" if rank is None or rank > k else None})
        if "kind" in q:
            rows[-1]["kind"] = q["kind"]
        if "gold_pages" in q:
            hits = [on_gold_page(q, d, c.page, c.text, getattr(c, "end_page", None)) for d, c in zip(docs, chunks)]
            page_ranks.append(next((n for n, hit in enumerate(hits, start=1) if hit), None))
            rows[-1] |= {"gold_pages": q["gold_pages"], "retrieved_pages": [c.page for c in chunks[:10]],
                         "page_hit_rank": page_ranks[-1]}
        if tick:
            tick(i, len(answerable), "")
    out = retrieval_metrics(ranked, golds)
    if page_ranks:
        out |= page_recall_metrics(page_ranks)
    out["retrieval.questions"] = len(answerable)
    out["latency.retrieval_ms_p50"] = round(metrics.percentile(latencies, 50), 2)
    out["latency.retrieval_ms_p95"] = round(metrics.percentile(latencies, 95), 2)
    return out, rows


# --- answers --------------------------------------------------------------------------------
def ask_in_context(qa, q: dict, k: int | None, cache: dict, *, gold_passages: bool = False,
                   source_of: dict[str, str] | None = None) -> Any:
    """Ask `q`, first replaying its `history` questions (answers cached, so a conversation is asked once).

    gold_passages: ask within the question's gold documents only (`sources=`), so that retrieval can only
    find the right text: what is left wrong is the reader's (the model's and the checks') doing. An
    unanswerable question's gold document is the one it was written against, which talks about its subject
    but not the asked fact: the hardest near miss. One with no gold document is asked over the whole collection.
    `source_of`: the stored source of each doc_id where they differ (file-backed datasets).
    """
    previous = None
    turns = [*q["history"], q["question"]]
    sources = sorted(q["gold_doc_ids"]) if gold_passages and q.get("gold_doc_ids") else None
    if sources and source_of:
        sources = sorted(source_of.get(d, d) for d in sources)
    for i in range(len(turns)):
        key = (tuple(turns[: i + 1]), tuple(sources or ()))
        if key not in cache:
            cache[key] = qa.ask(turns[i], history=previous, k=k, sources=sources)
        previous = cache[key]
    return previous


def evaluate_answers(qa, questions: list[dict], *, k: int | None = None, progress: bool = False,
                     texts: dict[str, str] | None = None, gold_passages: bool = False,
                     doc_of: Callable[[str], str] | None = None) -> tuple[dict[str, float], list[dict]]:
    """Ask every question (replaying follow-up history) and score the answers.

    `texts`: the corpus documents by doc_id, to place the gold answer spans (`gold_spans`).
    `gold_passages`: ask within each question's gold documents only (`ask_in_context`).
    `doc_of`: a chunk's doc_id from its source (file-backed datasets: `doc_id_of`); answers are scored by doc_id.
    """
    tick = _bar("answers", len(questions)) if progress else None
    threshold = qa.settings.answer.support_threshold if hasattr(qa, "settings") else 0.35
    source_of = {doc_of(s.source): s.source for s in qa.sources()} if doc_of else None
    cache: dict = {}
    rows = []
    for i, q in enumerate(questions, start=1):
        answer = ask_in_context(qa, q, k, cache, gold_passages=gold_passages, source_of=source_of)
        if doc_of:
            answer = relabel(answer, doc_of)
        rows.append(score_answer(q, answer, gold_spans(q, texts or {}), threshold))
        if tick:
            tick(i, len(questions), "")
    return answer_metrics(rows), rows


def relabel(answer, doc_of: Callable[[str], str]):
    """A copy of `answer` whose passages and citations name their doc_id (`doc_of(source)`) as source."""
    return replace(answer, passages=[replace(c, source=doc_of(c.source)) for c in answer.passages],
                   citations=[replace(c, source=doc_of(c.source)) for c in answer.citations],
                   withheld=relabel(answer.withheld, doc_of) if answer.withheld is not None else None)


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
             progress: bool = False, split: str | None = None, qids: list[str] | None = None,
             gold_passages: bool = False, kind: str | None = None, files: Path | None = None,
             **components) -> EvalResult:
    """Evaluate on a dataset folder (or a loaded `Dataset`).

    Args:
        settings: loaded settings; `mode` and `llm` override its retrieval mode and LLM provider.
        dataset: a folder (corpus.jsonl + questions.jsonl, or documents.json + questions.jsonl for a
            file-backed dataset) or a `Dataset`.
        retrieval_only: skip the answers (no LLM).
        limit, seed: shuffle the questions with `seed`, then keep the first `limit`.
        split: keep only the questions of this split ("dev", "test", or "seen" for squad-dev-mini's tuned-on half):
            each question's own `split` field,
            else the dataset's `split.json`; a file-backed dataset also ingests only that split's documents.
        kind: keep only the questions of this kind (`table`, `steps`, ...).
        files: where a file-backed dataset's documents are (default `~/.cache/rag-evals/<name>/files`).
        qids: keep only these questions (in this order), e.g. the gate's fixed sample (`read_qids`).
        k: passages per answer (default `retrieval.k`); retrieval misses are counted at this k.
        progress: show tqdm progress bars (hidden when not on a terminal).
        gold_passages: answer from each question's gold documents only (the reader's ceiling: retrieval
            cannot miss); the retrieval metrics still measure the open search.
        **components: `embeddings=` / `chat_model=` passed to `DocQA` (tests).
    """
    if mode and mode not in ("hybrid", "dense", "bm25"):
        raise ConfigError(f"unknown retrieval mode {mode!r}: use hybrid, dense or bm25")
    if llm and llm not in ("local", "openai", "fake"):
        raise ConfigError(f"unknown llm {llm!r}: use local, openai or fake")
    settings = eval_settings(settings, mode=mode, llm=llm)
    folder = None if isinstance(dataset, Dataset) else Path(dataset)
    dataset = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if split:
        if folder is None:
            raise ConfigError("--split needs a dataset folder (its split.json)")
        dataset = select_split(dataset, folder, split)
    if kind:
        dataset = select_kind(dataset, kind)
    if qids:
        by_qid = {q["qid"]: q for q in dataset.questions}
        unknown = [x for x in qids if x not in by_qid]
        if unknown:
            raise ConfigError(f"qids {unknown[:5]} are not questions of {dataset.name}{' (' + split + ' split)' if split else ''}")
        dataset = replace(dataset, questions=[by_qid[x] for x in qids])
    questions = select_questions(dataset.questions, limit, seed)
    doc_files = None
    if dataset.from_files:  # checked before anything is loaded: a missing file names the fetch command
        files = Path(files).expanduser() if files else default_files_dir(dataset.name)
        doc_files = dataset_files(dataset, files, folder)
    if gold_passages and not retrieval_only:  # before the index is built and searched
        missing = [q["qid"] for q in questions if q["answerable"] and not q.get("gold_doc_ids")]
        if missing:
            raise ConfigError(f"--gold-passages needs gold_doc_ids on every answerable question; {missing[:5]} have none")
    k = k or settings.retrieval.k
    started = time.perf_counter()
    qa = open_dataset_index(settings, dataset, progress=progress, files=doc_files, **components)
    ingest_s = time.perf_counter() - started
    if not retrieval_only:
        qa.warm(background=True)  # the first question's first token does not include reading the fixed prompt text
    doc_of = doc_id_of if dataset.from_files else None
    from rag.models.chat.factory import describe_llm

    config = {"mode": settings.retrieval.mode, "fusion": settings.retrieval.fusion, "k": k,
              "chunk_tokens": settings.chunking.chunk_tokens, "overlap_tokens": settings.chunking.overlap_tokens,
              "embedding": settings.embedding.model_name, "embedding_backend": settings.embedding.backend,
              "llm": None if retrieval_only else describe_llm(settings),
              "questions": len(questions), "split": split, "qids": str(len(qids)) + " listed" if qids else None,
              "limit": limit, "seed": seed,
              "retrieval_only": retrieval_only, "gold_passages": gold_passages}
    if dataset.from_files:  # only for file-backed sets, so corpus runs' configuration stays as it was
        config |= {"kind": kind, "files": str(files), "documents": ", ".join(f.doc_id for f in doc_files)}
    result = EvalResult(dataset.name, config)
    result.metrics, retrieval_rows = evaluate_retrieval(qa, questions, k=k, progress=progress, doc_of=doc_of)
    if dataset.from_files:  # seconds to open the index: the first run's ingest, near 0 when the cache is reused
        result.metrics |= {"ingest.documents": len(doc_files), "ingest.chunks": sum(s.chunks for s in qa.sources()),
                           "ingest.seconds": round(ingest_s, 2)}
    if retrieval_only:
        result.per_question = retrieval_rows
        return result
    scores, rows = evaluate_answers(qa, questions, k=k, progress=progress,
                                    texts={d["doc_id"]: d["text"] for d in dataset.corpus if "text" in d},
                                    gold_passages=gold_passages, doc_of=doc_of)
    ranks = {r["qid"]: r["hit_rank"] for r in retrieval_rows}
    page_ranks = {r["qid"]: r["page_hit_rank"] for r in retrieval_rows if "page_hit_rank" in r}
    for row in rows:
        row["hit_rank"] = ranks.get(row["qid"])
        if row["qid"] in page_ranks:
            row["page_hit_rank"] = page_ranks[row["qid"]]
    # the answer path's own retrieval timing replaces the bare search's
    result.metrics = {key: v for key, v in result.metrics.items() if not key.startswith("latency.")} | scores
    result.per_question = rows
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
