"""Sentence splitting, the one splitter every stage uses (chunking, citations, the sentence view, metrics).

Stdlib-only. `sentence_spans` returns trimmed character spans, so callers keep offsets into the original
text (a citation's quote, a chunk's start and end).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Span", "sentence_spans", "sentence_cuts", "line_breaks", "item_breaks", "item_leads", "lead_of", "segments",
           "separated", "trimmed", "BLANK_LINE"]

_ROW_END = re.compile(r"\|[^\S\n]*\n")
BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
# A run of terminators plus any closing quotes/brackets; whether it really ends
# a sentence is decided by `_ends_sentence`.
_TERMINATOR = re.compile(r"[.!?。！？]+[\"'”’»)\]」』]*")
_CJK_TERMINATORS = frozenset("。！？")
_OPENING = frozenset("\"'“‘«([{")
_NEXT_CHAR = re.compile(r"\s*(\S)")
_DOTTED_INITIALS = re.compile(r"(?:[A-Za-z]\.){2,}$")
_ABBREVIATIONS = frozenset(
    """
    e.g. i.e. mr. mrs. ms. dr. prof. st. jr. sr. vs. cf. al. approx. ca.
    fig. figs. no. nos. vol. pp. p. inc. ltd. co. corp. dept. est. gen.
    gov. sen. rep. rev. col. lt. sgt. capt. mt. ft. jan. feb. mar. apr. jun.
    jul. aug. sep. sept. oct. nov. dec. eq. eqs. sec. ch. ed. eds.
    """.split()
)


@dataclass(frozen=True)
class Span:
    """A piece of text as character offsets: `text[start:end]`."""

    start: int
    end: int





def _ends_sentence(text: str, term_start: int, term_end: int, end: int) -> bool:
    """Whether the terminator run text[term_start:term_end] ends a sentence."""
    if text[term_end - 1] in _CJK_TERMINATORS or text[term_start] in _CJK_TERMINATORS:
        return True  # CJK text puts no space after its full stops
    if term_end < end and not text[term_end].isspace():
        return False  # "3.5", "example.com", "a.b" are not sentence ends
    if term_start == 0 or text[term_start - 1].isspace() or (
            text[term_start - 1] in _OPENING and (term_start == 1 or text[term_start - 2].isspace())):
        return False  # a symbol named, not a sentence ended: "the ! operator", "the form '!' means"
    if text[term_start:term_end] != ".":
        return True  # "!", "?", "...", '."' end sentences
    following = _NEXT_CHAR.match(text, term_end, end)
    if following and following.group(1).islower():
        return False  # a lower-case continuation means the dot was an abbreviation
    word = text[_word_start(text, term_start, 0):term_end].lstrip("\"'“‘([{").lower()
    if word in _ABBREVIATIONS or _DOTTED_INITIALS.search(word):
        return False
    # A single capital letter is an initial ("J. Smith"), not a sentence.
    return not (len(word) == 2 and text[term_start - 1].isupper())


_ENUMERATOR = re.compile(r"\d{1,2}\.")


def _word_start(text: str, at: int, floor: int) -> int:
    """Where the word that holds text[at] begins (not before `floor`)."""
    while at > floor and not text[at - 1].isspace():
        at -= 1
    return at


def _item_number(text: str, start: int, term_start: int, term_end: int, cuts: list[int]) -> tuple[int, bool] | None:
    """When the full stop at text[term_start:term_end] closes a numbered item's number: where the number
    starts, and whether a cut goes there. A number opens an item first in the paragraph or after a sentence
    end (`cuts` so far: the cut is there already), and "1." after a colon ("as follows: 1."; "score: 42."
    is a value). Else None."""
    number = _word_start(text, term_start, start)
    if not _ENUMERATOR.fullmatch(text, number, term_end):
        return None
    before = number
    while before > start and text[before - 1].isspace():
        before -= 1
    if before > start and text[before - 1] == ":" and text[number:term_end] == "1.":
        return number, True
    if before == start or (cuts and cuts[-1] == before):
        return number, False
    return None


def sentence_cuts(text: str, start: int, end: int) -> list[int]:
    """Offsets just after each sentence end inside text[start:end].

    The number of a numbered item opens the item's sentence rather than closing the one before it:
    "do as follows: 1. Create a folder." is cut before "1.", not after it.
    """
    cuts = []
    for m in _TERMINATOR.finditer(text, start, end):
        if not _ends_sentence(text, m.start(), m.end(), end):
            continue
        item = _item_number(text, start, m.start(), m.end(), cuts)
        if item is None:
            cuts.append(m.end())
        elif item[1]:
            cuts.append(item[0])
    return cuts


def trimmed(text: str, start: int, end: int) -> Span | None:
    """text[start:end] without surrounding whitespace, or None if nothing is left."""
    segment = text[start:end]
    stripped = segment.strip()
    if not stripped:
        return None
    lead = len(segment) - len(segment.lstrip())
    return Span(start + lead, start + lead + len(stripped))


def segments(text: str, start: int, end: int, cuts: list[int]) -> list[Span]:
    """The trimmed non-empty pieces of text[start:end] between cut offsets."""
    pieces = []
    for left, right in zip([start, *cuts], [*cuts, end]):
        span = trimmed(text, left, right)
        if span is not None:
            pieces.append(span)
    return pieces


def separated(text: str, start: int, end: int, separator: re.Pattern[str]) -> list[int]:
    """Cut offsets at each separator match (the separator itself is trimmed away)."""
    return [m.start() for m in separator.finditer(text, start, end)]


def line_breaks(text: str, start: int, end: int) -> list[int]:
    """Offsets of the newlines inside text[start:end] that end a Markdown table row (`| … |` followed by
    another line): a table has no full stops, yet each row is a unit of its own, not one long sentence."""
    cuts = []
    at = text.find("\n", start, end)
    while at != -1:
        line_start = text.rfind("\n", 0, at) + 1
        if text[line_start:at].rstrip().endswith("|") and text[line_start:at].lstrip().startswith("|") \
                and text[at + 1:end].strip():
            cuts.append(at)
        at = text.find("\n", at + 1, end)
    return cuts


# A line that opens a list item: a bullet, a dash, or "1." / "1)" / "(a)" / "a)" and a space
_ITEM_LINE = re.compile(r"\n[^\S\n]*(?:[•◦▪▫‣⁃●○■□►▸➢✓✔–—*-]|\d{1,2}[.)]|\(?[a-z]\))[^\S\n]+(?=\S)")


# A numbered heading on a line of its own: "2.14.3 Discussion", "4.2. Configuring the network" (up to 8 words)
_HEADING_LINE = re.compile(r"^[^\S\n]*\d+(?:\.\d+)+\.?(?:[^\S\n]+[^\s.!?,;:]+){1,8}[^\S\n]*$", re.MULTILINE)


def item_breaks(text: str, start: int, end: int) -> list[int]:
    """Offsets of the newlines inside text[start:end] that open a list item (`• `, `- `, `2. `, `(b) `), and
    those around a numbered heading line (`2.14.3 Discussion`): items (a manual's steps, a book's bullet
    points) and headings end without a full stop, yet each is a unit of its own."""
    cuts = [m.start() for m in _ITEM_LINE.finditer(text, start, end)]
    for m in _HEADING_LINE.finditer(text, start, end):
        if text[m.start():m.end()].split()[1][:1].isupper():
            cuts += [at for at in (m.start(), m.end()) if start < at < end]
    return sorted(set(cuts))


# A list item that names what it describes: "- work_mem (integer): Sets the base maximum …", "• Port: …"; the
# term (up to 12 words, no sentence end in it) and the ": " after it
_LEAD = re.compile(r"^[^\S\n]*(?:[•◦▪‣●■►–—*-]|\d{1,2}[.)])[^\S\n]+"
                   r"(?P<term>(?:(?![.!?]\s)[^\n:]){1,100}?):[^\S\n]+(?=\S)", re.MULTILINE)


@dataclass(frozen=True)
class Lead:
    """A term item's line, `text[start:end]`, and its lead, `text[start:lead_end]`: the marker, the term, the colon."""

    start: int
    lead_end: int
    end: int


def item_leads(text: str) -> list[Lead]:
    """The list items of `text` that open with a term and a colon, as a reference manual's lists of options,
    settings and functions do: every later sentence of such an item describes that term ("The default is
    4MB." in the item of `work_mem`), so a sentence read alone takes its subject from the lead."""
    leads = []
    for m in _LEAD.finditer(text):
        if len(m.group("term").split()) <= 12:
            end = text.find("\n", m.end())
            leads.append(Lead(m.start(), m.end("term") + 1, len(text) if end == -1 else end))
    return leads


def lead_of(leads: list[Lead], start: int) -> Lead | None:
    """The term item whose line holds a sentence starting at `start`, past its lead (None: the item's first
    sentence, which holds the term, or no such item)."""
    for lead in leads:
        if lead.lead_end <= start < lead.end:
            return lead
    return None


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Trimmed sentence spans of text[start:end], also split at blank lines, between table rows
    (`line_breaks`) and before list items (`item_breaks`), in absolute offsets."""
    end = len(text) if end is None else end
    rows = _ROW_END.search(text, start, end) is not None
    spans = []
    for paragraph in segments(text, start, end, separated(text, start, end, BLANK_LINE)):
        cuts = sentence_cuts(text, paragraph.start, paragraph.end)
        if rows:
            cuts = sorted(set(cuts) | set(line_breaks(text, paragraph.start, paragraph.end)))
        items = item_breaks(text, paragraph.start, paragraph.end)
        if items:
            cuts = sorted(set(cuts) | set(items))
        spans.extend(segments(text, paragraph.start, paragraph.end, cuts))
    return spans


