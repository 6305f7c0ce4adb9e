"""CSV files: `## file name` over a Markdown table, any encoding (`encoding.decode_text`), delimiter sniffed.

Cells are kept as written in the file (they already are the displayed values).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError
from rag.ingest.loaders.base import LoadedDocument, short_cause
from rag.ingest.loaders.encoding import normalise_text
from rag.ingest.loaders.sheets import MAX_SHEET_ROWS, cap_note, capped_rows, sheet_text

_DELIMITERS = ",;\t|"
_SNIFF_CHARS = 64 * 1024


def load_csv(path: Path, text: str) -> LoadedDocument:
    """Parse decoded CSV text into one Markdown table (first row = header); rows past the cap are noted."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise EmptyDocumentError(str(path), "no text in file")
    dialect = sniff_dialect(text)
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        rows, more = capped_rows(reader, MAX_SHEET_ROWS)
    except csv.Error as exc:
        raise DocumentError(str(path), f"not a valid CSV file ({short_cause(exc)})") from None
    body = normalise_text(sheet_text(path.stem, rows))
    if not body:
        raise EmptyDocumentError(str(path), "no values in CSV file")
    notes = (cap_note(path.name, len(rows)),) if more else ()
    return LoadedDocument(text=body, title=path.stem, url=None, notes=notes)


def sniff_dialect(text: str):
    """The CSV dialect of `text` (delimiter among , ; tab |), falling back to Excel's comma dialect."""
    sample = text[:_SNIFF_CHARS]
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[:sample.rindex("\n")]  # whole lines only: a cut line misleads the sniffer
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        return _by_count(sample)
    if dialect.delimiter not in _DELIMITERS:
        return _by_count(sample)
    return dialect


def _by_count(sample: str):
    """The delimiter found most consistently on the first lines, as an Excel-like dialect."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]

    def score(delimiter: str) -> tuple[int, int]:
        counts = [line.count(delimiter) for line in lines]
        return (min(counts) if counts else 0, sum(counts))

    best = max(_DELIMITERS, key=score)

    class Dialect(csv.excel):
        delimiter = best if score(best)[1] else ","

    return Dialect
