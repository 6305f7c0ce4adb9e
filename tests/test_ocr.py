"""OCR of scanned PDFs and images: pages rendered here from known text, read back, retrieved and cited.

Character accuracy and seconds per page are printed (`pytest -s tests/test_ocr.py`).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from rag.ingest.loaders import load_document
from rag.ingest.pipeline import source_key
from rag.serve.api import DocQA

PAGES = [
    ["The Harbour Authority of Port Elsbury was founded in 1872.",
     "Its first lighthouse keeper, Miriam Tallow, logged 312 storms.",
     "The harbour wall is 740 metres long and built of granite."],
    ["Ferries to Gull Island leave every ninety minutes in summer.",
     "A return ticket costs 14 pounds for adults and 6 for children.",
     "The crossing takes about forty minutes in calm weather."],
]
IMAGE_LINES = ["Invoice 2231 was paid on 3 March by Kestrel Shipping.",
               "The amount due was 1,450 euros including tax."]


def _font(size: int):
    from PIL import ImageFont

    for path in ("/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"):
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)  # Pillow's own scalable font


def page_image(lines: list[str], *, width: int = 1240, height: int = 1754, size: int = 30):
    """A white A4 page at 150 dpi with the lines typed on it, like a scan."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((110, 160 + i * 2 * size), line, fill="black", font=_font(size))
    return image


def image_pdf(pages: list[list[str]]) -> bytes:
    """An image-only PDF (no text layer), one scanned page per entry."""
    images = [page_image(lines) for lines in pages]
    buf = io.BytesIO()
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return buf.getvalue()


def char_accuracy(truth: str, read: str) -> float:
    """1 - (Levenshtein distance / length of the truth), on whitespace-normalised text."""
    a, b = " ".join(truth.split()), " ".join(read.split())
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return 1 - previous[-1] / max(len(a), 1)


def with_replies(settings, replies: list[str]):
    return settings.model_copy(update={"llm": settings.llm.model_copy(update={"fake_responses": replies})})


needs_ocr = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("rapidocr_onnxruntime") is None,
    reason="OCR extra not installed (pip install 'rag[ocr]')",
)


@needs_ocr
def test_engine_models_ship_inside_the_wheel():
    """Detection, direction and recognition models are package files: nothing to download."""
    import rapidocr_onnxruntime

    models = {p.name for p in (Path(rapidocr_onnxruntime.__file__).parent / "models").glob("*.onnx")}
    assert any("det" in m for m in models) and any("rec" in m for m in models) and any("cls" in m for m in models)


@needs_ocr
def test_scanned_pdf_is_read_with_page_numbers_and_accuracy(tmp_path):
    from rag.ingest.ocr import ocr_image

    path = tmp_path / "scan.pdf"
    path.write_bytes(image_pdf(PAGES))
    ocr_image(page_image(["warm up"], width=300, height=100))  # load the engine outside the timing
    started = time.perf_counter()
    doc = load_document(path)
    seconds = time.perf_counter() - started
    assert [p for p, _, _ in doc.pages] == [1, 2] and doc.ocr_pages == {1, 2}
    accuracies = []
    for (number, start, end), lines in zip(doc.pages, PAGES):
        accuracies.append(char_accuracy("\n".join(lines), doc.text[start:end]))
    print(f"\nOCR: character accuracy {[f'{a:.3f}' for a in accuracies]}, "
          f"{seconds / len(PAGES):.2f} s/page (A4 rendered at 150 dpi)")
    assert min(accuracies) >= 0.95, accuracies


@needs_ocr
def test_scanned_pages_are_retrievable_and_cited_with_ocr_mark(fake_settings, tmp_path):
    from ui.render import render_citation

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "harbour.pdf").write_bytes(image_pdf(PAGES))
    settings = with_replies(fake_settings, ["A return ticket costs 14 pounds for adults [1]."])
    qa = DocQA(settings)
    report = qa.ingest([folder])
    assert report.count("added") == 1, report.files

    stored = list(qa.store.scan())
    assert stored and all(s.chunk.ocr for s in stored)  # `ocr: true` travels in the Chroma metadata
    hit = qa.retrieve("How much is a return ticket to Gull Island?", k=1)[0]
    assert hit.page == 2 and hit.ocr and "14 pounds" in hit.text

    answer = qa.ask("How much does a return ticket to Gull Island cost?")
    assert not answer.abstained, answer.abstain_reason
    cite = answer.citations[0]
    assert cite.page == 2 and cite.ocr and cite.source == source_key(folder / "harbour.pdf")
    assert "14 pounds" in cite.quote
    html = render_citation(1, cite)
    assert "p. 2" in html and "(OCR)" in html


@needs_ocr
def _pages_of(path: Path, *pdfs: bytes) -> Path:
    """`path` holding the pages of `pdfs`, in order."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in pdfs:
        for page in PdfReader(io.BytesIO(data)).pages:
            writer.add_page(page)
    buf = io.BytesIO()
    writer.write(buf)
    path.write_bytes(buf.getvalue())
    return path


def test_mixed_pdf_ocrs_only_the_scanned_page(tmp_path):
    from tests.test_loaders import make_pdf

    path = _pages_of(tmp_path / "mixed.pdf", make_pdf([["This page has a real text layer about tides."]]),
                     image_pdf(PAGES[1:]))
    doc = load_document(path)
    assert [p for p, _, _ in doc.pages] == [1, 2] and doc.ocr_pages == {2}
    assert doc.text.startswith("This page has a real text layer") and "Gull Island" in doc.text


@needs_ocr
def test_blank_pages_among_text_pages_cost_no_ocr(tmp_path, monkeypatch):
    """A book's empty versos draw nothing: they are neither rendered nor read, while a scanned page among them
    still is (a manual of 1,158 pages with 24 blank ones spent 15 of its 22 s of parsing on them)."""
    import rag.ingest.ocr
    from tests.test_loaders import make_pdf

    read: list[int] = []
    real = rag.ingest.ocr.ocr_image
    monkeypatch.setattr(rag.ingest.ocr, "ocr_image", lambda image: read.append(1) or real(image))
    path = _pages_of(tmp_path / "book.pdf", make_pdf([["This page has a real text layer about tides."]]),
                     _blank_pdf(), image_pdf(PAGES[1:]), _blank_pdf())
    doc = load_document(path)
    assert len(read) == 1 and doc.ocr_pages == {3} and "Gull Island" in doc.text
    assert [p for p, _, _ in doc.pages] == [1, 3]  # the blank pages hold no text, and are not said to be scans
    assert not any("OCR" in note or "scan" in note for note in doc.notes)


@needs_ocr
@pytest.mark.parametrize("suffix,fmt", [(".png", "PNG"), (".jpg", "JPEG")])
def test_images_are_read(fake_settings, tmp_path, suffix, fmt):
    image = page_image(IMAGE_LINES, width=1200, height=400)
    path = tmp_path / f"invoice{suffix}"
    image.save(path, format=fmt, quality=90) if fmt == "JPEG" else image.save(path, format=fmt)
    qa = DocQA(fake_settings)
    assert qa.ingest([path]).count("added") == 1
    hit = qa.retrieve("Who paid invoice 2231?", k=1)[0]
    assert "Kestrel Shipping" in hit.text and hit.ocr and hit.page is None
    print(f"\n{suffix}: character accuracy {char_accuracy(chr(10).join(IMAGE_LINES), hit.text):.3f}")


def test_without_the_extra_scans_and_images_are_skipped_naming_it(fake_settings, tmp_path, monkeypatch):
    import rag.ingest.ocr

    monkeypatch.setattr(rag.ingest.ocr, "ocr_available", lambda: False)
    folder = tmp_path / "docs"
    folder.mkdir()
    blank = _blank_pdf()
    (folder / "scan.pdf").write_bytes(blank)
    (folder / "photo.png").write_bytes(_tiny_png())
    report = DocQA(fake_settings).ingest([folder])
    reasons = {Path(f.path).name: f.reason for f in report.files if f.status == "skipped"}
    assert set(reasons) == {"scan.pdf", "photo.png"}
    for reason in reasons.values():
        assert "pip install 'rag[ocr]'" in reason


def test_ocr_turned_off_is_said(tmp_path):
    from rag.core.config import OcrSettings
    from rag.core.errors import EmptyDocumentError

    path = tmp_path / "scan.pdf"
    path.write_bytes(_blank_pdf())
    with pytest.raises(EmptyDocumentError, match="OCR turned off"):
        load_document(path, ocr=OcrSettings(enabled=False))


def _blank_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _tiny_png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\xff\xff"  # one white pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
