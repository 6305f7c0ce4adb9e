"""Pure metric functions (formulas in evals/README.md)."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence


def first_hit_rank(retrieved_docs: Sequence[str], gold: set[str]) -> int | None:
    """1-based rank of the first retrieved chunk whose document is gold, or None."""
    for rank, doc in enumerate(retrieved_docs, start=1):
        if doc in gold:
            return rank
    return None


def recall_at_k(retrieved_docs: Sequence[str], gold: set[str], k: int) -> float:
    """Share of gold documents with at least one chunk in the top k."""
    if not gold:
        return 0.0
    return len(gold & set(retrieved_docs[:k])) / len(gold)


def reciprocal_rank(retrieved_docs: Sequence[str], gold: set[str]) -> float:
    rank = first_hit_rank(retrieved_docs, gold)
    return 1.0 / rank if rank else 0.0


def ndcg_at_k(retrieved_docs: Sequence[str], gold: set[str], k: int = 10) -> float:
    """Binary-gain nDCG; a gold document counts once, at its first chunk."""
    seen: set[str] = set()
    dcg = 0.0
    for rank, doc in enumerate(retrieved_docs[:k], start=1):
        if doc in gold and doc not in seen:
            seen.add(doc)
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(gold), k) + 1))
    return dcg / ideal if ideal else 0.0


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation, articles and extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return max((float(normalize_answer(prediction) == normalize_answer(g)) for g in golds), default=0.0)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Max over gold answers of the token-overlap F1 (SQuAD)."""
    best = 0.0
    pred = normalize_answer(prediction).split()
    for gold in golds:
        ref = normalize_answer(gold).split()
        common = Counter(pred) & Counter(ref)
        overlap = sum(common.values())
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        if overlap == 0:
            continue
        precision, recall = overlap / len(pred), overlap / len(ref)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
