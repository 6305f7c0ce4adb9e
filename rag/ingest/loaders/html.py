"""HTML pages: the main text (trafilatura, else BeautifulSoup minus page furniture), tables, title and canonical URL.

trafilatura and BeautifulSoup are imported inside the functions that need them.
"""

from __future__ import annotations

import re
from pathlib import Path

from rag.core.errors import EmptyDocumentError
from rag.ingest.layout import heading_key, locate_headings, section_paths
from rag.ingest.loaders.base import MAX_TITLE_CHARS, LoadedDocument
from rag.ingest.loaders.encoding import normalise_text

_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_HTML_JUNK_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "nav", "header", "footer", "aside", "form")
_HTML_JUNK_ATTR = re.compile(r"cookie|consent|gdpr|banner|navbar|menu|breadcrumb|sidebar|share|social|newsletter|popup|modal")


def load_html(path: Path, html: str) -> LoadedDocument:
    """Extract the main text of an HTML page, with title and canonical URL."""
    soup = _parse_html(html)
    title = _html_title(soup)
    url = _html_url(soup)
    headings = [(int(h.name[1]), h.get_text(" ", strip=True)) for h in soup.find_all(_HEADING_TAGS)]
    # the heading that repeats the page title adds nothing to a section path: the title is shown anyway
    title_key = heading_key(title or "")
    headings = [(level, h) for level, h in headings if not (title_key and heading_key(h)
                                                              and title_key.startswith(heading_key(h)))]
    html, soup, tables = _html_with_table_placeholders(html, soup)
    text = normalise_text(_with_html_tables(_html_main_text(html, soup), tables))
    if not text:
        raise EmptyDocumentError(str(path), "no readable text in HTML page")
    # headings the extractor kept as lines (navigation headings it dropped are not found)
    sections = section_paths(locate_headings(text, headings))
    return LoadedDocument(text=text, title=title or path.stem, url=url, sections=sections)


def _parse_html(html: str):
    """Parse HTML with BeautifulSoup, using lxml when available."""
    from bs4 import BeautifulSoup

    try:
        return BeautifulSoup(html, "lxml")
    except Exception:  # bs4.FeatureNotFound when lxml is missing
        return BeautifulSoup(html, "html.parser")


def _html_title(soup) -> str | None:
    """Title from <title>, else og:title, else the first <h1>."""
    candidates = [
        soup.title.get_text(" ", strip=True) if soup.title else None,
        _meta_content(soup, "og:title"),
        soup.h1.get_text(" ", strip=True) if soup.h1 else None,
    ]
    for candidate in candidates:
        if candidate and candidate.strip():
            return re.sub(r"\s+", " ", candidate).strip()[:MAX_TITLE_CHARS]
    return None


def _html_url(soup) -> str | None:
    """Source URL from <link rel=canonical>, else og:url; only absolute http(s) URLs count."""
    for link in soup.find_all("link", href=True):
        rel = link.get("rel") or []
        rels = rel if isinstance(rel, list) else str(rel).split()
        if "canonical" in (r.lower() for r in rels) and _is_http_url(link["href"]):
            return link["href"].strip()
    og_url = _meta_content(soup, "og:url")
    return og_url.strip() if og_url and _is_http_url(og_url) else None


def _meta_content(soup, prop: str) -> str | None:
    """Content of a <meta property=...> (or name=...) tag."""
    tag = soup.find("meta", attrs={"property": prop}) or soup.find("meta", attrs={"name": prop})
    content = tag.get("content") if tag else None
    return content if isinstance(content, str) else None


def _is_http_url(value: str) -> bool:
    """True for absolute http(s) URLs."""
    return bool(re.match(r"^\s*https?://\S+\s*$", value, re.IGNORECASE))


def _html_main_text(html: str, soup) -> str:
    """Main content via trafilatura; BeautifulSoup with junk removed when trafilatura finds nothing."""
    text = None
    try:
        import trafilatura

        text = trafilatura.extract(html, include_comments=False, include_tables=True, favor_recall=True)
    except Exception:  # trafilatura chokes on some malformed pages; the fallback still works
        text = None
    if text and text.strip():
        return text
    return _html_fallback_text(soup)


def _html_fallback_text(soup) -> str:
    """Visible text of the page minus scripts, styles, navigation, footers, forms and banners."""
    for tag in soup.find_all(_HTML_JUNK_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": ["navigation", "banner", "contentinfo", "complementary"]}):
        tag.decompose()
    for tag in soup.find_all(_has_junk_attr):
        tag.decompose()
    body = soup.body or soup
    return body.get_text("\n", strip=True)


def _has_junk_attr(tag) -> bool:
    """True for elements whose id/class mark them as cookie banners, menus, share bars and the like."""
    if tag.name in ("html", "body", "main", "article") or tag.attrs is None:
        return False
    classes = tag.get("class") or []
    names = " ".join([tag.get("id") or "", *(classes if isinstance(classes, list) else [str(classes)])])
    return bool(names.strip()) and bool(_HTML_JUNK_ATTR.search(names.lower()))


def _html_with_table_placeholders(html: str, soup):
    """Swap data tables for placeholders before text extraction; returns (html, soup, placeholder -> table)."""
    from rag.ingest.tables import replace_html_tables

    if soup.find("table") is None:
        return html, soup, {}
    working = _parse_html(html)  # the extractors read this copy; title and URL came from the original
    tables = replace_html_tables(working)
    return (str(working), working, tables) if tables else (html, soup, {})


def _with_html_tables(text: str, tables: dict[str, str]) -> str:
    from rag.ingest.tables import restore_placeholders

    return restore_placeholders(text, tables) if tables else text
