"""The short answer in the passage's own words.

The prompt asks the model to copy names, numbers and dates exactly as the passages write them;
a small model still writes "7 months old" where the passage says "seven months old",
"ladies-in-waitings" for "ladies-in-waiting", "BPP, ZPP, RP" for "BPP, ZPP and RP".
`quote_exactly` puts the passage's words back when a passage holds the answer's content words
(stemmed, numbers as digits: `rag.answer.citations.content_tokens`) in the same order, close together.
The answer's other words must be there too (articles aside), and the passage's extra words may not
negate, so "it does not sleep" never becomes "sleeps" and "approved" never "not approved".

Example::

    quote_exactly("7 months old", ["The patient, seven months old, recovered."])
    # 'seven months old'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.text.words import ARTICLES

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_NEGATIONS = frozenset(("not", "no", "never", "nor", "without", "neither", "none", "nothing", "cannot"))
_SLACK = 2  # words a quote may have beyond the answer's ("BPP, ZPP and RP" for "BPP, ZPP, RP")


def _negates(word: str) -> bool:
    return word in _NEGATIONS or word.endswith(("n't", "n’t"))


def _words(text: str) -> list[tuple[re.Match, tuple[str, ...]]]:
    from rag.text.tokens import content_tokens

    return [(m, tuple(sorted(content_tokens(m.group(0))))) for m in _WORD.finditer(text)]


def _plain(text: str) -> str:
    return " ".join(text.split()).strip(" .").casefold()


def quote_exactly(short: str, texts: Sequence[str]) -> str:
    """`short` as the first of `texts` that says it in other spellings writes it; else `short` unchanged."""
    if not short.strip() or any(_plain(short) in _plain(t) for t in texts):
        return short
    said = _words(short)
    wanted = [stems for _, stems in said if stems]
    if not wanted:
        return short
    needed = {m.group(0).casefold() for m, stems in said if not stems} - ARTICLES
    for text in texts:
        words = _words(text)
        content = [i for i, (_, stems) in enumerate(words) if stems]
        for j in range(len(content) - len(wanted) + 1):
            if any(words[content[j + k]][1] != wanted[k] for k in range(len(wanted))):
                continue
            first, last = content[j], content[j + len(wanted) - 1]
            if last - first + 1 > len(said) + _SLACK:
                continue
            window = {m.group(0).casefold() for m, _ in words[first:last + 1]}
            extra = {w for w in window if not any(w == m.group(0).casefold() for m, _ in said)}
            if needed <= window and not any(_negates(w) for w in extra):
                return " ".join(text[words[first][0].start():words[last][0].end()].split())
    return short
