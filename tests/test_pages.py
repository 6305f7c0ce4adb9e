"""The page of a cited PDF passage as a picture: the renderer (`rag.ingest.pages`), `DocQA.page_image`,
and the UI's page view (`Handlers.page_view`, `ui.render.render_page_view`)."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re

import pytest
from PIL import Image

from rag.core.errors import DocumentError, UnknownSourceError
from rag.core.types import Answer, Citation
from rag.ingest.pages import PageRenderer, find_quote, render_page
from rag.serve.api import DocQA
from tests.test_loaders import make_pdf
from ui.handlers import Handlers
from ui.render import Turn, render_citation

PAGE_1 = ["Annual report of the river authority.", "Nothing about foxes here."]
PAGE_2 = ["Second page: the animals.",
          "The quick brown fox jumps over the lazy dog.",
          "Our inter-",
          "national partners count the dogs every spring.",
          "The end of page two."]
PAGE_3 = ["Third page: the budget grew by four percent."]
LINE_STEP = 14  # points between lines in make_pdf; the first baseline is at y = 720
QUOTE = "quick brown fox jumps"


@pytest.fixture
def pdf_bytes() -> bytes:
    return make_pdf([PAGE_1, PAGE_2, PAGE_3], title="River report")


@pytest.fixture
def pdf(tmp_path, pdf_bytes):
    path = (tmp_path / "report.pdf").resolve()
    path.write_bytes(pdf_bytes)
    return path


def known_of(path) -> dict[str, str]:
    return {path.as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()}


def yellow_share(png: bytes, box) -> float:
    """The share of the pixels inside `box` (left, top, right, bottom) that are the highlight's yellow."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    left, top, right, bottom = box
    pixels = [image.getpixel((x, y)) for x in range(left + 2, right - 1) for y in range(top + 2, bottom - 1)]
    return sum(1 for r, g, b in pixels if r > 200 and g > 170 and b < 150) / max(1, len(pixels))


# --- finding the quote in pdfium's text -------------------------------------------------------
def test_find_quote_ignores_whitespace_case_punctuation_and_hyphenation():
    page = "Our inter\x02national partners count\r\nthe DOGS every spring."
    (start, end), match = find_quote(page, "international  partners count the dogs")
    assert match == "quote" and page[start:end] == "inter\x02national partners count\r\nthe DOGS"


def test_find_quote_falls_back_to_the_longest_run_of_first_words():
    page = "The quick brown fox jumps over the lazy dog."
    (start, end), match = find_quote(page, "The quick brown fox jumps over the sleeping cat on page three")
    assert match == "part" and page[start:end] == "The quick brown fox jumps over the"
    assert find_quote(page, "a quote from somewhere else entirely") == ((0, 0), "")
    assert find_quote(page, "") == ((0, 0), "")


# --- rendering -----------------------------------------------------------------------------------
def test_highlight_covers_the_quoted_words_on_page_2(pdf_bytes):
    image = render_page(pdf_bytes, 2, QUOTE)
    assert image.page == 2 and image.match == "quote"
    assert Image.open(io.BytesIO(image.png)).size == (image.width, image.height)
    assert image.width <= 1100
    (left, bottom, right, top), = image.boxes  # one line
    baseline = 720 - LINE_STEP  # the second line of page 2
    assert bottom < baseline < top and top - bottom < 20
    # "The " is about 22 pt of 12 pt Helvetica: the box starts after it, and ends before "over"
    assert 85 < left < 105 and 190 < right < 240
    assert yellow_share(image.png, image.pixel_boxes[0]) > 0.5
    c_left, c_top, c_right, c_bottom = image.content  # the text without the page's margins (the UI zooms to it)
    p_left, p_top, p_right, p_bottom = image.pixel_boxes[0]
    assert 0 < c_left <= p_left and c_top <= p_top and p_bottom <= c_bottom < image.height / 2
    # the same quote is not on page 1: that page renders without a highlight
    assert render_page(pdf_bytes, 1, QUOTE).boxes == ()


def test_whitespace_and_hyphenation_differences_are_tolerated(pdf_bytes):
    spaced = render_page(pdf_bytes, 2, "quick\n  brown   fox\tjumps")
    assert spaced.boxes == render_page(pdf_bytes, 2, QUOTE).boxes
    hyphenated = render_page(pdf_bytes, 2, "Our international partners count the dogs every spring.")
    assert hyphenated.match == "quote" and len(hyphenated.boxes) == 2  # one box per line
    assert hyphenated.boxes[0][1] > hyphenated.boxes[1][1]  # the second line lies below the first


def test_a_quote_not_on_the_page_gives_no_box_but_the_page(pdf_bytes):
    image = render_page(pdf_bytes, 2, "a sentence that is on no page of this document")
    assert image.boxes == () and image.pixel_boxes == () and image.match == ""
    assert Image.open(io.BytesIO(image.png)).size == (image.width, image.height)


def test_a_page_past_the_end_is_a_clear_error(pdf_bytes):
    with pytest.raises(DocumentError, match="has no page 7 .it has 3."):
        render_page(pdf_bytes, 7, QUOTE)


# --- only the collection's own, unchanged files --------------------------------------------------
def test_only_known_sources_are_rendered(pdf, tmp_path):
    renderer = PageRenderer()
    other = tmp_path / "secret.pdf"
    other.write_bytes(pdf.read_bytes())
    with pytest.raises(UnknownSourceError, match="not a document of this collection"):
        renderer.render(str(other), 1, "", known=known_of(pdf))
    with pytest.raises(UnknownSourceError):
        renderer.render(f"{pdf.parent}/../{pdf.parent.name}/report.pdf", 1, "", known=known_of(pdf))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(DocumentError, match="not a PDF"):
        renderer.render(notes.as_posix(), 1, "", known=known_of(notes))
    assert renderer.render(pdf.as_posix(), 2, QUOTE, known=known_of(pdf)).boxes


def test_a_missing_or_changed_file_gives_a_message(pdf, pdf_bytes):
    renderer = PageRenderer()
    known = known_of(pdf)
    pdf.write_bytes(make_pdf([PAGE_3, PAGE_1]))
    with pytest.raises(DocumentError, match="changed since it was ingested"):
        renderer.render(pdf.as_posix(), 1, "", known=known)
    pdf.unlink()
    with pytest.raises(DocumentError, match="no longer there"):
        renderer.render(pdf.as_posix(), 1, "", known=known)


def test_pages_are_cached_and_the_cache_is_bounded(pdf):
    renderer = PageRenderer(max_pages=2)
    known = known_of(pdf)
    first = renderer.render(pdf.as_posix(), 2, QUOTE, known=known)
    assert renderer.render(pdf.as_posix(), 2, f"  {QUOTE.upper()} ", known=known) is first  # same normalised quote
    renderer.render(pdf.as_posix(), 1, "", known=known)
    renderer.render(pdf.as_posix(), 3, "", known=known)
    assert len(renderer._pages) == 2
    assert renderer.render(pdf.as_posix(), 2, QUOTE, known=known) is not first  # pushed out, rendered again


def test_a_quote_running_onto_the_next_page_shows_that_page(pdf):
    image = PageRenderer().render(pdf.as_posix(), 2, "the budget grew by four percent", known=known_of(pdf))
    assert image.page == 3 and image.match == "quote"


# --- DocQA and the UI ----------------------------------------------------------------------------
def test_docqa_page_image_uses_the_stored_chunk(fake_settings, pdf):
    qa = DocQA(fake_settings)
    qa.ingest([pdf])
    chunks = [c for c in qa.store.get(sorted(qa.store.all_ids())) if c.page == 2]
    assert chunks, "the test PDF's page 2 should start a chunk"
    image = qa.page_image(chunks[0].chunk_id, "The quick brown fox jumps over the lazy dog.")
    assert image.page == 2 and image.boxes
    with pytest.raises(UnknownSourceError, match="no longer in the collection"):
        qa.page_image("no-such-chunk", QUOTE)


def test_page_view_handler_renders_the_cited_page(fake_settings, pdf):
    qa = DocQA(fake_settings)
    qa.ingest([pdf])
    chunk = next(c for c in qa.store.get(sorted(qa.store.all_ids())) if c.page == 2)
    cite = Citation(n=1, chunk_id=chunk.chunk_id, source=chunk.source, page=2, quote=QUOTE, text=chunk.text)
    turns = [Turn("q?", answer=Answer(text="It jumps [1].", citations=[cite]))]
    h = Handlers(qa)

    class Event:
        _data = {"cite": "cite-1-1"}

    out = h.page_view(turns, "default", Event())
    assert 'data-page="2"' in out and 'data-cite="cite-1-1"' in out and "the quoted text is highlighted" in out
    boxes = html.unescape(re.search(r'data-boxes="([^"]*)"', out).group(1))
    assert boxes != "[]"
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', out).group(1))
    assert png.startswith(b"\x89PNG")
    # the browser names only one of this session's citations: anything else is refused, without a page
    Event._data = {"cite": "cite-2-1"}
    assert "not in the conversation" in h.page_view(turns, "default", Event()) and "<img" not in h.page_view(
        turns, "default", Event())
    Event._data = {"cite": "../../etc/passwd"}
    assert "Cannot show the page" in h.page_view(turns, "default", Event())
    # only citations of PDF pages ask for a picture
    assert 'data-pdf-page="2"' in render_citation(1, cite)
    txt = Citation(n=2, chunk_id="x", source="/docs/a.txt", page=None, quote="q")
    assert "data-pdf-page" not in render_citation(1, txt)


def test_page_view_escapes_file_names_and_shows_a_missing_file(fake_settings, tmp_path, pdf_bytes):
    hostile = tmp_path / "<img src=x onerror=alert(1)>.pdf"
    hostile.write_bytes(pdf_bytes)
    qa = DocQA(fake_settings)
    qa.ingest([hostile])
    chunk = next(c for c in qa.store.get(sorted(qa.store.all_ids())) if c.page == 2)
    cite = Citation(n=1, chunk_id=chunk.chunk_id, source=chunk.source, page=2, quote=QUOTE)
    turns = [Turn("q?", answer=Answer(text="It jumps [1].", citations=[cite]))]

    class Event:
        _data = {"cite": "cite-1-1"}

    out = Handlers(qa).page_view(turns, "default", Event())
    assert "<img src=x" not in out and "&lt;img src=x onerror=alert(1)&gt;.pdf" in out
    hostile.unlink()
    out = Handlers(qa).page_view(turns, "default", Event())
    assert "no longer there" in out and "<img" not in out and "&lt;img src=x" in out


def test_the_page_view_event_needs_the_login(fake_settings):
    """The page travels through a Gradio event, so the UI's login guards it like every other call."""
    import httpx

    from rag.core.config import UISettings
    from tests.test_server import live_server
    from ui.access import load_guard
    from ui.app import server_app

    with live_server(server_app(DocQA(fake_settings), guard=load_guard(UISettings(auth="u:p")))) as url:
        user = httpx.Client()
        assert user.post(f"{url}/login", data={"username": "u", "password": "p"}).status_code == 200
        config = user.get(f"{url}/config").json()
        event = next(d for d in config["dependencies"] if any(t[1] == "open_page" for t in d["targets"]))
        body = {"fn_index": event["id"], "data": [None, None], "session_hash": "s1", "event_data": {"cite": "cite-1-1"},
                "trigger_id": event["targets"][0][0]}
        assert httpx.post(f"{url}/gradio_api/queue/join", json=body).status_code == 401  # no session cookie
        assert user.post(f"{url}/gradio_api/queue/join", json=body).status_code == 200
