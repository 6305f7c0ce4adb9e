"""Checks that decide whether an answer may be shown: is any passage relevant, is the answer grounded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.core.types import Chunk, Citation
from rag.text.normalize import plain_text
from rag.text.tables import reading_units
from rag.text.tokens import code_words, content_tokens
from rag.text.words import is_yes_no

if TYPE_CHECKING:
    from rag.answer.context import Passage


def is_relevant(question: str, chunks: Sequence[Chunk], best_similarity: float, min_similarity: float) -> bool:
    """Worth asking the model: a passage is semantically close, or holds most of the question's words.

    Dense similarity alone misses questions about names, whose embeddings are far from any passage;
    word coverage (`passage_coverage`) catches those.
    """
    if not chunks:
        return False
    return best_similarity >= min_similarity or passage_coverage(question, chunks) >= 0.5


def passage_coverage(question: str, chunks: Sequence[Chunk]) -> float:
    """The largest share of the question's content words that one passage holds (0 without any)."""
    wanted = content_tokens(question)
    if not wanted or not chunks:
        return 0.0
    return max(len(wanted & content_tokens(c.text)) / len(wanted) for c in chunks)


def coverage(wanted: set[str], text: str) -> float:
    return len(wanted & content_tokens(text)) / len(wanted) if wanted else 1.0


def grounding_signals(question: str, short: str, citations: Sequence[Citation], passages: Sequence[Passage],
                      asked: str = "") -> dict[str, float]:
    """How well the answer is grounded, on stemmed content words (confidence features, `rag.answer.confidence`).

    - `answer_in_passages`: the share of the short answer's words that occur in the passages (an invented
      figure scores low; a bare Yes/No scores 1);
    - `question_coverage`: the share of the question's words that the cited passages, with their documents'
      titles and section headings (which name what a passage is about), hold (an answer to a different
      question scores low). For a follow-up, `question` is searched with the earlier question in front, whose
      words the cited passage need not repeat: the words of the follow-up as `asked` count as well;
    - `answer_context`: the largest share of the question's words that a passage sentence holding the short
      answer states (`answer_context`; a follow-up's `asked` counts as well).
    """
    cited = [c.chunk for c in _cited_passages(citations, passages)] or [p.chunk for p in passages]
    evidence = " ".join(f"{c.title} {c.section or ''} {c.text}" for c in cited)
    found = 1.0 if is_yes_no(short) else coverage(content_tokens(short), " ".join(p.chunk.text for p in passages))
    questions = dict.fromkeys((question, asked or question))  # one, unless a follow-up was asked in other words
    covered = max(coverage(content_tokens(q), evidence) for q in questions)
    context = max(answer_context(q, short, passages) for q in questions)
    return {"answer_in_passages": round(found, 4), "question_coverage": round(covered, 4),
            "answer_context": round(context, 4)}


def answer_context(question: str, short: str, passages: Sequence[Passage]) -> float:
    """The largest share of the question's words that one sentence or table row of the passages as shown
    states, among those that hold the short answer (its words, at least half of them); a row is read with its
    table's header, every sentence with its passage's title and headings. 0 when none holds the answer.

    The sentence that states an answer also says what was asked. A near miss, where the documents discuss the
    subject but not the asked value, is typically answered from a neighbouring sentence or row: it holds an
    answer-like value but not the question's distinctive word (asked when the tunnel opened, the model gives
    the year of the sentence about the bridge). The question's words that the answer repeats count as well, so
    an answer written as a whole sentence scores as its bare value does. A Yes/No answer is held by no
    sentence: the best sentence counts.
    """
    answer = content_tokens(short) or code_words(short, quoted_only=False)  # a symbol answer (`%U`): its code words
    wanted = content_tokens(question) | code_words(question)
    if not wanted:
        return 1.0
    said = plain_text(short).lower()
    yes_no = is_yes_no(short)
    best = 0.0
    for p in passages:
        about = content_tokens(f"{p.chunk.title} {p.chunk.section or ''}")
        for span, table in reading_units(p.text):
            unit = p.text[span.start:span.end]
            own = content_tokens(unit) | code_words(unit, quoted_only=False)
            holds = yes_no or (bool(said) and said in plain_text(unit).lower()) \
                or (bool(answer) and len(answer & own) * 2 >= len(answer))
            if not holds:
                continue
            tokens = own | about | (content_tokens(table.header) if table else set())
            best = max(best, len(wanted & tokens) / len(wanted))
    return best


def _cited_passages(citations, passages):
    ids = {c.chunk_id for c in citations}
    return [p for p in passages if p.chunk.chunk_id in ids]


def grounding_problems(found: dict[str, float], min_question_coverage: float) -> dict[str, str]:
    """What `grounding_signals` found, as the checks' problems: the short answer must occur in the passages (at
    least half its words), and the cited passages must hold at least `min_question_coverage` of the question's
    words. {check: reason}, only the checks that object."""
    problems = {"answer_not_in_passages": NOT_IN_PASSAGES if found["answer_in_passages"] < 0.5 else "",
                "question_coverage": NOT_COVERED if found["question_coverage"] < min_question_coverage else ""}
    return {k: v for k, v in problems.items() if v}


def grounding_problem(question: str, short: str, citations: Sequence[Citation], passages: Sequence[Passage],
                      min_question_coverage: float, asked: str = "") -> str:
    """Why the model's answer cannot be trusted by `grounding_problems`, or "" when it is grounded."""
    found = grounding_signals(question, short, citations, passages, asked)
    return next(iter(grounding_problems(found, min_question_coverage).values()), "")


NOT_IN_PASSAGES = "the model's answer does not occur in the passages"
NOT_COVERED = "the cited passages do not mention what was asked"
