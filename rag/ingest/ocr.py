"""Offline OCR for scanned PDF pages and images (the optional `rag[ocr]` extra).

Pages are rendered with pypdfium2 and read with RapidOCR (`rapidocr-onnxruntime`),
whose PP-OCR detection, direction and recognition ONNX models ship inside its
wheel: nothing is downloaded, ever. The engine is loaded once per process,
lazily, on the first page that needs it.

Example::

    from rag.ingest.ocr import ocr_image
    text = ocr_image(PIL.Image.open("scan.png"))
"""

from __future__ import annotations

import threading
from importlib.util import find_spec

OCR_EXTRA_HINT = "pip install 'rag[ocr]'"

_ENGINE = None
_LOCK = threading.Lock()
_LOCK_RUN = threading.Lock()  # one page at a time: onnxruntime already uses every core for one image


class OcrUnavailable(Exception):
    """The OCR extra is not installed; the message says how to install it."""


def ocr_available() -> bool:
    """Whether the OCR engine and the PDF renderer can be imported (without importing them)."""
    return find_spec("rapidocr_onnxruntime") is not None and find_spec("pypdfium2") is not None


def _engine():
    """The RapidOCR engine, built once; its models are files inside the installed package."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            if not ocr_available():
                raise OcrUnavailable(f"OCR is not installed: {OCR_EXTRA_HINT}")
            import logging

            from rapidocr_onnxruntime import RapidOCR

            _ENGINE = RapidOCR()
            # RapidOCR logs every call at INFO; our ingest summary says what happened
            logging.getLogger("RapidOCR").setLevel(logging.WARNING)
        return _ENGINE


def ocr_image(image) -> str:
    """Text of a PIL image, in reading order: lines top to bottom, words left to right.

    Detection finds the text lines; each line is cut out, enlarged with a
    good filter to the height the recogniser reads (48 px: small, blurry
    lines come out with words run together, "leaveevery"), and recognised.
    """
    rgb = image.convert("RGB")
    with _LOCK_RUN:
        engine = _engine()
        boxes, _ = engine(_bgr(rgb), use_cls=False, use_rec=False)
        if not boxes:
            return ""
        crops, kept = [], []
        for box in boxes:
            xs, ys = [p[0] for p in box], [p[1] for p in box]
            x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
            x1, y1 = min(rgb.width, int(max(xs)) + 1), min(rgb.height, int(max(ys)) + 1)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            crops.append(_bgr(_to_height(rgb.crop((x0, y0, x1, y1)), _REC_HEIGHT)))
            kept.append(box)
        recognised, _ = engine.text_rec(crops)
    result = [(box, text, score) for box, (text, score) in zip(kept, recognised) if score >= _MIN_SCORE]
    return boxes_to_text(result)


_REC_HEIGHT = 48  # what the PP-OCR recogniser reads
_MIN_SCORE = 0.5  # RapidOCR's own default: lower-scoring lines are mostly noise


def _to_height(crop, height: int):
    """Scale a line image to `height` pixels (Lanczos), keeping its aspect ratio."""
    from PIL import Image

    if crop.height == height:
        return crop
    width = max(1, round(crop.width * height / crop.height))
    return crop.resize((width, height), Image.Resampling.LANCZOS)


def _bgr(rgb):
    import numpy as np

    return np.asarray(rgb)[:, :, ::-1].copy()  # the engine expects BGR (OpenCV order)


def boxes_to_text(result) -> str:
    """Join recognised boxes `[(points, text, score), ...]` into lines and paragraphs.

    Boxes whose vertical centres lie within half a line height of a line's
    centre belong to that line; a vertical gap of more than one line height
    starts a new paragraph (a blank line), which the chunker treats as a boundary.
    """
    items = []
    for points, text, _score in result:
        text = str(text).strip()
        if not text:
            continue
        ys = [float(p[1]) for p in points]
        xs = [float(p[0]) for p in points]
        items.append((min(ys), max(ys), min(xs), text))
    items.sort(key=lambda it: ((it[0] + it[1]) / 2, it[2]))
    lines: list[list] = []  # [top, bottom, [(x, text), ...]]
    for top, bottom, left, text in items:
        centre = (top + bottom) / 2
        if lines:
            line = lines[-1]
            height = line[1] - line[0]
            if abs(centre - (line[0] + line[1]) / 2) <= max(height, bottom - top) / 2:
                line[0], line[1] = min(line[0], top), max(line[1], bottom)
                line[2].append((left, text))
                continue
        lines.append([top, bottom, [(left, text)]])
    out: list[str] = []
    previous = None
    for top, bottom, words in lines:
        if previous is not None and top - previous[1] > 1.5 * (previous[1] - previous[0]):
            out.append("")
        out.append(" ".join(text for _, text in sorted(words)))
        previous = (top, bottom)
    return "\n".join(out)


def render_pdf_pages(data: bytes, indexes: list[int], *, dpi: int = 150):
    """Yield `(index, PIL image)` for the given 0-based pages of a PDF, rendered at `dpi`."""
    if find_spec("pypdfium2") is None:
        raise OcrUnavailable(f"the PDF renderer is not installed: {OCR_EXTRA_HINT}")
    import pypdfium2 as pdfium

    from rag.ingest.pdfium_lock import PDFIUM_LOCK

    with PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(data)
    try:
        for index in indexes:
            with PDFIUM_LOCK:  # not held while the caller reads the image: OCR takes seconds
                page = pdf[index]
                try:
                    bitmap = page.render(scale=dpi / 72)
                    image = bitmap.to_pil().copy()  # its own pixels: the bitmap is freed here, under the lock
                    bitmap.close()
                finally:
                    page.close()
            yield index, image
    finally:
        with PDFIUM_LOCK:
            pdf.close()
