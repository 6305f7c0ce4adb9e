"""Images (.png, .jpg, .jpeg): their text, read by OCR (`rag.ingest.ocr`, the `rag[ocr]` extra)."""

from __future__ import annotations

import io
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError, UnsupportedFileError
from rag.ingest.loaders.base import LoadedDocument, ocr_options, short_cause
from rag.ingest.loaders.encoding import normalise_text


def load_image(path: Path, data: bytes, ocr) -> LoadedDocument:
    """Read the text of a .png/.jpg image by OCR."""
    from rag.ingest.ocr import OCR_EXTRA_HINT, ocr_available, ocr_image

    enabled, _dpi, _min = ocr_options(ocr)
    if not enabled:
        raise EmptyDocumentError(str(path), "image: OCR is turned off (RAG_OCR__ENABLED)")
    if not ocr_available():
        raise UnsupportedFileError(str(path), f"image: reading its text needs OCR, which is not installed ({OCR_EXTRA_HINT})")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            text = normalise_text(ocr_image(image))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise DocumentError(str(path), f"not a readable image ({short_cause(exc)})") from None
    if not text:
        raise EmptyDocumentError(str(path), "no text found in image (OCR)")
    return LoadedDocument(text=text, title=path.stem, url=None, ocr=True)
