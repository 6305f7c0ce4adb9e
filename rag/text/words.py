"""Word lists shared by every stage (English): articles, stopwords, number words, yes/no, list separators.

One place for each list, so that BM25, the support measure, the answer checks and the metrics agree on
what a function word or a number word is.
"""

from __future__ import annotations

import re

ARTICLES = frozenset(("a", "an", "the"))

# NLTK's English list: function words carry no topical signal for BM25 or for the support of a claim.
STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between
both but by can couldn't did didn't do does doesn't doing don't down during each few for from further had hadn't
has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll
i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only
or other ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some such than
that that's the their theirs them themselves then there there's these they they'd they'll they're they've this
those through to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when when's
where where's which while who who's whom why why's with won't would wouldn't you you'd you'll you're you've your
yours yourself yourselves s t d ll m o re ve y also
""".split())

# Number words and their values: "six" and "6" are the same number to the support measure and the checks.
# Incomplete on purpose for now (no 13-19, 60-90, thousand): adding them changes which sentences the focus
# keeps (one squad dev answer in 60 flipped), so completing it is an answer change to measure, not a refactor.
NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
    "first": 1, "second": 2, "third": 3,
}


# Separators of a list's items: "A, B and C", "A; B; C", "A, B, or C".
LIST_SEPARATORS = re.compile(r"\s*(?:;|,\s*(?:and\s+|or\s+)?|\s+and\s+|\s+or\s+)\s*")


def is_yes_no(short: str) -> bool:
    """Whether a short answer is a bare "Yes" or "No" (its words are not expected in the passages)."""
    return short.strip().strip(" .!").lower() in ("yes", "no")


def list_items(text: str) -> list[str]:
    """The items of a list: "A, B and C" -> ["A", "B", "C"] (no separator: [text]; empty text: [])."""
    text = text.strip().rstrip(".")
    parts = [p.strip() for p in LIST_SEPARATORS.split(text) if p.strip()]
    return parts or ([text] if text else [])
