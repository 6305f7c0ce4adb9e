"""Saved conversations in headless Chromium: a reload keeps the conversation; the list reopens one.

Fake models; `UPDATE_SCREENSHOTS=1` saves docs/conversations.png (the conversation list). Needs Debian's
Chromium (`apt-get install -y chromium`); skipped without it.
"""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from rag.core.config import load_settings
from rag.serve.api import DocQA
from tests.conftest import REPO, serving, shared_cache
from tests.test_ui_browser import ask, browser, load, page_of  # noqa: F401 -- `browser` is a fixture

pytestmark = pytest.mark.browser

DOC = ("Business scope changes\n\nSix foreign-invested companies changed their business scope on 14 November "
       "in Pudong.\n\nThe pilot covers eight cities, including Beijing, Shanghai and Hainan.")
REPLIES = [
    "Answer: six\nDetails: Six foreign-invested companies changed their business scope on 14 November [1].",
    "Answer: eight cities\nDetails: The pilot covers eight cities, including Beijing, Shanghai and Hainan [1].",
]
QUOTE = "Six foreign-invested companies changed their business scope on 14 November in Pudong."


def test_reload_keeps_the_conversation_and_the_list_reopens_others(browser, tmp_path):  # noqa: F811
    settings = load_settings(environ={}, home=tmp_path / "home", cache=shared_cache(),
                             embedding={"provider": "fake", "model_name": "fake"},
                             llm={"provider": "fake", "fake_responses": REPLIES},
                             answer={"min_relevance": -1.0}, retrieval={"mode": "bm25"})
    qa = DocQA(settings)
    path = tmp_path / "pudong.txt"
    path.write_text(DOC, encoding="utf-8")
    qa.ingest([path])
    qa.chat_model.messages = iter([REPLIES[1]])
    earlier = qa.save_turn(qa.ask("Which cities does the pilot cover?"))  # older conversations
    qa.chat_model.messages = iter([REPLIES[0]])
    qa.save_turn(qa.ask("When did the companies change their business scope?"))
    qa.rename_conversation(qa.conversations()[0].conversation_id, "Date of the scope changes")
    qa.chat_model.messages = iter([REPLIES[0]] * 5)

    with serving(qa) as url, page_of(browser, url) as (page, _):
        load(page, url)
        listing = page.locator("#conversation-list")
        expect(listing).to_contain_text("Which cities does the pilot cover?")
        ask(page, "How many companies changed their business scope?")
        page.locator("#conversation a.cite-ref").first.wait_for(timeout=30_000)
        # saved once answered: it heads the list, selected
        expect(listing.locator("label").first).to_contain_text("How many companies changed their business scope?")
        expect(listing.locator("input:checked")).to_have_count(1, timeout=10_000)

        page.reload()
        load(page, url)
        conversation = page.locator("#conversation")
        expect(conversation).to_contain_text("How many companies changed their business scope?", timeout=15_000)
        cite = conversation.locator("a.cite-ref").first
        cite.click()
        assert page.locator("#cite-1-1").evaluate("d => d.open")
        assert QUOTE in page.locator("#cite-1-1 mark").inner_text()  # citations intact after the reload
        expect(page.locator("#feedback-target input")).to_have_value(re.compile("How many companies"))

        page.locator("#feedback-up").click()
        expect(page.locator("#feedback-status")).to_contain_text("marked helpful")
        page.wait_for_timeout(300)
        # docs/conversations.png is refreshed on request only, so a test run leaves the tree clean
        shot = REPO / "docs" / "conversations.png" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "c.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        # the list reopens the older conversation, with its own answer
        listing.get_by_text("Which cities does the pilot cover?").click()
        expect(conversation).to_contain_text("eight cities", timeout=10_000)
        expect(conversation).not_to_contain_text("How many companies")
    [fb] = qa.feedback_items()
    assert fb.rating == 1 and fb.question == "How many companies changed their business scope?"
    assert earlier.conversation_id in {c.conversation_id for c in qa.conversations()}
