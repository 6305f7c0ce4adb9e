"""Turn files (.txt, .md, .html, .pdf, .docx, .pptx, .xlsx, .csv, .epub, .odt, .eml, images) and strings into text.

`load_document` is the only way files enter the pipeline, so every format ends
up as the same `LoadedDocument`: normalised text, a title, the source URL when
the document states one, and page spans (PDF pages, slides, sheets, EPUB chapters). Anything we cannot read is
reported as a `DocumentError` (or subclass) whose `reason` tells the user what
to do; library exceptions never leak out.

One module per format, plus what they share:

    __init__.py  load_document (dispatch by suffix), load_text
    base.py      LoadedDocument, supported suffixes, size limit and reading bytes, unsupported-type reasons
    encoding.py  BOM/charset detection, decoding, binary detection, text normalisation
    text.py      plain text and Markdown: titles, the source URL a text states
    html.py      HTML: main text, tables, title, canonical URL
    pdf.py       PDF: page text (pdfium), cleaned by rag.ingest.layout, ruled tables, OCR, outline sections
    docx.py      Word .docx: paragraphs and tables, title, zip-bomb check
    pptx.py      PowerPoint .pptx: one page per slide, tables, chart data, speaker notes
    xlsx.py      Excel .xlsx: one page per sheet, values as displayed
    csvfile.py   .csv: encoding and delimiter detection
    sheets.py    what .xlsx and .csv share: `## sheet` + Markdown table, trimming, row caps
    epub.py      EPUB: one page per chapter in spine order, through html.py
    odt.py       OpenDocument .odt: headings, paragraphs, lists, tables
    eml.py       .eml messages: headers, body, attachments through this dispatch
    zipped.py    checks shared by the zip formats: password-protected, corrupt, zip bomb
    image.py     .png/.jpg images, read by OCR

Tables (DOCX, PPTX, XLSX/CSV sheets, ODT, HTML, ruled tables in PDFs) become Markdown tables (`rag.ingest.tables`).
PDF pages without a text layer and .png/.jpg images are read by OCR when the
`rag[ocr]` extra is installed (`rag.ingest.ocr`), else skipped with a reason naming it.

Heavy parsers (pypdf, python-docx, python-pptx, openpyxl, trafilatura, BeautifulSoup) are imported
inside the functions that need them, so importing this package is cheap.
"""

from __future__ import annotations

from pathlib import Path

from rag.core.errors import EmptyDocumentError, UnsupportedFileError
from rag.ingest.loaders.base import (
    HTML_SUFFIXES,
    IMAGE_SUFFIXES,
    MARKDOWN_SUFFIXES,
    SUPPORTED_SUFFIXES,
    LoadedDocument,
    read_bytes,
    unsupported_reason,
)
from rag.ingest.loaders.csvfile import load_csv
from rag.ingest.loaders.docx import check_unzipped_size, load_docx
from rag.ingest.loaders.eml import load_eml
from rag.ingest.loaders.encoding import decode_text
from rag.ingest.loaders.epub import load_epub
from rag.ingest.loaders.html import load_html
from rag.ingest.loaders.image import load_image
from rag.ingest.loaders.odt import load_odt
from rag.ingest.loaders.pdf import load_pdf
from rag.ingest.loaders.pptx import load_pptx
from rag.ingest.loaders.text import load_plain
from rag.ingest.loaders.xlsx import load_xlsx

__all__ = [
    "IMAGE_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "LoadedDocument",
    "check_unzipped_size",
    "load_document",
    "load_text",
]


def load_document(path: Path, *, max_bytes: int = 64 * 2**20, ocr=None) -> LoadedDocument:
    """Read `path` and extract its text, title, source URL and page spans (PDF pages, slides, sheets, chapters).

    Raises `UnsupportedFileError` for unknown suffixes or binary content in a
    text file, `DocumentError` for corrupt, unreadable, password-protected or
    too large files (size is checked with `stat` before reading), and
    `EmptyDocumentError` when no text could be extracted. `ocr` is the
    `OcrSettings` for scanned pages and images (default settings when None).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFileError(str(path), unsupported_reason(suffix))
    data = read_bytes(path, max_bytes)
    return _load_bytes(path, data, max_bytes=max_bytes, ocr=ocr, depth=0)


def _load_bytes(path: Path, data: bytes, *, max_bytes: int, ocr, depth: int) -> LoadedDocument:
    """Dispatch by suffix on bytes already read (a file, or an e-mail attachment at `depth` > 0)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFileError(str(path), unsupported_reason(suffix))
    if not data:
        raise EmptyDocumentError(str(path), "empty file")
    if suffix in IMAGE_SUFFIXES:
        return load_image(path, data, ocr)
    if suffix == ".pdf":
        return load_pdf(path, data, ocr)
    if suffix == ".docx":
        return load_docx(path, data)
    if suffix == ".pptx":
        return load_pptx(path, data)
    if suffix == ".xlsx":
        return load_xlsx(path, data)
    if suffix == ".csv":
        return load_csv(path, decode_text(path, data))
    if suffix == ".epub":
        return load_epub(path, data)
    if suffix == ".odt":
        return load_odt(path, data)
    if suffix == ".eml":
        return load_eml(path, data, depth=depth, max_bytes=max_bytes,
                        load_attachment=lambda p, blob, level: _load_bytes(p, blob, max_bytes=max_bytes, ocr=ocr,
                                                                         depth=level))
    if suffix in HTML_SUFFIXES:
        return load_html(path, decode_text(path, data, html=True))
    doc = load_plain(decode_text(path, data), stem=path.stem, markdown=suffix in MARKDOWN_SUFFIXES)
    if not doc.text.strip():
        raise EmptyDocumentError(str(path), "no text in file")
    return doc


def load_text(text: str, *, name: str = "", title: str | None = None, url: str | None = None) -> LoadedDocument:
    """Build a `LoadedDocument` from an in-memory string, normalised like a .txt file.

    Never raises: an empty or blank string gives a document with empty text,
    which callers should skip. A given `title`/`url` wins over detected ones.
    """
    suffix = Path(name).suffix.lower() if name else ""
    doc = load_plain(text, stem=Path(name).stem if name else "", markdown=suffix in MARKDOWN_SUFFIXES)
    return LoadedDocument(text=doc.text, title=title if title else doc.title, url=url if url else doc.url,
                          sections=doc.sections)
