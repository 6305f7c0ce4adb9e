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


def pdf_page_may_have_table(page) -> bool:
    """Cheap check on a pypdf page: does its content stream draw enough lines/rectangles for a ruled table?"""
    try:
        contents = page.get_contents()
        data = contents.get_data() if contents is not None else b""
    except Exception:  # an unreadable stream: the text path reports it, no table here
        return False
    return len(_PDF_PATH_OPS.findall(data)) >= _PDF_MIN_PATH_OPS


def pdf_tables_available() -> bool:
    from importlib.util import find_spec

    return find_spec("pdfplumber") is not None


def pdf_page_text_with_tables(data: bytes, indexes: list[int]) -> dict[int, str]:
    """For the given 0-based pages, text with ruled tables as Markdown (pdfplumber); pages without tables omitted.

    The page is read top to bottom: text above a table, the table, text beside
    it, and so on. Pages where pdfplumber finds no table of >= 2 rows and
    columns keep the text pypdf extracted.
    """
    import io

    import pdfplumber

    out: dict[int, str] = {}
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for index in indexes:
            try:
                page = pdf.pages[index]
                text = _page_text_with_tables(page)
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


def _page_text_with_tables(page) -> str | None:
    tables = []
    for table in page.find_tables():
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
            parts.append(_region_text(page, (0, top, page.width, t_top)))
        parts.append(md)
        # text beside the table (a caption in a margin) follows it
        beside = page.crop((0, t_top, page.width, t_bottom)).filter(
            lambda obj, b=(x0, t_top, x1, t_bottom): not _inside(obj, b))
        parts.append(beside.extract_text() or "")
        top = max(top, t_bottom)
    if top < page.height:
        parts.append(_region_text(page, (0, top, page.width, page.height)))
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _region_text(page, bbox) -> str:
    return page.crop(bbox).extract_text() or ""


def _inside(obj, bbox) -> bool:
    if "x0" not in obj or "top" not in obj:
        return False
    x0, top, x1, bottom = bbox
    cx, cy = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
    return x0 <= cx <= x1 and top <= cy <= bottom
