"""Checks that decide whether an answer may be shown: is any passage relevant, is the answer grounded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.core.types import Chunk, Citation
from rag.text.tokens import content_tokens
from rag.text.words import is_yes_no

if TYPE_CHECKING:
    from rag.answer.context import Passage


def is_relevant(question: str, chunks: Sequence[Chunk], best_similarity: float, min_similarity: float) -> bool:
    """Worth asking the model: a passage is semantically close, or holds most of the question's words.

    Dense similarity alone misses questions about names ("Who is Chen Li?"),
    whose embeddings are far from any passage; word coverage catches those.
    """
    if not chunks:
        return False
    if best_similarity >= min_similarity:
        return True
    wanted = content_tokens(question)
    if not wanted:
        return False
    return max(len(wanted & content_tokens(c.text)) / len(wanted) for c in chunks) >= 0.5


def coverage(wanted: set[str], text: str) -> float:
    return len(wanted & content_tokens(text)) / len(wanted) if wanted else 1.0


def grounding_problem(question: str, short: str, citations: Sequence[Citation], passages: Sequence[Passage],
                      min_question_coverage: float, asked: str = "") -> str:
    """Why the model's answer cannot be trusted, or "" when it is grounded.

    Two checks, both on stemmed content words: the short answer must occur in the
    passages (catches invented figures), and the cited passages, with their documents'
    titles (which name what a passage is about), must hold at least
    `min_question_coverage` of the question's words (catches an answer to a
    different question, e.g. a person's role in another company). For a follow-up,
    `question` is searched with the earlier question in front, whose words the cited
    passage need not repeat: the words of the follow-up as `asked` count as well.
    """
    cited = [(c.title, c.text) for c in citations] or [(p.chunk.title, p.chunk.text) for p in passages]
    evidence = " ".join(f"{title} {text}" for title, text in cited)
    yes_no = is_yes_no(short)
    if not yes_no and coverage(content_tokens(short), " ".join(p.chunk.text for p in passages)) < 0.5:
        return NOT_IN_PASSAGES
    covered = max(coverage(content_tokens(q), evidence) for q in (question, asked or question))
    if covered < min_question_coverage:
        return NOT_COVERED
    return ""


NOT_IN_PASSAGES = "the model's answer does not occur in the passages"
NOT_COVERED = "the cited passages do not mention what was asked"
# the step name recorded on an abstaining Answer (`Answer.abstain_step`) for each grounding problem
STEPS = {NOT_IN_PASSAGES: "answer_not_in_passages", NOT_COVERED: "question_coverage"}
