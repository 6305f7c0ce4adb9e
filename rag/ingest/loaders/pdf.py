"""PDFs: page text as a reader sees it, ruled tables as Markdown, OCR of pages without text, outline as sections.

Page text comes from pdfium (pypdfium2): its words are spaced and it marks line-end hyphens, and it
reads a page 12-18 times faster than pypdf (`bench/pdf_extract.py`, bench/RESULTS.md). pypdf reads
the pages pdfium fails on or finds no text on, and the whole file where pdfium cannot open it (its
errors say what is wrong with a corrupt file) or is not installed. Tables set without a grid
(most of those in typeset manuals, and those ruled between rows only) are read from where pdfium
places the words and the rules drawn between rows and columns (`rag.ingest.tables.unruled_tables`);
on pages whose drawn rules form a grid pdfplumber reads the tables too, its cells read by pdfium,
and the page keeps the better reading (`rag.ingest.tables.better_table_reading`). Then `rag.ingest.layout` makes the pages read as a reader sees them: ligatures and quotes
normalised, running headers, footers and page numbers removed, table-of-contents and index pages
left out (a note says which), line-end hyphenation joined. The outline (bookmarks) gives each
heading's place, so `LoadedDocument.sections` holds the heading path at each offset.

Encrypted PDFs open with the empty password or are refused with a reason.
pypdf, pypdfium2, and through `rag.ingest.tables` and `rag.ingest.ocr` pdfplumber and the
OCR engine, are imported inside the functions that need them.
"""

from __future__ import annotations

import ctypes
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError
from rag.ingest.layout import (
    clean_pages,
    column_bands,
    column_order,
    heading_key,
    listing_kind,
    place_headings,
    section_paths,
)
from rag.ingest.loaders.base import (
    MAX_TITLE_CHARS,
    LoadedDocument,
    ocr_options,
    short_cause,
)
from rag.ingest.loaders.encoding import normalise_text

_SCANNED_PDF_REASON = "no extractable text (scanned PDF? run OCR first)"
_NOTHING_FOUND_BY_OCR = "no text found, even by OCR"
_COLUMN_MIN_LINES = 10  # a page with fewer lines is not checked for two columns
_TABLE_MIN_LINES = 3  # nor, with fewer than this, for tables set without rules


def load_pdf(path: Path, data: bytes, ocr=None) -> LoadedDocument:
    """Extract PDF text page by page, recording each page's span in the joined text and the sections."""
    if b"%PDF-" not in data[:1024]:
        raise DocumentError(str(path), "corrupt PDF: not a PDF file (no %PDF header)")
    extracted = _pdfium_extract(path, data)
    if extracted is None:  # pdfium missing, or it cannot open the file: pypdf says why (or reads it)
        extracted = _pypdf_extract(path, data)
    n_pages = len(extracted.texts)
    if n_pages == 0:
        raise EmptyDocumentError(str(path), "PDF has no pages")
    if len(extracted.failures) == n_pages:
        raise DocumentError(str(path), f"corrupt PDF: no page could be read ({extracted.failures[0]})")
    # blank pages (a book's empty versos) among pages with text cost no OCR; a file of blank pages only is
    # read as a scan would be, so that the user is told what OCR made of it
    blank = extracted.blank if any(t.strip() for t in extracted.texts) else frozenset()
    page_texts, ocr_pages, notes = _with_pdf_ocr(data, extracted.texts, ocr, skip=blank)
    cleaned = clean_pages(page_texts, [title for _, title, _ in extracted.outline])
    text, pages = _join_pages([normalise_text(t) for t in cleaned.texts])
    if not text:
        raise EmptyDocumentError(str(path), "; ".join(notes) if notes else _SCANNED_PDF_REASON)
    notes = [n for n in notes if n != _NOTHING_FOUND_BY_OCR]  # blank pages in a document with text: no news
    notes += cleaned.notes()
    sections = section_paths(place_headings(extracted.outline, text, pages)) if extracted.outline else ()
    return LoadedDocument(text=text, title=_clean_title(extracted.title) or path.stem, url=None, pages=pages,
                          ocr_pages=frozenset(ocr_pages), notes=tuple(notes), sections=sections)


@dataclass
class _Extracted:
    texts: list[str]  # raw page texts, one per page (layout cleanup still to do)
    failures: list[str] = field(default_factory=list)  # why pages could not be read
    outline: list[tuple[int, str, int]] = field(default_factory=list)  # (level, title, 0-based page index)
    title: str | None = None  # from the document information
    blank: frozenset[int] = frozenset()  # 0-based indices of pages with no content at all


def _open_pdf(path: Path, data: bytes, *, quiet: bool = False):
    """Open a PDF with pypdf, decrypting with the empty password when needed; `quiet`: None instead of raising."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:  # PdfReadError, ValueError, KeyError, RecursionError, ...
        if quiet:
            return None
        raise DocumentError(str(path), f"corrupt PDF: {short_cause(exc)}") from None
    if reader.is_encrypted:
        try:
            decrypted = reader.decrypt("")
        except Exception as exc:  # e.g. DependencyError: AES needs the cryptography package
            if quiet:
                return None
            raise DocumentError(str(path), f"encrypted PDF: {short_cause(exc)}") from None
        if not decrypted:
            if quiet:
                return None
            raise DocumentError(str(path), "encrypted PDF: needs a password (save an unprotected copy)")
    return reader


def _pdfium_extract(path: Path, data: bytes) -> _Extracted | None:
    """Page texts by pdfium, tables on ruled pages, the outline and title; None where pdfium cannot open the file.

    A page pdfium fails on or finds no text on is read by pypdf, opened only then.
    """
    from importlib.util import find_spec

    if find_spec("pypdfium2") is None:
        return None
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    from rag.ingest.pdfium_lock import PDFIUM_LOCK

    with PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if getattr(exc, "err_code", None) == raw.FPDF_ERR_PASSWORD:
                raise DocumentError(str(path), "encrypted PDF: needs a password (save an unprotected copy)") from None
            return None
        except Exception:  # anything else pdfium says about the file: let pypdf try it
            return None
        try:
            texts: list[str] = []
            failures: list[str] = []
            ruled: list[int] = []
            pypdf: list = []  # opened on the first page that needs it; [None] when it cannot open the file
            blank: set[int] = set()
            for index in range(len(pdf)):
                broken = ""
                try:
                    text, grid = _pdfium_page(pdf, index)
                except Exception as exc:  # one broken page should not cost the rest of the document
                    text, grid, broken = "", False, short_cause(exc)
                if not text.strip() and not broken and _draws_nothing(pdf, index):
                    blank.add(index)  # a blank page (a book's empty verso): nothing for pypdf or OCR to read
                elif not text.strip():  # pdfium failed or found nothing: pypdf may still read it
                    if not pypdf:
                        pypdf.append(_open_pdf(path, data, quiet=True))
                    text, failed = _pypdf_page(pypdf[0], index) if pypdf[0] is not None else ("", broken)
                    if broken and failed:
                        failures.append(failed)
                texts.append(text)
                if grid and text.strip():
                    ruled.append(index)
            texts = _with_pdfium_tables(pdf, data, texts, ruled)
            title = _pdfium_title(pdf)
            outline = _outline(pdf) or _font_outline(pdf, title)
        finally:
            pdf.close()
    return _Extracted(texts, failures, outline, title, frozenset(blank))


def _draws_nothing(pdf, index: int) -> bool:
    """Whether page `index` has no content at all: no text, image, drawing or form object."""
    from pypdfium2 import raw

    try:
        page = pdf[index]
    except Exception:  # noqa: BLE001 -- unreadable: not known to be blank
        return False
    try:
        return raw.FPDFPage_CountObjects(page.raw) == 0
    finally:
        page.close()


def _pdfium_title(pdf) -> str | None:
    try:
        title = pdf.get_metadata_value("Title")
    except Exception:  # broken metadata must not cost us the text
        return None
    return title if isinstance(title, str) else None


def _pdfium_page(pdf, index: int) -> tuple[str, bool]:
    """(text of the page in reading order, whether pdfplumber should look for tables on it: its drawn rules
    form a grid and the words' positions gave no table. Where they gave one, pdfplumber's reading added
    nothing: on the 79 grid pages of three PDFs (`bench/pdf_extract.py`), `better_table_reading` kept the
    words' tables on 76, and 2 of the other 3 read the same table; it costs about 0.1 s a page.)"""
    from rag.ingest.tables import page_rules, rules_form_grid
    from rag.text.tables import is_table_separator

    page = pdf[index]
    try:
        rules = page_rules(_path_boxes(page))
        textpage = page.get_textpage()
        try:
            text = textpage.get_text_bounded()
            lines = text.count("\n")
            if lines >= _TABLE_MIN_LINES:
                columns = None
                if lines >= _COLUMN_MIN_LINES:  # the text runs' boxes show two columns; tables need the words'
                    boxes = [textpage.get_rect(i) for i in range(textpage.count_rects())]
                    columns = _column_text(textpage, boxes, page.get_width())
                    if columns is None and (bands := column_bands(boxes, page.get_width())):
                        columns = _banded_text(textpage, bands, *rules)
                text = columns or _with_unruled_tables(textpage, text, *rules)
        finally:
            textpage.close()
        return text, rules_form_grid(*rules) and not any(map(is_table_separator, text.splitlines()))
    finally:
        page.close()


def _column_text(textpage, boxes, width: float) -> str | None:
    """The text of a two-column page read column by column (`rag.ingest.layout.column_order`), else None."""
    order = column_order(boxes, width)
    if order is None:
        return None
    return "\n".join(" ".join(_box_text(textpage, boxes[i]) for i in line) for line in order)


def _banded_text(textpage, bands, rules=(), dividers=()) -> str:
    """The text of a page set in three columns or more (`rag.ingest.layout.column_bands`), column after column,
    each column's tables set without a grid read within it (a reference card's command / meaning pairs), so
    that no row joins pairs of neighbouring columns."""
    from rag.ingest.tables import unruled_tables

    words = _page_words(textpage)
    parts: list[str] = []
    for left, right in bands:
        mine = [w for w in words if left <= (w.left + w.right) / 2 < right]
        tables = unruled_tables(mine, [r for r in rules if left - 1 <= r[1] and r[2] <= right + 1],
                                [d for d in dividers if left < d[0] < right])
        parts += _spliced(textpage, [(t.top, t.bottom, t.markdown()) for t in tables], left, right)
    return "\n".join(p.strip("\r\n") for p in parts if p.strip())


def _spliced(textpage, regions, left: float | None = None, right: float | None = None) -> list[str]:
    """The text between `left` and `right` (the page's width by default) as pieces, top to bottom, each region
    `(top, bottom, replacement)` read as its replacement (a table's Markdown, a list's items) and the text
    around the regions as pdfium reads it (it keeps the characters within the bounds)."""
    parts: list[str] = []
    upper: float | None = None
    for top, bottom, replacement in sorted(regions, key=lambda r: -r[0]):
        parts += [textpage.get_text_bounded(left=left, right=right, top=upper, bottom=top + 0.5), replacement]
        upper = bottom - 0.5
    parts.append(textpage.get_text_bounded(left=left, right=right, top=upper))
    return parts


def _with_unruled_tables(textpage, text: str, rules=(), dividers=()) -> str:
    """The page text with its tables set without a grid of rules as Markdown (`rag.ingest.tables.unruled_tables`;
    `rules` and `dividers`: the page's horizontal and vertical rules, which may mark rows and columns), and its
    lists of terms with indented descriptions as "- term: description" items (`rag.ingest.layout.definition_lists`).

    Every page is read word by word (about 6 ms a page on 2 cores): pdfium's text runs cannot tell a table
    apart, as it joins a row's first cell and the next cell's first word into one run across the gap
    between them (Texinfo's tables: R's, gnuplot's and Octave's manuals). Table-of-contents and index
    pages (page numbers in columns) are left as they are: they are not indexed as content
    (`rag.ingest.layout.listing_kind`).
    """
    from rag.ingest.tables import unruled_tables

    if listing_kind(text.splitlines()):
        return text
    words = _page_words(textpage)
    tables = [(table.top, table.bottom, table.markdown()) for table in unruled_tables(words, rules, dividers)]
    regions = tables + [r for r in _definition_regions(words, tables)  # a list beside a table is left as it is
                        if not any(r[1] < top and bottom < r[0] for top, bottom, _ in tables)]
    if not regions:
        return text
    return "\n".join(p.strip("\r\n") for p in _spliced(textpage, regions) if p.strip())


def _definition_regions(words, taken) -> list[tuple[float, float, str]]:
    """(top, bottom, items) of the page's definition lists outside the regions `taken` (its tables)."""
    from rag.ingest.layout import box_lines, definition_lists

    free = [w for w in words if w.text.strip() and w.right > w.left and w.top > w.bottom
            and not any(bottom - 1 <= (w.bottom + w.top) / 2 <= top + 1 for top, bottom, _ in taken)]
    boxes = [(w.left, w.bottom, w.right, w.top) for w in free]
    lines, code = [], []
    for line in box_lines(range(len(boxes)), boxes):
        ws = [free[i] for i in line]
        lines.append((ws[0].left, min(w.bottom for w in ws), max(w.right for w in ws), max(w.top for w in ws),
                      " ".join(w.text for w in ws)))
        code.append(all(w.fixed for w in ws if len(w.text) > 1))
    regions = []
    edge = 2  # the page's first and last two lines may be its running header and footer (`clean_pages` decides)
    for found in definition_lists(lines[edge:-edge], code[edge:-edge]):
        chosen = lines[edge + found.first:edge + found.end]
        regions.append((max(line[3] for line in chosen), min(line[1] for line in chosen), "\n".join(found.items)))
    return regions


def _page_words(textpage):
    """The page's words (`rag.ingest.tables.Word`): characters between spaces, with their boxes.

    Boxes are pdfium's loose character boxes (the font's full height and advance), so that the
    words of a line share its top and bottom whatever their letters. A word whose glyphs are all
    as wide as each other is marked fixed-pitch (a typewriter font, as code listings are set in).
    """
    import pypdfium2.raw as raw

    from rag.ingest.tables import Word

    words: list[Word] = []
    rect = raw.FS_RECTF()
    chars: list[str] = []
    widths: list[float] = []
    box: list[float] = []

    def close() -> None:
        if chars:
            fixed = len(widths) > 1 and max(widths) - min(widths) <= 0.02 * (box[3] - box[1])
            words.append(Word(box[0], box[1], box[2], box[3], "".join(chars), fixed))
        chars.clear()
        widths.clear()

    count = raw.FPDFText_CountChars(textpage.raw)
    # one call, not one a character, where it maps them one to one (it writes the line-end hyphen mark as U+FFFE)
    text = textpage.get_text_range(0, count).replace("\ufffe", "\x02")
    if len(text) != count:
        text = "".join(chr(c) if 0 < c < 0x110000 else "\0" for c in
                        (raw.FPDFText_GetUnicode(textpage.raw, i) for i in range(count)))
    for i, char in enumerate(text):
        if char == "\0" or char.isspace() or not raw.FPDFText_GetLooseCharBox(textpage.raw, i, rect):
            close()
            continue
        left, bottom, right, top = rect.left, rect.bottom, rect.right, rect.top
        if chars and (left - box[2] > 0.3 * (top - bottom) or left < box[0] - 1):  # a gap, or the next line
            close()
        if chars:
            box = [min(box[0], left), min(box[1], bottom), max(box[2], right), max(box[3], top)]
        else:
            box = [left, bottom, right, top]
        chars.append(char)
        widths.append(right - left)
    close()
    return words


def _box_text(textpage, box) -> str:
    left, bottom, right, top = box
    return " ".join(textpage.get_text_bounded(left=left - 0.5, bottom=bottom, right=right + 0.5, top=top).split())


def _path_boxes(page):
    """Bounding boxes of the page's own drawn paths (not those inside figures, whose plots are no tables)."""
    import pypdfium2.raw as raw

    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    for i in range(raw.FPDFPage_CountObjects(page.raw)):
        obj = raw.FPDFPage_GetObject(page.raw, i)
        if raw.FPDFPageObj_GetType(obj) == raw.FPDF_PAGEOBJ_PATH and raw.FPDFPageObj_GetBounds(
                obj, left, bottom, right, top):
            yield left.value, bottom.value, right.value, top.value


def _outline(pdf) -> list[tuple[int, str, int]]:
    """(level, title, 0-based page index) of each outline entry that points at a page."""
    out: list[tuple[int, str, int]] = []
    try:
        for bookmark in pdf.get_toc():
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = bookmark.get_title() or ""
            if index is not None and index >= 0 and title.strip():
                out.append((int(bookmark.level), title, int(index)))
    except Exception:  # a broken outline costs the sections, not the text
        return out
    return out


def _font_outline(pdf, title: str | None = None) -> list[tuple[int, str, int]]:
    """For a PDF without bookmarks (a browser's print, a word processor's export): its headings as an outline,
    (level, title, 0-based page index), from the font sizes of its lines.

    A heading is a short line (at most `_HEADING_MAX_WORDS` words, some letters, not a sentence ending in a
    full stop unless numbered) set `_HEADING_SIZE` times the body text's size or larger (the size most of the
    document's characters have); the largest size is level 1, the next level 2, and so on. A line that is the
    document's title (its metadata title, or the one line set largest of all, on the first page) is no
    heading: the title is shown anyway."""
    import pypdfium2.raw as raw

    lines: list[tuple[int, str, float]] = []  # (page index, text, largest font size)
    sizes: Counter[float] = Counter()
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            try:
                chars: list[str] = []
                largest = 0.0
                for i in range(raw.FPDFText_CountChars(textpage.raw)):
                    code = raw.FPDFText_GetUnicode(textpage.raw, i)
                    char = chr(code) if 0 < code < 0x110000 else ""
                    if char in ("\n", "\r"):
                        if chars and largest:
                            lines.append((index, "".join(chars), largest))
                        chars, largest = [], 0.0
                        continue
                    chars.append(char)
                    if char.strip():
                        size = round(raw.FPDFText_GetFontSize(textpage.raw, i) * 2) / 2  # half points
                        sizes[size] += 1
                        largest = max(largest, size)
                if chars and largest:
                    lines.append((index, "".join(chars), largest))
            finally:
                textpage.close()
                page.close()
    except Exception:  # an unreadable page costs the headings, not the text
        return []
    if not sizes:
        return []
    body = sizes.most_common(1)[0][0]
    title_key = heading_key(title or "")
    found = [(at, index, " ".join(text.split()), size) for at, (index, text, size) in enumerate(lines)
             if size >= _HEADING_SIZE * body]
    titled = {at for at, _, text, _ in found if heading_key(text) == title_key}
    found = [(at, index, text, size) for at, index, text, size in found
             if _HEADING_WORD.search(text) and len(text.split()) <= _HEADING_MAX_WORDS
             and (not text.endswith(".") or _NUMBERED_HEADING.match(text)) and at not in titled]
    top = [(at, index, size) for at, index, _, size in found if size == max((s for *_, s in found), default=0)]
    if len(top) == 1 and top[0][1] == 0:  # one line the largest of all, on the first page: the document's title
        titled.add(top[0][0])
        found = [line for line in found if line[0] != top[0][0]]
    found = _without_title_block(found, lines, titled)
    levels = {size: level for level, size in enumerate(sorted({size for *_, size in found}, reverse=True), 1)}
    return [(levels[size], text, index) for _, index, text, size in found]


def _without_title_block(found: list[tuple[int, int, str, float]], lines: list[tuple[int, str, float]],
                         titled: set[int]) -> list[tuple[int, int, str, float]]:
    """`found` (line number, page index, text, size) less the title block: the large lines of the first page
    above the document's first line of running text (authors, affiliations, a date) are no headings, except
    the heading set right above that text and, right above it, each larger one that opens it in turn
    (`1 Introduction` over `1.1 Scope`). Headings of later pages stay (slides whose lines are all short)."""
    heads = {line[0] for line in found}
    first = next((at for at, (_, text, _) in enumerate(lines)
                  if at not in heads and at not in titled and len(text.split()) >= 4), len(lines))
    opening = lines[0][0] if lines else 0  # a title block is on the first page: later headings always stay
    above = [line for line in found if line[0] < first and line[1] == opening]
    kept: list[tuple[int, int, str, float]] = []
    for line in reversed(above):  # up from the running text: each kept line set larger than the one below
        if line[0] != (kept[-1][0] if kept else first) - 1 or (kept and line[3] <= kept[-1][3]):
            break
        kept.append(line)
    return [line for line in found if line not in above or line in kept]


_HEADING_SIZE = 1.15  # times the body text's font size, at least
_HEADING_MAX_WORDS = 15
_HEADING_WORD = re.compile(r"[^\W\d_]{2}")
_NUMBERED_HEADING = re.compile(r"^(?:\d+\.)+\d*\s+\S")


def _with_pdfium_tables(pdf, data: bytes, texts: list[str], ruled: list[int]) -> list[str]:
    """Page texts with the tables pdfplumber finds on the `ruled` pages as Markdown, their cells read by pdfium,
    where that reading is the better one (`better_table_reading`)."""
    from rag.ingest.tables import better_table_reading, pdf_page_text_with_tables, pdf_tables_available

    if not ruled or not pdf_tables_available():
        return texts
    import pypdfium2 as pdfium

    # pdfplumber (pdfminer) builds every page of a file before it finds the first table (~4 s for a
    # 300-page manual): it reads a copy of just the ruled pages instead
    try:
        copy = pdfium.PdfDocument.new()
        copy.import_pages(pdf, ruled)
        buf = io.BytesIO()
        copy.save(buf)
        copy.close()
        data = buf.getvalue()
    except Exception:  # pdfium cannot copy the pages: pdfplumber reads the whole file
        ruled_pages = ruled
    else:
        ruled_pages = list(range(len(ruled)))
    original = dict(zip(ruled_pages, ruled))
    open_pages: dict[int, tuple] = {}

    def text_in(index: int, bbox) -> str:
        index = original[index]
        if index not in open_pages:
            page = pdf[index]
            # the visible box as pdfium lays the page out: pdfplumber measures from its top left. (`get_cropbox`
            # falls back to a Letter page where the box is inherited from the page tree, as many PDFs have it)
            open_pages[index] = (page, page.get_textpage(), page.get_bbox())
        _, textpage, (crop_left, _, _, crop_top) = open_pages[index]
        x0, top, x1, bottom = bbox
        if x1 <= x0 or bottom <= top:
            return ""
        return textpage.get_text_bounded(left=crop_left + x0, bottom=crop_top - bottom,
                                         right=crop_left + x1, top=crop_top - top)

    try:
        found = {original[i]: text for i, text in pdf_page_text_with_tables(data, ruled_pages, text_in).items()}
        # pdfplumber's grid and the word positions (`_with_unruled_tables`) each read some tables better: the
        # page keeps the reading that keeps its words, then the one with more table cells
        chosen = {i: better_table_reading(_plain_text(pdf, i, open_pages), text, texts[i])
                  for i, text in found.items()}
    except Exception:  # pdfplumber failing on a file pdfium reads: keep the plain text
        return texts
    finally:
        for page, textpage, _ in open_pages.values():
            textpage.close()
            page.close()
    return [chosen.get(i, t) for i, t in enumerate(texts)]


def _plain_text(pdf, index: int, open_pages: dict) -> str:
    if index in open_pages:
        return open_pages[index][1].get_text_bounded()
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_bounded()
        finally:
            textpage.close()
    finally:
        page.close()


def _pypdf_page(reader, index: int) -> tuple[str, str]:
    """(pypdf's text of one page, why it failed or "")."""
    try:
        return reader.pages[index].extract_text() or "", ""
    except Exception as exc:  # one broken page should not cost the rest of the document
        return "", short_cause(exc)


def _pypdf_extract(path: Path, data: bytes) -> _Extracted:
    """Every page by pypdf, tables on pages whose content stream draws lines (without pdfium)."""
    reader = _open_pdf(path, data)
    try:
        n_pages = len(reader.pages)
    except Exception as exc:  # pypdf raises many error types for broken page trees
        raise DocumentError(str(path), f"corrupt PDF: {short_cause(exc)}") from None
    texts: list[str] = []
    failures: list[str] = []
    for index in range(n_pages):
        text, failed = _pypdf_page(reader, index)
        texts.append(text)
        if failed:
            failures.append(failed)
    return _Extracted(_with_pdf_tables(reader, data, texts), failures, title=_pypdf_title(reader))


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


def _pypdf_title(reader) -> str | None:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata else None
    except Exception:  # broken metadata must not cost us the text
        return None
    return title if isinstance(title, str) else None


def _clean_title(title: str | None) -> str | None:
    """The title stored in the PDF metadata, minus the 'Microsoft Word - ' prefix some exporters add."""
    if not title:
        return None
    title = re.sub(r"^Microsoft (Word|PowerPoint) - ", "", normalise_text(title)).strip()
    return title[:MAX_TITLE_CHARS] or None


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
    return [normalise_text(found[i]) if i in found else t for i, t in enumerate(page_texts)]


def _with_pdf_ocr(data: bytes, page_texts: list[str], ocr, skip: frozenset[int] = frozenset()
                  ) -> tuple[list[str], list[int], list[str]]:
    """OCR the pages with no (or almost no) text layer, but those in `skip` (blank pages: nothing to read);
    returns (texts, OCR'd page numbers, notes)."""
    from rag.ingest.ocr import (
        OCR_EXTRA_HINT,
        OcrUnavailable,
        ocr_available,
        ocr_image,
        render_pdf_pages,
    )

    enabled, dpi, min_chars = ocr_options(ocr)
    scanned = [i for i, t in enumerate(page_texts) if len("".join(t.split())) < min_chars and i not in skip]
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
            read = normalise_text(ocr_image(image))
            if len("".join(read.split())) > len("".join(texts[index].split())):
                texts[index] = read
                done.append(index + 1)
    except OcrUnavailable as exc:
        return page_texts, [], [f"{label}: skipped: {exc}"]
    except Exception as exc:  # a page the renderer cannot draw: keep what the text layer gave
        return texts, done, [f"{label}: OCR failed ({short_cause(exc)})"]
    return texts, done, [_NOTHING_FOUND_BY_OCR] if any(not texts[i] for i in scanned) else []
