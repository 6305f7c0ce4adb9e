"""PDF page text extractors side by side: pages per second and how often words run together.

    python bench/pdf_extract.py [--rounds 2] [--max-pages 400] [--pdf FILE ...] [--extractors ...]
    python bench/pdf_extract.py --extractors rag rag-no-unruled --rounds 3   # what reading unruled tables costs

For each PDF, pypdf (`page.extract_text()`), pypdfium2 (`textpage.get_text_bounded()`)
and pdfplumber (`page.extract_text()`) read every page (at most --max-pages);
the rounds alternate the extractors so machine noise hits all alike, and the
median round is printed. "Run together" is the share of words (runs of letters)
of 20 or more letters: an extractor that drops the spaces between words makes
many of them, a spaced one almost none. "Rows" counts the Markdown table rows the
`rag` extractors write, "empty cell" the share of them with a cell left empty (a
cell read into the wrong row or column leaves one behind). The default documents
are the dev manuals of the manuals eval set and R manuals that are not in it (never
its test documents). A manual whose tables are ruled between their rows (DocBook), and
a report printed by a browser (a grid with a spanned header, shaded rows):

    apt-get download debian-reference-en && dpkg -x debian-reference-en_*.deb x
    chromium --headless --no-sandbox --no-pdf-header-footer --print-to-pdf=grid-report.pdf bench/data/grid-report.html
    python bench/pdf_extract.py --extractors rag --pdf x/usr/share/debian-reference/debian-reference.en.pdf grid-report.pdf
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.text.tables import is_table_row, is_table_separator, row_cells  # noqa: E402

_MANUALS = Path.home() / ".cache/rag-evals/manuals/files"
_R_DOCS = Path("/tmp/debs/x/usr/share/R/doc/manual")
DEFAULT_PDFS = [_MANUALS / "gnuplot.pdf", _MANUALS / "r-intro.pdf", _R_DOCS / "R-admin.pdf",
                _R_DOCS / "R-exts.pdf", _R_DOCS / "R-FAQ.pdf", _R_DOCS / "fullrefman.pdf"]
_WORD = re.compile(r"[^\W\d_]+")
_LONG = 20


def pypdf_pages(data: bytes, n: int) -> list[str]:
    import io

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    return [reader.pages[i].extract_text() or "" for i in range(n)]


def pdfium_pages(data: bytes, n: int) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    out = []
    try:
        for i in range(n):
            page = pdf[i]
            textpage = page.get_textpage()
            out.append(textpage.get_text_bounded())
            textpage.close()
            page.close()
    finally:
        pdf.close()
    return out


def pdfplumber_pages(data: bytes, n: int) -> list[str]:
    import io

    import pdfplumber

    out = []
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for i in range(n):
            page = pdf.pages[i]
            out.append(page.extract_text() or "")
            page.close()
    return out


def rag_pages(data: bytes, n: int, *, unruled: bool = True) -> list[str]:
    """rag's whole PDF loader (pdfium, tables, layout cleanup) over the first `n` pages; `unruled=False`:
    without reading tables set without rules (the step `rag.ingest.loaders.pdf._with_unruled_tables`)."""
    import io

    import pypdfium2 as pdfium

    import rag.ingest.loaders.pdf as pdf_loader

    if n < page_count(data):  # a copy of the first n pages, as the other extractors read
        src, out = pdfium.PdfDocument(data), pdfium.PdfDocument.new()
        out.import_pages(src, list(range(n)))
        buf = io.BytesIO()
        out.save(buf)
        src.close(), out.close()
        data = buf.getvalue()
    kept = pdf_loader._with_unruled_tables
    if not unruled:
        pdf_loader._with_unruled_tables = lambda textpage, boxes, text, *rules: text
    try:
        doc = pdf_loader.load_pdf(Path("bench.pdf"), data)
    finally:
        pdf_loader._with_unruled_tables = kept
    return [doc.text[start:end] for _, start, end in doc.pages]


EXTRACTORS = {"pypdf": pypdf_pages, "pypdfium2": pdfium_pages, "pdfplumber": pdfplumber_pages,
              "rag": rag_pages, "rag-no-unruled": lambda data, n: rag_pages(data, n, unruled=False)}


def run_together(texts: list[str]) -> tuple[float, int]:
    """(share of words of 20+ letters, words counted); pdfium's line-end hyphen mark joins its word."""
    words = [w for t in texts for w in _WORD.findall(t.replace("\x02", ""))]
    return (sum(len(w) >= _LONG for w in words) / len(words) if words else 0.0), len(words)


def page_count(data: bytes) -> int:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        return len(pdf)
    finally:
        pdf.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, nargs="+", default=DEFAULT_PDFS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-pages", type=int, default=400, help="read at most this many pages of each PDF")
    parser.add_argument("--extractors", nargs="+", default=["pypdf", "pypdfium2", "pdfplumber"], choices=list(EXTRACTORS),
                        help="rag: the whole loader (page text, tables, layout cleanup); rag-no-unruled: the same "
                             "without reading tables set without rules")
    args = parser.parse_args()

    rows = []
    for path in args.pdf:
        if not path.exists():
            print(f"skip {path}: not found", file=sys.stderr)
            continue
        data = path.read_bytes()
        n = min(page_count(data), args.max_pages)
        seconds: dict[str, list[float]] = {name: [] for name in args.extractors}
        texts: dict[str, list[str]] = {}
        for r in range(args.rounds):
            order = args.extractors if r % 2 == 0 else args.extractors[::-1]
            for name in order:
                started = time.perf_counter()
                texts[name] = EXTRACTORS[name](data, n)
                seconds[name].append(time.perf_counter() - started)
        for name in args.extractors:
            share, words = run_together(texts[name])
            tables = sum(1 for t in texts[name] for line in t.splitlines() if is_table_separator(line))  # one a table
            cells = [row_cells(line) for t in texts[name] for line in t.splitlines()
                     if is_table_row(line) and not is_table_separator(line)]
            empty = sum(1 for c in cells if not all(c)) / len(cells) if cells else 0.0
            rows.append((path.name, n, name, n / statistics.median(seconds[name]), share, words, tables, len(cells), empty))
        print(f"done {path.name} ({n} pages)", file=sys.stderr)

    print(f"{'document':<16} {'pages':>5} {'extractor':<14} {'pages/s':>8} {'run-together':>12} {'words':>8} {'tables':>6} "
          f"{'rows':>6} {'empty cell':>10}")
    for doc, n, name, rate, share, words, tables, table_rows, empty in rows:
        print(f"{doc:<16} {n:>5} {name:<14} {rate:>8.1f} {share:>11.2%} {words:>8} {tables:>6} {table_rows:>6} {empty:>9.1%}")


if __name__ == "__main__":
    main()
