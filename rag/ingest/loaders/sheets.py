"""What .xlsx and .csv share: a sheet's rows as `## name` plus a Markdown table, empty rows/columns trimmed, row caps.

Example::

    sheet_text("Orders", [["Date", "Amount"], ["2024-01-05", "1,250.00"], ["", ""]])
    # '## Orders\\n\\n| Date | Amount |\\n| --- | --- |\\n| 2024-01-05 | 1,250.00 |'
"""

from __future__ import annotations

from collections.abc import Iterable

from rag.ingest.tables import markdown_table

MAX_SHEET_ROWS = 10_000  # rows with content kept per sheet; the rest is noted, not read
MAX_BOOK_ROWS = 50_000  # the same across a workbook
MAX_COLUMNS = 256


def capped_rows(rows: Iterable[list[str]], limit: int) -> tuple[list[list[str]], bool]:
    """The first `limit` rows that have content, and whether any row with content came after them."""
    kept: list[list[str]] = []
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        if len(kept) >= limit:
            return kept, True
        kept.append(row)
    return kept, False


def trim(rows: list[list[str]]) -> list[list[str]]:
    """Drop empty rows and the columns that are empty in every row; cells are stripped."""
    rows = [[cell.strip() for cell in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    width = max(len(row) for row in rows)
    keep = [i for i in range(width) if any(i < len(row) and row[i] for row in rows)]
    return [[row[i] if i < len(row) else "" for i in keep] for row in rows]


def sheet_text(name: str, rows: list[list[str]]) -> str:
    """`## name`, then leading one-cell rows (a sheet's own title lines) as text, then the rest as a table."""
    rows = trim(rows)
    if not rows:
        return ""
    blocks = [f"## {name}"] if name else []
    width = max(len(row) for row in rows)
    lead: list[str] = []
    while width > 1 and len(rows) > 2 and sum(1 for cell in rows[0] if cell) == 1:
        lead.append(next(cell for cell in rows[0] if cell))
        rows = rows[1:]
    if lead:
        blocks.append("\n".join(lead))
    rows = trim(rows)
    if len(rows) == 1 or max(len(row) for row in rows) == 1:
        blocks.append("\n".join(" ".join(cell for cell in row if cell) for row in rows))
    else:
        blocks.append(markdown_table(rows))
    return "\n\n".join(blocks)


def cap_note(what: str, limit: int) -> str:
    return f"{what}: only the first {limit:,} rows were read"
