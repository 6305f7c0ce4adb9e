"""List answers: when a question asks for several things and the model named one, name them all.

A small model told to give "the shortest exact words" names one item of a list ("Which of them are
named?" -> "Merck Testing", where the passage says "including Merck Testing and Frontera Therapeutics").
`complete_list` finds the short answer in a passage sentence; if it stands in a coordination of
names ("A, B and C", "A and B"), and the question asks for several, the short answer becomes the
whole coordination, copied from the passage. Nothing is invented: every word comes from the sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rag.text.sentences import sentence_spans
from rag.text.words import list_items

if TYPE_CHECKING:
    from rag.answer.context import Passage

# questions that want more than one thing: "which of them", "what are the …", "which two …", "name the …"
_SEVERAL = re.compile(
    r"\b(them|those|these|ones|both|all|names|list)\b"
    r"|\b(which|what|who)\b[^?]*\b(are|were)\b"
    r"|\bwhich\s+(two|three|four|five|six|seven|eight|nine|ten|\d+)\b"
    # "Which cities …", "What countries …": a plural noun right after the question word
    r"|^\W*(?:and\s+)?(?:which|what)\s+(?!(?:is|was|does|has|this|its|his|hers|less|plus|status|basis|focus)\b)"
    r"[a-z]{3,}(?<!s)s\b",
    re.IGNORECASE,
)
# a name: capitalised words, with "of"/"de"/"the"/"for" inside ("Ministry of Commerce"), an optional "the" before
_NAME = r"(?:the\s+)?[A-Z][\w’'\-.]*(?:\s+(?:(?:of|de|for|the)\s+)?[A-Z][\w’'\-.]*)*"
_COORDINATION = re.compile(rf"{_NAME}(?:\s*,\s*{_NAME})*\s*,?\s+(?:and|or)\s+{_NAME}")


def asks_for_several(question: str) -> bool:
    return bool(_SEVERAL.search(question))


def complete_list(question: str, short: str, passages: Sequence[Passage], asked: str = "") -> str:
    """`short`, or the coordination of names it stands in when the question asks for several (see module).

    `asked`: the user's own words, when `question` is a rewrite of a follow-up (a rewrite can lose the
    plural: "Which of them are named?" -> "Which of the companies completed the change?").
    """
    item = short.strip().rstrip(".")
    several = asks_for_several(question) or bool(asked and asks_for_several(asked))
    if not item or not several or re.search(r",|\band\b", item):
        return short
    for p in passages:
        text = p.chunk.text.replace("\xa0", " ")
        for span in sentence_spans(text):
            sentence = text[span.start:span.end]
            for m in _COORDINATION.finditer(sentence):
                names = list_items(m.group(0))
                bare = [re.sub(r"^the\s+", "", n, flags=re.IGNORECASE) for n in names]
                if item.lower() in (n.lower() for n in names + bare):
                    return m.group(0)
    return short
