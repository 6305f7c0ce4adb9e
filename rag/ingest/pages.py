"""A PDF page as a picture, with a quoted passage highlighted on it (what the UI shows for a citation).

The quote is found in pdfium's own text of the page, compared letters and digits
only (case-folded, NFKC): the stored passage comes from another extractor (pypdf)
whose spaces, line breaks and hyphenation differ from pdfium's (`inter-` / `national`
is `inter\\x02national` to pdfium). When the whole quote is not on the page (it
runs onto the next one, or a running header sits in the middle of it), the longest
run of its first words is highlighted, else of its last words.

Only a document of the collection is rendered, and only while the file is the one
that was ingested (its SHA-256 matches the stored content hash): the caller names
a stored chunk's source, never a path a user typed.

Example::

    renderer = PageRenderer()
    image = renderer.render("/docs/manual.pdf", 2, "the quoted sentence", known={"/docs/manual.pdf": digest})
    image.png        # PNG bytes of page 2, the sentence under a yellow highlight
    image.boxes      # [(left, bottom, right, top), ...] in PDF points
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rag.core.errors import DocumentError, UnknownSourceError
from rag.ingest.pdfium_lock import PDFIUM_LOCK

PAGE_DPI = 130  # sharp enough to read body text at the panel's width, small enough to send as a data URL
MAX_WIDTH_PX = 1100  # a wide (landscape, A3) page is scaled down to this
MAX_HEIGHT_PX = 1600
CACHED_PAGES = 32  # rendered pages kept (about 100 KB each)
PNG_COLOURS = 64
MIN_RUN_CHARS = 12  # a shorter run of the quote's words is too likely to match somewhere else
HIGHLIGHT_FILL = (255, 224, 80)  # multiplied into the page: white turns yellow, the text stays black
HIGHLIGHT_EDGE = (230, 140, 0)
PAD_PT = 1.5  # room around the glyph boxes, in PDF points

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PageImage:
    """One rendered page: `boxes` in PDF points (left, bottom, right, top; origin bottom-left), `pixel_boxes`
    the same rectangles in the PNG (left, top, right, bottom), like `content`. `match`: "quote" (all of it),
    "part" (a run of its words) or "" (not found on this page: the page is shown without a highlight)."""

    png: bytes
    page: int  # 1-based
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    pixel_boxes: tuple[tuple[int, int, int, int], ...] = ()
    match: str = ""
    content: tuple[int, int, int, int] = (0, 0, 0, 0)  # what is not margin, in the PNG: the UI zooms to its width


def normalise(text: str) -> tuple[str, list[int]]:
    """`text` as case-folded letters and digits only, and for each kept character its index in `text`."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        for c in unicodedata.normalize("NFKC", ch).casefold():
            if c.isalnum():
                out.append(c)
                where.append(i)
    return "".join(out), where


def find_quote(page_text: str, quote: str) -> tuple[tuple[int, int], str]:
    """(first, last + 1) indices into `page_text` of `quote`, and "quote" / "part" / "" as in `PageImage.match`.

    Whitespace, punctuation, hyphenation and case do not matter; when the whole quote is not there,
    the longest run of its first words (at least `MIN_RUN_CHARS` letters), else of its last words.
    """
    text, where = normalise(page_text)
    words = quote.split()
    if not text or not words:
        return (0, 0), ""
    whole = normalise(quote)[0]
    at = text.find(whole) if whole else -1
    if at >= 0:
        return (where[at], where[at + len(whole) - 1] + 1), "quote"
    for n in range(len(words) - 1, 0, -1):
        for run in (" ".join(words[:n]), " ".join(words[-n:])):
            key = normalise(run)[0]
            if len(key) < MIN_RUN_CHARS:
                continue
            at = text.find(key)
            if at >= 0:
                return (where[at], where[at + len(key) - 1] + 1), "part"
    return (0, 0), ""


def render_page(data: bytes, page: int, quote: str, *, name: str = "PDF", dpi: int = PAGE_DPI,
                max_width: int = MAX_WIDTH_PX, max_height: int = MAX_HEIGHT_PX) -> PageImage:
    """Page `page` (1-based) of the PDF in `data` as a PNG, the text of `quote` highlighted where found.

    Raises:
        DocumentError: the PDF cannot be opened, or has no such page (`name` says which file in the message).
    """
    import pypdfium2 as pdfium

    with PDFIUM_LOCK:  # shared with the PDF loader and OCR: pdfium is not thread-safe
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise DocumentError(name, f"cannot open the PDF to show its page ({exc})") from None
        try:
            if not 1 <= page <= len(pdf):
                raise DocumentError(name, f"has no page {page} (it has {len(pdf)}): re-ingest it")
            pdf_page = pdf[page - 1]
            try:
                width_pt, height_pt = pdf_page.get_size()
                scale = min(dpi / 72, max_width / max(width_pt, 1), max_height / max(height_pt, 1))
                boxes, match = _quote_boxes(pdf_page, quote)
                image = pdf_page.render(scale=scale).to_pil().convert("RGB")
                pixels = tuple(_to_pixels(pdf_page, image.size, box) for box in boxes)
            finally:
                pdf_page.close()
        finally:
            pdf.close()
    return _highlighted(image, page, boxes, pixels, match)


def _highlighted(image, page: int, boxes: tuple[Box, ...], pixels, match: str) -> PageImage:
    """The rendered page with the highlight drawn, as a PNG."""
    from PIL import Image, ImageChops, ImageDraw

    content = _content_box(image)
    if pixels:
        marker = Image.new("RGB", image.size, (255, 255, 255))
        draw = ImageDraw.Draw(marker)
        for box in pixels:
            draw.rectangle(box, fill=HIGHLIGHT_FILL)
        image = ImageChops.multiply(image, marker)
        draw = ImageDraw.Draw(image)
        for left, top, right, bottom in pixels:
            draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), outline=HIGHLIGHT_EDGE, width=1)
    out = io.BytesIO()
    # 64 colours: a text page's anti-aliasing needs no more, and the PNG is about a third of the size
    image.quantize(colors=PNG_COLOURS, method=Image.Quantize.FASTOCTREE).save(out, format="PNG")
    return PageImage(out.getvalue(), page, image.size[0], image.size[1], boxes, pixels, match, content)


def _content_box(image, margin: int = 12) -> tuple[int, int, int, int]:
    """The smallest rectangle holding everything darker than near-white (the whole page when blank)."""
    from PIL import ImageOps

    ink = ImageOps.invert(image.convert("L")).point(lambda v: 255 if v > 24 else 0).getbbox()
    if not ink:
        return 0, 0, image.size[0], image.size[1]
    left, top, right, bottom = ink
    return (max(0, left - margin), max(0, top - margin), min(image.size[0], right + margin),
            min(image.size[1], bottom + margin))


def _quote_boxes(pdf_page, quote: str) -> tuple[tuple[Box, ...], str]:
    """The rectangles (one per line) pdfium gives for the characters of `quote` on the page."""
    import pypdfium2.raw as raw

    if not quote.strip():
        return (), ""
    textpage = pdf_page.get_textpage()
    try:
        # one character per index (get_text_range may drop or add some); pdfium marks a hyphen at a line end as \x02
        chars = "".join(chr(raw.FPDFText_GetUnicode(textpage.raw, i) or 32) for i in range(textpage.count_chars()))
        (first, end), match = find_quote(chars, quote)
        if not match:
            return (), ""
        rects = [textpage.get_rect(i) for i in range(textpage.count_rects(first, end - first))]
    finally:
        textpage.close()
    boxes = tuple((left - PAD_PT, bottom - PAD_PT, right + PAD_PT, top + PAD_PT)
                  for left, bottom, right, top in merge_lines(rects))
    return boxes, match if boxes else ""


def merge_lines(rects) -> list[Box]:
    """pdfium's rectangles (one per run of one font) joined into one per line, in reading order: rectangles
    sharing a third of their height (a comma dips below the line) and less than two line heights apart."""
    out: list[list[float]] = []
    for left, bottom, right, top in rects:
        if right <= left or top <= bottom:
            continue
        last = out[-1] if out else None
        if last is not None:
            overlap = min(top, last[3]) - max(bottom, last[1])
            height = min(top - bottom, last[3] - last[1])
            gap = max(left - last[2], last[0] - right)
            if overlap > 0.3 * height and gap < 2 * max(top - bottom, last[3] - last[1]):
                last[:] = [min(left, last[0]), min(bottom, last[1]), max(right, last[2]), max(top, last[3])]
                continue
        out.append([left, bottom, right, top])
    return [tuple(box) for box in out]


def _to_pixels(pdf_page, size: tuple[int, int], box: Box) -> tuple[int, int, int, int]:
    """A rectangle in page points to (left, top, right, bottom) in the rendered image (pdfium applies the
    page's crop box and rotation)."""
    import pypdfium2.raw as raw

    left, bottom, right, top = box
    xs, ys = [], []
    for x, y in ((left, bottom), (right, top)):
        dx, dy = ctypes.c_int(), ctypes.c_int()
        raw.FPDF_PageToDevice(pdf_page.raw, 0, 0, size[0], size[1], 0, x, y, ctypes.byref(dx), ctypes.byref(dy))
        xs.append(dx.value)
        ys.append(dy.value)
    return min(xs), min(ys), max(xs), max(ys)


class PageRenderer:
    """Renders pages of a collection's PDFs, keeping the last `max_pages` in memory (least recently used out)."""

    def __init__(self, max_pages: int = CACHED_PAGES, *, dpi: int = PAGE_DPI, max_width: int = MAX_WIDTH_PX):
        self.max_pages = max_pages
        self.dpi = dpi
        self.max_width = max_width
        self._pages: OrderedDict[tuple, PageImage] = OrderedDict()
        self._digests: dict[str, tuple[tuple, str]] = {}  # source -> (stat signature, SHA-256 of the file)
        self._lock = threading.Lock()

    def render(self, source: str, page: int, quote: str, *, known: Mapping[str, str],
               next_page: bool = True) -> PageImage:
        """Page `page` of the document `source`, with `quote` highlighted.

        Args:
            source: a stored chunk's source (the file's absolute path).
            page: 1-based page number.
            quote: the text to highlight.
            known: the collection's documents, source -> content hash (`SourceInfo.content_hash`).
            next_page: when the quote is not on `page` but on the next one (a passage running over a page
                break), show that one.

        Raises:
            UnknownSourceError: `source` is not a document of the collection.
            DocumentError: not a PDF, or the file is missing or no longer the one that was ingested.
        """
        if source not in known:
            raise UnknownSourceError(f"{source!r} is not a document of this collection: only its documents' "
                                     "pages can be shown")
        path = Path(source)
        if path.suffix.lower() != ".pdf" or not path.is_absolute():
            raise DocumentError(source, "is not a PDF file, so it has no pages to show")
        digest, data = self._verified(path, known[source])
        read = _Once(path, digest, data)
        image = self._cached(source, digest, page, quote, read)
        if next_page and quote.strip() and not image.match:
            try:
                following = self._cached(source, digest, page + 1, quote, read)
            except DocumentError:  # the last page
                return image
            if following.match:
                return following
        return image

    def _verified(self, path: Path, expected: str) -> tuple[str, bytes | None]:
        """The file's SHA-256, checked against the stored hash, and its bytes if they had to be read."""
        try:
            info = path.stat()
        except FileNotFoundError:
            raise DocumentError(str(path), "the file is no longer there: restore it, or delete the document "
                                           "and ingest it again from where it is now") from None
        except OSError as exc:
            raise DocumentError(str(path), f"cannot read the file ({exc.strerror or exc})") from None
        signature = (info.st_mtime_ns, info.st_size, info.st_ino)
        with self._lock:
            seen = self._digests.get(str(path))
        data = None
        if seen is not None and seen[0] == signature:
            digest = seen[1]
        else:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise DocumentError(str(path), f"cannot read the file ({exc.strerror or exc})") from None
            digest = hashlib.sha256(data).hexdigest()  # as rag.ingest.pipeline.content_hash
            with self._lock:
                self._digests[str(path)] = (signature, digest)
        if digest != expected:
            raise DocumentError(str(path), "the file has changed since it was ingested, so its pages may not "
                                           "match the passage: ingest it again (`rag ingest`, or upload it)")
        return digest, data

    def _cached(self, source: str, digest: str, page: int, quote: str, read: "_Once") -> PageImage:
        key = (source, digest, page, normalise(quote)[0], self.dpi, self.max_width)
        with self._lock:
            hit = self._pages.get(key)
            if hit is not None:
                self._pages.move_to_end(key)
                return hit
        image = render_page(read(), page, quote, name=source, dpi=self.dpi, max_width=self.max_width)
        with self._lock:
            self._pages[key] = image
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)
        return image


class _Once:
    """The file's bytes, read at most once per request (and not at all when every page asked for is cached)."""

    def __init__(self, path: Path, digest: str, data: bytes | None):
        self.path, self.digest, self.data = path, digest, data

    def __call__(self) -> bytes:
        if self.data is None:
            try:
                data = self.path.read_bytes()
            except OSError as exc:
                raise DocumentError(str(self.path), f"cannot read the file ({exc.strerror or exc})") from None
            if hashlib.sha256(data).hexdigest() != self.digest:  # changed since the check a moment ago
                raise DocumentError(str(self.path), "the file changed while its page was being shown: try again")
            self.data = data
        return self.data
