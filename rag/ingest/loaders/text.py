"""Plain text and Markdown: titles (first line, Markdown front matter or heading) and the source URL a text states."""

from __future__ import annotations

import re

from rag.ingest.layout import markdown_headings, section_paths
from rag.ingest.loaders.base import MAX_TITLE_CHARS, LoadedDocument
from rag.ingest.loaders.encoding import normalise_text

# Source-URL detection (see `_split_source_url`).
_TAIL_LINES = 15
_TAIL_CHARS = 1500
_HEAD_LINES = 5
_BOILERPLATE_MAX_CHARS = 80
_URL_ONLY_LINE = re.compile(
    r"""^[\s,;:.|>*\-\u2013\u2014\u2022]*          # stray punctuation left by scrapers: ",https://..."
        (?:(?:source|url|link|original|from|via)\s*[:\uff1a]\s*)?  # optional label: "Source: https://..."
        <?(https?://[^\s<>"]+?)>?                   # the URL itself, optionally in <...>
        [\s,;.]*$""",
    re.IGNORECASE | re.VERBOSE,
)
_LABELLED_URL_LINE = re.compile(
    r"^\s*(?:source|url)\s*[:\uff1a]\s*<?(https?://[^\s<>\"]+?)>?\s*$",
    re.IGNORECASE,
)


def load_plain(raw: str, *, stem: str, markdown: bool) -> LoadedDocument:
    """Normalise text/markdown, split off a stated source URL and pick a title."""
    text, url = _split_source_url(normalise_text(raw))
    title = (_markdown_title(text) if markdown else None) or _first_line_title(text) or stem
    sections = section_paths(markdown_headings(text)) if markdown else ()
    return LoadedDocument(text=text, title=title, url=url, sections=sections)


def _split_source_url(text: str) -> tuple[str, str | None]:
    """Find the URL a scraped document states as its source; drop trailing page leftovers after it.

    Rule 1 (trailing): scanning the last 15 lines (and last 1500 chars) from
    the end, the last line that holds only a URL -- optionally after stray
    punctuation (",") or a label ("Source:", "URL:") -- is the source URL if
    every line after it is short (< 80 chars, typical scraper leftovers such
    as "Share", "Comments"), it is not part of a list of URL lines, and the
    text before it is longer than the leftovers after it. That line and
    everything after it are removed from the text.

    Rule 2 (leading): otherwise a "Source: <url>" / "URL: <url>" line within
    the first 5 lines is the URL; the text is kept unchanged.

    Example::

        "Body of the article.\\n\\n,https://ex.com/a.html\\n\\nShare\\nCart"
        -> ("Body of the article.", "https://ex.com/a.html")

    Without such a line nothing is dropped.
    """
    stripped, trailing_url = _split_trailing_url(text)
    if trailing_url:
        return stripped, trailing_url
    return text, _leading_url(text)


def _split_trailing_url(text: str) -> tuple[str, str | None]:
    """Apply rule 1 of `_split_source_url`; return the text unchanged and None when it does not match."""
    lines = text.split("\n")
    line_starts = []
    pos = 0
    for line in lines:
        line_starts.append(pos)
        pos += len(line) + 1
    window_start_char = len(text) - _TAIL_CHARS
    for i in range(len(lines) - 1, max(len(lines) - 1 - _TAIL_LINES, -1), -1):
        if line_starts[i] < window_start_char:
            break
        url = _url_only(lines[i])
        if url is None:
            if len(lines[i].strip()) >= _BOILERPLATE_MAX_CHARS:
                break  # a long line is real content: no URL line above it can be trailing leftovers
            continue
        before = "\n".join(lines[:i]).rstrip()
        after = "\n".join(lines[i + 1 :]).strip()
        previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
        if len(before) <= len(after) or _url_only(previous):
            # Dropping more than we keep would gut a short note; a URL after a URL ends a link list.
            break
        return before, url
    return text, None


def _leading_url(text: str) -> str | None:
    """Apply rule 2 of `_split_source_url`: a labelled URL within the first lines."""
    for line in text.split("\n")[:_HEAD_LINES]:
        match = _LABELLED_URL_LINE.match(line)
        if match:
            return match.group(1).rstrip(".,;")
    return None


def _url_only(line: str) -> str | None:
    """The URL if `line` holds nothing but one URL (plus stray punctuation or a label), else None."""
    match = _URL_ONLY_LINE.match(line)
    return match.group(1).rstrip(".,;") if match else None


def _first_line_title(text: str) -> str | None:
    """The first non-empty line, when short enough to be a title."""
    for line in text.split("\n"):
        line = line.strip()
        if line:
            return line if len(line) <= MAX_TITLE_CHARS else None
    return None


def _markdown_title(text: str) -> str | None:
    """Title of a markdown document: front-matter `title:`, else the first '# ' heading outside code fences."""
    front = re.match(r"---\n(.*?)\n---(?:\n|$)", text, re.DOTALL)
    if front:
        title = re.search(r"^title\s*:\s*(.+)$", front.group(1), re.MULTILINE)
        if title and title.group(1).strip(" \"'"):
            return title.group(1).strip().strip("\"'")
    in_fence = False
    for line in text.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        match = None if in_fence else re.match(r"^ {0,3}#\s+(.+?)(?:\s+#+)?\s*$", line)
        if match and len(match.group(1)) <= MAX_TITLE_CHARS:
            return match.group(1)
    return None
