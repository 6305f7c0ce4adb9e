"""EPUB books: chapters in spine order, each chapter one page, tables as Markdown; title from metadata.

An EPUB is a zip: META-INF/container.xml names the OPF package file, whose
manifest lists the chapters and whose spine orders them. Those small XML files
are read with defusedxml (no entities, nothing external). Each chapter's XHTML
is read whole with BeautifulSoup (lxml's HTML parser: no entities, no network),
headings as `#` lines, list items as `- ` lines, and tables through the same
`rag.ingest.tables` code as HTML pages. Not `html.load_html`: its main-content
extraction (trafilatura) is made for web pages and drops chapter headings, lists
and asides, all of which are the book. DRM-encrypted books (META-INF/encryption.xml
covering the chapters) are refused with a reason.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from urllib.parse import unquote

from rag.core.errors import DocumentError, EmptyDocumentError
from rag.ingest.layout import marked_headings, section_paths
from rag.ingest.loaders.base import (
    MAX_TITLE_CHARS,
    LoadedDocument,
    join_pages,
    short_cause,
)
from rag.ingest.loaders.encoding import decode_text, normalise_text
from rag.ingest.loaders.html import definitions_as_items, inline_images_as_text
from rag.ingest.loaders.zipped import open_zip, read_member

_CHAPTER_TYPES = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml"}
# Font obfuscation also lives in encryption.xml; it hides fonts, not text.
_FONT_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
_MAX_CHAPTERS = 5000


def load_epub(path: Path, data: bytes) -> LoadedDocument:
    """Extract the chapters of an EPUB in reading order, one page each (numbered from 1, chapters with text)."""
    archive = open_zip(path, data, ".epub")
    with archive:
        opf_path = _opf_path(path, archive)
        package = _parse_xml(path, read_member(path, archive, opf_path, ".epub"), opf_path)
        title = _metadata_title(package)
        chapters = _spine(path, package, posixpath.dirname(opf_path))
        _refuse_drm(path, archive, {href for href, _ in chapters})
        headings: list[tuple[int, str]] = []
        page_texts, notes = _chapter_texts(path, archive, chapters, headings)
    if not page_texts:
        raise EmptyDocumentError(str(path), "no text in book" + (f" ({notes[0]})" if notes else ""))
    text, pages = join_pages(page_texts)
    return LoadedDocument(text=text, title=(title or path.stem)[:MAX_TITLE_CHARS], url=None, pages=pages,
                          notes=tuple(notes), sections=section_paths(marked_headings(text, headings)))


def _parse_xml(path: Path, data: bytes, name: str):
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        return fromstring(data)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise DocumentError(str(path), f"not a valid .epub file ({name}: {short_cause(exc)})") from None


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _opf_path(path: Path, archive) -> str:
    """The package (.opf) file named by META-INF/container.xml (or the only .opf in the zip)."""
    names = set(archive.namelist())
    if "META-INF/container.xml" in names:
        container = _parse_xml(path, read_member(path, archive, "META-INF/container.xml", ".epub"), "container.xml")
        for element in container.iter():
            if _local(element.tag) == "rootfile" and element.get("full-path"):
                full_path = unquote(element.get("full-path")).lstrip("/")
                if full_path in names:
                    return full_path
    opfs = sorted(n for n in names if n.lower().endswith(".opf"))
    if len(opfs) == 1:
        return opfs[0]
    raise DocumentError(str(path), "not a valid .epub file (no package file: META-INF/container.xml is missing)")


def _metadata_title(package) -> str:
    for element in package.iter():
        if _local(element.tag) == "title" and (element.text or "").strip():
            return " ".join(element.text.split())
    return ""


def _spine(path: Path, package, base: str) -> list[tuple[str, str]]:
    """(zip member, media type) of the spine's documents, in reading order."""
    manifest: dict[str, tuple[str, str]] = {}
    spine: list[str] = []
    for element in package.iter():
        name = _local(element.tag)
        if name == "item" and element.get("id") and element.get("href"):
            href = unquote(element.get("href").split("#", 1)[0])
            member = posixpath.normpath(posixpath.join(base, href)) if base else posixpath.normpath(href)
            manifest[element.get("id")] = (member, (element.get("media-type") or "").lower())
        elif name == "itemref" and element.get("idref"):
            spine.append(element.get("idref"))
    chapters = [manifest[idref] for idref in spine if idref in manifest and manifest[idref][1] in _CHAPTER_TYPES]
    if not chapters:
        raise DocumentError(str(path), "not a valid .epub file (its spine lists no chapters)")
    seen: set[str] = set()
    unique = [c for c in chapters if not (c[0] in seen or seen.add(c[0]))]
    return unique[:_MAX_CHAPTERS]


def _refuse_drm(path: Path, archive, chapter_members: set[str]) -> None:
    """Raise when META-INF/encryption.xml encrypts chapters (DRM); font obfuscation is fine."""
    if "META-INF/encryption.xml" not in archive.namelist():
        return
    root = _parse_xml(path, read_member(path, archive, "META-INF/encryption.xml", ".epub"), "encryption.xml")
    for data in root.iter():
        if _local(data.tag) != "EncryptedData":
            continue
        algorithms = {m.get("Algorithm") for m in data.iter() if _local(m.tag) == "EncryptionMethod"}
        targets = {unquote(r.get("URI") or "") for r in data.iter() if _local(r.tag) == "CipherReference"}
        if targets & chapter_members and not algorithms <= _FONT_OBFUSCATION:
            raise DocumentError(str(path), "encrypted EPUB (DRM): its chapters cannot be read")


def _chapter_texts(path: Path, archive, chapters: list[tuple[str, str]],
                   headings: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], list[str]]:
    """(page number, text) for each chapter with text, and notes on chapters that could not be read; the
    chapters' headings `(level, title)` are added to `headings`."""
    names = set(archive.namelist())
    page_texts: list[tuple[int, str]] = []
    notes: list[str] = []
    for member, _ in chapters:
        if member not in names:
            notes.append(f"chapter {member} is missing from the book")
            continue
        try:
            html = decode_text(Path(f"{path}/{member}"), read_member(path, archive, member, ".epub"), html=True)
            found: list[tuple[int, str]] = []
            text = chapter_text(html, found)
        except DocumentError as exc:
            notes.append(f"chapter {member} could not be read ({exc.reason})")
            continue
        except Exception as exc:  # a parser failure on one chapter must not cost the book
            notes.append(f"chapter {member} could not be read ({short_cause(exc)})")
            continue
        if text:  # else a cover or an image-only page
            page_texts.append((len(page_texts) + 1, text))
            headings += found
    return page_texts, notes


_BLOCKS = {"p", "div", "section", "article", "blockquote", "pre", "li", "dt", "dd", "figcaption", "caption", "tr",
           "br", "hr", "ul", "ol", "dl", "table", "aside", "header", "footer", "nav", "figure", "address", "main",
           "h1", "h2", "h3", "h4", "h5", "h6"}
_DROP = ("script", "style", "noscript", "template", "head", "svg", "math", "object", "embed", "iframe")


def chapter_text(html: str, headings: list[tuple[int, str]] | None = None) -> str:
    """All visible text of an XHTML chapter: `#` headings, `- ` list items (a definition list's "- term:
    description" too), paragraphs, Markdown tables. Its
    headings `(level, title)` are added to `headings` when given: a `#` line of the text may be a paragraph's.
    An image set within a line of text reads as its alt text (a formula, a symbol); a figure on its own does not."""
    from bs4 import BeautifulSoup, NavigableString

    from rag.ingest.tables import replace_html_tables, restore_placeholders

    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)  # an XML declaration makes bs4 warn; the parser needs none
    try:
        soup = BeautifulSoup(html, "lxml")
    except Exception:  # bs4.FeatureNotFound when lxml is missing
        soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_DROP):
        tag.decompose()
    inline_images_as_text(soup)
    definitions_as_items(soup)  # "- term: description", as the HTML loader reads a definition list
    tables = replace_html_tables(soup)
    for string in list(soup.find_all(string=True)):
        if isinstance(string, NavigableString) and string.find_parent("pre") is None:
            string.replace_with(re.sub(r"\s+", " ", str(string)))
    for tag in soup.find_all(True):
        if tag.name in ("h1", "h2", "h3", "h4", "h5", "h6"):
            if headings is not None and tag.get_text().strip():
                headings.append((int(tag.name[1]), " ".join(tag.get_text(" ").split())))
            tag.insert(0, "#" * int(tag.name[1]) + " ")
        elif tag.name == "li":
            tag.insert(0, "- ")
        elif tag.name in ("td", "th"):
            tag.append(" ")
        # what opens a list item goes on the item's line: `<li><p>text</p></li>` is `- text`
        if tag.name in ("br", "li", "tr", "dt", "dd"):
            if tag.name == "li" or not _opens_item(tag):
                tag.insert_before("\n")  # one line each
        elif tag.name in _BLOCKS:
            if not _opens_item(tag):
                tag.insert_before("\n\n")
            tag.append("\n\n")
    body = soup.body or soup
    lines = [line.strip() for line in body.get_text().split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    text = re.sub(r"^#+\s*$", "", text, flags=re.MULTILINE)  # an empty heading
    if tables:
        text = restore_placeholders(text, tables)
    return normalise_text(text)


def _opens_item(tag) -> bool:
    """Whether `tag` is the first thing in a list item (nothing but the item's `- ` before it, at any depth)."""
    from bs4 import NavigableString

    item = next((parent for parent in tag.parents if parent.name in ("li", "ul", "ol", "body", "html")), None)
    if item is None or item.name != "li":
        return False  # the common case, decided without reading any text
    while tag is not item:
        for sibling in tag.previous_siblings:
            text = str(sibling) if isinstance(sibling, NavigableString) else sibling.get_text()
            if text.strip() not in ("", "-"):
                return False
        tag = tag.parent
    return True
