"""Scoring: one answer's scores and failure category, and the aggregate metrics of scored rows.

Retrieval metrics over ranked documents, answer / citation / abstention / faithfulness / latency
metrics over scored answers, abstentions per step and standard errors. Formulas: evals/README.md.
"""

from __future__ import annotations

from rag.eval import metrics
from rag.eval.coverage import confidence_metrics

RECALL_KS = (1, 5, 10)
CATEGORIES = ("retrieval miss", "model error", "citation error", "wrong abstention", "missed abstention")
KINDS = ("table", "steps", "definition", "heading", "fact")  # the manuals set's question kinds, in report order


def retrieval_metrics(ranked_docs: list[list[str]], golds: list[set[str]]) -> dict[str, float]:
    """Recall@1/5/10, MRR and nDCG@10 averaged over questions (ranked_docs: each question's sources, best first)."""
    n = max(len(golds), 1)
    out = {f"retrieval.recall@{k}": sum(metrics.recall_at_k(d, g, k) for d, g in zip(ranked_docs, golds)) / n
           for k in RECALL_KS}
    out["retrieval.mrr"] = sum(metrics.reciprocal_rank(d, g) for d, g in zip(ranked_docs, golds)) / n
    out["retrieval.ndcg@10"] = sum(metrics.ndcg_at_k(d, g, 10) for d, g in zip(ranked_docs, golds)) / n
    return {k: round(v, 4) for k, v in out.items()}


def on_gold_page(q: dict, doc: str, page: int | None, text: str, end_page: int | None = None) -> bool:
    """Whether a passage is where the question's answer is written (page-level gold).

    Its document must be gold; then, where the question gives `gold_pages` and the passage has a page, one
    of the pages it spans (`page`..`end_page`) is a gold page; otherwise (HTML, no pages) its text holds
    the canonical (first) gold answer (`metrics.contains_text`).
    """
    if doc not in q["gold_doc_ids"] or not q["answerable"]:
        return False
    if q.get("gold_pages") and page is not None:
        return any(p in q["gold_pages"] for p in range(page, max(end_page or page, page) + 1))
    return bool(q["answers"]) and metrics.contains_text(text, q["answers"][0])


def page_recall_metrics(ranks: list[int | None]) -> dict[str, float]:
    """page_recall@1/5/10: the share of questions with a passage on a gold page in the top k (ranks: 1-based, None)."""
    n = max(len(ranks), 1)
    return {f"retrieval.page_recall@{k}": round(sum(1 for r in ranks if r is not None and r <= k) / n, 4)
            for k in RECALL_KS}


def score_answer(q: dict, answer, spans: list[tuple[str, int, int]] | None = None,
                 support_threshold: float = 0.35, replay: bool = True) -> dict:
    """One question's answer scores, citation judgements and failure category (see evals/README.md).

    `spans`: the gold answers' character spans (`gold_spans`), for passage-level citation correctness.
    Citations are scored twice: as the user sees them (`citations`, after the answer path's repairs) and
    as the model wrote them (`raw_citations`, the `[n]` markers of `Answer.raw_reply`). Faithfulness is
    measured on the model's own reply (`raw_faithfulness`), not on the repaired text.
    """
    golds = q["answers"]
    gold_docs = set(q["gold_doc_ids"])
    short = answer.short_answer or answer.text
    chunks = {c.chunk_id: c for c in answer.passages}
    supported = [c.n for c in answer.citations if c.supported]
    shown_ok, shown = (0, 0) if answer.abstained else metrics.faithful_sentences(answer.text, supported)

    def correct(chunk_id: str | None, text: str, source: str, page: int | None = None,
                end_page: int | None = None) -> bool:
        """The cited chunk is where the answer is: a gold document's, and on a gold page (`gold_pages` sets),
        else holding a gold answer or overlapping a gold answer's span. Never for an unanswerable question."""
        if not q["answerable"] or chunk_id is None or source not in gold_docs:
            return False
        if "gold_pages" in q:
            return on_gold_page(q, source, page, text, end_page)
        if metrics.contains_answer(text, golds):
            return True
        c = chunks.get(chunk_id)
        return c is not None and any(doc == source and c.start < end and start < c.end for doc, start, end in spans or [])

    citations = []
    for c in answer.citations:
        citations.append({"n": c.n, "source": c.source, "chunk_id": c.chunk_id, "quote": c.quote,
                          "support": c.support, "supported": c.supported,
                          "correct": correct(c.chunk_id, c.text, c.source, c.page, getattr(c, "end_page", None)),
                          "doc_correct": q["answerable"] and c.source in gold_docs})
    raw_citations, raw_ok, raw_sentences = raw_scores(answer, chunks, support_threshold)
    for c in raw_citations:
        chunk = chunks.get(c["chunk_id"]) if c["chunk_id"] else None
        c["correct"] = chunk is not None and correct(chunk.chunk_id, chunk.text, chunk.source, chunk.page,
                                                     getattr(chunk, "end_page", None))
        c["doc_correct"] = chunk is not None and q["answerable"] and chunk.source in gold_docs
    claims = raw_faithfulness(answer, chunks)
    row = {
        "qid": q["qid"], "question": q["question"], "history": q["history"], "answerable": q["answerable"],
        "gold": golds, "gold_docs": sorted(gold_docs), "answer": answer.text, "short_answer": answer.short_answer,
        "standalone_question": answer.standalone_question, "abstained": answer.abstained,
        "abstain_step": getattr(answer, "abstain_step", "") if answer.abstained else "",
        "abstain_reason": answer.abstain_reason if answer.abstained else "",
        "confidence": getattr(answer, "confidence", None),
        "raw_reply": getattr(answer, "raw_reply", ""),
        "passages": [p.source for p in answer.passages], "citations": citations, "raw_citations": raw_citations,
        "dropped_citations": answer.dropped_citations,
        "faithful_sentences": sum(c["supported"] for c in claims), "sentences": len(claims), "claims": claims,
        "shown_faithful_sentences": shown_ok, "shown_sentences": shown,
        "repair_check_faithful_sentences": raw_ok, "repair_check_sentences": raw_sentences,
        "verify_p_yes": getattr(answer, "verify_p_yes", None),
        "decline_p": getattr(answer, "decline_p", None),
        "first_token_p": getattr(answer, "first_token_p", None),
        "signals": dict(getattr(answer, "signals", {}) or {}),
        "timings": dict(answer.timings),
    }
    if replay and getattr(answer, "prompt_texts", None):  # what the model read: evals/calibrate.py replays the checks
        by_id = {c.chunk_id: c for c in answer.passages}
        row["replay"] = {"passages": [{k: v for k, v in by_id[cid].to_dict().items() if k != "embedding"}
                                      for cid in answer.prompt_chunk_ids if cid in by_id],
                         "texts": list(answer.prompt_texts)}
    if "kind" in q:
        row["kind"] = q["kind"]
    if q.get("list_items"):
        row["list_items"] = q["list_items"]
    if "gold_pages" in q:  # page-level gold: does a citation point at the page (or HTML passage) holding the answer
        row["page_cited"] = any(on_gold_page(q, c.source, c.page, c.text, getattr(c, "end_page", None))
                                for c in answer.citations) if not answer.abstained else False
    if q["answerable"]:
        row |= {"em": metrics.exact_match(answer.text, golds), "f1": round(metrics.token_f1(answer.text, golds), 4),
                "short_em": metrics.exact_match(short, golds), "short_f1": round(metrics.token_f1(short, golds), 4)}
        # strict: the short answer matches a gold answer exactly or nearly (token F1 >= 0.8); containment
        # (a gold answer as whole words in the short answer, or anywhere in the text) is kept apart
        row["correct"] = not answer.abstained and metrics.strictly_correct(row["short_em"], row["short_f1"])
        row["contains"] = not answer.abstained and metrics.contains_answer(short, golds)
        row["contains_anywhere"] = not answer.abstained and metrics.contains_answer(f"{short} \n {answer.text}", golds)
        if q.get("list_items"):  # a list: right only with every required item in the short answer
            row |= list_scores(short, answer.text, q["list_items"], answer.abstained)
            row["correct"] = row["contains"] = not answer.abstained and row["list_recall"] == 1.0
            row["contains_anywhere"] = not answer.abstained and row["list_recall_lenient"] == 1.0
    row["category"] = categorize(row)
    withheld = getattr(answer, "withheld", None)
    if withheld is not None:  # scored as well, for the figures without verification
        row["withheld"] = score_answer(q, withheld, spans, support_threshold, replay=False)
    return row


def raw_faithfulness(answer, chunks: dict, threshold: float = metrics.CLAIM_SUPPORT) -> list[dict]:
    """Each sentence of the model's own reply (its details, before any repair) judged against what it cites.

    A sentence is supported when a passage its `[n]` markers name (the n-th passage of the prompt,
    `Answer.prompt_chunk_ids`) has a sentence holding at least `threshold` of its content words, with the
    same negation (`metrics.supported_claim`); a sentence citing nothing, or only passages that do not
    exist, is not. Nothing for an abstained answer.
    """
    from rag.answer.replies import parse_reply

    raw = getattr(answer, "raw_reply", "")
    if answer.abstained or not raw:
        return []
    ids = list(getattr(answer, "prompt_chunk_ids", []))
    _, details = parse_reply(raw)
    out = []
    for sentence, numbers in metrics.cited_sentences(details):
        texts = [chunks[ids[n - 1]].text for n in dict.fromkeys(numbers)
                 if 0 < n <= len(ids) and ids[n - 1] in chunks]
        ok, support = metrics.supported_claim(sentence, texts, threshold)
        out.append({"sentence": sentence, "cites": numbers, "support": round(support, 4), "supported": ok})
    return out


def raw_scores(answer, chunks: dict, threshold: float) -> tuple[list[dict], int, int]:
    """The model's own citations, and its sentences' faithfulness by the answer path's own support check.

    Each `[n]` marker of the raw reply's details names the n-th passage of the prompt
    (`Answer.prompt_chunk_ids`); a marker naming no passage is kept, as incorrect and unsupported.
    A sentence counts when one of its markers names a passage that supports it by `best_quote` (the
    check the repair uses, so this is not the headline faithfulness: `raw_faithfulness` is).
    Returns (citations, sentences supported, sentences); nothing for an abstained answer.
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
                          "source": chunk.source if chunk else None, "page": chunk.page if chunk else None,
                          "supported": support >= threshold}
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
    """Aggregate scored rows into the `answer.*`, `citation.*`, `abstention.*`, `faithfulness*`, `confidence.*`
    and latency keys."""
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in answerable if not r["abstained"]]
    answered_all = [r for r in rows if not r["abstained"]]  # an answered unanswerable question's citations are wrong
    cites = [c for r in answered_all for c in r["citations"]]
    raw_cites = [c for r in answered_all for c in r.get("raw_citations", [])]
    sentences = sum(r["sentences"] for r in rows)
    shown_sentences = sum(r.get("shown_sentences", 0) for r in rows)
    repair_sentences = sum(r.get("repair_check_sentences", 0) for r in rows)
    lists = [r for r in answerable if "list_recall" in r]
    mean = metrics.mean
    out = {
        "answer.questions": len(answerable),
        "answer.em": mean([r["em"] for r in answerable]),
        "answer.f1": mean([r["f1"] for r in answerable]),
        "answer.short_em": mean([r["short_em"] for r in answerable]),
        "answer.short_f1": mean([r["short_f1"] for r in answerable]),
        "answer.accuracy": mean([float(r["correct"]) for r in answerable]),
        "answer.contains": mean([float(r.get("contains", r["correct"])) for r in answerable]),
        "answer.contains_anywhere": mean([float(r.get("contains_anywhere", r["correct"])) for r in answerable]),
        "citation.precision": mean([float(c["correct"]) for c in cites]),
        "citation.recall": mean([float(any(c["correct"] for c in r["citations"])) for r in answered]),
        "citation.raw_precision": mean([float(c["correct"]) for c in raw_cites]),
        "citation.raw_recall": mean([float(any(c["correct"] for c in r.get("raw_citations", []))) for r in answered]),
        "citation.doc_precision": mean([float(c.get("doc_correct", c["correct"])) for c in cites]),
        "citation.doc_recall": mean([float(any(c.get("doc_correct", c["correct"]) for c in r["citations"]))
                                     for r in answered]),
        "citation.unsupported_rate": mean([float(not c["supported"]) for c in cites]),
        "citation.per_answer": mean([len(r["citations"]) for r in answered_all]),
        "citation.dropped": sum(r["dropped_citations"] for r in rows),
        "abstention.unanswerable_questions": len(unanswerable),
        "abstention.unanswerable_abstained": mean([float(r["abstained"]) for r in unanswerable]),
        "abstention.answerable_abstained": mean([float(r["abstained"]) for r in answerable]),
        "faithfulness": sum(r["faithful_sentences"] for r in rows) / sentences if sentences else 0.0,
        "faithfulness_shown": sum(r.get("shown_faithful_sentences", 0) for r in rows) / shown_sentences
        if shown_sentences else 0.0,
        "faithfulness_repair_check": sum(r.get("repair_check_faithful_sentences", 0) for r in rows) / repair_sentences
        if repair_sentences else 0.0,
    }
    if any("page_cited" in r for r in rows):  # beside citation.doc_recall, so the citation keys stay together
        right = [r for r in answered if r["correct"]]
        at = list(out).index("citation.unsupported_rate")
        items = list(out.items())
        out = dict(items[:at] + [("citation.page_correct", mean([float(r["page_cited"]) for r in right]))] + items[at:])
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
        out["conversation.turns_contains_anywhere"] = mean(
            [float(r.get("contains_anywhere", r["correct"]) if r["answerable"] else r["abstained"]) for r in rows])
        follow = [r for r in rows if r.get("history")]
        out["conversation.follow_ups_correct"] = mean([float(r["correct"] if r["answerable"] else r["abstained"])
                                                       for r in follow])
    if any(r.get("confidence") is not None for r in rows):
        out |= confidence_metrics(rows)
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


def by_kind(rows: list[dict]) -> dict[str, dict[str, float | int | None]]:
    """Per question kind (rows with a `kind`): counts, retrieval hits at 5 and, for answered runs, short EM/F1,
    accuracy and abstention; None where a kind has no question to measure it on."""
    kinds = sorted({r["kind"] for r in rows if r.get("kind")}, key=lambda k: (KINDS.index(k) if k in KINDS else 99, k))
    out: dict[str, dict[str, float | int | None]] = {}

    def rate(values: list[float]) -> float | None:
        return round(metrics.mean(values), 4) if values else None

    for kind in kinds:
        group = [r for r in rows if r.get("kind") == kind]
        ans = [r for r in group if r["answerable"]]
        unans = [r for r in group if not r["answerable"]]
        answered = any("abstained" in r for r in rows)  # a retrieval-only run has rows for answerable questions only
        cell: dict[str, float | int | None] = {"questions": len(group), "answerable": len(ans)}
        if answered:
            cell["unanswerable"] = len(unans)
        cell["recall@5"] = rate([float((r.get("hit_rank") or 99) <= 5) for r in ans])
        if any("page_hit_rank" in r for r in ans):
            cell["page_recall@5"] = rate([float((r.get("page_hit_rank") or 99) <= 5) for r in ans])
        if answered:
            cell |= {"short_em": rate([r["short_em"] for r in ans]), "short_f1": rate([r["short_f1"] for r in ans]),
                     "accuracy": rate([float(r["correct"]) for r in ans]),
                     "answerable_abstained": rate([float(r["abstained"]) for r in ans]),
                     "unanswerable_abstained": rate([float(r["abstained"]) for r in unans])}
        out[kind] = cell
    return out


ABSTAIN_STEPS = ("relevance", "model", "answer_not_in_passages", "question_coverage", "off_topic",
                 "answer_type", "echo", "confidence", "verification")


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
        "citation.precision": [float(c["correct"]) for r in rows if not r["abstained"] for c in r["citations"]],
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
