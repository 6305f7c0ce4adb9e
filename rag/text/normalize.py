"""Answer normalisation, as SQuAD compares answers (shared by the metrics and by feedback exports), and text made
plain for comparing as written (`plain_text`: the manuals metrics, the local model's copied answers)."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

from rag.text.markers import strip_markers
from rag.text.words import ARTICLES


def is_punct(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


_ARTICLES = re.compile(r"\b(" + "|".join(sorted(ARTICLES)) + r")\b")


def _drop_articles(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation, articles and extra whitespace.

    Unlike the official script, Unicode punctuation (’ – “) is dropped too, so
    "Shanghai’s" and "Shanghai's" compare equal.
    """
    return _drop_articles("".join(ch for ch in text.lower() if not is_punct(ch)))


def loose(text: str) -> str:
    """`normalize_answer`, except that punctuation becomes a space ("Germany-headquartered" -> two words)."""
    return _drop_articles("".join(" " if is_punct(ch) else ch for ch in text.lower()))


def contains_answer(text: str, golds: Sequence[str]) -> bool:
    """Whether a gold answer occurs in `text` as whole words.

    Both sides are normalised as in `normalize_answer`, except that punctuation
    becomes a space, so "Germany" is found in "Germany-headquartered".
    """
    haystack = f" {loose(strip_markers(text))} "
    return any(norm and f" {norm} " in haystack for norm in map(loose, golds))


_PLAIN = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "`": "'", "´": "'", "“": '"', "”": '"',
                       "„": '"', "″": '"', "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-", "\xa0": " "})


def plain_text(text: str) -> str:
    """Quotes, dashes and whitespace made plain (NFKC), a word hyphenated at a line end joined again."""
    text = re.sub(r"[\ufffe\u00ad]\s*", "", text)  # pdfium marks a hyphenation point with U+FFFE
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).translate(_PLAIN)).strip()
