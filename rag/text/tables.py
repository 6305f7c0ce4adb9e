"""Markdown tables in stored text (how HTML, DOCX, spreadsheet and ruled PDF tables are written): where each
table's header and rows are, so that a row read alone can be given the header that says what its cells mean."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.text.sentences import Span, sentence_spans

__all__ = ["Table", "is_table_row", "is_table_separator", "markdown_tables", "reading_units", "row_cells", "table_of"]

_TABLE_ROW = re.compile(r"^\|.*\|[ \t]*$")
_TABLE_SEPARATOR = re.compile(r"^\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*$")
_CELL_BAR = re.compile(r"(?<!\\)\|")  # a cell boundary: a pipe the cell text did not escape


def is_table_row(line: str) -> bool:
    """A `| … |` line (header, separator or row)."""
    return bool(_TABLE_ROW.match(line))


def is_table_separator(line: str) -> bool:
    """The `| --- | --- |` line under a table's header."""
    return bool(_TABLE_SEPARATOR.match(line))


def row_cells(line: str) -> list[str]:
    """The cell texts of a `| a | b |` row, stripped (escaped pipes stay in their cell)."""
    return [cell.strip() for cell in _CELL_BAR.split(line.strip()[1:-1])]


@dataclass(frozen=True)
class Table:
    """A Markdown table of a text, as offsets into it."""

    start: int  # start of the header line
    header_end: int  # end of the header line
    body_start: int  # start of the first row after the separator
    end: int  # end of the last row
    header: str  # header line + separator line


def markdown_tables(text: str) -> list[Table]:
    """The Markdown tables of `text`: a `|...|` header line, a `| --- |` line, then `|...|` rows."""
    if "|" not in text:
        return []
    lines = text.split("\n")
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    tables, i = [], 0
    while i + 1 < len(lines):
        if is_table_row(lines[i]) and is_table_separator(lines[i + 1]):
            j = i + 2
            while j < len(lines) and is_table_row(lines[j]):
                j += 1
            body_start = starts[i + 2] if i + 2 < len(lines) else len(text)
            end = starts[j - 1] + len(lines[j - 1])
            tables.append(Table(starts[i], starts[i] + len(lines[i]), body_start, end,
                                lines[i] + "\n" + lines[i + 1]))
            i = j
        else:
            i += 1
    return tables


def table_of(tables: list[Table], offset: int) -> Table | None:
    """The table among `tables` whose rows (below its header) hold `offset`, or None."""
    return next((t for t in tables if t.body_start <= offset < t.end), None)


def reading_units(text: str, tables: list[Table] | None = None) -> list[tuple[Span, Table | None]]:
    """The sentences of `text` as a reader takes them, a table row being one, each with the table it is a row
    of (None outside tables): a row read alone takes its meaning from that table's header. `tables` are
    `markdown_tables(text)` when already found."""
    tables = markdown_tables(text) if tables is None else tables
    return [(span, table_of(tables, span.start)) for span in sentence_spans(text)]
