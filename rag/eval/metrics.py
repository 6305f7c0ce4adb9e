"""Pure metric functions (formulas in evals/README.md).

Example::

    exact_match("The Denver Broncos [1].", ["Denver Broncos"])   # 1.0 (markers, case, articles dropped)
    token_f1("Broncos won", ["Denver Broncos"])                  # 0.5
    contains_answer("It took six months.", ["6 months", "six months"])  # True
    strictly_correct(1.0, 0.5)                                   # True (exact match, or token F1 >= 0.8)
    claim_support("Paris is not big [1].", "Paris is big. It has a river.")  # (1.0, "Paris is big.", False)
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from rag.text.markers import marker_numbers, strip_markers
from rag.text.normalize import contains_answer, normalize_answer  # noqa: F401  (metrics of answers, shared)
from rag.text.normalize import plain_text
from rag.text.sentences import sentence_spans
from rag.text.words import STOPWORDS
from rag.text.words import list_items as split_items

_TRAILING_MARKERS = re.compile(r"([.!?]+)((?:\s*\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\])+)")


# --- retrieval ------------------------------------------------------------------------------
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


def contains_text(text: str, answer: str) -> bool:
    """Whether `answer` occurs in `text` as written, after `plain_text` (the manuals set's check.py rule).

    Case matters for codes and short answers ('%I' is not '%i'; at most 4 characters, or starting with
    %, a quote, - or \\); an answer that begins or ends with a letter or digit must not run on into a
    longer word or number ('8' is not found in '48'). Longer answers also match with all spaces removed,
    as PDF text sometimes splits or joins words.
    """
    a = plain_text(answer)
    if not a:
        return False
    exact = len(a) <= 4 or a[0] in "%'\"-\\"
    hay = plain_text(text) if exact else plain_text(text).lower()
    needle = a if exact else a.lower()
    left = r"(?<![\w])" if needle[0].isalnum() else ""
    right = r"(?![\w])" if needle[-1].isalnum() else ""
    if re.search(left + re.escape(needle) + right, hay):
        return True
    return len(a) > 4 and re.sub(r"\s+", "", needle) in re.sub(r"\s+", "", hay)


# --- answers --------------------------------------------------------------------------------
def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer (markers stripped)."""
    pred = normalize_answer(strip_markers(prediction))
    return max((float(pred == normalize_answer(g)) for g in golds), default=0.0)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Max over gold answers of the token-overlap F1 (SQuAD); markers stripped first."""
    best = 0.0
    pred = normalize_answer(strip_markers(prediction)).split()
    for gold in golds:
        ref = normalize_answer(gold).split()
        if not pred or not ref:
            best = max(best, float(pred == ref))
            continue
        overlap = sum((Counter(pred) & Counter(ref)).values())
        if overlap == 0:
            continue
        precision, recall = overlap / len(pred), overlap / len(ref)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


STRICT_F1 = 0.8  # strict accuracy: exact match, or a token F1 at least this high


def strictly_correct(em: float, f1: float) -> bool:
    """Strict accuracy of one short answer: exact match, or token F1 >= `STRICT_F1` (SQuAD normalisation)."""
    return em == 1.0 or f1 >= STRICT_F1


def list_items(text: str) -> list[str]:
    """The items of a list answer: "A, B and C" -> ["A", "B", "C"] (one item: [text]; markers stripped)."""
    return split_items(strip_markers(text))


# --- citations ------------------------------------------------------------------------------
def cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """The sentences of an answer with the marker numbers each carries.

    A run of markers that `sentence_spans` leaves on its own ("… in 2016. [1]")
    belongs to the sentence before it.

    Example::

        cited_sentences("Paris is big [1]. It has a river. [2]")
        # [("Paris is big [1].", [1]), ("It has a river. [2]", [2])]
    """
    # "… river.[2] Next" hides the sentence end from the splitter: move the markers before the stop
    text = _TRAILING_MARKERS.sub(lambda m: f" {m.group(2).strip()}{m.group(1)}", text)
    out: list[tuple[str, list[int]]] = []
    for span in sentence_spans(text):
        sentence = text[span.start:span.end]
        numbers = marker_numbers(sentence)
        if not normalize_answer(strip_markers(sentence)):
            if out:  # markers (and punctuation) only: they cite the previous sentence
                prev, prev_numbers = out[-1]
                out[-1] = (f"{prev} {sentence}", prev_numbers + numbers)
            continue
        out.append((sentence, numbers))
    return out


def faithful_sentences(text: str, supported: Iterable[int]) -> tuple[int, int]:
    """(sentences carrying at least one supported citation, all sentences) of an answer."""
    good = set(supported)
    sentences = cited_sentences(text)
    return sum(1 for _, numbers in sentences if good & set(numbers)), len(sentences)


# --- faithfulness of the model's own reply -----------------------------------------------------
# The measure is deliberately not the answer path's (`rag.answer.citations.best_quote`: stemmed content
# tokens of the whole passage): plain words, one sentence of the passage, and negation must agree.
CLAIM_SUPPORT = 0.6  # share of a claim's content words found in the cited passage's best sentence
_NEGATION = re.compile(r"\b(?:not|no|never|none|nor|neither|nobody|nothing|cannot)\b|n't\b|n’t\b", re.IGNORECASE)
_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)  # "isn't" stays one word (a stopword)


def content_words(text: str) -> set[str]:
    """Lower-cased words of `text` (NFKC, markers removed) that are not stopwords, negations or bare punctuation."""
    words = _WORDS.findall(unicodedata.normalize("NFKC", strip_markers(text)).lower().replace("’", "'"))
    return {w for w in words if w not in STOPWORDS and not _NEGATION.search(w)}


def negated(text: str) -> bool:
    """Whether `text` says not / no / never / none / nor / neither / nobody / nothing / cannot / …n't."""
    return bool(_NEGATION.search(text))


def claim_support(claim: str, passage: str) -> tuple[float, str, bool]:
    """(support, best sentence, negation agrees) of one claim by one passage.

    support = the share of the claim's content words (`content_words`) found in the passage's best
    sentence (the one holding most of them); the negation agrees when the claim and that sentence are
    both negated or both not (`negated`).

    Example::

        claim_support("The river is long [1].", "Paris has a river. The river is long.")
        # (1.0, "The river is long.", True)
        claim_support("The river is not long.", "Paris has a river. The river is long.")
        # (1.0, "The river is long.", False)
    """
    words = content_words(claim)
    spans = sentence_spans(passage) or []
    if not words or not spans:
        return 0.0, "", True
    sentences = [passage[s.start:s.end] for s in spans]
    best = max(sentences, key=lambda s: len(words & content_words(s)))
    return len(words & content_words(best)) / len(words), best, negated(claim) == negated(best)


def supported_claim(claim: str, passages: Iterable[str], threshold: float = CLAIM_SUPPORT) -> tuple[bool, float]:
    """(supported, best support) of a claim by the passages it cites: by one of them, at `threshold`,
    with the negation agreeing (`claim_support`)."""
    best, ok = 0.0, False
    for passage in passages:
        support, _, agrees = claim_support(claim, passage)
        best = max(best, support)
        ok = ok or (support >= threshold and agrees)
    return ok, best


# --- aggregates -----------------------------------------------------------------------------
def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
