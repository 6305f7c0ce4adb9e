"""Turn files (.txt, .md, .html, .pdf, .docx, images) and in-memory strings into plain text.

`load_document` is the only way files enter the pipeline, so every format ends
up as the same `LoadedDocument`: normalised text, a title, the source URL when
the document states one, and page spans for PDFs. Anything we cannot read is
reported as a `DocumentError` (or subclass) whose `reason` tells the user what
to do; library exceptions never leak out.

Tables (DOCX, HTML, ruled tables in PDFs) become Markdown tables (`rag.ingest.tables`).
PDF pages without a text layer and .png/.jpg images are read by OCR when the
`rag[ocr]` extra is installed (`rag.ingest.ocr`), else skipped with a reason naming it.

Heavy parsers (pypdf, python-docx, trafilatura, BeautifulSoup) are imported
inside the functions that need them, so importing this module is cheap.
"""

from __future__ import annotations

import bisect
import codecs
import io
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError, UnsupportedFileError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg"})
SUPPORTED_SUFFIXES: frozenset[str] = frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}) | IMAGE_SUFFIXES

_HTML_SUFFIXES = frozenset({".html", ".htm"})
_MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})

# Hints for the file types people most often try; the reason should say what to do.
_CONVERT_HINTS = {
    ".doc": "save it as .docx",
    ".rtf": "save it as .docx or .txt",
    ".odt": "save it as .docx",
    ".pages": "export it as .docx or .pdf",
    ".xhtml": "rename it to .html",
}

_MAX_TITLE_CHARS = 200
_SCANNED_PDF_REASON = "no extractable text (scanned PDF? run OCR first)"

# Source-URL detection (see `_split_source_url`).
_TAIL_LINES = 15
_TAIL_CHARS = 1500
_HEAD_LINES = 5
_BOILERPLATE_MAX_CHARS = 80
_URL_ONLY_LINE = re.compile(
    r"""^[\s,;:.|>*\-\u2013\u2014\u2022]*          # stray punctuation left by scrapers: ",https://..."
        (?:(?:source|url|link|original|from|via)\s*[:\uff1a]\s*)?  # optional label: "Source: https://..."
        <?(https?://[^\s<>"]+?)>?                   # the URL itself, optionally in <...>
        [\s,;.]*$""",
    re.IGNORECASE | re.VERBOSE,
)
_LABELLED_URL_LINE = re.compile(
    r"^\s*(?:source|url)\s*[:\uff1a]\s*<?(https?://[^\s<>\"]+?)>?\s*$",
    re.IGNORECASE,
)

# Control characters we drop: C0 except \t and \n, DEL, C1, and stray BOM / zero-width no-break spaces.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
_BINARY_SAMPLE_CHARS = 65536
_BINARY_CONTROL_RATIO = 0.05
_HTML_JUNK_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "nav", "header", "footer", "aside", "form")
_HTML_JUNK_ATTR = re.compile(r"cookie|consent|gdpr|banner|navbar|menu|breadcrumb|sidebar|share|social|newsletter|popup|modal")


@dataclass(frozen=True)
class LoadedDocument:
    """Extracted text of one document plus what we know about where it came from.

    `pages` holds `(page_number, start, end)` spans into `text` (1-based page
    numbers, PDFs only, pages without text omitted), so `text[start:end]` is
    that page's text.
    """

    text: str
    title: str
    url: str | None
    pages: tuple[tuple[int, int, int], ...] = ()
    ocr: bool = False  # the whole text was read by OCR (an image)
    ocr_pages: frozenset[int] = frozenset()  # PDF pages whose text was read by OCR
    notes: tuple[str, ...] = ()  # what was left out and why (pages OCR could not read, ...)

    def is_ocr(self, page: int | None) -> bool:
        """Whether the text of `page` (None: a document without pages) came from OCR."""
        return self.ocr or (page is not None and page in self.ocr_pages)

    def page_at(self, offset: int) -> int | None:
        """Return the page holding char `offset` (gaps count toward the page before); None without pages."""
        if not self.pages or offset < 0 or offset > len(self.text):
            return None
        starts = [start for _, start, _ in self.pages]
        index = max(bisect.bisect_right(starts, offset) - 1, 0)
        return self.pages[index][0]


# --------------------------------------------------------------------------- public API


def load_document(path: Path, *, max_bytes: int = 64 * 2**20, ocr=None) -> LoadedDocument:
    """Read `path` and extract its text, title, source URL and (PDF) page spans.

    Raises `UnsupportedFileError` for unknown suffixes or binary content in a
    text file, `DocumentError` for corrupt, unreadable or too large files (size
    is checked with `stat` before reading), and `EmptyDocumentError` when no
    text could be extracted. `ocr` is the `OcrSettings` for scanned pages and
    images (default settings when None).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFileError(str(path), _unsupported_reason(suffix))
    data = _read_bytes(path, max_bytes)
    if suffix in IMAGE_SUFFIXES:
        return _load_image(path, data, ocr)
    if suffix == ".pdf":
        return _load_pdf(path, data, ocr)
    if suffix == ".docx":
        return _load_docx(path, data)
    if suffix in _HTML_SUFFIXES:
        return _load_html(path, _decode_text(path, data, html=True))
    doc = _load_plain(_decode_text(path, data), stem=path.stem, markdown=suffix in _MARKDOWN_SUFFIXES)
    if not doc.text.strip():
        raise EmptyDocumentError(str(path), "no text in file")
    return doc


def load_text(text: str, *, name: str = "", title: str | None = None, url: str | None = None) -> LoadedDocument:
    """Build a `LoadedDocument` from an in-memory string, normalised like a .txt file.

    Never raises: an empty or blank string gives a document with empty text,
    which callers should skip. A given `title`/`url` wins over detected ones.
    """
    suffix = Path(name).suffix.lower() if name else ""
    doc = _load_plain(text, stem=Path(name).stem if name else "", markdown=suffix in _MARKDOWN_SUFFIXES)
    return LoadedDocument(text=doc.text, title=title if title else doc.title, url=url if url else doc.url)


# --------------------------------------------------------------------------- reading and decoding


def _unsupported_reason(suffix: str) -> str:
    """Explain which file types are supported, with a conversion hint for common ones."""
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    what = f"unsupported file type {suffix}" if suffix else "unsupported file type (no extension)"
    hint = _CONVERT_HINTS.get(suffix)
    return f"{what}: {hint} (supported: {supported})" if hint else f"{what} (supported: {supported})"


def _format_size(n_bytes: float) -> str:
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
    return _format_size(max_bytes)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
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
    return f"file is {_format_size(size)}, over the {_format_limit(max_bytes)} limit (set RAG_CHUNKING__MAX_FILE_MB)"


def _decode_text(path: Path, data: bytes, *, html: bool = False) -> str:
    """Decode the bytes of a text file, or raise `UnsupportedFileError` if they look binary."""
    text = _decode_with_bom(data)
    if text is None:
        # NUL bytes never occur in real 8-bit or UTF-8 text; without a UTF-16 BOM they mean binary.
        if b"\x00" in data:
            raise UnsupportedFileError(str(path), "binary file, not text")
        text = _decode_without_bom(data, html=html)
    if _looks_binary(text):
        raise UnsupportedFileError(str(path), "binary file, not text")
    return text


def _decode_with_bom(data: bytes) -> str | None:
    """Decode text that starts with a Unicode byte-order mark, else return None."""
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    return None


def _decode_without_bom(data: bytes, *, html: bool) -> str:
    """Decode BOM-less bytes: UTF-8, then a declared HTML charset, then a detected one, then cp1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if html:
        declared = _declared_html_charset(data)
        if declared:
            try:
                return data.decode(declared)
            except (LookupError, UnicodeDecodeError):
                pass
    detected = _detect_encoding(data)
    if detected:
        try:
            return data.decode(detected)
        except (LookupError, UnicodeDecodeError):
            pass
    # cp1252 leaves five bytes undefined; latin-1 maps every byte, so this never fails.
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _declared_html_charset(data: bytes) -> str | None:
    """The charset named by a <meta> tag near the top of an HTML file, if any."""
    match = re.search(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", data[:4096], re.IGNORECASE)
    return match.group(1).decode("ascii", errors="ignore") if match else None


def _detect_encoding(data: bytes) -> str | None:
    """Guess a legacy encoding with charset_normalizer, preferring cp1252 whenever it is plausible."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return None
    try:
        matches = list(from_bytes(data))
    except Exception:  # a detector bug must not stop ingestion; we fall back to cp1252
        return None
    if not matches:
        return None
    # On short Western text the detector often ranks exotic code pages (cp1006, cp1250) first even
    # though cp1252 decodes just as cleanly; cp1252 is by far the likelier source, so prefer it.
    western = {"cp1252", "latin_1", "iso8859_1", "iso8859_15"}
    if any(western & set(match.could_be_from_charset) for match in matches):
        return "cp1252"
    return matches[0].encoding


def _looks_binary(text: str) -> bool:
    """True when a decoded sample is dominated by control or replacement characters."""
    sample = text[:_BINARY_SAMPLE_CHARS]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    bad = sum(1 for ch in sample if (ch < " " and ch not in "\t\n\r\f\v") or ch == "\ufffd" or "\x7f" <= ch <= "\x9f")
    return bad / len(sample) > _BINARY_CONTROL_RATIO


# --------------------------------------------------------------------------- normalisation


def _normalise_text(text: str) -> str:
    """Normalise line endings and whitespace and drop control characters, keeping \\n and \\t.

    CRLF/CR become LF, form feeds and Unicode line separators become LF,
    trailing whitespace is stripped from every line, runs of 3+ blank lines
    collapse to 2, and leading/trailing blank space of the whole text is removed.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\f\v\x85\u2028\u2029]", "\n", text)
    text = _CONTROL_CHARS.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip("\n").rstrip()


# --------------------------------------------------------------------------- plain text and markdown


def _load_plain(raw: str, *, stem: str, markdown: bool) -> LoadedDocument:
    """Normalise text/markdown, split off a stated source URL and pick a title."""
    text, url = _split_source_url(_normalise_text(raw))
    title = (_markdown_title(text) if markdown else None) or _first_line_title(text) or stem
    return LoadedDocument(text=text, title=title, url=url)


def _split_source_url(text: str) -> tuple[str, str | None]:
    """Find the URL a scraped document states as its source; drop trailing page leftovers after it.

    Rule 1 (trailing): scanning the last 15 lines (and last 1500 chars) from
    the end, the last line that holds only a URL -- optionally after stray
    punctuation (",") or a label ("Source:", "URL:") -- is the source URL if
    every line after it is short (< 80 chars, typical scraper leftovers such
    as "Share", "Comments"), it is not part of a list of URL lines, and the
    text before it is longer than the leftovers after it. That line and
    everything after it are removed from the text.

    Rule 2 (leading): otherwise a "Source: <url>" / "URL: <url>" line within
    the first 5 lines is the URL; the text is kept unchanged.

    Example::

        "Body of the article.\\n\\n,https://ex.com/a.html\\n\\nShare\\nCart"
        -> ("Body of the article.", "https://ex.com/a.html")

    Without such a line nothing is dropped.
    """
    stripped, trailing_url = _split_trailing_url(text)
    if trailing_url:
        return stripped, trailing_url
    return text, _leading_url(text)


def _split_trailing_url(text: str) -> tuple[str, str | None]:
    """Apply rule 1 of `_split_source_url`; return the text unchanged and None when it does not match."""
    lines = text.split("\n")
    line_starts = []
    pos = 0
    for line in lines:
        line_starts.append(pos)
        pos += len(line) + 1
    window_start_char = len(text) - _TAIL_CHARS
    for i in range(len(lines) - 1, max(len(lines) - 1 - _TAIL_LINES, -1), -1):
        if line_starts[i] < window_start_char:
            break
        url = _url_only(lines[i])
        if url is None:
            if len(lines[i].strip()) >= _BOILERPLATE_MAX_CHARS:
                break  # a long line is real content: no URL line above it can be trailing leftovers
            continue
        before = "\n".join(lines[:i]).rstrip()
        after = "\n".join(lines[i + 1 :]).strip()
        previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
        if len(before) <= len(after) or _url_only(previous):
            # Dropping more than we keep would gut a short note; a URL after a URL ends a link list.
            break
        return before, url
    return text, None


def _leading_url(text: str) -> str | None:
    """Apply rule 2 of `_split_source_url`: a labelled URL within the first lines."""
    for line in text.split("\n")[:_HEAD_LINES]:
        match = _LABELLED_URL_LINE.match(line)
        if match:
            return match.group(1).rstrip(".,;")
    return None


def _url_only(line: str) -> str | None:
    """The URL if `line` holds nothing but one URL (plus stray punctuation or a label), else None."""
    match = _URL_ONLY_LINE.match(line)
    return match.group(1).rstrip(".,;") if match else None


def _first_line_title(text: str) -> str | None:
    """The first non-empty line, when short enough to be a title."""
    for line in text.split("\n"):
        line = line.strip()
        if line:
            return line if len(line) <= _MAX_TITLE_CHARS else None
    return None


def _markdown_title(text: str) -> str | None:
    """Title of a markdown document: front-matter `title:`, else the first '# ' heading outside code fences."""
    front = re.match(r"---\n(.*?)\n---(?:\n|$)", text, re.DOTALL)
    if front:
        title = re.search(r"^title\s*:\s*(.+)$", front.group(1), re.MULTILINE)
        if title and title.group(1).strip(" \"'"):
            return title.group(1).strip().strip("\"'")
    in_fence = False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        match = None if in_fence else re.match(r"^ {0,3}#\s+(.+?)(?:\s+#+)?\s*$", line)
        if match and len(match.group(1)) <= _MAX_TITLE_CHARS:
            return match.group(1)
    return None


# --------------------------------------------------------------------------- HTML


def _load_html(path: Path, html: str) -> LoadedDocument:
    """Extract the main text of an HTML page, with title and canonical URL."""
    soup = _parse_html(html)
    title = _html_title(soup)
    url = _html_url(soup)
    html, soup, tables = _html_with_table_placeholders(html, soup)
    text = _normalise_text(_with_html_tables(_html_main_text(html, soup), tables))
    if not text:
        raise EmptyDocumentError(str(path), "no readable text in HTML page")
    return LoadedDocument(text=text, title=title or path.stem, url=url)


def _parse_html(html: str):
    """Parse HTML with BeautifulSoup, using lxml when available."""
    from bs4 import BeautifulSoup

    try:
        return BeautifulSoup(html, "lxml")
    except Exception:  # bs4.FeatureNotFound when lxml is missing
        return BeautifulSoup(html, "html.parser")


def _html_title(soup) -> str | None:
    """Title from <title>, else og:title, else the first <h1>."""
    candidates = [
        soup.title.get_text(" ", strip=True) if soup.title else None,
        _meta_content(soup, "og:title"),
        soup.h1.get_text(" ", strip=True) if soup.h1 else None,
    ]
    for candidate in candidates:
        if candidate and candidate.strip():
            return re.sub(r"\s+", " ", candidate).strip()[:_MAX_TITLE_CHARS]
    return None


def _html_url(soup) -> str | None:
    """Source URL from <link rel=canonical>, else og:url; only absolute http(s) URLs count."""
    for link in soup.find_all("link", href=True):
        rel = link.get("rel") or []
        rels = rel if isinstance(rel, list) else str(rel).split()
        if "canonical" in (r.lower() for r in rels) and _is_http_url(link["href"]):
            return link["href"].strip()
    og_url = _meta_content(soup, "og:url")
    return og_url.strip() if og_url and _is_http_url(og_url) else None


def _meta_content(soup, prop: str) -> str | None:
    """Content of a <meta property=...> (or name=...) tag."""
    tag = soup.find("meta", attrs={"property": prop}) or soup.find("meta", attrs={"name": prop})
    content = tag.get("content") if tag else None
    return content if isinstance(content, str) else None


def _is_http_url(value: str) -> bool:
    """True for absolute http(s) URLs."""
    return bool(re.match(r"^\s*https?://\S+\s*$", value, re.IGNORECASE))


def _html_main_text(html: str, soup) -> str:
    """Main content via trafilatura; BeautifulSoup with junk removed when trafilatura finds nothing."""
    text = None
    try:
        import trafilatura

        text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
    except Exception:  # trafilatura chokes on some malformed pages; the fallback still works
        text = None
    if text and text.strip():
        return text
    return _html_fallback_text(soup)


def _html_fallback_text(soup) -> str:
    """Visible text of the page minus scripts, styles, navigation, footers, forms and banners."""
    for tag in soup.find_all(_HTML_JUNK_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": ["navigation", "banner", "contentinfo", "complementary"]}):
        tag.decompose()
    for tag in soup.find_all(_has_junk_attr):
        tag.decompose()
    body = soup.body or soup
    return body.get_text("\n", strip=True)


def _has_junk_attr(tag) -> bool:
    """True for elements whose id/class mark them as cookie banners, menus, share bars and the like."""
    if tag.name in ("html", "body", "main", "article") or tag.attrs is None:
        return False
    classes = tag.get("class") or []
    names = " ".join([tag.get("id") or "", *(classes if isinstance(classes, list) else [str(classes)])])
    return bool(names.strip()) and bool(_HTML_JUNK_ATTR.search(names.lower()))


# --------------------------------------------------------------------------- PDF


def _load_pdf(path: Path, data: bytes, ocr=None) -> LoadedDocument:
    """Extract PDF text page by page, recording each page's span in the joined text."""
    if b"%PDF-" not in data[:1024]:
        raise DocumentError(str(path), "corrupt PDF: not a PDF file (no %PDF header)")
    reader = _open_pdf(path, data)
    try:
        n_pages = len(reader.pages)
    except Exception as exc:  # pypdf raises many error types for broken page trees
        raise DocumentError(str(path), f"corrupt PDF: {_short_cause(exc)}") from None
    if n_pages == 0:
        raise EmptyDocumentError(str(path), "PDF has no pages")
    page_texts, failures = _pdf_page_texts(reader, n_pages)
    if len(failures) == n_pages:
        raise DocumentError(str(path), f"corrupt PDF: no page could be read ({failures[0]})")
    page_texts = _with_pdf_tables(reader, data, page_texts)
    page_texts, ocr_pages, notes = _with_pdf_ocr(data, page_texts, ocr)
    text, pages = _join_pages(page_texts)
    if not text:
        raise EmptyDocumentError(str(path), "; ".join(notes) if notes else _SCANNED_PDF_REASON)
    notes = [n for n in notes if n != _NOTHING_FOUND_BY_OCR]  # blank pages in a document with text: no news
    return LoadedDocument(text=text, title=_pdf_title(reader) or path.stem, url=None, pages=pages,
                          ocr_pages=frozenset(ocr_pages), notes=tuple(notes))


def _open_pdf(path: Path, data: bytes):
    """Open a PDF with pypdf, decrypting with the empty password when needed."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:  # PdfReadError, ValueError, KeyError, RecursionError, ...
        raise DocumentError(str(path), f"corrupt PDF: {_short_cause(exc)}") from None
    if reader.is_encrypted:
        try:
            decrypted = reader.decrypt("")
        except Exception as exc:  # e.g. DependencyError: AES needs the cryptography package
            raise DocumentError(str(path), f"encrypted PDF: {_short_cause(exc)}") from None
        if not decrypted:
            raise DocumentError(str(path), "encrypted PDF: needs a password (save an unprotected copy)")
    return reader


def _pdf_page_texts(reader, n_pages: int) -> tuple[list[str], list[str]]:
    """Normalised text of every page (empty for unreadable pages) and the causes of page failures."""
    texts: list[str] = []
    failures: list[str] = []
    for index in range(n_pages):
        try:
            raw = reader.pages[index].extract_text() or ""
        except Exception as exc:  # one broken page should not cost the rest of the document
            raw = ""
            failures.append(_short_cause(exc))
        texts.append(_normalise_text(raw))
    return texts, failures


def _join_pages(page_texts: list[str]) -> tuple[str, tuple[tuple[int, int, int], ...]]:
    """Join non-empty page texts with blank lines, returning the text and (page, start, end) spans."""
    parts: list[str] = []
    spans: list[tuple[int, int, int]] = []
    pos = 0
    for number, page_text in enumerate(page_texts, start=1):
        if not page_text:
            continue
        if parts:
            parts.append("\n\n")
            pos += 2
        spans.append((number, pos, pos + len(page_text)))
        parts.append(page_text)
        pos += len(page_text)
    return "".join(parts), tuple(spans)


def _pdf_title(reader) -> str | None:
    """The title stored in the PDF metadata, minus the 'Microsoft Word - ' prefix some exporters add."""
    try:
        metadata = reader.metadata
        title = metadata.title if metadata else None
    except Exception:  # broken metadata must not cost us the text
        return None
    if not isinstance(title, str):
        return None
    title = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", _normalise_text(title)).strip()
    return title[:_MAX_TITLE_CHARS] or None


def _short_cause(exc: BaseException) -> str:
    """A one-line description of a parser exception for the ingest summary."""
    message = str(exc).strip().split("\n")[0] or type(exc).__name__
    return message[:120]


# --------------------------------------------------------------------------- DOCX


def _load_docx(path: Path, data: bytes) -> LoadedDocument:
    """Extract paragraphs and table cells of a .docx in document order."""
    document = _open_docx(path, data)
    try:
        blocks, heading = _docx_blocks(document)
        core_title = (document.core_properties.title or "").strip()
    except Exception as exc:  # malformed XML inside an otherwise valid zip
        raise DocumentError(str(path), f"not a valid .docx file ({_short_cause(exc)})") from None
    text = _normalise_text("\n\n".join(blocks))
    if not text:
        raise EmptyDocumentError(str(path), "no text in document")
    return LoadedDocument(text=text, title=core_title or heading or path.stem, url=None)


def _open_docx(path: Path, data: bytes):
    """Open a .docx with python-docx, explaining the usual ways a file is not one."""
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        # OLE container: an old binary .doc renamed, or a password-protected document.
        raise DocumentError(str(path), "not a valid .docx file (old .doc or password-protected: save as .docx)")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DocumentError(str(path), "not a valid .docx file")
    check_unzipped_size(path, data)
    import docx

    try:
        return docx.Document(io.BytesIO(data))
    except Exception as exc:  # PackageNotFoundError, KeyError, BadZipFile, XML errors
        raise DocumentError(str(path), f"not a valid .docx file ({_short_cause(exc)})") from None


_MAX_UNZIPPED_BYTES = 256 * 2**20  # a text-only .docx unzips to a few times its size; more is a zip bomb


def check_unzipped_size(path: Path, data: bytes, limit: int = _MAX_UNZIPPED_BYTES) -> None:
    """Refuse a zip-based document whose members would unzip past `limit`, before any is unzipped.

    The sizes come from the zip's central directory; a member that lies about
    its size fails zipfile's own length check when read, so it cannot sneak past.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentError(str(path), f"not a valid .docx file ({_short_cause(exc)})") from None
    if total > limit:
        raise DocumentError(str(path), f"unzips to {_format_size(total)}, over the {_format_size(limit)} limit "
                                       "for documents (a zip bomb?)")


def _docx_blocks(document) -> tuple[list[str], str | None]:
    """Text blocks (paragraphs, one block per table) in order, and the first Title/Heading paragraph."""
    from docx.table import Table

    blocks: list[str] = []
    heading: str | None = None
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            block = _docx_table_markdown(item)
        else:
            block = item.text.strip()
            style = (item.style.name if item.style is not None else "") or ""
            if block and heading is None and (style == "Title" or style.startswith("Heading")):
                heading = block[:_MAX_TITLE_CHARS]
        if block:
            blocks.append(block)
    return blocks, heading


def _docx_table_text(table) -> str:
    """One line per table row, cells separated by ' | ', merged cells counted once."""
    lines = []
    for row in table.rows:
        seen: set[int] = set()
        cells = []
        for cell in row.cells:
            # A merged cell appears once per grid column it spans; all share the same XML element.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cell_text = " ".join(cell.text.split())
            if cell_text:
                cells.append(cell_text)
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _docx_table_markdown(table) -> str:
    """A table as a Markdown table (see `rag.ingest.tables`)."""
    from rag.ingest.tables import docx_table_markdown

    return docx_table_markdown(table)


# --------------------------------------------------------------------------- HTML tables


def _html_with_table_placeholders(html: str, soup):
    """Swap data tables for placeholders before text extraction; returns (html, soup, placeholder -> table)."""
    from rag.ingest.tables import replace_html_tables

    if soup.find("table") is None:
        return html, soup, {}
    working = _parse_html(html)  # the extractors read this copy; title and URL came from the original
    tables = replace_html_tables(working)
    return (str(working), working, tables) if tables else (html, soup, {})


def _with_html_tables(text: str, tables: dict[str, str]) -> str:
    from rag.ingest.tables import restore_placeholders

    return restore_placeholders(text, tables) if tables else text


# --------------------------------------------------------------------------- PDF tables and OCR


def _with_pdf_tables(reader, data: bytes, page_texts: list[str]) -> list[str]:
    """Page texts with ruled tables as Markdown, for the pages whose drawing suggests a table."""
    from rag.ingest.tables import (
        pdf_page_may_have_table,
        pdf_page_text_with_tables,
        pdf_tables_available,
    )

    if not pdf_tables_available():
        return page_texts
    candidates = []
    for index, page_text in enumerate(page_texts):
        try:
            if page_text and pdf_page_may_have_table(reader.pages[index]):
                candidates.append(index)
        except Exception:  # a broken page tree here only costs the table layout
            continue
    if not candidates:
        return page_texts
    try:
        found = pdf_page_text_with_tables(data, candidates)
    except Exception:  # pdfplumber failing on a file pypdf reads: keep pypdf's text
        return page_texts
    return [_normalise_text(found[i]) if i in found else t for i, t in enumerate(page_texts)]


def _with_pdf_ocr(data: bytes, page_texts: list[str], ocr) -> tuple[list[str], list[int], list[str]]:
    """OCR the pages with no (or almost no) text layer; returns (texts, OCR'd page numbers, notes)."""
    from rag.ingest.ocr import (
        OCR_EXTRA_HINT,
        OcrUnavailable,
        ocr_available,
        ocr_image,
        render_pdf_pages,
    )

    enabled, dpi, min_chars = _ocr_options(ocr)
    scanned = [i for i, t in enumerate(page_texts) if len("".join(t.split())) < min_chars]
    if not scanned:
        return page_texts, [], []
    numbers = ", ".join(str(i + 1) for i in scanned)
    label = f"page{'s' if len(scanned) > 1 else ''} {numbers}"
    if not enabled:
        return page_texts, [], [f"{label}: no text layer, OCR turned off (RAG_OCR__ENABLED)"]
    if not ocr_available():
        return page_texts, [], [f"{label}: no text layer (scanned?), skipped: OCR is not installed ({OCR_EXTRA_HINT})"]
    texts = list(page_texts)
    done: list[int] = []
    try:
        for index, image in render_pdf_pages(data, scanned, dpi=dpi):
            read = _normalise_text(ocr_image(image))
            if len("".join(read.split())) > len("".join(texts[index].split())):
                texts[index] = read
                done.append(index + 1)
    except OcrUnavailable as exc:
        return page_texts, [], [f"{label}: skipped: {exc}"]
    except Exception as exc:  # a page the renderer cannot draw: keep what the text layer gave
        return texts, done, [f"{label}: OCR failed ({_short_cause(exc)})"]
    return texts, done, [_NOTHING_FOUND_BY_OCR] if any(not texts[i] for i in scanned) else []


_NOTHING_FOUND_BY_OCR = "no text found, even by OCR"



def _ocr_options(ocr) -> tuple[bool, int, int]:
    """(enabled, dpi, min_chars) from `OcrSettings` or its defaults."""
    if ocr is None:
        return True, 150, 20
    return bool(ocr.enabled), int(ocr.dpi), int(ocr.min_chars)


# --------------------------------------------------------------------------- images


def _load_image(path: Path, data: bytes, ocr) -> LoadedDocument:
    """Read the text of a .png/.jpg image by OCR."""
    from rag.ingest.ocr import OCR_EXTRA_HINT, ocr_available, ocr_image

    enabled, _dpi, _min = _ocr_options(ocr)
    if not enabled:
        raise EmptyDocumentError(str(path), "image: OCR is turned off (RAG_OCR__ENABLED)")
    if not ocr_available():
        raise UnsupportedFileError(str(path), f"image: reading its text needs OCR, which is not installed ({OCR_EXTRA_HINT})")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            text = _normalise_text(ocr_image(image))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise DocumentError(str(path), f"not a readable image ({_short_cause(exc)})") from None
    if not text:
        raise EmptyDocumentError(str(path), "no text found in image (OCR)")
    return LoadedDocument(text=text, title=path.stem, url=None, ocr=True)
