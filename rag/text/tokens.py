"""Word tokens: the one tokenizer behind BM25 and the support measure of citations and checks.

`tokenize` lower-cases, splits on non-letters/digits, folds Latin accents, drops stopwords and stems
(Snowball, English); CJK text becomes single characters. `content_tokens` is the set the support measure
compares: the tokens, citation markers and thousands separators removed, number words as digits.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache

from rag.text.markers import strip_markers
from rag.text.words import NUMBER_WORDS, STOPWORDS

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_stemmer_lock = threading.Lock()
_stemmer = None


def stem(words: list[str]) -> list[str]:
    """Snowball (English) stems of `words`; the stemmer is loaded on first use."""
    global _stemmer
    with _stemmer_lock:
        if _stemmer is None:
            import Stemmer

            _stemmer = Stemmer.Stemmer("english")
        return _stemmer.stemWords(words)


# Latin letters NFKD does not take apart (Lucene's ASCIIFoldingFilter maps them alike)
_LATIN_FOLDS = {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}


@lru_cache(maxsize=65536)
def fold_latin(word: str) -> str:
    """`word` with the accents of Latin letters dropped ("gospić" -> "gospic", "müntzer" -> "muntzer").

    People type names without their accents, and documents differ too. Only a
    letter that decomposes into an ASCII letter plus combining marks is folded:
    the vowel signs of Devanagari or Arabic, which change a word, are kept.
    """
    out = []
    for ch in word:
        if ch.isascii():
            out.append(ch)
        elif ch in _LATIN_FOLDS:
            out.append(_LATIN_FOLDS[ch])
        else:
            parts = unicodedata.normalize("NFKD", ch)
            base = parts[0]
            if parts.isascii() and parts.isalpha():  # a ligature: "ﬁ" -> "fi"
                out.append(parts.lower())
            elif base.isascii() and base.isalpha() and all(unicodedata.combining(c) for c in parts[1:]):
                out.append(base)
            else:
                out.append(ch)
    return "".join(out)


# a number with its unit written on: "100hz", "10mω", "2kg" (not "ipv6", "mp3", "h2o": a letter comes first)
_NUMBER_UNIT = re.compile(r"(\d+)([^\W\d_]+)")


def tokenize(text: str) -> list[str]:
    """Lower-case, split on non-letters/digits, fold Latin accents, drop stopwords, Snowball-stem; CJK as
    single characters; a number and the unit written on to it as two words ("100Hz" is "100 Hz": documents,
    questions and replies write it either way)."""
    words: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _CJK.search(word):
            words.extend(ch for ch in word if not ch.isspace())
            continue
        if not word.isascii():
            word = fold_latin(word)
        glued = _NUMBER_UNIT.fullmatch(word) if word[0].isdigit() else None
        for part in glued.groups() if glued else (word,):
            if part not in STOPWORDS:
                words.append(part)
    return stem(words)


_IDENTIFIER = re.compile(r"(?<!\w)[^\W_]+(?:_+[^\W_]+)+(?!\w)")


def search_tokens(text: str) -> list[str]:
    """The words BM25 indexes and searches: `tokenize`'s, and each identifier written with underscores whole
    as well ("work_mem" is "work", "mem" and "work_mem"), so that a question naming `work_mem` ranks its own
    entry above those of `maintenance_work_mem` and `autovacuum_work_mem`, which hold its parts too."""
    return tokenize(text) + [m.group(0) for m in _IDENTIFIER.finditer(text.lower())]


@lru_cache(maxsize=1)
def _stemmed_numbers() -> dict[str, str]:
    """Number words as `tokenize` leaves them ("twelve" -> "twelv"), mapped to their digits."""
    return {stem([word])[0]: str(value) for word, value in NUMBER_WORDS.items()}


def content_tokens(text: str) -> set[str]:
    """The stemmed content words and numbers of `text`, number words as digits ("six" -> "6")."""
    numbers = _stemmed_numbers()
    return {numbers.get(t, t) for t in tokenize(strip_markers(text).replace(",", ""))}


_EDGE_PUNCT = "\"'`“”‘’«»()[]{}<>,;:?."
_QUOTES = "\"'`“”‘’«»"
_CODE_CHAR = re.compile(r"[^\w\s]|_")
_POSSESSIVE = re.compile(r"(?<=[^\W\d_])['’](?=[^\W\d_])")  # "gnuplot's", "don't": words, not code


def code_words(text: str, *, quoted_only: bool = True) -> set[str]:
    """The words of `text` that `tokenize` would lose: symbols and identifiers such as `%j`, `@`, `C-k`,
    `--no-readline`, `0..11`, `'q'`, case kept (`'P'` is not `'p'`), each prefixed with a backquote so it
    never equals a word token. A word counts when it holds a symbol, or (`quoted_only`) when it was quoted.
    With `quoted_only=False` every word counts (what a passage's words are matched against).
    """
    out = set()
    for raw in text.split():
        word = raw.strip(_EDGE_PUNCT)
        if not word:
            symbol = raw.strip(".,;:?")
            if symbol and not _WORD.search(raw):  # a symbol alone: "@", "!", "**", quoted or not ("'<'" is "<")
                out.add("`" + (symbol.strip(_QUOTES) or symbol))
            continue
        quoted = raw[0] in "'\"`‘“" and len(word) <= 3
        if not quoted_only or quoted or _CODE_CHAR.search(_POSSESSIVE.sub("", word)):
            out.add("`" + word)
    return out


_NEGATION = re.compile(r"\b(?:not(?!\s+(?:only|just|merely)\b)|no|never|nor|neither|none|nobody|nothing|nowhere"
                       r"|without|cannot)\b|n't\b", re.IGNORECASE)


def negated(text: str) -> bool:
    """Whether `text` says no ("not", "never", "n't", "without" …): the stopword list drops these words, so
    support measures compare them apart ("was not approved" does not support "was approved"). "Not only …
    but also" affirms: it does not count."""
    return bool(_NEGATION.search(text))
