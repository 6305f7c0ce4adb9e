"""Typeset pages as a reader sees them: the cleanup between a PDF's page texts and the indexed text.

Pure functions over page texts and lines (no PDF library here; `rag.ingest.loaders.pdf` feeds them):

- `clean_chars`: ligatures (ﬁ -> fi), typographic quotes and dashes, TeX's spacing accents (`Br¨oker` -> Bröker);
- `strip_running_lines`: running headers and footers (lines repeating, digits aside, at the top or bottom of
  many pages, or carrying the page's own number) and page-number lines (`103`, `- 12 -`, `Page 3 of 9`);
- `listing_kind`: table-of-contents and index pages (most lines end in page numbers, dot leaders);
- `join_hyphens`: words hyphenated at line ends (`con-` / `figuration`, pdfium's `con\\x02figuration`) joined,
  unless the document itself writes them with a hyphen (`non-zero`);
- `column_order`: two-column pages read column by column from text-line boxes (`column_bands`: three or more);
- `definition_lists`: lists of terms with their descriptions indented below them, as "- term: description" items;
- `place_headings` and `section_paths`: outline entries placed at their heading lines, as heading paths.

`clean_pages` runs the page-level steps in order and says what it removed.

Example::

    cleaned = clean_pages(["Manual 1\\nThe con-\\nfiguration file.", "Manual 2\\nMore text.", ...])
    cleaned.texts[0]   # 'The configuration file.' (the running header 'Manual 1' is gone)
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from rag.core.types import SECTION_SEPARATOR


# --------------------------------------------------------------------------- characters

_CHAR_MAP = str.maketrans({
    "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "−": "-", "﹣": "-", "－": "-",
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u202f": " ",
    "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "",
})
# TeX sets an accent as its own glyph before the letter; pdfium reads `Br¨oker`. Spacing accent -> combining mark.
_SPACING_ACCENTS = {"¨": "\u0308", "´": "\u0301", "ˆ": "\u0302", "˜": "\u0303", "˚": "\u030a", "ˇ": "\u030c",
                    "˘": "\u0306", "˙": "\u0307", "˝": "\u030b", "¸": "\u0327"}
_ACCENTED = re.compile(f"([{''.join(_SPACING_ACCENTS)}])([A-Za-zı])")


def _accent(match: re.Match) -> str:
    letter = "i" if match.group(2) == "ı" else match.group(2)
    composed = unicodedata.normalize("NFC", letter + _SPACING_ACCENTS[match.group(1)])
    return composed if len(composed) == 1 else match.group(0)


def clean_chars(text: str) -> str:
    """Ligatures spelled out, typographic quotes and dashes (not the em dash) as ASCII, TeX accents composed.

    Soft hyphens and pdfium's line-end hyphen mark (\\x02) are kept: `join_hyphens` decides about them.
    """
    return _ACCENTED.sub(_accent, text.translate(_CHAR_MAP))


# --------------------------------------------------------------------------- running headers and footers

_EDGE_LINES = 2  # lines at the top and at the bottom of a page that may be a running header or footer
_RUNNING_MIN_PAGES = 3
_MAX_RUNNING_CHARS = 120
_ROMAN = r"(?=[ivxlcdm])m{0,3}(?:cm|cd|d?c{0,3})(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"  # a well-formed numeral only
_PAGE_NUMBER = re.compile(
    r"^(?:page\s+)?[-–—(\[]?\s*(?:\d{1,4}|" + _ROMAN + r")\s*[-–—)\]]?(?:\s*(?:/|of)\s*\d{1,4})?$", re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"^(\d{1,4})\s+\S")
_TRAILING_NUMBER = re.compile(r"\S\s+(\d{1,4})$")
_DIGITS = re.compile(r"\d+")


def is_page_number(line: str) -> bool:
    """A line that is only a page number: `103`, `103/233`, `- 12 -`, `Page 3 of 9`, `iv`."""
    return bool(_PAGE_NUMBER.match(line.strip()))


def _running_key(line: str) -> str:
    """The line with its numbers masked, so `gnuplot 5.4 31` and `gnuplot 5.4 32` compare equal."""
    # roman numerals stay: masking them would make `Part I`, `Part II` headings one running line
    return _DIGITS.sub("#", " ".join(line.lower().split()))


def _unnumbered(title: str) -> str:
    """An outline entry without its numbering: `Chapter 3. The Root Filesystem` -> `The Root Filesystem`."""
    m = _NUMBERING.match(title.strip())
    if m:
        return m.group(2)
    m = _DIVISION.match(title.strip())
    return title[m.end():] if m else title


def _edge_indexes(lines: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indexes of the first and the last `_EDGE_LINES` non-blank lines."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return filled[:_EDGE_LINES], filled[::-1][:_EDGE_LINES]


def _label_offsets(pages: Sequence[Sequence[str]]) -> set[int]:
    """Offsets `index - printed number` that many pages agree on (page 31 printed on the 31st page: offset 0).

    Read from the first and the last line of each page, and from a bare number right under (or over) them:
    the page number below a chapter's running title."""
    votes: Counter[int] = Counter()
    for index, lines in enumerate(pages):
        found = set()
        for edge in _edge_indexes(lines):
            for i in edge[:1]:
                line = lines[i].strip()
                for pattern in (_LEADING_NUMBER, _TRAILING_NUMBER):
                    m = pattern.search(line)
                    if m:
                        found.add(index - int(m.group(1)))
                if line.isdigit():
                    found.add(index - int(line))
            found.update(index - int(lines[i]) for i in edge[1:2] if lines[i].strip().isdigit())
        votes.update(found)
    with_text = sum(1 for lines in pages if any(line.strip() for line in lines))
    need = max(_RUNNING_MIN_PAGES, int(0.2 * with_text))
    return {offset for offset, n in votes.items() if n >= need}


def _own_number(line: str, index: int, offsets: set[int]) -> bool:
    """A line that is only this page's printed number."""
    line = line.strip()
    return line.isdigit() and len(line) <= 4 and index - int(line) in offsets


def _carries_page_number(line: str, index: int, offsets: set[int]) -> bool:
    """A short line that starts or ends with this page's printed number: `Chapter 13: Packages 83`."""
    line = line.strip()
    if len(line) > _MAX_RUNNING_CHARS:
        return False
    for pattern in (_LEADING_NUMBER, _TRAILING_NUMBER):
        m = pattern.search(line)
        if m and index - int(m.group(1)) in offsets:
            return True
    return False


@dataclass
class RunningLines:
    """What `strip_running_lines` removed."""

    headers: int = 0
    footers: int = 0
    page_numbers: int = 0
    removed: list[list[str]] = field(default_factory=list)  # per page, the lines taken out


def strip_running_lines(pages: Sequence[Sequence[str]],
                        titles: Iterable[str] = ()) -> tuple[list[list[str]], RunningLines]:
    """Remove running headers, footers and page-number lines from the top and bottom of each page.

    A header or footer is a line among the first or last two of a page that repeats, numbers
    masked, in the same place on at least 3 pages (and either holds a number, as headers with
    the page number do, is on half the pages, or names a section of the document: one of `titles`,
    the outline's entries, with or without their numbering, as a chapter's title heads each of its
    pages), or that starts or ends with the page's own printed number. Lines are only taken from
    the edges inwards: the first line that is not noise stops the scan, so a table header repeated
    under the running header stays. A line that is only the page's own printed number goes wherever
    the text layer put it (between the text and its footnotes, before a heading).
    """
    tops: Counter[str] = Counter()
    bottoms: Counter[str] = Counter()
    for lines in pages:
        top, bottom = _edge_indexes(lines)
        tops.update({_running_key(lines[i]) for i in top})
        bottoms.update({_running_key(lines[i]) for i in bottom})
    with_text = sum(1 for lines in pages if any(line.strip() for line in lines))
    offsets = _label_offsets(pages)

    named = {_running_key(name) for title in titles for name in (title, _unnumbered(title)) if name.strip()}

    def running(key: str, counts: Counter[str]) -> bool:
        n = counts.get(key, 0)
        return n >= _RUNNING_MIN_PAGES and ("#" in key or n >= max(_RUNNING_MIN_PAGES, with_text / 2)
                                            or key in named)

    out: list[list[str]] = []
    report = RunningLines()
    for index, lines in enumerate(pages):
        top, bottom = _edge_indexes(lines)
        drop: set[int] = set()
        for edge, counts, kind in ((top, tops, "headers"), (bottom, bottoms, "footers")):
            for depth, i in enumerate(edge):
                line = lines[i]
                if len(line.strip()) > _MAX_RUNNING_CHARS or i in drop:
                    break
                if is_page_number(line):
                    report.page_numbers += 1
                elif running(_running_key(line), counts) or (depth == 0 and _carries_page_number(line, index, offsets)):
                    setattr(report, kind, getattr(report, kind) + 1)
                else:
                    break
                drop.add(i)
        # the page's own printed number where the text layer puts it mid-page (between the text and its footnotes,
        # or before a heading), once the pages agree on how printed numbers follow page order
        for i, line in enumerate(lines):
            if i not in drop and _own_number(line, index, offsets):
                drop.add(i)
                report.page_numbers += 1
        out.append([line for i, line in enumerate(lines) if i not in drop])
        report.removed.append([lines[i] for i in sorted(drop)])
    return out, report


# --------------------------------------------------------------------------- contents and index pages

_NUMBER_LIST = r"(?:\d{1,4}|" + _ROMAN + r")(?:\s*[-–]\s*\d{1,4})?(?:\s*,\s*\d{1,4}(?:\s*[-–]\s*\d{1,4})?)*"
_ENDS_IN_PAGE = re.compile(r"[\s.,]" + _NUMBER_LIST + r"\s*$", re.IGNORECASE)  # after some words (checked apart)
_HAS_LETTER = re.compile(r"[^\W\d_]")
_LEADERS = re.compile(r"(?:\.\s?){4,}\s*" + _NUMBER_LIST + r"\s*$", re.IGNORECASE)
# a line that ends in a dot leader, with its page number or without it (set in a column of its own)
_ANY_LEADER = re.compile(r"(?:\.\s?){4,}\s*(?:" + _NUMBER_LIST + r")?\s*$", re.IGNORECASE)
_COMMA_LIST = re.compile(r",\s*\d{1,4}(?:\s*[-–]\s*\d{1,4})?\s*$")
_LISTING_TITLE = re.compile(r"^(?:[\w.]+\s+){0,5}(contents|index)\b(?:\s+[\w.]+){0,3}$", re.IGNORECASE)
_LISTING_MIN_LINES = 5


def _entries(lines: Sequence[str]) -> list[str]:
    """The non-empty lines, a Markdown table row read cell by cell (an index set in columns may have
    been read as a table: its entries are still entries) and its header rule left out."""
    from rag.text.tables import is_table_row, is_table_separator, row_cells

    out: list[str] = []
    for line in (line.strip() for line in lines):
        if is_table_separator(line):
            continue
        if is_table_row(line):
            out += [cell for cell in row_cells(line) if cell]
        elif line:
            out.append(line)
    return out


def _listing_shares(lines: Sequence[str]) -> tuple[int, float, float, float, float]:
    """(entries, and the shares of them that end in a page number, in a dot leader and page number, in a
    comma and page number, in a dot leader whatever follows it)."""
    filled = _entries(lines)
    if not filled:
        return 0, 0.0, 0.0, 0.0, 0.0
    n = len(filled)
    numbered = sum(bool(_HAS_LETTER.search(line) and _ENDS_IN_PAGE.search(line)) for line in filled)
    leaders = sum(bool(_LEADERS.search(line)) for line in filled)
    commas = sum(bool(_COMMA_LIST.search(line)) for line in filled)
    led = sum(bool(_ANY_LEADER.search(line)) for line in filled)
    return n, numbered / n, leaders / n, commas / n, led / n


def listing_kind(lines: Sequence[str], hint_lines: Sequence[str] = ()) -> str:
    """ "table of contents" or "index" for a page that lists page numbers, else "".

    A listing page has at least 5 lines, and either dot leaders on a quarter of them with half
    ending in page numbers, or, under a "Contents"/"Index" title (in `lines` or `hint_lines`, e.g.
    the running header removed from it), 70% ending in page numbers or half ending in dot leaders
    (their page numbers set in a column the text layer reads apart, or entries that are only
    symbols). A table whose last column holds numbers has neither leaders nor such a title, and a
    form whose blanks are dot leaders has no such title.
    """
    n, numbered, leaders, commas, led = _listing_shares(lines)
    if n < _LISTING_MIN_LINES:
        return ""
    # a line of the page that ends in a page number is an entry ("Index 181" in a table of contents), not a title;
    # a running header taken off the page may carry the page's own number ("CONTENTS gnuplot 5.4 3")
    own = [line for line in lines if not _ENDS_IN_PAGE.search(line.strip())]
    titles = [m.group(1).lower() for line in [*own, *hint_lines] if (m := _LISTING_TITLE.match(line.strip()))]
    if not ((leaders >= 0.25 and numbered >= 0.5) or (titles and (numbered >= 0.7 or led >= 0.5))):
        return ""
    return _name_listing(lines, titles, commas)


def _name_listing(lines: Sequence[str], titles: Sequence[str], commas: float) -> str:
    letters = sum(1 for line in lines if re.fullmatch(r"[A-Z]", line.strip()))
    if "index" in titles or commas >= 0.3 or letters >= 2:
        return "index"
    return "table of contents"


def listing_pages(pages: Sequence[Sequence[str]], hints: Sequence[Sequence[str]] = ()) -> dict[int, str]:
    """0-based page index -> listing kind, for the table-of-contents and index pages of a document.

    A short page (fewer than 5 lines, the end of a listing) mostly of lines ending in page numbers
    counts too when the page before it is a listing, and so does a page with dot leaders on a quarter
    of its lines after an index page (single letters and stray commas between them), or on half of
    them after any listing (a table of contents whose page numbers the text layer reads apart, with no
    title on its later pages). When every page
    with text would be a listing, none is: a document that is only a list is its own content.
    """
    found: dict[int, str] = {}
    for index, lines in enumerate(pages):
        kind = listing_kind(lines, hints[index] if index < len(hints) else ())
        if kind:  # a listing right after an index page runs that index on (no contents follow an index)
            found[index] = "index" if found.get(index - 1) == "index" else kind
        elif index - 1 in found:
            n, numbered, *_, led = _listing_shares(lines)
            if 0 < n < _LISTING_MIN_LINES and numbered >= 0.6:
                found[index] = found[index - 1]
            elif found[index - 1] == "index" and led >= 0.25:  # an index runs on: a quarter of its lines led
                found[index] = "index"
            elif led >= 0.5:  # contents run on: half the lines led, their page numbers read apart or none
                found[index] = found[index - 1]
    with_text = [i for i, lines in enumerate(pages) if any(line.strip() for line in lines)]
    if with_text and all(i in found for i in with_text):
        return {}
    # a blank page inside a listing (a book's empty verso) belongs to it: one note for the whole run
    for i in sorted(set(range(len(pages))) - set(with_text)):
        if found.get(i - 1) is not None and found.get(i - 1) == found.get(i + 1):
            found[i] = found[i - 1]
    return found


def listing_notes(found: dict[int, str]) -> list[str]:
    """ "pages 2–20: table of contents, not indexed", one note per run of pages of one kind (1-based)."""
    notes: list[str] = []
    run: list[int] = []
    for index in sorted(found):
        if run and (index != run[-1] + 1 or found[index] != found[run[0]]):
            notes.append(_listing_note(run, found[run[0]]))
            run = []
        run.append(index)
    if run:
        notes.append(_listing_note(run, found[run[0]]))
    return notes


def _listing_note(run: list[int], kind: str) -> str:
    where = f"page {run[0] + 1}" if len(run) == 1 else f"pages {run[0] + 1}–{run[-1] + 1}"
    return f"{where}: {kind}, not indexed"


# --------------------------------------------------------------------------- hyphenation

# pdfium joins a line-end hyphenation itself and marks it \x02 ("pack\x02ages"); a soft hyphen is the same
# \b: each word is tried once, not from every letter inside it
_MARKED = re.compile(r"\b([^\W\d_]+)[\x02\xad]\n?([^\W\d_]*)")
_LINE_END = re.compile(r"\b([^\W\d_]+)-\n([^\W\d_]+)")
_COMPOUND = re.compile(r"\b[^\W\d_]+(?:-[^\W\d_]+)+")
_WORD = re.compile(r"[^\W\d_]+")
# First parts that stay hyphenated when the document gives no evidence either way (non-zero, self-contained)
_KEEP_PREFIXES = frozenset({"non", "self", "well"})


@dataclass
class _Vocabulary:
    words: Counter[str]
    compounds: Counter[str]  # "a-b" pairs of hyphenated words written inside lines

    @classmethod
    def of(cls, pages: Sequence[str]) -> _Vocabulary:
        # the line-end splits themselves are not evidence: blank them out first
        text = "\n".join(_LINE_END.sub(" ", _MARKED.sub(" ", page)) for page in pages).lower()
        compounds: Counter[str] = Counter()
        for m in _COMPOUND.finditer(text):
            parts = m.group(0).split("-")
            compounds.update(f"{a}-{b}" for a, b in zip(parts, parts[1:]))
        return cls(Counter(_WORD.findall(text)), compounds)

    def keeps_hyphen(self, left: str, right: str) -> bool:
        """Whether `left-right` is likelier than `leftright`: the document writes it so more often."""
        hyphenated = self.compounds.get(f"{left}-{right}".lower(), 0)
        joined = self.words.get(f"{left}{right}".lower(), 0)
        if hyphenated or joined:
            return hyphenated > joined
        return left.lower() in _KEEP_PREFIXES


def join_hyphens(pages: Sequence[str]) -> list[str]:
    """Pages with words hyphenated at line ends joined (`con-\\nfiguration` -> `configuration`).

    Only a lowercase letter, the hyphen, and a lowercase letter starting the next line are joined;
    `S-\\nPlus` and `1-\\n2` are left alone. The hyphen stays where the document writes the compound
    with a hyphen elsewhere more often than as one word (`non-\\nzero` with `non-zero` elsewhere), or,
    without evidence, after `non`, `self` and `well`.
    """
    vocab = _Vocabulary.of(pages)

    def joins(m: re.Match) -> bool:
        left, right = m.group(1), m.group(2)
        compound = m.string[m.end():m.end() + 1] == "-"  # `case-` / `by-case`: a compound broken at a hyphen
        return (left[-1].islower() and right[:1].islower() and not compound
                and not vocab.keeps_hyphen(left, right))

    def marked(m: re.Match) -> str:
        if joins(m):
            return m.group(1) + m.group(2)
        if m.group(2):
            return f"{m.group(1)}-{m.group(2)}"
        return m.group(1) + ("-\n" if m.group(0).endswith("\n") else "-")

    def line_end(m: re.Match) -> str:
        return m.group(1) + m.group(2) if joins(m) else m.group(0)

    return [_LINE_END.sub(line_end, _MARKED.sub(marked, page)) for page in pages]


# --------------------------------------------------------------------------- cleaning a document's pages


@dataclass(frozen=True)
class CleanPages:
    """Page texts as indexed (empty for listing pages), and what was taken out of them."""

    texts: list[str]
    listings: dict[int, str]  # 0-based page index -> "table of contents" / "index": not indexed
    headers: int = 0
    footers: int = 0
    page_numbers: int = 0

    def notes(self) -> list[str]:
        return listing_notes(self.listings)


def clean_pages(page_texts: Sequence[str], titles: Iterable[str] = ()) -> CleanPages:
    """The page-level cleanup in order: characters, running lines, listing pages, hyphenation (`titles`: the
    document's outline entries, which a running header may repeat: `strip_running_lines`)."""
    pages = [clean_chars(text).replace("\r\n", "\n").replace("\r", "\n").split("\n") for text in page_texts]
    kept, running = strip_running_lines(pages, [clean_chars(title) for title in titles])
    listings = listing_pages(kept, running.removed)
    texts = ["" if i in listings else "\n".join(lines) for i, lines in enumerate(kept)]
    texts = join_hyphens(texts)
    return CleanPages(texts, listings, running.headers, running.footers, running.page_numbers)


# --------------------------------------------------------------------------- two columns

Box = tuple[float, float, float, float]  # left, bottom, right, top (PDF points, origin bottom-left)
_MIN_COLUMN_LINES = 5


def column_order(boxes: Sequence[Box], page_width: float) -> list[list[int]] | None:
    """Reading order of a two-column page from its text boxes: lines (lists of box indexes), or None.

    A page has two columns of prose when some x in the middle of the page is crossed by few boxes,
    at least 5 lines lie entirely on each side, the two sides share most of their height, are about
    as wide as each other, and their lines fill their column and mostly end at its right edge
    (justified text). A table's columns do not: its cells are short and ragged. Boxes crossing the
    gutter (a title over both columns) cut the page into bands; each band is read left column, then
    right column. Within a column, boxes on the same baseline make one line, read left to right.
    """
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    if len(boxes) < 2 * _MIN_COLUMN_LINES or page_width <= 0:
        return None
    gutter = _gutter(boxes, page_width)
    if gutter is None:
        return None
    indexed = [(i, b) for i, b in enumerate(boxes)]
    spanning = sorted((i for i, b in indexed if b[0] < gutter < b[2]), key=lambda i: -boxes[i][3])
    order: list[list[int]] = []
    upper = float("inf")
    for cut in [*spanning, None]:
        lower = boxes[cut][3] if cut is not None else float("-inf")
        band = [i for i, b in indexed if lower <= (b[1] + b[3]) / 2 < upper and not b[0] < gutter < b[2]]
        for side in ([i for i in band if boxes[i][2] <= gutter], [i for i in band if boxes[i][0] >= gutter]):
            order.extend(box_lines(side, boxes))
        if cut is not None:
            order.append([cut])
            upper = boxes[cut][1] + (boxes[cut][3] - boxes[cut][1]) / 2
    return order


def _gutter(boxes: Sequence[Box], width: float) -> float | None:
    if sum(1 for b in boxes if b[2] - b[0] > 0.5 * width) > 0.5 * len(boxes):
        return None  # most lines are wider than half the page: one column (and no need to scan for a gutter)
    best = None
    for step in range(30, 71):
        x = width * step / 100
        crossing = sum(1 for b in boxes if b[0] < x < b[2])
        if best is None or crossing < best[1]:
            best = (x, crossing)
    x, crossing = best
    if crossing > 0.1 * len(boxes):
        return None
    sides = []
    for side in ([i for i, b in enumerate(boxes) if b[2] <= x], [i for i, b in enumerate(boxes) if b[0] >= x]):
        lines = [(min(boxes[i][0] for i in line), max(boxes[i][2] for i in line), boxes[line[0]][1], boxes[line[0]][3])
                 for line in box_lines(side, boxes)]
        if len(lines) < _MIN_COLUMN_LINES:
            return None
        sides.append(lines)
    (left, right) = sides
    overlap = min(max(t for *_, t in left), max(t for *_, t in right)) - max(min(b for _, _, b, _ in left),
                                                                          min(b for _, _, b, _ in right))
    shorter = min(max(t for *_, t in s) - min(b for _, _, b, _ in s) for s in sides)
    if shorter <= 0 or overlap < 0.5 * shorter:
        return None
    widths = []
    for lines in sides:
        outer, inner = min(l0 for l0, *_ in lines), max(r for _, r, *_ in lines)
        column = inner - outer
        filled = sorted(r - l0 for l0, r, *_ in lines)
        justified = sum(1 for _, r, *_ in lines if inner - r <= 0.02 * column)
        if filled[len(filled) // 2] < 0.6 * column or justified < 0.5 * len(lines):
            return None
        widths.append(column)
    return x if min(widths) >= 0.6 * max(widths) else None


def column_bands(boxes: Sequence[Box], page_width: float) -> list[tuple[float, float]] | None:
    """The x-ranges of a page set in three columns or more (a reference card, a newsletter), or None.

    The columns are the strips between gutters: bands at least 3% of the page wide that no text box
    crosses, with text on both sides, the widest taken first (a narrower gap inside a column parts a card's
    commands from their meanings), so that the strips are about as wide as each other. There are three
    columns at least, their text about as wide, two
    of them with 5 lines or more over half the height the page's text spans (a card's front panel may
    hold only its title). Two columns are
    `column_order`'s (prose), and a table across the page has rows that no gutter cuts into pieces of
    equal width with lines of their own in each.
    """
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    if len(boxes) < 3 * _MIN_COLUMN_LINES or page_width <= 0:
        return None
    if sum(1 for b in boxes if b[2] - b[0] > 0.4 * page_width) > 0.2 * len(boxes):
        return None  # many lines wider than a third of the page: not three columns (and no need to scan)
    runs: list[list[int]] = []
    for step in range(3, 98):
        x = page_width * step / 100
        if any(b[0] < x < b[2] for b in boxes):
            continue
        if runs and runs[-1][-1] == step - 1:
            runs[-1].append(step)
        else:
            runs.append([step])
    runs = [run for run in runs if len(run) >= 3]
    runs = [run for run in runs if any(b[2] <= page_width * run[0] / 100 for b in boxes)
            and any(b[0] >= page_width * run[-1] / 100 for b in boxes)]
    # the widest gaps are the gutters; a narrower one inside a column parts its terms from their meanings
    runs.sort(key=len, reverse=True)
    for k in range(len(runs), 1, -1):
        gutters = sorted(page_width * (run[0] + run[-1]) / 200 for run in runs[:k])
        edges = [0.0, *gutters, page_width]
        strips = [x1 - x0 for x0, x1 in pairwise(edges)]
        if min(strips) >= 0.7 * max(strips):
            return _full_columns(boxes, list(pairwise(edges)))
    return None


def _full_columns(boxes: Sequence[Box], bands: list[tuple[float, float]]) -> list[tuple[float, float]] | None:
    """`bands` when each holds text, two of them 5 lines or more over half the text's height, all as wide."""
    height = max(b[3] for b in boxes) - min(b[1] for b in boxes)
    widths, full = [], 0
    for x0, x1 in bands:
        inside = [i for i, b in enumerate(boxes) if x0 <= b[0] and b[2] <= x1]
        if not inside:
            return None
        widths.append(max(boxes[i][2] for i in inside) - min(boxes[i][0] for i in inside))
        full += (len(box_lines(inside, boxes)) >= _MIN_COLUMN_LINES
                 and max(boxes[i][3] for i in inside) - min(boxes[i][1] for i in inside) >= 0.5 * height)
    # two full columns at least (a card's front panel may hold only its title), all about as wide
    return bands if full >= 2 and min(widths) >= 0.6 * max(widths) else None


_TERM_INDENT = (15.0, 150.0)  # points: how far a definition list's descriptions stand in from its terms
_TERM_GAP = 1.25  # a term starts after a gap this many line pitches tall (or at the top of the text)
_TERM_FILL = 0.8  # a term line ends before this share of the text's width
_MIN_TERMS = 3
# a term that carries its own value ("selected: {"off"} | "on"", "type (read-only): string") is an item by itself:
# the next term line is another item (which may have no description), not another name for this one
_LABELLED = re.compile(r"^\s*[^\s:]+(?: \([^)]*\))?: \S")
_MAX_TERM_LINES = 4  # Texinfo's @itemx sets each alternative name of an option on a line of its own
# "6.1.1. / : Root directory", "7. Appendix": a numbered heading, no term
_SECTION_NUMBER = re.compile(r"\s*(?:\d{1,3}(?:\.\d{1,3})+\.?|\d{1,3}\.)\s+\S")


@dataclass(frozen=True)
class DefinitionList:
    """Lines `first` to `end` (exclusive) of a page that are a list of terms and descriptions, as items."""

    first: int
    end: int
    items: list[str]  # "- term: description", one line each


def definition_lists(lines: Sequence[tuple[float, float, float, float, str]],
                     code: Sequence[bool] = ()) -> list[DefinitionList]:
    """The definition lists among a page's text lines `(left, bottom, right, top, text)`, top to bottom.

    Texinfo's `@table`, Sphinx's and DocBook's lists of options print each term at the margin, after a
    little space, and its description indented below it: "--no-readline" / "(UNIX only) Turn off
    command-line editing …". Read line by line, a description's later sentences lose their term. A list is
    `_MIN_TERMS` items at least, each one to `_MAX_TERM_LINES` short lines at one margin after a gap taller
    than the lines' pitch (Texinfo's @itemx: "--restore" / "--no-restore" / "--no-restore-data"), then lines
    standing in by one indent. A term line that carries its own value (`_LABELLED`: "selected: {"off"} |
    "on"") is a term by itself, and may have no description: the next term follows at once. A paragraph's
    indented first line is no description: the lines after it return to the margin, and no gap comes before
    the line above it. A numbered heading over an indented body ("6.1.1. / : Root directory") is no term, nor
    is a bare number. Each item becomes "- term: description" (the HTML loader writes a `<dl>` so), the lines
    of a term joined by ", ", a line-end hyphen mark kept for `join_hyphens`. A term may be set in a typewriter font
    (an option, a function); a description may not (`code[i]`: line i is a code listing's).
    """
    if len(lines) < 2 * _MIN_TERMS:
        return []
    pitches = sorted(a[1] - b[1] for a, b in pairwise(lines) if a[1] > b[1])
    if not pitches:
        return []
    pitch = pitches[len(pitches) // 2]
    width = max(line[2] for line in lines) - min(line[0] for line in lines)
    margin = min(line[0] for line in lines)
    tol = 2.0

    def gap_before(i: int) -> bool:  # a bare number (a page number, a footnote's mark) ends a list too
        return i == 0 or lines[i - 1][1] - lines[i][1] >= _TERM_GAP * pitch or lines[i][4].strip().isdigit()

    def item_at(i: int, left: float, gap: bool = True):
        """(end, indent, terms, description) of an item whose term starts at line i at `left`, or None
        (`gap`: after a gap, as an item starts, unless right after a labelled term with no description)."""
        if i >= len(lines) or gap and not gap_before(i) or abs(lines[i][0] - left) > tol:
            return None
        j = i
        while j < len(lines) and j - i < _MAX_TERM_LINES and abs(lines[j][0] - left) <= tol \
                and not _SECTION_NUMBER.match(lines[j][4]) and lines[j][2] - margin < _TERM_FILL * width \
                and (j == i or not gap_before(j) and not _LABELLED.match(lines[j - 1][4])):
            j += 1
        if j == i or j >= len(lines) or gap_before(j):
            return None
        indent = lines[j][0] - left
        if not _TERM_INDENT[0] <= indent <= _TERM_INDENT[1]:
            return None
        k = j
        while k < len(lines) and abs(lines[k][0] - (left + indent)) <= tol and (k == j or not gap_before(k)) \
                and not (k < len(code) and code[k]):
            k += 1
        if k == j:
            return None
        return k, indent, [line[4] for line in lines[i:j]], [line[4] for line in lines[j:k]]

    def bare_term(k: int, left: float, gap: bool) -> bool:
        """Line k is a labelled term ("selected: {"off"} | "on"") that the next term follows at once."""
        return (not gap or gap_before(k)) and abs(lines[k][0] - left) <= tol and bool(_LABELLED.match(lines[k][4])) \
            and abs(lines[k + 1][0] - left) <= tol and not gap_before(k + 1) \
            and lines[k][2] - margin < _TERM_FILL * width

    def joined(parts: list[str]) -> str:
        out = ""
        for part in parts:
            out += part.strip() if not out or out.endswith("\x02") else " " + part.strip()
        return out

    found: list[DefinitionList] = []
    i = 0
    while i < len(lines):
        first = item_at(i, lines[i][0])
        if first is None:
            i += 1
            continue
        left, indent = lines[i][0], first[1]
        items, end, k = [], i, i
        bare = False  # the last item was a labelled term with no description: the next term follows it at once
        while True:
            item = item_at(k, left, gap=not bare)
            bare = item is None and k + 1 < len(lines) and bare_term(k, left, gap=not bare)
            if bare:
                items.append(f"- {' '.join(lines[k][4].split())}")
                end, k = k + 1, k + 1
                continue
            if item is None or abs(item[1] - indent) > tol:
                break
            end, k = item[0], item[0]
            terms, description = item[2], item[3]
            term = ", ".join(" ".join(t.split()) for t in terms)
            sep = " " if term[-1:] in ":.;,?!" else ": "
            items.append(f"- {term}{sep}{joined(description)}")
        if len(items) >= _MIN_TERMS:
            found.append(DefinitionList(i, end, items))
            i = end
        else:
            i += 1
    return found


def box_lines(indexes: Iterable[int], boxes: Sequence[Box]) -> list[list[int]]:
    """The boxes `indexes` (of one column) grouped into lines (top to bottom), each left to right.

    Boxes are taken by the height of their middles, the measure that decides whether two share a line
    (their tops differ where glyphs do: a radical, a superscript, a word set larger)."""
    lines: list[list[int]] = []
    for i in sorted(indexes, key=lambda i: (-(boxes[i][1] + boxes[i][3]) / 2, boxes[i][0])):
        b = boxes[i]
        if lines:
            last = boxes[lines[-1][0]]
            if abs((b[1] + b[3]) / 2 - (last[1] + last[3]) / 2) < 0.5 * max(b[3] - b[1], last[3] - last[1]):
                lines[-1].append(i)
                continue
        lines.append([i])
    return [sorted(line, key=lambda i: boxes[i][0]) for line in lines]


# --------------------------------------------------------------------------- sections

# a heading's number: "4.2", "A.1", "IV", "Chapter 3"; not a word ("ONE" of Sphinx's "CHAPTER ONE INTRODUCTION")
_NUMBERING = re.compile(r"^\s*((?:(?:chapter|appendix|part|section)\s+)?(?:\d{1,3}|[A-Z]|[IVXLC]{2,6})(?:\.\d{1,3})*\.?:?)"
                        r"\s+(\S.*)$",
                        re.IGNORECASE)
_DIVISION = re.compile(r"\s*(?:chapter|appendix|part|section)\s", re.IGNORECASE)  # `Appendix A` + entry `A Title`
_MAX_HEADING_CHARS = 160


_NOT_ALNUM = re.compile(r"[\W_]+")


def heading_key(text: str) -> str:
    """Letters and digits only, case-folded: how a heading line and an outline title are compared."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", text).casefold())


_key = heading_key


def heading_label(line: str, title: str, next_line: str = "") -> str | None:
    """How the heading reads on the page when `line` starts the outline entry `title`, else None.

    `1.1 The R environment` is the entry `The R environment` with its number: the line wins then.
    A heading wrapped over two lines is matched with `next_line`; a run-in heading (`Valid The
    valid(x) function ...`, a paragraph that starts with its bold title) by the title alone.
    """
    want = _key(title)
    if not want or len(line) > 2 * _MAX_HEADING_CHARS:
        return None
    # a heading wrapped over two lines; a line without a letter (a stray page number or footnote mark) does not
    # start one when the next line is the heading by itself (`16 3.17. /srv : Data for services`)
    wrapped = bool(next_line) and (bool(_HAS_LETTER.search(line)) or not heading_label(next_line, title))
    for candidate in (line, f"{line} {next_line}") if wrapped else (line,):
        have = _key(candidate)
        if have == want:
            return " ".join(candidate.split())
        if have.endswith(want):
            m = _NUMBERING.match(candidate)
            if (m and _key(m.group(2)) == want) or (_DIVISION.match(candidate) and len(have) - len(want) <= 12):
                return " ".join(candidate.split())
    words = " ".join(line.split())
    if words.casefold().startswith(title.casefold() + " ") and len(title) >= 3:
        return title
    return None


def place_headings(outline: Sequence[tuple[int, str, int]], text: str,
                   pages: Sequence[tuple[int, int, int]]) -> list[tuple[int | None, int, str]]:
    """(offset, level, label) for each outline entry `(level, title, 0-based page index)` of the document.

    Each heading is placed at the line of its page that reads as its title, after the heading placed
    before it on the same page (`heading_label`). One not found there has offset None: it still names
    the headings under it, but starts no section of its own (a wrong place would mislabel the text
    after it). Entries on pages without text are dropped. Offsets never go backwards in outline order.
    An entry found on the line right after the entry before it, at its level and on its page, that reads as
    its rest (`_continues`) is joined to it: some print styles make a bookmark of each line of a wrapped title.
    """
    spans = {number - 1: (start, end) for number, start, end in pages}
    out: list[tuple[int | None, int, str]] = []
    last = 0
    # the entry appended last when it was placed: (level, page index, where its heading's line(s) end), so that a
    # title the document's bookmarks split at its line break (`3.17. /srv : Data for services provided by this`,
    # `system`, one entry per line) is one heading
    placed: tuple[int, int, int] | None = None
    for level, title, index in outline:
        title = " ".join(clean_chars(title).split())[:_MAX_HEADING_CHARS]
        if index not in spans or not title:
            continue
        start, end = spans[index]
        offset, label, merged = None, title, False
        lines = _lines_from(text, max(start, last) if last <= end else start, end)
        for j, (pos, line) in enumerate(lines):
            found = heading_label(line, title, lines[j + 1][1] if j + 1 < len(lines) else "")
            if not found:
                continue
            ends = lines[j + 1] if found != " ".join(line.split()) and j + 1 < len(lines) else (pos, line)
            if placed and placed[:2] == (level, index) and pos == placed[2] + 1 and _continues(out[-1][2], found):
                out[-1] = (out[-1][0], level, f"{out[-1][2]} {found}"[:_MAX_HEADING_CHARS])
                merged = True
            else:
                offset, label = max(pos, last), found[:_MAX_HEADING_CHARS]
            last = max(pos, last)
            placed = (level, index, ends[0] + len(ends[1]))
            break
        if merged:
            continue
        if offset is None:
            placed = None
        out.append((offset, level, label))
    return out


def _continues(heading: str, label: str) -> bool:
    """`label` reads as the rest of `heading` rather than a heading of its own: it starts in lower case, or
    the headings are numbered and it has no number."""
    return label[:1].islower() or (bool(_NUMBERING.match(heading)) and not _NUMBERING.match(label))


def _lines_from(text: str, pos: int, end: int) -> list[tuple[int, str]]:
    """(offset, line) of the lines of text[pos:end]."""
    out = []
    while pos < end:
        stop = text.find("\n", pos, end)
        stop = end if stop < 0 else stop
        out.append((pos, text[pos:stop]))
        pos = stop + 1
    return out


def section_paths(headings: Sequence[tuple[int | None, int, str]]) -> tuple[tuple[int, str], ...]:
    """(offset, path) from (offset, level, label) headings: `4 Networking › 4.2 Configuring the network`.

    A heading closes every open heading of its level or deeper. Headings at one offset keep the
    deepest path (a part and its first chapter on one page). A heading without an offset (not found
    on its page) opens no section but is part of the paths of the headings under it. A heading that
    repeats the one it stands under (a document's title set again as its first heading) adds nothing.
    """
    stack: list[tuple[int, str]] = []
    out: list[tuple[int, str]] = []
    for offset, level, label in headings:
        while stack and stack[-1][0] >= level:
            stack.pop()
        if not (stack and heading_key(stack[-1][1]) == heading_key(label)):
            stack.append((level, label))
        if offset is None:
            continue
        path = SECTION_SEPARATOR.join(part for _, part in stack)
        if out and out[-1][0] == offset:
            out[-1] = (offset, path)
        else:
            out.append((offset, path))
    return tuple(out)


def section_at(sections: Sequence[tuple[int, str]], offset: int) -> str:
    """The heading path in force at char `offset` ("" before the first heading)."""
    i = bisect_right([o for o, _ in sections], offset) - 1
    return sections[i][1] if i >= 0 else ""


def locate_headings(text: str, headings: Sequence[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """(offset, level, title) for headings `(level, title)` found as whole lines of `text`, in order.

    For formats whose extractor loses the markup (HTML through trafilatura, DOCX paragraphs): each
    heading is looked for after the one before it; one not found as a line is skipped.
    """
    lines: list[tuple[int, str]] = []
    pos = 0
    for line in text.split("\n"):
        lines.append((pos, _key(line) if len(line) <= 2 * _MAX_HEADING_CHARS else ""))
        pos += len(line) + 1
    out: list[tuple[int, int, str]] = []
    at = 0
    for level, title in headings:
        title = " ".join(title.split()).rstrip(" ¶#")  # Sphinx and others end headings with a permalink sign
        want = _key(title)
        if not want:
            continue
        for j in range(at, len(lines)):
            if lines[j][1] == want:
                out.append((lines[j][0], level, title[:_MAX_HEADING_CHARS]))
                at = j + 1
                break
    return out


_MARKDOWN_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of the `#` headings of a Markdown text, outside code fences."""
    out: list[tuple[int, int, str]] = []
    pos = 0
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _MARKDOWN_HEADING.match(line)):
            out.append((pos, len(m.group(1)), m.group(2)[:_MAX_HEADING_CHARS]))
        pos += len(line) + 1
    return out


_MARKED_LOOKAHEAD = 16  # marked headings a `#` line may skip past: ones the text lost (empty, in a table cell)


def marked_headings(text: str, headings: Sequence[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """(offset, level, title) of the `#` lines of `text` that are the document's own headings `(level, title)`.

    For formats whose loader writes its headings as `#` lines (EPUB, ODT): a paragraph or code line that begins
    with `#` (a root shell prompt, `# apt-get install ...`; a comment) is not a heading, though it reads as one.
    Each heading is matched, in order, by a `#` line of its level and words; a heading not found is passed over.
    """
    out: list[tuple[int, int, str]] = []
    at = 0
    for offset, level, title in markdown_headings(text):
        key = _key(title)
        for j in range(at, min(at + _MARKED_LOOKAHEAD, len(headings))):
            if headings[j][0] == level and _key(headings[j][1]) == key:
                out.append((offset, level, title))
                at = j + 1
                break
    return out
