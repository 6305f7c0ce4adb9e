"""The page view in headless Chromium: a citation of a PDF passage shows its page, the quote highlighted.

Needs Debian's Chromium (`apt-get install -y chromium`); skipped without it. Fake models: the fake chat
model's reply cites the passages, so which one is the PDF's page 2 is read from the page.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import gradio as gr
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from playwright.sync_api import expect

from rag.core.config import load_settings
from rag.serve.api import DocQA
from tests.conftest import REPO, serving, shared_cache
from tests.test_loaders import make_pdf
from tests.test_pages import yellow_share
from tests.test_ui_browser import ask, browser, load, page_of  # noqa: F401  (browser: the fixture)
from ui.handlers import Handlers

pytestmark = pytest.mark.browser

PAGE_1 = ["Field notes, spring survey.", "The river was high and the meadows were flooded."]
PAGE_2 = ["Observations on the second day.", "The quick brown fox jumps over the lazy dog near the old mill.",
          "Nobody saw the heron again."]
REPLY = "Answer: near the old mill\nDetails: The quick brown fox jumps over the lazy dog near the old mill [1][2]."


def test_a_pdf_citation_shows_its_page_with_the_quote_highlighted(browser, tmp_path, monkeypatch):  # noqa: F811
    settings = load_settings(
        environ={}, home=tmp_path / "home", cache=shared_cache(),
        embedding={"provider": "fake", "model_name": "fake"}, llm={"provider": "fake"},
        answer={"min_relevance": -1.0, "verify": False},
    )
    qa = DocQA(settings, chat_model=GenericFakeChatModel(messages=iter([REPLY] * 10)))
    pdf = tmp_path / "field-notes.pdf"
    pdf.write_bytes(make_pdf([PAGE_1, PAGE_2], title="Field notes"))
    report = qa.ingest([pdf])
    assert [r.status for r in report.files] == ["added"]
    asked: list[str] = []  # the citations the browser asked pages for, in order
    shown = Handlers.page_view

    def page_view(self, turns, collection, evt: gr.EventData, request: gr.Request = None):
        asked.append(evt._data["cite"])
        return shown(self, turns, collection, evt, request)

    monkeypatch.setattr(Handlers, "page_view", page_view)

    with serving(qa) as url, page_of(browser, url) as (page, _):
        load(page, url)
        ask(page, "Where did the quick brown fox jump over the lazy dog?")
        page.locator("#conversation .rag-timing").wait_for(timeout=30_000)
        assert page.locator("#page-view img").count() == 0  # nothing is rendered before a citation is opened

        box_id = page.locator('#conversation details.rag-cite[data-pdf-page="2"]').first.get_attribute("id")
        page.locator(f'#conversation a.cite-ref[data-cite="{box_id}"]').first.click()
        figure = page.locator("#page-view figure.rag-page")
        expect(figure).to_have_attribute("data-page", "2", timeout=30_000)
        assert figure.get_attribute("data-cite") == box_id
        assert figure.get_attribute("data-match") == "quote"
        image = figure.locator("img")
        assert image.get_attribute("alt") == "Page 2 of field-notes.pdf, the quoted text highlighted"
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        boxes = json.loads(figure.get_attribute("data-boxes"))
        assert boxes, "no highlight was drawn"
        png = base64.b64decode(image.get_attribute("src").split(",", 1)[1])
        assert yellow_share(png, boxes[0]) > 0.5, "the highlight box is not yellow in the picture"
        # the text view is there as before: the passage, its quote marked
        passage = page.locator(f"#{box_id}")
        assert passage.evaluate("d => d.open")
        assert "quick brown fox" in passage.locator("mark").inner_text()

        assert asked == [box_id], "one click asks for one page"
        page.screenshot(path=str(tmp_path / "page-view.png"))

        image.click()  # the whole page in the panel, and back to a readable size
        expect(figure).to_have_class("rag-page rag-fit")
        image.click()
        expect(figure).to_have_class("rag-page")
        figure.locator(".rag-page-close").click()
        expect(page.locator("#page-view img")).to_have_count(0)
        # opening a citation by its summary (not its [n]) shows the page too
        passage.locator("summary").click()  # closes it: asks for nothing
        assert not passage.evaluate("d => d.open")
        passage.locator("summary").click()
        expect(figure).to_have_attribute("data-page", "2", timeout=30_000)
        assert asked == [box_id, box_id]


MANUAL = Path("~/.cache/rag-evals/manuals/files/r-intro.pdf").expanduser()  # a dev-split document
# the sentence is on page 12 of the manual; the answer's citation check points the marker at the passage holding it
MANUAL_REPLY = ("Answer: the function sink will divert all subsequent output to an external file\n"
                "Details: The function sink, as in sink(\"record.lis\"), will divert all subsequent output from "
                "the console to an external file [2].")


@pytest.mark.integration
def test_screenshot_of_a_cited_manual_page(browser, tmp_path):  # noqa: F811
    """A real manual, the real embedder, a fake chat model citing it: the quote is found and drawn on its page.

    With UPDATE_SCREENSHOTS=1 the picture replaces docs/screenshot-page.png; otherwise it stays in tmp_path.
    """
    if not MANUAL.is_file():
        pytest.skip("needs the manuals dataset: python evals/datasets/manuals/fetch.py")
    settings = load_settings(environ={}, home=tmp_path / "home", cache=shared_cache(), llm={"provider": "fake"},
                             answer={"verify": False})
    qa = DocQA(settings, chat_model=GenericFakeChatModel(messages=iter([MANUAL_REPLY] * 5)))
    qa.ingest([MANUAL])

    with serving(qa) as url, page_of(browser, url) as (page, _):
        load(page, url)
        ask(page, "How can I divert the output of R to a file?")
        cite = page.locator("#conversation a.cite-ref").first
        expect(cite).to_be_visible(timeout=60_000)
        target = cite.get_attribute("data-cite")
        cite.click()
        figure = page.locator("#page-view figure.rag-page")
        expect(figure).to_have_attribute("data-cite", target, timeout=30_000)
        assert json.loads(figure.get_attribute("data-boxes")), "the quote was not found on the page"
        page.wait_for_timeout(600)  # the citation's flash fades before the picture
        shot = REPO / "docs" / "screenshot-page.png" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "page.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
