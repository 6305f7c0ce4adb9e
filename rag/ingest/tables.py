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


def rules_form_grid(boxes) -> bool:
    """Whether the bounding boxes `(left, bottom, right, top)` of a page's drawn paths rule a table grid.

    pdfplumber finds a table where horizontal and vertical rules cross into cells; a table we keep
    has 2 rows and 2 columns at least, so 3 horizontal rules must each cross the same 3 vertical
    ones. Rules drawn piecewise (a vertical bar per row) are joined first; a rectangle gives its
    four sides. A page with a rule under its header, framed boxes, or tables ruled only between
    rows has no such grid and is not worth pdfplumber's table search (about a second a page).
    """
    rows: list[tuple[float, float, float]] = []  # (y, x0, x1)
    columns: list[tuple[float, float, float]] = []  # (x, y0, y1)
    for left, bottom, right, top in boxes:
        width, height = right - left, top - bottom
        if height <= _RULE_MAX_THICKNESS and width >= _RULE_MIN_LENGTH:
            rows.append(((bottom + top) / 2, left, right))
        elif width <= _RULE_MAX_THICKNESS and height >= _RULE_MIN_LENGTH:
            columns.append(((left + right) / 2, bottom, top))
        elif width >= _RULE_MIN_LENGTH and height >= _RULE_MIN_LENGTH:
            rows += [(bottom, left, right), (top, left, right)]
            columns += [(left, bottom, top), (right, bottom, top)]
    if len(rows) < _GRID_MIN_RULES or len(columns) < _GRID_MIN_RULES:
        return False
    rows, columns = _joined(rows), _joined(columns)
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
