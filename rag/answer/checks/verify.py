"""Verification after generation: does the one cited sentence state the asked fact?

A short second prompt (`rag/answer/prompts/verify.yaml`) shows the model the sentence of the cited
passage that holds its short answer, the question and the answer, and asks Yes or No. The
answer is read as a probability: `LlamaCppChat.yes_probability` takes it from the first
token's log-probabilities; another chat model replies one word, read as 1.0 (Yes) or 0.0.
Below `answer.verify_threshold` the answer path abstains (step "verification").

This catches near misses the word-overlap checks cannot: the passage talks about the subject
but not the asked fact ("How many employees does Frontera have?" answered with "six", the
number of companies in the batch).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.answer.prompts import load_prompt
from rag.text.markers import strip_markers
from rag.text.sentences import sentence_spans
from rag.text.tokens import content_tokens
from rag.text.words import is_yes_no

if TYPE_CHECKING:
    from rag.core.types import Citation


@dataclass(frozen=True)
class Verdict:
    """The verifier's probability that the sentence states the answer, whether it passes, and its cost."""

    p_yes: float
    passed: bool
    sentence: str
    ms: float


def evidence_sentence(short: str, citations: Sequence[Citation]) -> str:
    """The one sentence to check: of the cited chunks' sentences, the one holding most of the short answer.

    Ties go to the quote the citation check chose (it overlaps the claim most), then to the first cited.
    """
    wanted = content_tokens(short)
    best, best_key = "", (-1.0, False)
    for c in citations:
        for span in sentence_spans(c.text) or []:
            sentence = c.text[span.start:span.end]
            share = len(wanted & content_tokens(sentence)) / len(wanted) if wanted else 0.0
            key = (share, span.start == c.quote_start)
            if key > best_key:
                best, best_key = sentence, key
    return " ".join(best.split())


def verify_messages(question: str, short: str, sentence: str):
    from langchain_core.messages import HumanMessage, SystemMessage

    prompt = load_prompt("verify")
    user = prompt["user"].format(sentence=sentence, question=" ".join(question.split()), answer=short)
    return [SystemMessage(prompt["system"]), HumanMessage(user)]


def yes_probability(chat_model, messages) -> float:
    """P(Yes) from the model: token probabilities where the model offers them, else its one-word reply."""
    method = getattr(chat_model, "yes_probability", None)
    if callable(method):
        return float(method(messages))
    reply = str(chat_model.invoke(messages).content)
    word = re.match(r"\W*(\w+)", reply)
    return 1.0 if word and word.group(1).lower() in ("yes", "true", "correct") else 0.0


def verify_answer(question: str, short: str, citations: Sequence[Citation], chat_model, threshold: float) -> Verdict:
    """Ask whether the cited sentence states `short` as the answer to `question` (see module docstring).

    Yes/no answers and answers with no cited sentence pass unchecked (p_yes 1.0, 0 ms).
    """
    started = time.perf_counter()
    sentence = evidence_sentence(short, citations) if citations else ""
    if not sentence or is_yes_no(short):
        return Verdict(1.0, True, sentence, 0.0)
    p_yes = yes_probability(chat_model, verify_messages(question, strip_markers(short), sentence))
    return Verdict(round(p_yes, 4), p_yes >= threshold, sentence, round((time.perf_counter() - started) * 1000, 1))
