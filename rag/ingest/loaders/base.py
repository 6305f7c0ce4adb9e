"""What every loader shares: `LoadedDocument`, the supported suffixes, the size limit and reading a file's bytes.

Also the reason given for an unsupported file type, the one-line cause of a
parser exception, and the OCR options (`OcrSettings` or their defaults) used
by the PDF and image loaders.
"""

from __future__ import annotations

import bisect
import stat
from dataclasses import dataclass
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg"})
SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".pptx",
                                                ".xlsx", ".csv", ".epub", ".odt", ".eml"}) | IMAGE_SUFFIXES
HTML_SUFFIXES: frozenset[str] = frozenset({".html", ".htm"})
MARKDOWN_SUFFIXES: frozenset[str] = frozenset({".md", ".markdown"})

# Hints for the file types people most often try; the reason should say what to do.
_CONVERT_HINTS = {
    ".doc": "save it as .docx",
    ".rtf": "save it as .docx or .txt",
    ".ppt": "save it as .pptx",
    ".xls": "save it as .xlsx",
    ".msg": "save it as .eml",
    ".pages": "export it as .docx or .pdf",
    ".xhtml": "rename it to .html",
}

MAX_TITLE_CHARS = 200


@dataclass(frozen=True)
class LoadedDocument:
    """Extracted text of one document plus what we know about where it came from.

    `pages` holds `(page_number, start, end)` spans into `text` (1-based page
    numbers: PDF pages, .pptx slides, .xlsx sheets, EPUB chapters; pages without
    text omitted), so `text[start:end]` is that page's text.
    """

    text: str
    title: str
    url: str | None
    pages: tuple[tuple[int, int, int], ...] = ()
    ocr: bool = False  # the whole text was read by OCR (an image)
    ocr_pages: frozenset[int] = frozenset()  # PDF pages whose text was read by OCR
    notes: tuple[str, ...] = ()  # what was left out and why (pages OCR could not read, ...)
    # (offset, heading path) where each section starts, in order: "4 Networking › 4.2 Configuring the network"
    sections: tuple[tuple[int, str], ...] = ()

    def is_ocr(self, page: int | None) -> bool:
        """Whether the text of `page` (None: a document without pages) came from OCR."""
        return self.ocr or (page is not None and page in self.ocr_pages)

    def section_at(self, offset: int) -> str:
        """The heading path in force at char `offset` ("" before the first heading or without headings)."""
        index = bisect.bisect_right([start for start, _ in self.sections], offset) - 1
        return self.sections[index][1] if index >= 0 else ""

    def page_at(self, offset: int) -> int | None:
        """Return the page holding char `offset` (gaps count toward the page before); None without pages."""
        if not self.pages or offset < 0 or offset > len(self.text):
            return None
        starts = [start for _, start, _ in self.pages]
        index = max(bisect.bisect_right(starts, offset) - 1, 0)
        return self.pages[index][0]


def unsupported_reason(suffix: str) -> str:
    """Explain which file types are supported, with a conversion hint for common ones."""
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    what = f"unsupported file type {suffix}" if suffix else "unsupported file type (no extension)"
    hint = _CONVERT_HINTS.get(suffix)
    return f"{what}: {hint} (supported: {supported})" if hint else f"{what} (supported: {supported})"


def format_size(n_bytes: float) -> str:
    """Human-readable size: '80.0 MB', '12.5 KB', '999 bytes'."""
    if n_bytes >= 2**20:
        return f"{n_bytes / 2**20:.1f} MB"
    if n_bytes >= 1024:
        return f"{n_bytes / 1024:.1f} KB"
    return f"{int(n_bytes)} bytes"


def _format_limit(max_bytes: int) -> str:
    """The configured limit as the user wrote it ('64 MB'), falling back to exact units for tiny limits."""
    mb = max_bytes / 2**20
    if mb >= 0.1:
        return f"{mb:.1f}".rstrip("0").rstrip(".") + " MB"
    return format_size(max_bytes)


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """Read the whole file, refusing missing, empty or oversized files before reading anything."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DocumentError(str(path), "file not found") from None
    except OSError as exc:
        raise DocumentError(str(path), f"cannot read file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DocumentError(str(path), "not a regular file")
    if info.st_size > max_bytes:
        raise DocumentError(str(path), _too_large_reason(info.st_size, max_bytes))
    if info.st_size == 0:
        raise EmptyDocumentError(str(path), "empty file")
    try:
        with path.open("rb") as fh:
            # Read one byte past the limit: the file may have grown since stat().
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentError(str(path), f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise DocumentError(str(path), _too_large_reason(len(data), max_bytes))
    if not data:
        raise EmptyDocumentError(str(path), "empty file")
    return data


def _too_large_reason(size: int, max_bytes: int) -> str:
    """Reason for a file over the size limit, naming the setting that raises it."""
    return f"file is {format_size(size)}, over the {_format_limit(max_bytes)} limit (set RAG_CHUNKING__MAX_FILE_MB)"


def join_pages(page_texts: list[tuple[int, str]]) -> tuple[str, tuple[tuple[int, int, int], ...]]:
    """Join (page number, text) pairs with blank lines; returns the text and each page's (number, start, end)."""
    parts: list[str] = []
    pages: list[tuple[int, int, int]] = []
    offset = 0
    for number, text in page_texts:
        offset += 2 if parts else 0
        parts.append(text)
        pages.append((number, offset, offset + len(text)))
        offset += len(text)
    return "\n\n".join(parts), tuple(pages)


def short_cause(exc: BaseException) -> str:
    """A one-line description of a parser exception for the ingest summary."""
    message = str(exc).strip().split("\n")[0] or type(exc).__name__
    return message[:120]


def ocr_options(ocr) -> tuple[bool, int, int]:
    """(enabled, dpi, min_chars) from `OcrSettings` or its defaults."""
    if ocr is None:
        return True, 150, 20
    return bool(ocr.enabled), int(ocr.dpi), int(ocr.min_chars)
