"""`rag eval`: measure retrieval, answers, citations, abstention and latency on a dataset folder.

A dataset is a folder with `corpus.jsonl` (`doc_id`, `title`, `text`, optional
`url`) and `questions.jsonl` (`qid`, `question`, `answers`, `gold_doc_ids`,
`answerable`, optional `history`: earlier questions of the same conversation).
The corpus is ingested into its own collection (named after the dataset and the
settings that shape the index, so a rerun reuses it), each row a document whose
source is its `doc_id`. Metric formulas: evals/README.md; report: `rag.eval.report`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError
from rag.eval import metrics

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
         "answerable": _field(row, "answerable", bool, where, True), "history": _field(row, "history", list, where, []),
         "answer_starts": _starts(row, where), "evidence": _field(row, "evidence", list, where, []),
         "list_items": _field(row, "list_items", list, where, [])}
    if q["answerable"] and not q["answers"]:
        raise ConfigError(f"{where}: an answerable question needs at least one gold answer in 'answers'")
    return q


def _starts(row: dict, where: str) -> list[int]:
    value = row.get("answer_starts") or []
    if not (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"{where}: 'answer_starts' must be a list of character offsets (integers)")
    return value


def gold_spans(q: dict, texts: dict[str, str]) -> list[tuple[str, int, int]]:
    """The gold answers' character spans (doc_id, start, end) in the gold documents.

    `answer_starts` are offsets into a gold document (SQuAD keeps one per annotator, not one per
    deduplicated answer), so each offset is paired with every answer that is written there.
    `evidence` (sentences copied from a gold document) places the answer where `answer_starts` are not
    given: the span of a gold answer inside the evidence, else the evidence itself.
    """
    spans = set()
    for doc in q["gold_doc_ids"]:
        text = _plain(texts.get(doc, ""))
        for start in q.get("answer_starts") or []:
            for gold in q["answers"]:
                if text[start:start + len(gold)] == _plain(gold):
                    spans.add((doc, start, start + len(gold)))
        for evidence in q.get("evidence") or []:
            at = text.find(_plain(evidence))
            if at < 0:
                continue
            golds = [*q["answers"], *(a for item in q.get("list_items", []) for a in item.split("|"))]
            inside = [(_plain(evidence).find(_plain(g)), len(g)) for g in golds]
            inside = [(i, n) for i, n in inside if i >= 0]
            spans.update((doc, at + i, at + i + n) for i, n in inside)
            if not inside:
                spans.add((doc, at, at + len(evidence)))
    return sorted(spans)


def _plain(text: str) -> str:
    """Lower case, no-break spaces and curly apostrophes made plain (same length, so offsets hold)."""
    return text.replace("\xa0", " ").replace("’", "'").lower()


def load_split(folder: Path, name: str) -> set[str]:
    """The document titles of split `name` ("dev" or "test") from the dataset's `split.json`."""
    path = Path(folder) / "split.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: --split needs a split.json in the dataset folder (see evals/README.md)")
    splits = json.loads(path.read_text(encoding="utf-8"))
    if name not in splits or not isinstance(splits[name], list):
        raise ConfigError(f"{path} has no split {name!r}: use one of {', '.join(k for k in splits if k != 'note')}")
    return set(splits[name])


def split_dataset(dataset: Dataset, titles: set[str]) -> Dataset:
    """The questions whose gold documents belong to articles titled `titles` (the whole corpus stays)."""
    title_of = {d["doc_id"]: d["title"] for d in dataset.corpus}
    qs = [q for q in dataset.questions if q["gold_doc_ids"] and title_of[q["gold_doc_ids"][0]] in titles]
    return Dataset(dataset.name, dataset.corpus, qs)


def read_qids(path: Path) -> list[str]:
    """A list of qids, one a line (blank lines and `#` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: give a file of qids, one a line")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


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
    if settings.embedding.backend.startswith("onnx"):  # a graph exported anew gives a new index, not a mixed one
        from rag.models.onnx_embeddings import EXPORT_VERSION

        key += f"|graph{EXPORT_VERSION}"
    if c.tail_tokens:  # indexes chunked before small tails were joined keep their names
        key += f"|tail{c.tail_tokens}"
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def open_dataset_index(settings, dataset: Dataset, *, progress: bool = False, **components):
    """A DocQA over the dataset's own collection, ingested (incrementally) from its corpus."""
    from rag.serve.api import DocQA

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
                "failures": self.failure_counts(), "abstentions": abstention_table(self.per_question),
                "standard_errors": standard_errors(self.per_question) if not self.config.get("retrieval_only") else {},
                "verification_sweep": verification_sweep(self.per_question)
                if any(r.get("verify_p_yes") is not None for r in self.per_question) else [],
                "doubt_sweep": doubt_sweep(self.per_question)
                if any(r.get("decline_p") is not None for r in self.per_question) else [],
                "sureness_sweep": sureness_sweep(self.per_question)
                if any(r.get("first_token_p") is not None for r in self.per_question) else [],
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
def ask_in_context(qa, q: dict, k: int | None, cache: dict, *, gold_passages: bool = False) -> Any:
    """Ask `q`, first replaying its `history` questions (answers cached, so a conversation is asked once).

    gold_passages: ask within the question's gold documents only (`sources=`), so that retrieval can only
    find the right text: what is left wrong is the reader's (the model's and the checks') doing. An
    unanswerable question's gold document is the one it was written against, which talks about its subject
    but not the asked fact: the hardest near miss. One with no gold document is asked over the whole collection.
    """
    previous = None
    turns = [*q["history"], q["question"]]
    sources = sorted(q["gold_doc_ids"]) if gold_passages and q.get("gold_doc_ids") else None
    for i in range(len(turns)):
        key = (tuple(turns[: i + 1]), tuple(sources or ()))
        if key not in cache:
            cache[key] = qa.ask(turns[i], history=previous, k=k, sources=sources)
        previous = cache[key]
    return previous


def score_answer(q: dict, answer, spans: list[tuple[str, int, int]] | None = None,
                 support_threshold: float = 0.35) -> dict:
    """One question's answer scores, citation judgements and failure category (see evals/README.md).

    `spans`: the gold answers' character spans (`gold_spans`), for passage-level citation correctness.
    Citations are scored twice: as the user sees them (`citations`, after the answer path's repairs) and
    as the model wrote them (`raw_citations`, the `[n]` markers of `Answer.raw_reply`).
    """
    golds = q["answers"]
    gold_docs = set(q["gold_doc_ids"])
    short = answer.short_answer or answer.text
    chunks = {c.chunk_id: c for c in answer.passages}
    supported = [c.n for c in answer.citations if c.supported]
    sentences_ok, sentences = (0, 0) if answer.abstained else metrics.faithful_sentences(answer.text, supported)

    def correct(chunk_id: str | None, text: str, source: str) -> bool:
        """Passage level: the cited chunk holds a gold answer, or overlaps a gold answer's span."""
        if not q["answerable"] or chunk_id is None:
            return False
        if metrics.contains_answer(text, golds):
            return True
        c = chunks.get(chunk_id)
        return c is not None and any(doc == source and c.start < end and start < c.end for doc, start, end in spans or [])

    citations = []
    for c in answer.citations:
        citations.append({"n": c.n, "source": c.source, "chunk_id": c.chunk_id, "quote": c.quote,
                          "support": c.support, "supported": c.supported,
                          "correct": correct(c.chunk_id, c.text, c.source), "doc_correct": c.source in gold_docs})
    raw_citations, raw_ok, raw_sentences = raw_scores(answer, chunks, support_threshold)
    for c in raw_citations:
        chunk = chunks.get(c["chunk_id"]) if c["chunk_id"] else None
        c["correct"] = chunk is not None and correct(chunk.chunk_id, chunk.text, chunk.source)
        c["doc_correct"] = chunk is not None and chunk.source in gold_docs
    row = {
        "qid": q["qid"], "question": q["question"], "history": q["history"], "answerable": q["answerable"],
        "gold": golds, "gold_docs": sorted(gold_docs), "answer": answer.text, "short_answer": answer.short_answer,
        "standalone_question": answer.standalone_question, "abstained": answer.abstained,
        "abstain_step": getattr(answer, "abstain_step", "") if answer.abstained else "",
        "abstain_reason": answer.abstain_reason if answer.abstained else "",
        "raw_reply": getattr(answer, "raw_reply", ""),
        "passages": [p.source for p in answer.passages], "citations": citations, "raw_citations": raw_citations,
        "dropped_citations": answer.dropped_citations, "faithful_sentences": sentences_ok, "sentences": sentences,
        "raw_faithful_sentences": raw_ok, "raw_sentences": raw_sentences,
        "verify_p_yes": getattr(answer, "verify_p_yes", None),
        "decline_p": getattr(answer, "decline_p", None),
        "first_token_p": getattr(answer, "first_token_p", None),
        "timings": dict(answer.timings),
    }
    if q["answerable"]:
        row |= {"em": metrics.exact_match(answer.text, golds), "f1": round(metrics.token_f1(answer.text, golds), 4),
                "short_em": metrics.exact_match(short, golds), "short_f1": round(metrics.token_f1(short, golds), 4)}
        # strict: a gold answer (or alias) appears as whole words in the short answer; lenient: anywhere in the text
        row["correct"] = not answer.abstained and metrics.contains_answer(short, golds)
        row["correct_lenient"] = not answer.abstained and metrics.contains_answer(f"{short} \n {answer.text}", golds)
        if q.get("list_items"):  # a list: right only with every required item in the short answer
            row |= list_scores(short, answer.text, q["list_items"], answer.abstained)
            row["correct"] = not answer.abstained and row["list_recall"] == 1.0
            row["correct_lenient"] = not answer.abstained and row["list_recall_lenient"] == 1.0
    row["category"] = categorize(row)
    withheld = getattr(answer, "withheld", None)
    if withheld is not None:  # scored as well, for the figures without verification
        row["withheld"] = score_answer(q, withheld, spans, support_threshold)
    return row


def without_verification(rows: list[dict], threshold: float = 0.0) -> list[dict]:
    """The rows as they would be with verification at `threshold` (0: no verification), from one run."""
    return rescored(rows, verify_threshold=threshold)


def rescored(rows: list[dict], *, verify_threshold: float = 0.0, max_decline_p: float = 1.0,
             min_first_token_p: float = 0.0) -> list[dict]:
    """The rows as they would be with other thresholds for the two last steps of the answer path, from one run.

    An answer those steps withheld is put back (its `withheld` row); then every answer the model was at least
    `max_decline_p` likely to decline (`decline_p`) or whose first token was less than `min_first_token_p` likely
    (`first_token_p`; both step "model_doubt"), or whose verifier's `verify_p_yes` is
    below `verify_threshold` (step "verification"), is turned into an abstention. An answer the doubt step
    withheld was never verified (no `verify_p_yes`), so a verification sweep is exact only in a run whose
    doubt step withheld nothing, and a doubt sweep in any run.
    """
    out = []
    for row in rows:
        row = row.get("withheld") or row
        step = ""
        if not row["abstained"]:
            doubt, top, p_yes = row.get("decline_p"), row.get("first_token_p"), row.get("verify_p_yes")
            if (doubt is not None and doubt >= max_decline_p) or (top is not None and top < min_first_token_p):
                step = "model_doubt"
            elif verify_threshold > 0 and p_yes is not None and p_yes < verify_threshold:
                step = "verification"
        if step:
            row = {**row, "abstained": True, "abstain_step": step, "citations": [], "raw_citations": [],
                   "sentences": 0, "faithful_sentences": 0, "raw_sentences": 0, "raw_faithful_sentences": 0}
            if row["answerable"]:
                row |= {"em": 0.0, "f1": 0.0, "short_em": 0.0, "short_f1": 0.0, "correct": False, "correct_lenient": False}
            row["category"] = categorize(row)
        out.append(row)
    return out


SWEEP_KEYS = ("answer.short_em", "answer.short_f1", "answer.accuracy", "citation.precision", "citation.recall",
              "abstention.unanswerable_abstained", "abstention.answerable_abstained")


def verification_sweep(rows: list[dict], thresholds=(0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)) -> list[dict]:
    """Key metrics at each verification threshold, recomputed from one run's rows (`rescored`)."""
    return [{"threshold": t, **_pick(answer_metrics(rescored(rows, verify_threshold=t)))} for t in thresholds]


def doubt_sweep(rows: list[dict], thresholds=(1.0, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05)) -> list[dict]:
    """Key metrics at each `answer.max_decline_p`, recomputed from one run's rows (`rescored`)."""
    return [{"threshold": t, **_pick(answer_metrics(rescored(rows, max_decline_p=t)))} for t in thresholds]


def sureness_sweep(rows: list[dict], thresholds=(0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)) -> list[dict]:
    """Key metrics at each `answer.min_first_token_p`, recomputed from one run's rows (`rescored`)."""
    return [{"threshold": t, **_pick(answer_metrics(rescored(rows, min_first_token_p=t)))} for t in thresholds]


def _pick(m: dict) -> dict:
    return {k: m[k] for k in SWEEP_KEYS}


def raw_scores(answer, chunks: dict, threshold: float) -> tuple[list[dict], int, int]:
    """The model's own citations and faithfulness, before the answer path repaired anything.

    Each `[n]` marker of the raw reply's details names the n-th passage of the prompt
    (`Answer.prompt_chunk_ids`); a marker naming no passage is kept, as incorrect and unsupported.
    A sentence of the raw details is faithful when one of its markers names a passage that supports it.
    Returns (citations, faithful sentences, sentences); nothing for an abstained answer.
    """
    from rag.answer.citations import best_quote
    from rag.answer.replies import parse_reply

    raw = getattr(answer, "raw_reply", "")
    if answer.abstained or not raw:
        return [], 0, 0
    ids = list(getattr(answer, "prompt_chunk_ids", []))
    _, details = parse_reply(raw)
    out: dict[int, dict] = {}
    ok = total = 0
    for sentence, numbers in metrics.cited_sentences(details):
        claim = metrics.strip_markers(sentence)
        total += 1
        good = False
        for n in numbers:
            chunk = chunks.get(ids[n - 1]) if 0 < n <= len(ids) else None
            support = best_quote(claim, chunk.text)[0] if chunk is not None and claim else 0.0
            good = good or support >= threshold
            if n not in out:
                out[n] = {"n": n, "chunk_id": chunk.chunk_id if chunk else None,
                          "source": chunk.source if chunk else None, "supported": support >= threshold}
        ok += good
    return list(out.values()), ok, total


def list_scores(short: str, text: str, items: list[str], abstained: bool) -> dict:
    """Item recall and precision of a list answer (see evals/README.md).

    recall = required items found (whole words) in the short answer / required items (`list_recall_lenient`:
    in the short answer or the full text); precision = items the short answer names (split on commas,
    "and", "or") that match a required item / items it names.
    """
    if abstained:
        return {"list_recall": 0.0, "list_recall_lenient": 0.0, "list_precision": 0.0}
    aliases = [i.split("|") for i in items]  # "Frédéric Chopin|Chopin": either spelling counts
    found = [a for a in aliases if metrics.contains_answer(short, a)]
    found_lenient = [a for a in aliases if metrics.contains_answer(f"{short} \n {text}", a)]
    named = metrics.list_items(short)
    hits = sum(1 for part in named if any(metrics.contains_answer(part, a) or metrics.contains_answer(" ".join(a), [part])
                                         for a in aliases))
    return {"list_recall": round(len(found) / len(items), 4),
            "list_recall_lenient": round(len(found_lenient) / len(items), 4),
            "list_precision": round(hits / len(named), 4) if named else 0.0}


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
    """Aggregate scored rows into the `answer.*`, `citation.*`, `abstention.*`, `faithfulness*` and latency keys."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if not r["abstained"]]
    cites = [c for r in answered for c in r["citations"]]
    raw_cites = [c for r in answered for c in r.get("raw_citations", [])]
    all_cites = [c for r in rows if not r["abstained"] for c in r["citations"]]
    sentences = sum(r["sentences"] for r in rows)
    raw_sentences = sum(r.get("raw_sentences", 0) for r in rows)
    lists = [r for r in answerable if "list_recall" in r]
    mean = metrics.mean
    out = {
        "answer.questions": len(answerable),
        "answer.em": mean([r["em"] for r in answerable]),
        "answer.f1": mean([r["f1"] for r in answerable]),
        "answer.short_em": mean([r["short_em"] for r in answerable]),
        "answer.short_f1": mean([r["short_f1"] for r in answerable]),
        "answer.accuracy": mean([float(r["correct"]) for r in answerable]),
        "answer.accuracy_lenient": mean([float(r.get("correct_lenient", r["correct"])) for r in answerable]),
        "citation.precision": mean([float(c["correct"]) for c in cites]),
        "citation.recall": mean([float(any(c["correct"] for c in r["citations"])) for r in answered]),
        "citation.raw_precision": mean([float(c["correct"]) for c in raw_cites]),
        "citation.raw_recall": mean([float(any(c["correct"] for c in r.get("raw_citations", []))) for r in answered]),
        "citation.doc_precision": mean([float(c.get("doc_correct", c["correct"])) for c in cites]),
        "citation.doc_recall": mean([float(any(c.get("doc_correct", c["correct"]) for c in r["citations"]))
                                     for r in answered]),
        "citation.unsupported_rate": mean([float(not c["supported"]) for c in all_cites]),
        "citation.per_answer": mean([len(r["citations"]) for r in rows if not r["abstained"]]),
        "citation.dropped": sum(r["dropped_citations"] for r in rows),
        "abstention.unanswerable_questions": len(unanswerable),
        "abstention.unanswerable_abstained": mean([float(r["abstained"]) for r in unanswerable]),
        "abstention.answerable_abstained": mean([float(r["abstained"]) for r in answerable]),
        "faithfulness": sum(r["faithful_sentences"] for r in rows) / sentences if sentences else 0.0,
        "faithfulness_raw": sum(r.get("raw_faithful_sentences", 0) for r in rows) / raw_sentences if raw_sentences else 0.0,
    }
    if lists:
        out["list.questions"] = len(lists)
        out["list.item_recall"] = mean([r["list_recall"] for r in lists])
        out["list.item_recall_lenient"] = mean([r["list_recall_lenient"] for r in lists])
        out["list.item_precision"] = mean([r["list_precision"] for r in lists])
        out["list.complete"] = mean([float(r["list_recall"] == 1.0) for r in lists])
    if any(r.get("history") for r in rows):  # a conversation set: every turn right (answered right, or abstained)
        out["conversation.turns"] = len(rows)
        out["conversation.turns_correct"] = mean([float(r["correct"] if r["answerable"] else r["abstained"])
                                                  for r in rows])
        out["conversation.turns_correct_lenient"] = mean(
            [float(r.get("correct_lenient", r["correct"]) if r["answerable"] else r["abstained"]) for r in rows])
        follow = [r for r in rows if r.get("history")]
        out["conversation.follow_ups_correct"] = mean([float(r["correct"] if r["answerable"] else r["abstained"])
                                                       for r in follow])
    for name in ("retrieval_ms", "first_token_ms", "total_ms", "verify_ms"):
        values = [r["timings"][name] for r in rows if name in r["timings"]]
        if values or name != "verify_ms":
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


ABSTAIN_STEPS = ("relevance", "model", "answer_not_in_passages", "question_coverage", "off_topic",
                 "answer_type", "echo", "model_doubt", "verification")


def abstention_table(rows: list[dict]) -> dict[str, dict[str, int]]:
    """How many answerable and unanswerable questions each step abstained on (steps in path order)."""
    table: dict[str, dict[str, int]] = {}
    for r in rows:
        if r.get("abstained"):
            step = r.get("abstain_step") or "unknown"
            cell = table.setdefault(step, {"answerable": 0, "unanswerable": 0})
            cell["answerable" if r["answerable"] else "unanswerable"] += 1
    order = {s: i for i, s in enumerate(ABSTAIN_STEPS)}
    return dict(sorted(table.items(), key=lambda kv: order.get(kv[0], len(order))))


def standard_errors(rows: list[dict]) -> dict[str, float]:
    """Standard error of the main rate metrics (sample sd / sqrt(n), per question or per citation).

    A rate at 0 or 1 would have an error of 0; a pseudo-count ((k + 1) / (n + 2)) keeps a floor set
    at value - 2 SE from demanding perfection.
    """
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if not r["abstained"]]
    samples = {
        "answer.short_em": [r["short_em"] for r in answerable],
        "answer.short_f1": [r["short_f1"] for r in answerable],
        "answer.accuracy": [float(r["correct"]) for r in answerable],
        "citation.precision": [float(c["correct"]) for r in answered for c in r["citations"]],
        "citation.recall": [float(any(c["correct"] for c in r["citations"])) for r in answered],
        "abstention.unanswerable_abstained": [float(r["abstained"]) for r in unanswerable],
        "abstention.answerable_abstained": [float(r["abstained"]) for r in answerable],
    }
    out = {}
    for key, xs in samples.items():
        n = len(xs)
        if n < 2:
            continue
        if all(x in (0.0, 1.0) for x in xs):
            p = (sum(xs) + 1) / (n + 2)
            var = p * (1 - p)
        else:
            m = sum(xs) / n
            var = sum((x - m) ** 2 for x in xs) / (n - 1)
        out[key] = round((var / n) ** 0.5, 4)
    return out


def evaluate_answers(qa, questions: list[dict], *, k: int | None = None, progress: bool = False,
                     texts: dict[str, str] | None = None,
                     gold_passages: bool = False) -> tuple[dict[str, float], list[dict]]:
    """Ask every question (replaying follow-up history) and score the answers.

    `texts`: the corpus documents by doc_id, to place the gold answer spans (`gold_spans`).
    `gold_passages`: ask within each question's gold documents only (`ask_in_context`).
    """
    tick = _bar("answers", len(questions)) if progress else None
    threshold = qa.settings.answer.support_threshold if hasattr(qa, "settings") else 0.35
    cache: dict = {}
    rows = []
    for i, q in enumerate(questions, start=1):
        answer = ask_in_context(qa, q, k, cache, gold_passages=gold_passages)
        rows.append(score_answer(q, answer, gold_spans(q, texts or {}), threshold))
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
             progress: bool = False, split: str | None = None, qids: list[str] | None = None,
             gold_passages: bool = False, **components) -> EvalResult:
    """Evaluate on a dataset folder (or a loaded `Dataset`).

    Args:
        settings: loaded settings; `mode` and `llm` override its retrieval mode and LLM provider.
        dataset: a folder (corpus.jsonl + questions.jsonl) or a `Dataset`.
        retrieval_only: skip the answers (no LLM).
        limit, seed: shuffle the questions with `seed`, then keep the first `limit`.
        split: keep only the questions of this split of the dataset's `split.json` ("dev" or "test").
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
        dataset = split_dataset(dataset, load_split(folder, split))
    if qids:
        by_qid = {q["qid"]: q for q in dataset.questions}
        unknown = [x for x in qids if x not in by_qid]
        if unknown:
            raise ConfigError(f"qids {unknown[:5]} are not questions of {dataset.name}{' (' + split + ' split)' if split else ''}")
        dataset = Dataset(dataset.name, dataset.corpus, [by_qid[x] for x in qids])
    questions = select_questions(dataset.questions, limit, seed)
    if gold_passages and not retrieval_only:  # before the index is built and searched
        missing = [q["qid"] for q in questions if q["answerable"] and not q.get("gold_doc_ids")]
        if missing:
            raise ConfigError(f"--gold-passages needs gold_doc_ids on every answerable question; {missing[:5]} have none")
    k = k or settings.retrieval.k
    qa = open_dataset_index(settings, dataset, progress=progress, **components)
    from rag.models.llm import describe_llm

    config = {"mode": settings.retrieval.mode, "fusion": settings.retrieval.fusion, "k": k,
              "chunk_tokens": settings.chunking.chunk_tokens, "overlap_tokens": settings.chunking.overlap_tokens,
              "embedding": settings.embedding.model_name, "embedding_backend": settings.embedding.backend,
              "llm": None if retrieval_only else describe_llm(settings),
              "questions": len(questions), "split": split, "qids": str(len(qids)) + " listed" if qids else None,
              "limit": limit, "seed": seed,
              "retrieval_only": retrieval_only, "gold_passages": gold_passages}
    result = EvalResult(dataset.name, config)
    result.metrics, retrieval_rows = evaluate_retrieval(qa, questions, k=k, progress=progress)
    if retrieval_only:
        result.per_question = retrieval_rows
        return result
    scores, rows = evaluate_answers(qa, questions, k=k, progress=progress,
                                    texts={d["doc_id"]: d["text"] for d in dataset.corpus},
                                    gold_passages=gold_passages)
    ranks = {r["qid"]: r["hit_rank"] for r in retrieval_rows}
    for row in rows:
        row["hit_rank"] = ranks.get(row["qid"])
    # the answer path's own retrieval timing replaces the bare search's
    result.metrics = {key: v for key, v in result.metrics.items() if not key.startswith("latency.")} | scores
    result.per_question = rows
    return result


# the metrics the answer gates hold, and which are ceilings (lower is better)
GATED = ("answer.short_em", "answer.short_f1", "answer.accuracy", "citation.precision", "citation.recall",
         "abstention.unanswerable_abstained", "abstention.answerable_abstained")
CEILINGS = frozenset({"abstention.answerable_abstained"})


def suggest_floors(metrics_: dict[str, float], errors: dict[str, float], keys=GATED) -> dict[str, Any]:
    """Floors at the measured value minus two standard errors (ceilings: plus two), rounded outward to 0.01.

    `errors` from `standard_errors` of the same run (the `standard_errors` of an `--out` JSON file).
    """
    import math

    out: dict[str, Any] = {}
    for key in keys:
        if key not in metrics_ or key not in errors:
            continue
        value, se = float(metrics_[key]), float(errors[key])
        if key in CEILINGS:
            out[key] = {"max": min(1.0, math.ceil((value + 2 * se) * 100) / 100)}
        else:
            out[key] = max(0.0, math.floor((value - 2 * se) * 100) / 100)
    return out


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

