"""What a question asks for, read without the model: the kind of answer expected, and answers that only
echo the question.

`answer_type_problem` checks a finished answer against the question (a grounding step of
rag.answer.flow): the short answer must be of the asked kind ("what year" → a year, "how many" → a
number, "who"/"where" → not just a number or a date). `echo_problem` catches a short answer
that only repeats words the question says in a row: it names what was asked about, not the asked
fact. A question that offers a choice ("X or Y?", "between X and Y", "other than X") is exempt:
there the answer is one of its words. For "Who is X?" the answer path replaces an echoed "X" by what
the passage says X is (`describe`).

Example::

    answer_type_problem("In what year was the fort built?", "Charlesfort")
    # 'the question asks for a year; the answer gives none'
    echo_problem("What does CGT stand for?", "CGT")
    # 'the answer only repeats words of the question'
    describe("Ann Lee", ["Ann Lee is the chief engineer of the dam project."])
    # 'the chief engineer of the dam project'
"""

from __future__ import annotations

import re

from rag.text.words import ARTICLES, NUMBER_WORDS, is_yes_no


# --- the kind of answer a question asks for -----------------------------------------------------
_ASKS_YEAR = re.compile(r"\b(?:what|which|in what|what's the)\s+year\b|\byear\s+(?:did|was|were|is)\b", re.I)
_ASKS_NUMBER = re.compile(r"\bhow\s+(many|much|long|old|far|big|large|tall|high|deep|wide|often)\b"
                          r"|\bwhat\s+(?:percentage|percent|number|amount|proportion|fraction)\b", re.I)
_ASKS_WHO = re.compile(r"^\W*(?:who|whom)\b", re.I)
_ASKS_WHERE = re.compile(r"^\W*where\b", re.I)
# Words that state an amount or a time without digits: the number words, then quantities and frequencies.
_NUMBER_WORDS = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + (
    r"|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|sixty|seventy|eighty|ninety"
    r"|hundreds|thousands?|millions?|billions?|trillions?|dozens?|half|quarter|several|few"
    r"|many|once|twice|thrice|single|double|triple|daily|weekly|monthly|annually|yearly|every|each"
    r"|none|no|all|most|some|decades?|centur(?:y|ies)|years?|months?|weeks?|days?"
    r"|hours?|minutes?|seconds?|rarely|seldom|never|often|occasionally|regularly|usually|frequently"
    r"|sometimes|always|briefly")
_HAS_NUMBER = re.compile(r"\d|\b(?:" + _NUMBER_WORDS + r")\b", re.I)
_HAS_YEAR = re.compile(r"\b\d{3,4}s?\b|\b\d{1,2}(?:st|nd|rd|th)\b|\b(?:BC|BCE|AD|CE)\b|centur|decade"
                       r"|\b(?:" + _NUMBER_WORDS + r")\b", re.I)
_ONLY_NUMBER_OR_DATE = re.compile(
    r"^\W*(?:(?:in|on|by|around|about|circa|c\.|since|from|until|the)\s+)*"
    r"(?:\d[\d,.]*(?:s|st|nd|rd|th)?|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?)"
    r"(?:[\s,–-]+(?:\d[\d,.]*(?:s|st|nd|rd|th)?|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
    r"|BC|BCE|AD|CE))*\W*$", re.I)


def answer_type_problem(question: str, short: str) -> str:
    """Why `short` cannot answer `question` by its kind alone, or "" (module docstring). Lenient by design:
    only a clear mismatch counts (a year asked, no year-like word given; a number asked, none given; a person
    or place asked, only a number or a date given)."""
    short = short.strip()
    if not short or is_yes_no(short):
        return ""
    if _ASKS_YEAR.search(question) and not _HAS_YEAR.search(short):
        return "the question asks for a year; the answer gives none"
    amount = _ASKS_NUMBER.search(question)
    if amount and not _HAS_NUMBER.search(short) and not (amount.group(1) and amount.group(1).lower() in short.lower()):
        return "the question asks for an amount; the answer gives none"  # "How tall?" "taller than X" passes
    if (_ASKS_WHO.search(question) or _ASKS_WHERE.search(question)) and _ONLY_NUMBER_OR_DATE.match(short):
        return "the question asks for a person or a place; the answer is only a number or a date"
    return ""


_CHOICE = re.compile(r"\b(?:or|between|either|whether|versus|vs|other\s+than|besides|except|apart\s+from|"
                     r"instead\s+of|rather\s+than|which\s+of)\b", re.I)
# "Who is X?", "What was the X?", "Tell me about X": the question asks what its subject is
_DEFINITION = re.compile(r"^\W*(?:(?:who|what)\s+(?:is|are|was|were)|tell\s+me\s+about|describe)\s+(.+?)[\s?.!]*$", re.I)


def _plain_words(text: str) -> list[str]:
    """Lower-case words without punctuation, articles or Latin accents (SQuAD's normalisation, and "-" splits)."""
    from rag.text.tokens import fold_latin

    return [fold_latin(w) for w in re.findall(r"[^\W_]+", text.lower()) if w not in ARTICLES]


# a character that makes a word an identifier (a channel, a path, a dotted name), not prose
_SYMBOL = re.compile(r"[#@/\\_$%&=+<>|~^*]|\w[.:]\w")


def echo_problem(question: str, short: str) -> str:
    """Why `short` is no answer to `question`, or "": it only repeats words the question says in a row
    (module docstring). `question` is the user's own words, not a follow-up's rewrite, which holds earlier
    answers. A question that offers a choice is exempt: there the answer is one of its words."""
    said = _plain_words(short)
    if not said or _CHOICE.search(question):
        return ""
    if _SYMBOL.search(short) and " ".join(short.split()).strip(" .").casefold() not in question.casefold():
        return ""  # an identifier the question does not write: "#debian-live" for "Debian Live's channel"
    words, n = _plain_words(question), len(said)
    if any(words[i:i + n] == said for i in range(len(words) - n + 1)):
        return "the answer only repeats words of the question"
    return ""


def definition_subject(question: str) -> str:
    """What a "Who is X?" / "What was X?" question asks about ("X"), or ""."""
    m = _DEFINITION.match(question)
    return m.group(1).strip() if m else ""


_COPULA = r"\s*(?:,\s*|\s+(?:is|was|are|were|has\s+been|serves\s+as|served\s+as)\s+)"


def describe(subject: str, sentences: list[str], max_words: int = 16) -> str:
    """What the first sentence that names `subject` says it is: "X is/was …" or "X, …," -> "…" ("" if none).

    A short answer to "Who is X?" says who X is, in the passage's words, not "X"."""
    if not subject:
        return ""
    pattern = re.compile(re.escape(subject) + _COPULA + r"([^,.;:()]+)", re.I)
    for sentence in sentences:
        m = pattern.search(sentence)
        if m:
            words = m.group(1).split()
            if words:
                return " ".join(words[:max_words]).rstrip(",")
    return ""
