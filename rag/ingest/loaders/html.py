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
_HTML_JUNK_ATTR = re.compile(r"cookie|consent|gdpr|banner|navbar|navheader|navfooter|menu|breadcrumb|sidebar|share|"
                             r"social|newsletter|popup|modal")


def load_html(path: Path, html: str) -> LoadedDocument:
    """Extract the main text of an HTML page, with title and canonical URL."""
    soup = _parse_html(html)
    title = _html_title(soup)
    url = _html_url(soup)
    found = [(int(h.name[1]), h.get_text(" ", strip=True), [] if _in_furniture(h) else _words_after(h))
             for h in soup.find_all(_HEADING_TAGS) if not _in_admonition(h)]
    # the heading that repeats the page title adds nothing to a section path: the title is shown anyway
    title_key = heading_key(title or "")
    found = [(level, h, after) for level, h, after in found
             if not (title_key and heading_key(h) and title_key.startswith(heading_key(h)))]
    html, soup, tables = _prepared(soup)  # title, URL and headings are read: the extractors may change the page
    # where each data table of the main text stood: the words after it, to put back a table the extractor dropped
    placeholders = {tag.string: tag for tag in soup.find_all("p") if tag.string in tables} if tables else {}
    placing = {key: [w for w in _words_after(tag) if w not in tables]  # a table next to it is no word of the text
               for key, tag in placeholders.items() if not _in_furniture(tag)}
    extracted = _html_main_text(html, soup)
    dropped = [(tables[key], after) for key, after in placing.items() if key not in extracted]
    text = normalise_text(_with_html_tables(extracted, tables))
    if not text:
        raise EmptyDocumentError(str(path), "no readable text in HTML page")
    text = _with_dropped_tables(text, dropped)
    text = _with_headings(text, found)
    # headings the extractor kept as lines, or that were put back (navigation headings it dropped are not found)
    sections = section_paths(locate_headings(text, [(level, h) for level, h, _ in found]))
    return LoadedDocument(text=text, title=title or path.stem, url=url, sections=sections)


_PLACING_WORDS = 8  # words of the text that follows a heading on the page, found in the main text, place it


def _in_furniture(tag) -> bool:
    """Whether `tag` sits in the page's furniture: navigation, a sidebar, a header or footer, a banner."""
    for parent in tag.parents:
        if parent.name in _HTML_JUNK_TAGS or parent.get("role") in _FURNITURE_ROLES or _has_junk_attr(parent):
            return True
    return False


_FURNITURE_ROLES = ("navigation", "banner", "contentinfo", "complementary")
_NAVIGATION_ATTR = re.compile(r"nav(bar|header|footer|igation)|breadcrumb")


def _in_navigation(tag) -> bool:
    """Whether `tag` sits in a page's navigation bar (not any furniture: a `menu` may hold a price list)."""
    return any(parent.name == "nav" or parent.get("role") == "navigation"
               or _NAVIGATION_ATTR.search(_id_and_classes(parent)) for parent in tag.parents)


# the boxes DocBook (and the generators built on it) set beside the text, each under a heading of its kind
_ADMONITIONS = frozenset({"note", "tip", "warning", "caution", "important", "admonition"})


def _in_admonition(tag) -> bool:
    """Whether `tag` sits in a note, tip or warning box: its heading ("Note") names the box, not a section."""
    return any(_ADMONITIONS.intersection(parent.get("class") or ()) for parent in tag.parents
               if parent.name in ("div", "aside", "section"))


def _words_after(heading) -> list[str]:
    """The first words of the page's text after `heading` (not in a script or style)."""
    from bs4 import NavigableString

    words: list[str] = []
    inside = set(map(id, heading.descendants))
    for node in heading.next_elements:  # lazily: a long page has many headings
        if not isinstance(node, NavigableString) or id(node) in inside or node.parent is None \
                or node.parent.name in ("script", "style") or (_in_admonition(node) and node.find_parent(_HEADING_TAGS)):
            continue  # nor the "Note" over a box that opens the section: extractors drop it
        words += node.split()
        if len(words) >= _PLACING_WORDS:
            break
    return words[:_PLACING_WORDS]


_TOKEN = re.compile(r"\w+|[^\w\s]")


def _line_opened_by(text: str, words: list[str], at: int) -> re.Match | None:
    """The first line of `text` from `at` that opens with `words`, spacing aside: a word and the punctuation
    after it may come from two elements (`<code>smallint</code>, integer`). The line may be a list item (`- `):
    a section that opens with a list, or a list of terms, has its first words there, and the words may run on
    into the next items (and a term into its description, after the `: ` that `definitions_as_items` set)."""
    tokens = [t for w in words for t in _TOKEN.findall(w)]
    return re.compile(r"^[ \t]*(?:-[ \t]+)?" + r"(?:\s|[:;] |\n[ \t]*- )*".join(re.escape(t) for t in tokens),
                      re.MULTILINE).search(text, at)


def _with_headings(text: str, headings: list[tuple[int, str, list[str]]]) -> str:
    """`text` with the page's headings that the extractor dropped put back as lines of their own.

    trafilatura drops a heading nested a few elements below its section (DocBook and Publican pages set each
    `<h3>` inside `div.titlepage > div > div`), so the text keeps no section at all. A dropped heading goes
    back right before the words that follow it on the page, where those words open a line of the text
    (after the heading put back before it); one whose words are not found so stays out."""
    have = {heading_key(line) for line in text.split("\n")}
    at = 0
    for _, heading, after in headings:
        heading = " ".join(heading.split())
        if not heading_key(heading) or heading_key(heading) in have or len(after) < 2:
            continue
        # the words open a line (a paragraph): a sidebar heading whose link text recurs inside a sentence is not placed
        found = _line_opened_by(text, after, at)
        if found is None:
            continue
        text = f"{text[:found.start()]}{heading}\n{text[found.start():]}"
        at = found.start() + len(heading) + 1
    return text


_TABLE_PLACING_MIN = 3  # words after a dropped table, at least, that must open a line of the text to place it


def _with_dropped_tables(text: str, dropped: list[tuple[str, list[str]]]) -> str:
    """`text` with the data tables the extractor dropped put back, each before the words that follow it on the page.

    trafilatura drops a box that holds little text of its own: DocBook and Publican set each table in
    `div.table > div.table-contents`, and the table, once a placeholder, went with it. A table is put back before
    the line its following words open (the first 8, or as few as 3 when the text breaks off after them: a table
    the extractor kept comes next), after the table put back before it; a table last on its page goes at the
    end; one whose following words are not found stays out (they went with it: boilerplate)."""
    at = 0
    for table, after in dropped:
        if not after:
            text, at = f"{text}\n\n{table}", len(text)
            continue
        found = None
        for n in range(len(after), min(_TABLE_PLACING_MIN, len(after)) - 1, -1):  # the words may run on past
            found = _line_opened_by(text, after[:n], at)  # what was kept (a table kept after it)
            if found is not None:
                break
        if found is None:
            continue
        text = f"{text[:found.start()]}\n{table}\n\n{text[found.start():]}"
        at = found.start() + len(table) + 3
    return text


def _parse_html(html: str):
    """Parse HTML with BeautifulSoup, using lxml when available. XHTML pages (an `<?xml ?>` line first) are
    read as HTML too, as browsers read them, without bs4's warning about it."""
    import warnings

    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    # one filter for the process (catch_warnings would swap the filters of every thread while it parses)
    warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)
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
    for tag in soup.find_all(attrs={"role": list(_FURNITURE_ROLES)}):
        tag.decompose()
    for tag in soup.find_all(_has_junk_attr):
        tag.decompose()
    body = soup.body or soup
    return body.get_text("\n", strip=True)


def _has_junk_attr(tag) -> bool:
    """True for elements whose id/class mark them as cookie banners, menus, share bars and the like."""
    if tag.name in ("html", "body", "main", "article") or tag.attrs is None:
        return False
    names = _id_and_classes(tag)
    return bool(names.strip()) and bool(_HTML_JUNK_ATTR.search(names))


def _id_and_classes(tag) -> str:
    """`tag`'s id and classes, lower-cased, one string: what marks page furniture ("navheader", "sidebar")."""
    classes = tag.get("class") or []
    return " ".join([tag.get("id") or "", *(classes if isinstance(classes, list) else [str(classes)])]).lower()


def _prepared(soup):
    """The page as the extractors read it: (html, soup, placeholder -> table). `soup` changed in place: its
    text runs spaced as a browser shows them, inline code as plain text, its data tables placeholders
    (`rag.ingest.tables.replace_html_tables`)."""
    from rag.ingest.tables import replace_html_tables

    inline_images_as_text(soup)
    _drop_permalinks(soup)
    definitions_as_items(soup)
    _collapse_whitespace(soup)
    _flatten_code(soup)
    for table in soup.find_all("table"):
        if _in_navigation(table):  # DocBook's Prev / Up / Next bar over every page is a table: no data of the text
            table.decompose()
    tables = replace_html_tables(soup) if soup.find("table") is not None else {}
    return str(soup), soup, tables


def inline_images_as_text(soup) -> None:
    """Each image set within a line of text, or marked as a formula, replaced by its alt text, as a text browser
    shows it: Sphinx, MediaWiki and LaTeX converters set formulas and symbols as images whose alt text is the
    formula ("resonates at about <img alt="2.5 Hz">"). An image alone in its block (a figure, a logo) is left out;
    so is alt text that is only the image's file name."""
    from bs4 import NavigableString

    for img in soup.find_all("img"):
        alt = " ".join(str(img.get("alt") or "").split())
        if not alt or _IMAGE_FILE.search(alt):
            continue
        classes = " ".join(img.get("class") or ()).lower()
        block = next((parent for parent in img.parents if parent.name in _BLOCKS), None)
        beside_text = block is not None and bool(block.get_text().strip())
        if beside_text or "math" in classes:
            img.replace_with(NavigableString(alt))


_PERMALINK_MARKS = frozenset("¶§#🔗")


def _drop_permalinks(soup) -> None:
    """Each permalink anchor removed: the `¶` that Sphinx, MkDocs and others set after every heading and API entry
    links to the element it sits in and is no word of the text ("propagate¶", "Logger Objects¶")."""
    for link in soup.find_all("a", href=True):
        if str(link["href"]).startswith("#") and link.get_text().strip() in _PERMALINK_MARKS:
            link.decompose()


def definitions_as_items(soup) -> None:
    """Each definition list made a list whose items read "term: description". The extractor makes a term and
    its description two list items, so the description lost the term it describes (an API entry's name, a
    glossary word) to a sentence of its own. Terms given together ("os.chdir(path)", "os.fchdir(fd)") share the
    item: "os.chdir(path); os.fchdir(fd): These functions …". Kept a list, not made paragraphs: the extractor
    drops short paragraphs full of links ("These functions are described in Files and Directories.")."""
    for listing in soup.find_all("dl"):
        listing.name = "ul"
        item, described = None, False
        for child in list(listing.children):
            name = getattr(child, "name", None)
            if name not in ("dt", "dd"):
                continue
            if item is None or (name == "dt" and described):
                item, described = soup.new_tag("li"), False
                child.insert_before(item)
            child.extract()
            if name == "dt":  # the separators go inside the term, where no block edge trims them
                for br in child.find_all("br"):  # spellings of one term a line each: "-a<br/>--data-only"
                    br.replace_with(", ")
                _trim_ends(child)
                if item.contents:
                    item.contents[-1].append("; ")
            else:
                if not described and (terms := item.get_text().strip()):  # "CCS: 1.1 mA source." ends in its own stop
                    item.contents[-1].append(" " if terms[-1] in ":.;,?!" else ": ")
                described = True
                for link in child.find_all("a"):  # cross-references, words of the description: the extractor
                    link.unwrap()  # drops a short paragraph that is mostly links ("preferred over today()")
                _paragraphs_as_text(child)
            child.name = "span"  # as a block in an item, the extractor splits the item in some pages
            item.append(child)
        parent = listing.parent
        items = listing.find_all("li", recursive=False)
        if parent is not None and parent.name == "li" and len(items) == 1 and not any(
                str(node).strip() for node in parent.contents if node is not listing):
            listing.replace_with(*items[0].contents)  # Sphinx sets each term in an item of its own: `<li><dl>`


def _paragraphs_as_text(description) -> None:
    """The paragraphs of a definition's description made plain text on its item's line: on lines of their own,
    "The default value is three." would read as the text after the list, not as its term's. (Plain text, not
    the paragraphs unwrapped: the extractor drops the spaces around inline markup in a list item.)"""
    from bs4 import NavigableString

    for paragraph in description.find_all("p", recursive=False):
        paragraph.replace_with(NavigableString(" ".join(paragraph.get_text().split()) + " "))


def _trim_ends(tag) -> None:
    """The spaces at the start and at the end of `tag`'s text removed, over as many text nodes as hold only
    spaces: `<span>name</span> (<code>integer</code>)\n  <a class="indexterm"></a>\n  `."""
    from bs4 import NavigableString

    for strip, order in ((str.rstrip, reversed), (str.lstrip, iter)):
        for node in order([node for node in tag.descendants if isinstance(node, NavigableString)]):
            node.replace_with(NavigableString(strip(str(node))))
            if strip(str(node)):
                break


_IMAGE_FILE = re.compile(r"(^|/)[\w.-]+\.(png|jpe?g|gif|svg|webp|bmp|tiff?)$", re.IGNORECASE)
_PREFORMATTED = ("pre", "textarea", "listing", "xmp", "plaintext")
_CODE = ("code", "tt", "kbd", "samp")


def _flatten_code(soup) -> None:
    """Inline code as plain text inside its tag: trafilatura drops or misplaces the text of markup nested in
    it (DocBook's `<code>float(<em><code>p</code></em>)</code>` came out as "float(" ... "p)p")."""
    for tag in soup.find_all(_CODE):
        for inner in tag.find_all(True):
            inner.unwrap()


def _collapse_whitespace(soup) -> None:
    """Each run of spaces, tabs and line breaks in the page's text made one space, as a browser renders it:
    a paragraph whose source lines were wrapped at 80 columns (DocBook, Sphinx) reads as one line, not as
    lines indented by the source's nesting. Preformatted text keeps its lines."""
    from bs4 import Comment, NavigableString

    for node in list(soup.find_all(string=True)):
        if not isinstance(node, NavigableString) or isinstance(node, Comment):
            continue
        if any(parent.name in _PREFORMATTED for parent in node.parents):
            continue
        spaced = _SPACES.sub(" ", str(node))
        if _block_edge(node.previous_sibling, node.parent):  # a block starts or ends before it: no space shown
            spaced = spaced.lstrip(" ")
        if _block_edge(node.next_sibling, node.parent):
            spaced = spaced.rstrip(" ")
        if spaced != node:
            node.replace_with(NavigableString(spaced))


def _block_edge(sibling, parent) -> bool:
    """Whether a text node whose neighbour on one side is `sibling` touches a block's edge on that side."""
    from bs4 import Tag

    if sibling is None:
        return parent is not None and parent.name in _BLOCKS
    return isinstance(sibling, Tag) and sibling.name in _BLOCKS


_SPACES = re.compile(r"[ \t\r\n\f]+")
_BLOCKS = frozenset({"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "td", "th", "caption", "figcaption",
                     "figure", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "main", "body",
                     "br", "hr", "pre"})


def _with_html_tables(text: str, tables: dict[str, str]) -> str:
    from rag.ingest.tables import restore_placeholders

    return restore_placeholders(text, tables) if tables else text
