"""An OCR citation in the UI, in headless Chromium: upload a scanned PDF, ask, open the citation.

Saves docs/screenshot-ocr.png with UPDATE_SCREENSHOTS=1. Needs Chromium and the OCR extra; skipped without them.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from rag.core.config import load_settings
from rag.serve.api import DocQA
from tests.conftest import REPO, serving, shared_cache
from tests.test_ocr import PAGES, image_pdf, needs_ocr
from tests.test_ui_browser import SlowFakeChatModel, ask, browser, load, page_of  # noqa: F401 -- fixture

pytestmark = [pytest.mark.browser, needs_ocr]

REPLY = "Answer: 14 pounds\nDetails: A return ticket to Gull Island costs 14 pounds for adults [1]."


def test_ocr_citation_shows_page_and_mark(browser, tmp_path):  # noqa: F811 -- the imported fixture
    settings = load_settings(environ={}, home=tmp_path / "home", cache=shared_cache(),
                             embedding={"provider": "fake", "model_name": "fake"}, llm={"provider": "fake"},
                             answer={"min_relevance": -1.0})
    qa = DocQA(settings, chat_model=SlowFakeChatModel(messages=iter([REPLY] * 5)))
    scan = tmp_path / "harbour-scan.pdf"
    scan.write_bytes(image_pdf(PAGES))

    with serving(qa) as url, page_of(browser, url) as (page, _):
        load(page, url)
        page.get_by_role("tab", name="Documents").click()
        page.locator("#upload input[type=file]").set_input_files([str(scan)])
        expect(page.locator("#upload-results")).to_contain_text(re.compile("added"), timeout=90_000)

        page.get_by_role("tab", name="Chat").click()
        ask(page, "How much does a return ticket to Gull Island cost?")
        cite = page.locator("#conversation a.cite-ref").first
        expect(cite).to_be_visible(timeout=30_000)
        cite.click()
        block = page.locator("#conversation details.rag-cite[open]").first
        expect(block).to_contain_text("p. 2")
        expect(block.locator(".rag-ocr").first).to_have_text("(OCR)")
        expect(block).to_contain_text("read by OCR")
        expect(block.locator("mark")).to_contain_text("14 pounds")
        # docs/screenshot-ocr.png is refreshed on request only, so a test run leaves the tree clean
        shot = REPO / "docs" / "screenshot-ocr.png" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "ocr.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
