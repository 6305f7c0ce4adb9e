"""HTML for the chat: the conversation, citations and the sources panel.

Every piece of document or model text goes through `html.escape` here; the
only markup is ours. `[n]` markers become `<a class="cite-ref">` links to a
`<details class="cite">` block below the answer holding the cited passage with
its quote in `<mark>`; `CITE_JS` (run by the browser once, on the conversation
component) opens the block on click and, for a page of a PDF, asks the server for
the page as a picture (`render_page_view`, shown in the sources column). Without
JavaScript the link is a plain fragment link, and Chromium opens a closed
`<details>` around a fragment target.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from html import escape
from pathlib import PurePath
from urllib.parse import urlparse

from rag.core.types import Answer, Chunk, Citation, Evidence
from rag.ingest.pages import PageImage

_MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


@dataclass
class Turn:
    """One question and what came back: streamed text so far, the final Answer, or an error."""

    question: str
    partial: str = ""
    answer: Answer | None = None
    error: str = ""
    evidence: Evidence | None = None  # what retrieval found, shown until the answer arrives
    ahead: int = 0  # questions before this one for the local model
    turn_id: str = ""  # set once the turn is saved (ui.conversations)


def e(text) -> str:
    """Escape any text for HTML element content and attribute values."""
    return escape("" if text is None else str(text), quote=True)


def display_name(source: str) -> str:
    """The file name of a source path (the whole string for non-path sources)."""
    name = PurePath(source).name
    return name or source


def safe_url(url: str | None) -> str | None:
    """`url` if it is http(s), else None: a document must not smuggle in `javascript:` links."""
    if not url:
        return None
    parsed = urlparse(url.strip())
    return url.strip() if parsed.scheme in ("http", "https") and parsed.netloc else None


# --- the conversation -------------------------------------------------------------------------
EMPTY_CHAT = (
    '<div class="rag-chat"><div class="rag-empty">Ask a question about your documents. '
    "Answers cite the passages they come from: click a <b>[n]</b> to read it. "
    "Add documents in the <b>Documents</b> tab.</div></div>"
)


def render_conversation(turns: list[Turn]) -> str:
    """The whole conversation as one HTML fragment."""
    if not turns:
        return EMPTY_CHAT
    return '<div class="rag-chat">' + "".join(render_turn(i, t) for i, t in enumerate(turns, start=1)) + "</div>"


def render_turn(i: int, turn: Turn) -> str:
    user = f'<div class="rag-msg rag-user"><div class="rag-who">You</div><div class="rag-text">{e(turn.question)}</div></div>'
    if turn.error:
        bot = (f'<div class="rag-msg rag-bot rag-error" role="alert"><div class="rag-who">Error</div>'
               f'<div class="rag-text">{e(turn.error)}</div></div>')
    elif turn.answer is not None:
        bot = render_answer(i, turn.answer)
    elif turn.partial:
        bot = (f'<div class="rag-msg rag-bot rag-streaming"><div class="rag-who">Answer</div>'
               f'{render_best_match(turn.evidence)}'
               f'<div class="rag-text">{e(turn.partial)}<span class="rag-cursor"></span></div></div>')
    else:
        bot = ('<div class="rag-msg rag-bot rag-waiting"><div class="rag-who">Answer</div>'
               f'{render_best_match(turn.evidence)}<div class="rag-text rag-status" role="status">'
               f'{e(waiting_text(turn))}</div></div>')
    return f'<div class="rag-turn" id="turn-{i}">{user}{bot}</div>'


def waiting_text(turn: Turn) -> str:
    """What the user is told while the answer has not started."""
    if turn.evidence is None:
        return "Searching the documents…"
    if turn.ahead:
        return f"{turn.ahead} question{'s' if turn.ahead != 1 else ''} ahead of yours; the answer starts after them…"
    return "Reading the passages…"


def render_best_match(evidence: Evidence | None) -> str:
    """The sentence most likely to hold the answer, clearly marked as not (yet) the answer."""
    if evidence is None or not evidence.quote:
        return ""
    source = next((p for p in evidence.passages if p.chunk_id == evidence.chunk_id), None)
    where = f' <span class="rag-file">{e(display_name(source.source))}</span>' if source else ""
    if source and source.page:
        where += f" · p. {int(source.page)}"
    return (f'<div class="rag-best-match"><div class="rag-label">Best match, not yet an answer{where}</div>'
            f'<blockquote>{e(evidence.quote)}</blockquote></div>')


def render_answer(i: int, answer: Answer) -> str:
    """One final answer: text with linked markers, citations, and what was searched and how long it took."""
    parts = ['<div class="rag-msg rag-bot' + (' rag-abstained' if answer.abstained else '') + '">',
             '<div class="rag-who">Answer</div>']
    standalone = (answer.standalone_question or "").strip()
    if standalone and _norm(standalone) != _norm(answer.question):
        parts.append(f'<div class="rag-standalone">Searched for: <q>{e(standalone)}</q></div>')
    if answer.abstained:
        parts.append(f'<div class="rag-text">{e(answer.text)}</div>')
        parts.append(render_looked_at(i, answer.passages))
    else:
        short = (answer.short_answer or "").strip()
        if short and not _norm(_strip_markers(answer.text)).startswith(_norm(short)):
            parts.append(f'<div class="rag-short">{e(short)}</div>')
        parts.append(f'<div class="rag-text">{link_markers(answer.text, i, answer.citations)}</div>')
        if answer.citations:
            parts.append('<div class="rag-cites">' + "".join(render_citation(i, c) for c in answer.citations) + "</div>")
    if answer.confidence is not None:
        parts.append(render_confidence(answer, i))
    parts.append(render_timings(answer.timings))
    parts.append("</div>")
    return "".join(parts)


def render_confidence(answer: Answer, i: int = 0) -> str:
    """How likely the answer is right (`Answer.confidence`); for a withheld answer, why it was withheld."""
    share = f"{answer.confidence:.0%}"
    if answer.abstained and answer.abstain_step == "confidence":
        head = (f'<div class="rag-confidence rag-weak" title="{e(answer.abstain_reason)}">'
                f'An answer was found but withheld: confidence {share}</div>')
        draft = answer.withheld
        if draft is None or not draft.text:
            return head
        # what the user would have seen, behind a click: marked as unlikely, with its citations to check it
        body = f'<div class="rag-text">{link_markers(draft.text, i, draft.citations)}</div>'
        if draft.citations:
            body += '<div class="rag-cites">' + "".join(render_citation(i, c) for c in draft.citations) + "</div>"
        return (head + f'<details class="rag-withheld"><summary>Show it anyway (likely wrong)</summary>'
                f'{body}</details>')
    if answer.abstained:
        return ""
    return (f'<div class="rag-confidence" title="calibrated probability that the answer is right">'
            f'Confidence {share}</div>')


def link_markers(text: str, turn: int, citations: list[Citation]) -> str:
    """Escape `text`, turning each `[n]` that has a citation into a link to it."""
    known = {c.n for c in citations}
    out, cursor = [], 0
    for m in _MARKER.finditer(text):
        out.append(e(text[cursor:m.start()]))
        nums = [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
        if all(n in known for n in nums):
            out.append("".join(_cite_link(turn, n) for n in nums))
        else:
            out.append(e(m.group(0)))
        cursor = m.end()
    out.append(e(text[cursor:]))
    return "".join(out)


def _cite_link(turn: int, n: int) -> str:
    target = cite_id(turn, n)
    return (f'<a class="cite-ref" href="#{target}" data-cite="{target}" '
            f'title="show source passage {n}">[{n}]</a>')


def cite_id(turn: int, n: int) -> str:
    return f"cite-{turn}-{n}"


def render_citation(turn: int, c: Citation) -> str:
    """A collapsed block: `[n] title · file · page · support`, opening to the passage with the quote marked."""
    name = display_name(c.source)
    where = [e(_short(c.title, 70)), f'<span class="rag-file">{e(name)}</span>'] if c.title and c.title != name \
        else [f'<span class="rag-file">{e(name)}</span>']
    if c.page:
        where.append(f"p. {int(c.page)}")
    section = getattr(c, "section", "")
    if section:  # the deepest heading beside the page; the whole path is in the body
        where.append(f'<span class="rag-section" title="{e(section)}">{e(_short(section.split(" › ")[-1], 60))}</span>')
    if getattr(c, "ocr", False):
        where.append(_OCR_TAG)
    support = (f'<span class="rag-support">support {c.support:.2f}</span>' if c.supported
               else f'<span class="rag-support rag-weak" title="few words of the sentence appear in this passage">'
                    f'weak support {c.support:.2f}</span>')
    summary = f'<summary><b>[{c.n}]</b> {" · ".join(where)} {support}</summary>'
    meta = [_meta("File", e(c.source))]
    if c.title and c.title != name:
        meta.append(_meta("Title", e(c.title)))
    if section:
        meta.append(_meta("Section", e(section)))
    line = [_meta_item("Page", str(int(c.page)))] if c.page else []
    if getattr(c, "ocr", False):
        line.append(_meta_item("Text", "read by OCR (may contain recognition errors)"))
    line.append(_meta_item("Retrieval score", f"{c.score:.3f}"))
    line.append(_meta_item("Support", f"{c.support:.2f}" + ("" if c.supported else " (weak)")))
    meta.append(f'<div>{" · ".join(line)}</div>')
    url = safe_url(c.url)
    if url:
        meta.append(_meta("URL", f'<a href="{e(url)}" target="_blank" rel="noopener noreferrer nofollow">{e(url)}</a>'))
    elif c.url:
        meta.append(_meta("URL", e(c.url)))
    pdf_page = f' data-pdf-page="{int(c.page)}"' if has_pdf_page(c) else ""  # CITE_JS asks for the page view
    return (f'<details class="rag-cite" id="{cite_id(turn, c.n)}" data-n="{c.n}"{pdf_page}>{summary}'
            f'<div class="rag-cite-body"><div class="rag-meta">{"".join(meta)}</div>'
            f'<blockquote class="rag-passage">{highlight(c)}</blockquote></div></details>')


def has_pdf_page(c: Citation) -> bool:
    """Whether the citation's page of a PDF can be shown as a picture (`render_page_view`)."""
    return bool(c.page) and c.source.lower().endswith(".pdf")


_OCR_TAG = '<span class="rag-ocr" title="this text was read from a scan or image by OCR">(OCR)</span>'


def _ocr_suffix(chunk) -> str:
    """' (OCR)' after the page of a passage read by OCR."""
    return f" {_OCR_TAG}" if getattr(chunk, "ocr", False) else ""


def _meta(label: str, value_html: str) -> str:
    return f"<div>{_meta_item(label, value_html)}</div>"


def _meta_item(label: str, value_html: str) -> str:
    return f'<span class="rag-label">{label}</span> {value_html}'


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def highlight(c: Citation) -> str:
    """The cited passage, escaped, with the supporting quote wrapped in `<mark>`."""
    text, quote = c.text or "", c.quote or ""
    start, end = c.quote_start, c.quote_end
    if not (0 <= start < end <= len(text)) or (quote and text[start:end].strip() != quote.strip()):
        found = text.find(quote) if quote else -1
        start, end = (found, found + len(quote)) if found >= 0 else (0, 0)
    if not text:
        return f"<mark>{e(quote)}</mark>" if quote else ""
    if start == end:
        lead = f'<div class="rag-quote"><mark>{e(quote)}</mark></div>' if quote else ""
        return lead + e(text)
    return f"{e(text[:start])}<mark>{e(text[start:end])}</mark>{e(text[end:])}"


def render_looked_at(turn: int, passages: list[Chunk]) -> str:
    if not passages:
        return '<div class="rag-looked">No passage was found to look at.</div>'
    items = "".join(
        f'<details class="rag-cite" id="looked-{turn}-{j}"><summary>{e(display_name(p.source))}'
        f'{f" · p. {int(p.page)}" if p.page else ""}{_ocr_suffix(p)} <span class="rag-support">score {p.score:.3f}</span></summary>'
        f'<div class="rag-cite-body"><blockquote class="rag-passage">{e(p.text)}</blockquote></div></details>'
        for j, p in enumerate(passages, start=1)
    )
    return f'<div class="rag-looked"><div>The documents do not seem to answer this. What I looked at:</div>{items}</div>'


def render_timings(t: dict) -> str:
    """`retrieval 12 ms · first token 0.4 s · 18.3 tokens/s · total 2.1 s` (the parts that exist)."""
    if not t:
        return ""
    parts = []
    if "retrieval_ms" in t:
        parts.append(f"retrieval {t['retrieval_ms']:.0f} ms")
    if t.get("first_token_ms"):
        parts.append(f"first token {_secs(t['first_token_ms'])}")
    if t.get("tokens_per_s"):
        parts.append(f"{t['tokens_per_s']:.1f} tokens/s")
    if "total_ms" in t:
        parts.append(f"total {_secs(t['total_ms'])}")
    data = "".join(f' data-{k.replace("_", "-")}="{float(v):.1f}"' for k, v in t.items()
                   if isinstance(v, (int, float)))
    return f'<div class="rag-timing"{data}>{" · ".join(parts)}</div>'


def _secs(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


# --- the sources panel ------------------------------------------------------------------------
MODEL_STATUS = {
    "loading": "Loading the language model… Ask away: the sources are shown at once, the answer follows when it is ready.",
    "ready": "Language model ready.",
    "failed": "The language model could not load: {error}",
    "idle": "",
}


def render_model_status(status: str, error: object = None) -> str:
    """The line under the question box saying whether the language model is ready (text only, escaped)."""
    text = MODEL_STATUS.get(status, "").format(error=error or "")
    return f'<div class="rag-model-status" data-status="{e(status)}">{e(text)}</div>' if text else ""


EMPTY_SOURCES = '<div class="rag-sources"><div class="rag-empty">The passages behind the latest answer appear here.</div></div>'


def render_sources(answer: Answer | Evidence | None, *, searching: bool = False) -> str:
    """The passages the latest answer was built from (or, before it, those just found), best first,
    with scores and which were cited."""
    if searching:
        return '<div class="rag-sources"><div class="rag-empty">Searching…</div></div>'
    if answer is None:
        return EMPTY_SOURCES
    if not answer.passages:
        return '<div class="rag-sources"><div class="rag-empty">No passages were retrieved.</div></div>'
    cited = {c.chunk_id: c.n for c in getattr(answer, "citations", [])}
    rows = []
    for rank, p in enumerate(answer.passages, start=1):
        n = cited.get(p.chunk_id)
        tag = f'<span class="rag-cited">cited [{n}]</span>' if n else ""
        page = (f" · p. {int(p.page)}" if p.page else "") + _ocr_suffix(p)
        snippet = " ".join(p.text.split())
        rows.append(
            f'<details class="rag-source{" rag-is-cited" if n else ""}"><summary>'
            f'<span class="rag-rank">#{rank}</span> <span class="rag-score">{p.score:.3f}</span> '
            f'<span class="rag-file">{e(display_name(p.source))}</span>{page} {tag}'
            f'<div class="rag-snippet">{e(_short(snippet, 160))}</div></summary>'
            f'<blockquote class="rag-passage">{e(p.text)}</blockquote></details>'
        )
    head = f'<div class="rag-sources-head">{len(answer.passages)} passages retrieved (score: higher is better)</div>'
    return f'<div class="rag-sources">{head}{"".join(rows)}</div>'


# --- the page view: the cited page of a PDF as a picture ---------------------------------------
def render_page_view(cite: str, c: Citation, image: PageImage) -> str:
    """The page of citation `c` (element id `cite`) as an image with the quote highlighted, and a caption
    saying what the highlight shows. The PNG travels as a data URL: nothing else is fetched."""
    name = display_name(c.source)
    found = {"quote": "the quoted text is highlighted", "part": "part of the quoted text is highlighted",
             "": "the quoted text was not found in the page's text layer"}.get(image.match, "")
    if c.page and image.page != int(c.page):
        found += f" (the passage starts on p. {int(c.page)})"
    boxes = json.dumps([list(b) for b in image.pixel_boxes])
    src = "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")
    alt = f"Page {image.page} of {name}" + (", the quoted text highlighted" if image.match else "")
    return (f'<figure class="rag-page" data-cite="{e(cite)}" data-page="{image.page}" data-source-name="{e(name)}" '
            f'data-match="{e(image.match)}" data-boxes="{e(boxes)}" '
            f'data-content="{e(json.dumps(list(image.content)))}" data-width="{image.width}">'
            f'<figcaption><span><b>[{c.n}]</b> <span class="rag-file">{e(name)}</span> · p. {image.page} · {e(found)}'
            f'</span><button type="button" class="rag-page-close" title="close the page" aria-label="close the page">'
            f'×</button></figcaption><div class="rag-page-scroll"><img src="{e(src)}" width="{image.width}" '
            f'height="{image.height}" alt="{e(alt)}" title="click: whole page / zoom in"></div></figure>')


def render_page_error(c: Citation | None, message: str) -> str:
    """Why the page of a citation cannot be shown, in place of the picture."""
    where = f"[{c.n}] {display_name(c.source)}" + (f" · p. {int(c.page)}" if c.page else "") + ": " if c else ""
    return (f'<div class="rag-page rag-page-error" role="alert"><b>Cannot show the page.</b> {e(where)}{e(message)}'
            '</div>')


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


# --- client-side behaviour and styles (ours, static) ------------------------------------------
CITE_JS = """
if (!element.dataset.citeBound) {
  element.dataset.citeBound = "1";
  element.addEventListener("click", (ev) => {
    const link = ev.target.closest("a.cite-ref");
    if (!link || !element.contains(link)) return;
    ev.preventDefault();
    const box = element.querySelector("#" + CSS.escape(link.dataset.cite));
    if (!box) return;
    const wasOpen = box.open;
    box.open = true;
    box.classList.remove("rag-flash");
    void box.offsetWidth;
    box.classList.add("rag-flash");
    box.scrollIntoView({block: "nearest", behavior: "smooth"});
    if (wasOpen) showPage(box);  // else the toggle below asks
  });
  // a citation of a PDF page opened (by its [n] or its summary): the page view asks the server for the page
  const showPage = (box) => {
    if (box.dataset.pdfPage) trigger("open_page", {cite: box.id});
  };
  element.addEventListener("toggle", (ev) => {
    const box = ev.target;
    if (box instanceof HTMLDetailsElement && box.open && box.classList.contains("rag-cite")) showPage(box);
  }, true);
}
"""

# The page view: the page's text (margins cut off) fills the panel's width, scrolled to the highlight; a click
# on the picture shows the whole page and back; × closes it.
PAGE_JS = """
if (!element.dataset.pageBound) {
  element.dataset.pageBound = "1";
  const layout = () => {
    const fig = element.querySelector(".rag-page[data-boxes]");
    if (!fig) return;
    const img = fig.querySelector("img"), pane = fig.querySelector(".rag-page-scroll");
    const width = Number(fig.dataset.width) || img.naturalWidth || 1;
    const [left, , right] = JSON.parse(fig.dataset.content || "[]");
    const fit = fig.classList.contains("rag-fit") || !(right > left);
    // no larger than the PNG itself: past that the text only blurs
    img.style.width = fit ? "100%" : Math.min(width, pane.clientWidth * width / (right - left)) + "px";
    const k = img.clientWidth / width;
    const first = JSON.parse(fig.dataset.boxes || "[]")[0];
    pane.scrollLeft = fit ? 0 : left * k;
    pane.scrollTop = first ? Math.max(0, first[1] * k - pane.clientHeight / 3) : 0;
  };
  element.addEventListener("click", (ev) => {
    if (ev.target.closest(".rag-page-close")) { props.value = ""; return; }
    const fig = ev.target.closest(".rag-page");
    if (fig && ev.target.tagName === "IMG") { fig.classList.toggle("rag-fit"); layout(); }
  });
  watch("value", () => { layout(); element.scrollIntoView({block: "nearest"}); });
}
"""

CSS = """
.rag-chat, .rag-sources { display: flex; flex-direction: column; gap: 10px; font-size: 15px; }
.rag-empty { color: var(--body-text-color-subdued); padding: 12px; }
.rag-turn { display: flex; flex-direction: column; gap: 6px; }
.rag-msg { border-radius: 10px; padding: 10px 12px; border: 1px solid var(--border-color-primary); }
.rag-user { background: var(--background-fill-secondary); align-self: flex-end; max-width: 85%; }
.rag-bot { background: var(--background-fill-primary); }
.rag-who { font-size: 12px; font-weight: 600; color: var(--body-text-color-subdued); margin-bottom: 4px; }
.rag-text { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.5; }
.rag-short { font-weight: 600; margin-bottom: 4px; }
.rag-error { border-color: #d33; background: rgba(221, 51, 51, 0.08); }
.rag-abstained { border-style: dashed; }
.rag-confidence { font-size: 12px; color: var(--body-text-color-subdued); margin-top: 4px; }
.rag-standalone, .rag-timing, .rag-meta, .rag-sources-head { font-size: 12px; color: var(--body-text-color-subdued); }
.rag-standalone { margin-bottom: 4px; }
.rag-best-match { border-left: 3px dashed var(--border-color-primary); padding: 2px 8px; margin: 4px 0; }
.rag-best-match blockquote { margin: 2px 0; font-style: italic; }
.rag-timing { margin-top: 8px; }
.rag-cursor::after { content: "▍"; animation: rag-blink 1s steps(2) infinite; }
@keyframes rag-blink { 50% { opacity: 0; } }
a.cite-ref { font-weight: 600; text-decoration: none; padding: 0 1px; color: var(--color-accent); cursor: pointer; }
a.cite-ref:hover { text-decoration: underline; }
.rag-cites { margin-top: 8px; display: flex; flex-direction: column; gap: 4px; }
.rag-cite, .rag-source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 4px 8px; }
.rag-cite summary, .rag-source summary { cursor: pointer; font-size: 13px; }
.rag-cite-body { margin-top: 6px; }
.rag-passage { white-space: pre-wrap; overflow-wrap: anywhere; margin: 6px 0 2px; padding: 6px 10px;
  border-left: 3px solid var(--border-color-accent); font-size: 13px; max-height: 320px; overflow: auto; }
.rag-passage mark, .rag-quote mark { background: #ffe066; color: #111; padding: 0 1px; }
.rag-support { font-size: 11px; color: var(--body-text-color-subdued); margin-left: 6px; }
.rag-weak { color: #b35900; }
.rag-ocr { font-size: 11px; color: #6b4fbb; margin-left: 4px; }
.rag-flash { animation: rag-flash 1.2s ease-out; }
@keyframes rag-flash { from { box-shadow: 0 0 0 3px #ffe066; } to { box-shadow: none; } }
.rag-meta { display: flex; flex-direction: column; gap: 1px; overflow-wrap: anywhere; }
.rag-label { font-weight: 600; font-size: inherit; }
.rag-file { font-family: var(--font-mono); font-size: 12px; }
.rag-looked { margin-top: 8px; display: flex; flex-direction: column; gap: 4px; font-size: 13px; }
.rag-rank { color: var(--body-text-color-subdued); }
.rag-score { font-family: var(--font-mono); font-size: 12px; }
.rag-cited { font-size: 11px; font-weight: 600; color: var(--color-accent); margin-left: 4px; }
.rag-is-cited { border-color: var(--color-accent); }
.rag-snippet { font-size: 12px; color: var(--body-text-color-subdued); margin-top: 2px; }
.rag-page { margin: 0 0 10px; border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px; }
.rag-page figcaption { display: flex; gap: 6px; align-items: flex-start; font-size: 12px; margin-bottom: 4px;
  color: var(--body-text-color-subdued); }
.rag-page-close { margin-left: auto; border: none; background: none; cursor: pointer; font-size: 18px; line-height: 1;
  color: inherit; padding: 0 4px; }
.rag-page-scroll { max-height: 60vh; overflow-y: auto; overflow-x: hidden; background: #fff; border-radius: 4px; }
.rag-page img { display: block; width: 100%; height: auto; max-width: none; cursor: zoom-out; }
.rag-page.rag-fit img { cursor: zoom-in; }
.rag-page-error { font-size: 13px; border-color: #d33; background: rgba(221, 51, 51, 0.06); }
"""
