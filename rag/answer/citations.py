"""Citations: `[n]` markers mapped to the passages they point at, each quoted and checked.

Citation support (documented in evals/README.md): for a sentence of the answer
and a passage it cites, support = |T(claim) ∩ T(quote)| / |T(claim)|, where the
quote is the passage sentence with the largest overlap, the claim is the answer's
sentence together with the short answer it gives, and T() is the set of stemmed
content words and numbers (stopwords removed, number words mapped to digits, so
"six" matches "6"). A claim and a quote of which only one says no ("not",
"never"…) get half. So a quote that does not state the answer, or states its
opposite, never shows full support. A citation whose support is below
`answer.support_threshold` is kept but flagged `supported=False`. A marker is
re-pointed when another passage supports its sentence clearly better (a small
model often cites the passage next to the one it copied from; `_repoint`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.core.types import Citation
from rag.text.markers import MARKER, strip_markers
from rag.text.sentences import sentence_spans
from rag.text.tokens import content_tokens, negated

if TYPE_CHECKING:
    from rag.answer.context import Passage

def best_quote(claim: str, chunk_text: str, answer: str = "") -> tuple[float, int, int]:
    """(support of claim by the chunk's best sentence, quote start, quote end) — see the module docstring.

    `answer`: the short answer the claim gives; its words count as the claim's, so a sentence that does
    not state the answer never supports the claim fully.
    """
    claim_tokens = content_tokens(claim) | (content_tokens(answer) if answer else set())
    spans = sentence_spans(chunk_text) or []
    if not claim_tokens or not spans:
        return 0.0, 0, min(len(chunk_text), 300)
    shared, _, best = max((len(claim_tokens & content_tokens(chunk_text[s.start:s.end])), -s.start, s) for s in spans)
    support = shared / len(claim_tokens)
    if negated(claim) != negated(chunk_text[best.start:best.end]):
        support /= 2  # "was not approved" against "was approved": the words agree, the claim does not
    return support, best.start, best.end


def resolve_citations(text: str, passages: Sequence[Passage], threshold: float,
                      short_answer: str = "") -> tuple[str, list[Citation], int]:
    """Map [n] markers to passages: drop dangling ones, quote and check each, cite uncited sentences.

    Returns (text with normalised markers, citations in order of first use, markers removed:
    dangling ones, and unsupported ones beside a supported marker in the same sentence).
    """
    by_n = {p.n: p for p in passages}
    dropped = 0

    def normalise(m: re.Match) -> str:
        nonlocal dropped
        nums = [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
        valid = [n for n in dict.fromkeys(nums) if n in by_n]
        dropped += len(nums) - len(valid)
        return "".join(f"[{n}]" for n in valid)

    text = MARKER.sub(normalise, text).strip()
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    found: dict[int, Citation] = {}
    pieces: list[str] = []
    cursor, claim, claim_supported = 0, short_answer, False
    for span in sentence_spans(text):
        sentence = text[span.start:span.end]
        # a segment of markers only ("… [1]. [2][3]") cites the sentence before it
        markers_only = not strip_markers(sentence)
        claim = strip_markers(sentence) or claim or short_answer
        if not markers_only:
            claim_supported = False
        nums = [int(n) for n in re.findall(r"\[(\d+)\]", sentence)]
        if passages and claim and not (nums and markers_only):
            support = {p.n: best_quote(claim, p.chunk.text)[0] for p in passages}
            best = max(support, key=lambda n: (support[n], -n))  # the passage that supports the sentence best
            if support[best] >= threshold and not nums:  # an uncited sentence gets it
                nums, sentence = [best], _append_marker(sentence, best)
            elif support[best] >= threshold and _repoint(nums, best, support, by_n[best], claim, short_answer):
                sentence, nums = _append_marker(re.sub(r"\s*" + MARKER.pattern, "", sentence).rstrip(), best), [best]
        checked = {n: found.get(n) or _citation(n, by_n[n], claim, threshold, short_answer)
                   for n in dict.fromkeys(nums)}
        claim_supported = claim_supported or any(c.supported for c in checked.values())
        if claim_supported:
            # an unsupported marker beside a supported one adds nothing but doubt: remove it
            for n, c in checked.items():
                if not c.supported and n not in found:
                    sentence = re.sub(rf"\s*\[{n}\]", "", sentence)
                    dropped += 1
            checked = {n: c for n, c in checked.items() if c.supported or n in found}
        for n, c in checked.items():
            found.setdefault(n, c)
        pieces.append(text[cursor:span.start] + sentence)
        cursor = span.end
    pieces.append(text[cursor:])
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", "".join(pieces)).strip(), list(found.values()), dropped


REPOINT_MARGIN = 0.25


def _repoint(cited: list[int], best: int, support: dict[int, float], passage: Passage, claim: str,
             short_answer: str) -> bool:
    """Whether the sentence's markers should give way to the passage `best`.

    A small model often cites the passage next to the one it copied from. When `best`
    supports the sentence by at least `REPOINT_MARGIN` more than every cited passage
    (and holds the short answer, if the sentence states it), it is the source.
    """
    if best in cited or support[best] < max(support.get(n, 0.0) for n in cited) + REPOINT_MARGIN:
        return False
    answer_words = content_tokens(short_answer) & content_tokens(claim)
    return answer_words <= content_tokens(passage.chunk.text)


def drop_unsupported_sentences(text: str, passages: Sequence[Passage], threshold: float) -> str:
    """Remove sentences no passage supports (a small model sometimes echoes its examples or invents)."""
    kept = []
    for span in sentence_spans(text):
        sentence = text[span.start:span.end]
        claim = strip_markers(sentence)
        if not claim or max((best_quote(claim, p.chunk.text)[0] for p in passages), default=0.0) >= threshold:
            kept.append(sentence)
    return " ".join(kept)


def _append_marker(sentence: str, n: int) -> str:
    m = re.search(r"([.!?…]+[\"'”’)]*)$", sentence)
    return f"{sentence[:m.start()]} [{n}]{m.group(1)}" if m else f"{sentence} [{n}]"


def _citation(n: int, passage: Passage, claim: str, threshold: float, answer: str = "") -> Citation:
    c = passage.chunk
    support, qs, qe = best_quote(claim, c.text, answer)
    return Citation(
        n=n, chunk_id=c.chunk_id, source=c.source, title=c.title, page=c.page, quote=c.text[qs:qe],
        score=c.score, support=round(support, 3), supported=support >= threshold, url=c.url, text=c.text,
        quote_start=qs, quote_end=qe, ocr=c.ocr, section=c.section,
    )


def better_evidence(question: str, short: str, details: str, passages: Sequence[Passage]) -> str:
    """A passage sentence, with its `[n]`, to show instead of the model's details, or "" to keep them.

    The model's details should be a passage sentence that states its short answer.
    A small model sometimes quotes a neighbouring sentence instead (Answer: 6, then a
    sentence about "six months"), or gives none. Among the stored sentences that hold
    the short answer, the one that shares most of the question's words is the evidence;
    it replaces details that share fewer than half as many. Sentences come from the stored chunk, not from
    the focused text the model read, so one never spans a "…" gap and its quote can be
    found (and highlighted) in the chunk.
    """
    answer_words, asked = content_tokens(short), content_tokens(question)
    if not answer_words or not asked:
        return ""

    def holds(sentence: str) -> bool:
        return len(answer_words & content_tokens(sentence)) / len(answer_words) >= 0.5

    def relevance(sentence: str) -> int:
        return len(asked & content_tokens(sentence))

    plain = strip_markers(details)
    told = max((relevance(plain[s.start:s.end]) for s in sentence_spans(plain) if holds(plain[s.start:s.end])),
               default=-1)
    best, best_score = "", -1
    for p in passages:
        text = p.chunk.text
        for s in sentence_spans(text):
            sentence = text[s.start:s.end].strip()
            if sentence and holds(sentence) and relevance(sentence) > best_score:
                best, best_score = _append_marker(sentence, p.n), relevance(sentence)
    # details that hold the answer and share at least half as many of the question's words are the model's
    # own wording of the evidence: kept; "six months" beside a question about six companies is not
    return best if 2 * told < best_score else ""
