"""Tables from DOCX, HTML and PDF pages as Markdown tables.

A table becomes `| a | b |` rows under a header row and a `| --- |` separator,
so its structure survives in the chunk text and the chunker can repeat the
header when a table is split (`rag.ingest.chunking.table_header_prefix`). The first
row of a table is taken as its header.

Example::

    markdown_table([["City", "Population"], ["Oslo", "709,000"]])
    # '| City | Population |\\n| --- | --- |\\n| Oslo | 709,000 |'
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from rag.text.tables import is_table_row, is_table_separator, row_cells

_MAX_CELL_CHARS = 300  # an HTML "table" with longer cells is page layout, not data
_PDF_PATH_OPS = re.compile(rb"\s(?:re|l)\s")  # rectangles and lines: ruled tables draw many
_PDF_MIN_PATH_OPS = 4


def _cell(text) -> str:
    """One cell's text on one line, with pipes escaped."""
    return " ".join(str(text or "").split()).replace("|", "\\|")


def markdown_table(rows: list[list]) -> str:
    """Rows of cell texts -> a Markdown table; the first row is the header. Empty rows are dropped."""
    rows = [[_cell(c) for c in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- DOCX


def docx_table_markdown(table) -> str:
    """A python-docx table as Markdown: a horizontally merged cell is written once, in its first column."""
    rows = []
    for row in table.rows:
        cells, previous = [], None
        for cell in row.cells:
            # A merged cell appears once per grid column it spans; all share the same XML element.
            cells.append("" if cell._tc is previous else cell.text)
            previous = cell._tc
        rows.append(cells)
    if len(rows) < 2 or max((len(r) for r in rows), default=0) < 2:
        return "\n".join(_cell(c) for r in rows for c in r if _cell(c))  # a one-row/one-column box is just text
    return markdown_table(rows)


# --------------------------------------------------------------------------- HTML


def html_table_rows(table) -> list[list[str]] | None:
    """The rows of a BeautifulSoup `<table>` if it holds data (>= 2 rows and columns), else None (layout)."""
    if table.find("table") is not None:
        return None  # tables inside tables: page layout
    rows = []
    for tr in table.find_all("tr"):
        cells = []
        for cell in tr.find_all(["th", "td"]):
            text = cell.get_text(" ", strip=True)
            if len(text) > _MAX_CELL_CHARS:
                return None
            cells.append(text)
            span = cell.get("colspan")
            if span and str(span).isdigit():
                cells.extend([""] * (min(int(span), 50) - 1))
        if any(cells):
            rows.append(cells)
    if len(rows) < 2 or max(len(r) for r in rows) < 2:
        return None
    return rows


def replace_html_tables(soup) -> dict[str, str]:
    """Swap each data table in `soup` for a placeholder paragraph; returns placeholder -> Markdown table.

    Text extractors flatten tables into runs of words; the placeholders survive
    extraction (or vanish with the boilerplate around them) and are then
    replaced by the Markdown tables (`restore_placeholders`).
    """
    tables: dict[str, str] = {}
    for table in soup.find_all("table"):
        rows = html_table_rows(table)
        if rows is None:
            continue
        key = f"RAGTABLE{len(tables):04d}X"
        tables[key] = markdown_table(rows)
        placeholder = soup.new_tag("p")
        placeholder.string = key
        table.replace_with(placeholder)
    return tables


def restore_placeholders(text: str, tables: dict[str, str]) -> str:
    """Put the Markdown tables back where their placeholders ended up, each as its own paragraph."""
    for key, table in tables.items():
        text = re.sub(rf"[ \t]*{key}[ \t]*", lambda _m, t=table: f"\n\n{t}\n\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --------------------------------------------------------------------------- PDF


_RULE_MAX_THICKNESS = 3.0  # points: a rule is a line or a thin filled rectangle
_RULE_MIN_LENGTH = 8.0
_RULE_TOLERANCE = 2.0  # points: rules this close touch (pdfplumber snaps and joins edges likewise)
_GRID_MIN_RULES = 3  # crossing rules each way: 2 x 2 cells at least


def rules_form_grid(rows, columns) -> bool:
    """Whether a page's horizontal and vertical rules (`page_rules`) rule a table grid.

    pdfplumber finds a table where horizontal and vertical rules cross into cells; a table we keep
    has 2 rows and 2 columns at least, so 3 horizontal rules must each cross the same 3 vertical
    ones. A page with a rule under its header, framed boxes, or tables ruled only between
    rows has no such grid and is not worth pdfplumber's table search (about a second a page).
    """
    if len(rows) < _GRID_MIN_RULES or len(columns) < _GRID_MIN_RULES:
        return False
    tol = _RULE_TOLERANCE
    crossed = [frozenset(j for j, (x, y0, y1) in enumerate(columns)
                         if x0 - tol <= x <= x1 + tol and y0 - tol <= y <= y1 + tol) for y, x0, x1 in rows]
    crossed = [c for c in crossed if len(c) >= _GRID_MIN_RULES]
    for i, first in enumerate(crossed):
        for j in range(i + 1, len(crossed)):
            both = first & crossed[j]
            if len(both) >= _GRID_MIN_RULES and any(len(both & third) >= _GRID_MIN_RULES for third in crossed[j + 1:]):
                return True
    return False


def _joined(rules: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Collinear rules (same position within the tolerance) that touch or overlap, joined into one."""
    out: list[list[float]] = []
    for pos, lo, hi in sorted(rules):
        for rule in reversed(out[-8:]):  # sorted by position: a collinear rule is among the last few
            if abs(rule[0] - pos) <= _RULE_TOLERANCE and lo <= rule[2] + _RULE_TOLERANCE and hi >= rule[1] - _RULE_TOLERANCE:
                rule[1], rule[2] = min(rule[1], lo), max(rule[2], hi)
                break
        else:
            out.append([pos, lo, hi])
    return [(pos, lo, hi) for pos, lo, hi in out]


def pdf_page_may_have_table(page) -> bool:
    """Cheap check on a pypdf page: does its content stream draw enough lines/rectangles for a ruled table?

    Used when pdfium cannot read the file; otherwise `rules_form_grid` decides from the drawn paths.
    """
    try:
        contents = page.get_contents()
        data = contents.get_data() if contents is not None else b""
    except Exception:  # an unreadable stream: the text path reports it, no table here
        return False
    return len(_PDF_PATH_OPS.findall(data)) >= _PDF_MIN_PATH_OPS


def pdf_tables_available() -> bool:
    from importlib.util import find_spec

    return find_spec("pdfplumber") is not None


def pdf_page_text_with_tables(data: bytes, indexes: list[int], text_in=None) -> dict[int, str]:
    """For the given 0-based pages, text with ruled tables as Markdown (pdfplumber); pages without tables omitted.

    The page is read top to bottom: text above a table, the table, text beside
    it, and so on. Pages where pdfplumber finds no table of >= 2 rows and
    columns keep the text extracted before. `text_in(index, (x0, top, x1, bottom))`
    gives the text inside a box (pdfplumber's coordinates: points from the top
    left), so cells and the text around tables come from the same extractor as
    the rest of the document (pdfplumber's own text runs words together on
    some PDFs); without it pdfplumber's text is used.
    """
    import io

    import pdfplumber

    out: dict[int, str] = {}
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for index in indexes:
            try:
                page = pdf.pages[index]
                region = (lambda bbox, i=index: text_in(i, bbox)) if text_in is not None else None
                text = _page_text_with_tables(page, region)
            except Exception:  # a table-finder failure must not cost the page's plain text
                text = None
            finally:
                try:
                    pdf.pages[index].close()
                except Exception:
                    pass
            if text:
                out[index] = text
    return out


def _page_text_with_tables(page, text_in=None) -> str | None:
    tables = []
    for table in page.find_tables():
        if text_in is not None:
            rows = [[text_in(cell) if cell else "" for cell in row.cells] for row in table.rows]
        else:
            rows = [[c or "" for c in row] for row in table.extract()]
        rows = [r for r in rows if any(c.strip() for c in r)]
        if len(rows) >= 2 and max(len(r) for r in rows) >= 2:
            tables.append((table.bbox, markdown_table(rows)))
    if not tables:
        return None
    tables.sort(key=lambda t: t[0][1])
    parts: list[str] = []
    top = 0.0
    for (x0, t_top, x1, t_bottom), md in tables:
        if t_top > top:
            parts.append(_region_text(page, (0, top, page.width, t_top), text_in))
        parts.append(md)
        # text beside the table (a caption in a margin) follows it
        if text_in is not None:
            parts += [text_in((0, t_top, x0, t_bottom)), text_in((x1, t_top, page.width, t_bottom))]
        else:
            beside = page.crop((0, t_top, page.width, t_bottom)).filter(
                lambda obj, b=(x0, t_top, x1, t_bottom): not _inside(obj, b))
            parts.append(beside.extract_text() or "")
        top = max(top, t_bottom)
    if top < page.height:
        parts.append(_region_text(page, (0, top, page.width, page.height), text_in))
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


_WORD = re.compile(r"\w+")


def better_table_reading(plain: str, gridded: str, positioned: str) -> str:
    """Of two readings of a page with tables, the one to keep: the one whose words differ least from the
    page's `plain` text (a table read with misplaced cell bounds repeats or cuts words), then the one
    with more table cells filled; `gridded` (pdfplumber's) on a tie."""
    words = Counter(_WORD.findall(plain))

    def lost_or_added(text: str) -> int:
        counts = Counter(_WORD.findall(text))
        return sum(((counts - words) + (words - counts)).values())

    def cells(text: str) -> int:
        return sum(1 for line in text.splitlines() if is_table_row(line) and not is_table_separator(line)
                   for cell in row_cells(line) if cell)

    def key(text: str) -> tuple[int, int]:
        return -lost_or_added(text), cells(text)

    return positioned if key(positioned) > key(gridded) else gridded


def _region_text(page, bbox, text_in=None) -> str:
    if text_in is not None:
        return text_in(bbox) if bbox[3] > bbox[1] and bbox[2] > bbox[0] else ""
    return page.crop(bbox).extract_text() or ""


def _inside(obj, bbox) -> bool:
    if "x0" not in obj or "top" not in obj:
        return False
    x0, top, x1, bottom = bbox
    cx, cy = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
    return x0 <= cx <= x1 and top <= cy <= bottom


# --------------------------------------------------------------------------- PDF tables without rules

# Typeset manuals (LaTeX, Texinfo) mostly set tables without rules: cells are only text placed in
# columns. The page text then reads each row as one line ("%H hour, 0-24"), and a row read alone no
# longer says which column a value is in. These tables are found from where the words are: lines
# whose text runs are split by wide gaps at the same x, and empty x-ranges ("rivers") running
# down those lines between the columns.

_UNRULED_CELL_GAP = 0.9  # line heights: a wider gap between two text runs on one line separates cells
_UNRULED_ALIGN = 3.0  # points: cells of one column start this close to each other
_UNRULED_MIN_ROWS = 3  # lines split into cells, at least
_UNRULED_RIVER = 0.6  # line heights: an empty x-range at least this wide between columns
_UNRULED_PITCH = 1.8  # a table's lines lie at most this many line heights apart (tops)
_UNRULED_HEADER_PITCH = 1.6  # the header lies at most this many body pitches above the first row
_ROW_RULE_SPAN = 12.0  # line heights: two rules at most this far apart, with lines between them, bound one row
_RULED_MIN_ROWS = 3  # bands one under the other, at least, for a table ruled between its rows
_RULE_EXTENT = 6.0  # points: the two rules that bound a row start and end this close (they are one table's)
_PROSE_FILL = 0.85  # a column whose lines mostly fill this share of its width, and
_PROSE_WORDS = 4  # hold this many words (the median line), is running text
_LINE_END_HYPHEN = "\x02"  # pdfium's mark for a hyphen it found at the end of a line


@dataclass(frozen=True)
class Word:
    """A word on a PDF page: its box in points (origin bottom left) and its text."""

    left: float
    bottom: float
    right: float
    top: float
    text: str
    fixed: bool = False  # set in a fixed-pitch font (every glyph as wide), as code listings are


@dataclass(frozen=True)
class UnruledTable:
    """A table found on a page without rules: its rows (the header first) and its vertical extent."""

    top: float  # top of its first line (the header where one was found)
    bottom: float  # bottom of its last line
    rows: list[list[str]]
    header: bool  # whether the first row is a header found above the cells (else it is the first row)

    def markdown(self) -> str:
        return markdown_table(self.rows)


def _box_lines(boxes):
    """Boxes `(left, bottom, right, top, ...)` grouped into lines, top to bottom, each left to right."""
    from rag.ingest.layout import box_lines

    return [[boxes[i] for i in line] for line in box_lines(range(len(boxes)), boxes)]


def _line_height(lines) -> float:
    heights = sorted(max(b[3] for b in line) - min(b[1] for b in line) for line in lines)
    return heights[len(heights) // 2] if heights else 0.0


def _cells(line, gap: float) -> list[list]:
    """A line's boxes split into cells, left to right, where the gap between two is at least `gap`."""
    line = sorted(line, key=lambda b: b[0])
    cells = [[line[0]]]
    for box in line[1:]:
        if box[0] - max(b[2] for b in cells[-1]) >= gap:
            cells.append([box])
        else:
            cells[-1].append(box)
    return cells


def _near(x: float, starts) -> bool:
    return any(abs(x - s) <= _UNRULED_ALIGN for s in starts)


def _row_runs(lines, height: float, rules, dividers, pitch: float = _UNRULED_PITCH):
    """The rows of `lines` as the rules mark them (`_row_units`), each row's boxes as one list, and the
    (first, end) row indexes of runs of rows set in aligned cells (`_table_runs`): candidate tables."""
    units, marks = _row_units(lines, rules, height, dividers)
    rows = [[b for line in unit for b in line] for unit in units]
    tops = [(max(b[3] for b in unit[0]), max(b[3] for b in unit[-1])) for unit in units]
    adjacent = [i > 0 and m is not None and marks[i - 1] is not None and abs(m[0] - marks[i - 1][1]) <= _RULE_TOLERANCE
                for i, m in enumerate(marks)]
    return units, rows, _table_runs(rows, height, pitch, tops, adjacent, dividers)


def _table_runs(lines, height: float, pitch: float, tops, adjacent, dividers) -> list[tuple[int, int]]:
    """(first, end) line indexes of runs of lines set in aligned cells: candidate tables.

    `tops[i]` is (top of the first, top of the last) text line of `lines[i]`, which may be several text
    lines (a row between rules). A line `adjacent` to the one above (a rule between them bounds both
    rows) follows it however tall the rows are. Cells split by a vertical rule (`dividers`) that also
    splits the line above are in its columns, however they are aligned (centred cells start at
    different x)."""
    gap, pitch = _UNRULED_CELL_GAP * height, pitch * height
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        cells = _cells(lines[i], gap)
        if len(cells) < 2:
            i += 1
            continue
        starts = [c[0][0] for c in cells[1:]]
        left = cells[0][0][0]
        split, j = 1, i + 1
        while j < len(lines):
            line = lines[j]
            if tops[j - 1][1] - tops[j][0] > pitch and not adjacent[j]:
                break
            more = _cells(line, gap)
            if len(more) >= 2 and (_near(more[1][0][0], starts) or _divided(dividers, lines[j - 1], line)):
                split += 1
                starts += [c[0][0] for c in more[1:] if not _near(c[0][0], starts)]
            elif len(more) == 1 and more[0][0][0] > left + _UNRULED_ALIGN and _near(more[0][0][0], starts):
                pass  # a cell's text going on under it
            else:
                break
            j += 1
        if split >= _UNRULED_MIN_ROWS:
            runs.append((i, j))
            i = j
        else:
            i += 1
    return runs


def _divided(dividers, upper, lower) -> bool:
    """Whether a vertical rule runs down past both lines' boxes with boxes of each on both its sides."""
    tol = _RULE_TOLERANCE
    bottom, top = min(b[1] for b in lower), max(b[3] for b in upper)
    return any(y0 - tol <= bottom and top <= y1 + tol
               and all(any(b[2] <= x + tol for b in line) and any(b[0] >= x - tol for b in line) for line in (upper, lower))
               for x, y0, y1 in dividers)


def _rivers(words, lo: float, hi: float, width: float) -> list[tuple[float, float]]:
    """Empty x-ranges at least `width` wide between `lo` and `hi` that no word's box crosses."""
    out: list[tuple[float, float]] = []
    edge = lo
    for left, right in sorted((w.left, w.right) for w in words):
        if left - edge >= width:
            out.append((edge, left))
        edge = max(edge, right)
    return [r for r in out if lo < r[0] and r[1] < hi]


def _row(words, bounds: list[float]) -> list[str]:
    """A line's words put into the columns between `bounds` by their centres."""
    cells: list[list[str]] = [[] for _ in range(len(bounds) + 1)]
    for w in words:
        cells[_column(w, bounds)].append(w.text)
    return [" ".join(c) for c in cells]


def page_rules(boxes) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """The horizontal rules (y, x0, x1) and the vertical ones (x, y0, y1) among the bounding boxes
    `(left, bottom, right, top)` of a page's drawn paths: thin lines, and the edges of rectangles (shaded
    rows or cells), collinear pieces joined."""
    rows: list[tuple[float, float, float]] = []
    columns: list[tuple[float, float, float]] = []
    for left, bottom, right, top in boxes:
        width, height = right - left, top - bottom
        if height <= _RULE_MAX_THICKNESS and width >= _RULE_MIN_LENGTH:
            rows.append(((bottom + top) / 2, left, right))
        elif width <= _RULE_MAX_THICKNESS and height >= _RULE_MIN_LENGTH:
            columns.append(((left + right) / 2, bottom, top))
        elif width >= _RULE_MIN_LENGTH and height >= _RULE_MIN_LENGTH:
            rows += [(bottom, left, right), (top, left, right)]
            columns += [(left, bottom, top), (right, bottom, top)]
    return _joined(rows), _joined(columns)


def _row_units(lines, rules, height: float, dividers=()) -> tuple[list[list], list]:
    """Lines grouped into the rows that rules mark, and each row's (upper, lower) rule or None.

    Consecutive lines between the same two rules, which both run under the whole line, start and end
    together (`_RULE_EXTENT`) and lie at most `_ROW_RULE_SPAN` line heights apart, are one row (a cell set
    on two lines, its neighbour centred beside it) where the table is ruled between its rows (`_ruled_rows`) and at most one of the lines
    fills every column (those the vertical `dividers` draw, else as many cells as the fullest line; the
    other lines hold pieces of cells). Every other line is a row of its own: between
    a header rule and a bottom rule, each line that fills the columns is a row."""
    tol, span = _RULE_TOLERANCE, _ROW_RULE_SPAN * height

    def band(line):
        lo, hi = min(b[0] for b in line), max(b[2] for b in line)
        middle = (min(b[1] for b in line) + max(b[3] for b in line)) / 2
        under = [(y, x0, x1) for y, x0, x1 in rules if x0 - tol <= lo and hi <= x1 + tol]
        above = min((r for r in under if r[0] > middle), default=None)
        below = max((r for r in under if r[0] < middle), default=None)
        if above is None or below is None or above[0] - below[0] > span:
            return None
        if abs(above[1] - below[1]) > _RULE_EXTENT or abs(above[2] - below[2]) > _RULE_EXTENT:
            return None  # rules of different lengths: one of them is not the table's (a page's footer rule)
        return above[0], below[0]

    found = [band(line) for line in lines] if rules else [None] * len(lines)
    gap = _UNRULED_CELL_GAP * height
    by_band: dict = {}
    for line, mark in zip(lines, found):
        if mark is not None:
            by_band.setdefault(mark, []).append(line)

    def full_lines(band) -> int:  # lines that fill every column: rows by themselves, not pieces of cells
        members = by_band[band]
        lo, hi = min(b[0] for line in members for b in line), max(b[2] for line in members for b in line)
        xs = _drawn_bounds(dividers, lo, hi, band[1], band[0])
        if xs:  # the columns the vertical rules draw
            edges = [float("-inf"), *xs, float("inf")]
            return sum(1 for line in members if all(any(a < (b[0] + b[2]) / 2 < z for b in line)
                                                    for a, z in pairwise(edges)))
        cells = [len(_cells(line, gap)) for line in members]  # else: as many cells as the band's fullest line
        return cells.count(max(cells)) if max(cells) >= 2 else 0

    ruled = {m for m in _ruled_rows(set(by_band)) if full_lines(m) <= 1}
    units: list[list] = []
    marks: list = []
    for line, mark in zip(lines, found):
        mark = mark if mark in ruled else None
        if mark is not None and marks and mark == marks[-1]:
            units[-1].append(line)
        else:
            units.append([line])
            marks.append(mark)
    return units, marks


def _ruled_rows(bands: set) -> set:
    """The (upper, lower) bands that are rows of a table ruled between every row: each in a chain of
    `_RULED_MIN_ROWS` bands at least, each band right under the one before. A table ruled only at its
    top, under its header and at its bottom has two bands, the second holding all its rows: those stay
    lines."""
    tol = _RULE_TOLERANCE
    under = {b: [c for c in bands if c != b and abs(c[0] - b[1]) <= tol] for b in bands}
    over = {b: [a for a in bands if b in under[a]] for b in bands}
    down: dict = {}
    up: dict = {}

    def reach(band, step: dict, memo: dict) -> int:  # bands in the longest chain from `band` on, itself counted
        if band not in memo:
            memo[band] = 1 + max((reach(b, step, memo) for b in step[band]), default=0)
        return memo[band]

    return {b for b in bands if reach(b, under, down) + reach(b, over, up) - 1 >= _RULED_MIN_ROWS}


def unruled_tables(words, rules=(), dividers=()) -> list[UnruledTable]:
    """Tables set without a grid of rules among a page's `Word`s, top to bottom.

    A table is at least three lines whose words fall into cells separated by wide gaps, the cells
    after the first starting at the same x; its columns are the x-ranges between rivers that no word
    of those lines crosses. A line whose first column is empty continues the row above it (a cell's
    text wrapped). Where horizontal `rules` ((y, x0, x1), `page_rules`) are drawn between every row,
    the lines between two of them are one row (`_row_units`: a cell set on two lines, its neighbour
    centred beside it), and rows either side of a rule follow each other however tall; where vertical rules
    (`dividers`, (x, y0, y1)) run down the rows between the columns, they are the columns' bounds instead
    of the rivers (a space that lines up in every row of a column is then no column). Two columns at least
    must vary from row to row (a run of definition lines each
    tagged "[Function]" at the margin is no table), and lines all in a fixed-pitch font are a code
    listing, not a table. The line just above, when it is as close as the rows are to each other and
    its words sit over two columns at least, each cell aligned with its column (left, centre or
    right), is the header; otherwise the first row stands in for it (as for tables whose header was
    set like a row). A table that follows the one above it closely, with as many columns and no
    header of its own, continues it (its rows spread apart at a taller row), unless its first row is
    the first row of that table set again (tables stacked under captions, each with the same header).
    """
    words = [w for w in words if w.right > w.left and w.top > w.bottom and w.text.strip()]
    if not words:
        return []
    lines = _box_lines([(w.left, w.bottom, w.right, w.top, w) for w in words])
    height = _line_height(lines)
    if height <= 0:
        return []
    units, flat_units, runs = _row_runs(lines, height, rules, dividers)
    tables = []
    for first, end in runs:
        body = [[b[4] for b in unit] for unit in flat_units[first:end]]
        flat = [w for line in body for w in line]
        lo, hi = min(w.left for w in flat), max(w.right for w in flat)
        bounds = _drawn_bounds(dividers, lo, hi, min(w.bottom for w in body[-1]), max(w.top for w in body[0]))
        if not bounds:
            bounds = [(a + b) / 2 for a, b in _rivers(flat, lo, hi, _UNRULED_RIVER * height)]
        rows: list[list[str]] = []
        for unit in units[first:end]:
            cells = _row([b[4] for b in unit[0]], bounds)
            for line in unit[1:]:  # the further lines of a row between rules: each cell's text goes on
                cells = [_continued(a, b) for a, b in zip(cells, _row([b[4] for b in line], bounds))]
            if rows and not cells[0]:
                rows[-1] = [_continued(a, b) for a, b in zip(rows[-1], cells)]
            else:
                rows.append(cells)
        varied = [len({r[k] for r in rows if r[k]}) for k in range(len(bounds) + 1)]
        if len(rows) < _UNRULED_MIN_ROWS or sum(1 for n in varied if n >= 2) < 2:
            continue  # one column saying something: a list, or definitions each tagged "[Function]"
        if all(w.fixed for w in flat if len(w.text) > 1):
            continue  # a code listing with aligned comments: preformatted text, not a table
        if _prose_columns([[b[4] for b in line] for unit in units[first:end] for line in unit], bounds):
            continue  # two columns of running text, set ragged-right (a browser's print): not a table
        top = max(w.top for w in body[0])
        header = _header(units[first - 1] if first else None, body, bounds, lo, hi, height)
        if header is not None:
            rows.insert(0, header)
            top = max(b[3] for b in flat_units[first - 1])
        bottom = min(w.bottom for w in body[-1])
        last = tables[-1] if tables else None
        # one table, its run broken by an odd row; not when this run opens with that table's header set again
        if (last is not None and header is None and len(rows[0]) == len(last.rows[0]) and rows[0] != last.rows[0]
                and last.bottom - top <= _UNRULED_PITCH * height):
            tables[-1] = UnruledTable(last.top, bottom, last.rows + rows, last.header)
            continue
        tables.append(UnruledTable(top, bottom, rows, header is not None))
    return tables


def _prose_columns(lines, bounds: list[float]) -> bool:
    """Whether every column is running text: half its lines or more fill `_PROSE_FILL` of its width, and
    its lines hold `_PROSE_WORDS` words or more (the median). A table has a column of short cells (names,
    values, keys), however full its descriptions are."""
    for k in range(len(bounds) + 1):
        parts = [part for part in ([w for w in line if _column(w, bounds) == k] for line in lines) if part]
        if len(parts) < _UNRULED_MIN_ROWS:
            return False
        spans = [(min(w.left for w in part), max(w.right for w in part)) for part in parts]
        width = max(r for _, r in spans) - min(left for left, _ in spans)
        full = sum(1 for left, r in spans if r - left >= _PROSE_FILL * width)
        words = sorted(len(part) for part in parts)
        if width <= 0 or 2 * full < len(spans) or words[len(words) // 2] < _PROSE_WORDS:
            return False
    return True


def _drawn_bounds(dividers, lo: float, hi: float, bottom: float, top: float) -> list[float]:
    """The x of the vertical rules between `lo` and `hi` that run from `top` down to `bottom`, left to right."""
    tol = _RULE_TOLERANCE
    return sorted(x for x, y0, y1 in dividers if lo < x < hi and y0 - tol <= bottom and top <= y1 + tol)


def _continued(cell: str, more: str) -> str:
    """A cell's text and its next line's. A word hyphenated at the line end (pdfium marks the hyphen
    \\x02) is written back together with its mark, which `rag.ingest.layout.join_hyphens` then resolves
    as in running text."""
    if not cell or not more:
        return cell or more
    return cell + more if cell.endswith(_LINE_END_HYPHEN) else f"{cell} {more}"


def _header(unit, body, bounds: list[float], lo: float, hi: float, height: float) -> list[str] | None:
    """The header cells of the row `unit` (its lines) just above the table's `body`, or None."""
    if unit is None:
        return None
    words = [b[4] for line in unit for b in line]
    tops = [max(w.top for w in row) for row in body]
    pitch = (tops[0] - tops[-1]) / (len(tops) - 1)
    close = max(b[3] for b in unit[-1]) - tops[0] <= _UNRULED_HEADER_PITCH * max(pitch, height)
    inside = min(w.left for w in words) >= lo - (bounds[0] - lo) and max(w.right for w in words) <= hi + 2 * height
    cells = _row(words, bounds)
    if not (close and inside and sum(1 for c in cells if c) >= 2):
        return None
    for k, cell in enumerate(cells):
        mine = [w for w in words if _column(w, bounds) == k]
        theirs = [w for row in body for w in row if _column(w, bounds) == k]
        if cell and not (theirs and _aligned(mine, theirs)):
            return None
    return cells


def _column(word: Word, bounds: list[float]) -> int:
    return sum(1 for b in bounds if (word.left + word.right) / 2 > b)


def _aligned(cell: list[Word], column: list[Word]) -> bool:
    """Whether a header cell's words line up with the column's text: at its left edge, its centre or its right edge."""
    left, right = min(w.left for w in cell), max(w.right for w in cell)
    lo, hi = min(w.left for w in column), max(w.right for w in column)
    tol = _UNRULED_ALIGN
    return abs(left - lo) <= tol or abs(right - hi) <= tol or abs((left + right) / 2 - (lo + hi) / 2) <= 2 * tol
