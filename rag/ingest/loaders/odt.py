"""OpenDocument text (.odt): headings, paragraphs, lists and tables in document order; title from metadata.

content.xml and meta.xml are parsed with defusedxml (entities refused, nothing
fetched); the ODF element tree is then walked here. Password-protected files
(encrypted content.xml, flagged in META-INF/manifest.xml) are refused with a reason.
"""

from __future__ import annotations

from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError
from rag.ingest.layout import marked_headings, section_paths
from rag.ingest.loaders.base import MAX_TITLE_CHARS, LoadedDocument, short_cause
from rag.ingest.loaders.encoding import normalise_text
from rag.ingest.loaders.sheets import MAX_COLUMNS, MAX_SHEET_ROWS, trim
from rag.ingest.loaders.zipped import open_zip, read_member
from rag.ingest.tables import markdown_table

_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
_MANIFEST = "{urn:oasis:names:tc:opendocument:xmlns:manifest:1.0}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"

# Not body text: comments, tracked deletions, generated indexes (they repeat the headings), declarations.
_SKIP = {
    f"{_OFFICE}annotation", f"{_OFFICE}annotation-end", f"{_TEXT}tracked-changes", f"{_TEXT}table-of-content",
    f"{_TEXT}illustration-index", f"{_TEXT}table-index", f"{_TEXT}object-index", f"{_TEXT}user-index",
    f"{_TEXT}alphabetical-index", f"{_TEXT}bibliography", f"{_TEXT}sequence-decls", f"{_TEXT}variable-decls",
    f"{_TEXT}user-field-decls", f"{_OFFICE}forms", f"{_TEXT}note-citation",
}
_TEXT_TYPES = ("application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.text-template",
               "application/vnd.oasis.opendocument.text-master")


def load_odt(path: Path, data: bytes) -> LoadedDocument:
    """Extract an .odt's text: `#` headings, paragraphs, `- ` list items and Markdown tables."""
    archive = open_zip(path, data, ".odt")
    with archive:
        names = set(archive.namelist())
        if "mimetype" in names:
            mimetype = read_member(path, archive, "mimetype", ".odt").decode("ascii", errors="replace").strip()
            if mimetype not in _TEXT_TYPES:
                raise DocumentError(str(path), f"not a text document ({mimetype or 'no mimetype'}): save it as .odt")
        _refuse_encrypted(path, archive, names)
        content = _parse(path, read_member(path, archive, "content.xml", ".odt"), "content.xml")
        meta = _parse(path, read_member(path, archive, "meta.xml", ".odt"), "meta.xml") if "meta.xml" in names else None
    body = content.find(f"{_OFFICE}body/{_OFFICE}text")
    if body is None:
        raise DocumentError(str(path), "not a valid .odt file (no text body in content.xml)")
    blocks: list[str] = []
    headings: list[tuple[int, str]] = []
    try:
        _blocks(body, blocks, 0, headings)
    except RecursionError:
        raise DocumentError(str(path), "not a valid .odt file (elements nested too deeply)") from None
    text = normalise_text("\n\n".join(b for b in blocks if b.strip()))
    if not text:
        raise EmptyDocumentError(str(path), "no text in document")
    title = _meta_title(meta) or _first_heading(body) or path.stem
    return LoadedDocument(text=text, title=title[:MAX_TITLE_CHARS], url=None,
                          sections=section_paths(marked_headings(text, headings)))  # `#` lines, not `# apt ...`


def _parse(path: Path, data: bytes, name: str):
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        return fromstring(data)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise DocumentError(str(path), f"not a valid .odt file ({name}: {short_cause(exc)})") from None


def _refuse_encrypted(path: Path, archive, names: set[str]) -> None:
    if "META-INF/manifest.xml" not in names:
        return
    manifest = _parse(path, read_member(path, archive, "META-INF/manifest.xml", ".odt"), "manifest.xml")
    for entry in manifest.iter(f"{_MANIFEST}file-entry"):
        if entry.get(f"{_MANIFEST}full-path") == "content.xml" and entry.find(f"{_MANIFEST}encryption-data") is not None:
            raise DocumentError(str(path), "password-protected .odt: save an unprotected copy")


def _meta_title(meta) -> str:
    if meta is None:
        return ""
    element = meta.find(f".//{_DC_TITLE}")
    return " ".join((element.text or "").split()) if element is not None else ""


def _first_heading(body) -> str:
    for heading in body.iter(f"{_TEXT}h"):
        text = " ".join(_inline(heading).split())
        if text:
            return text
    return ""


def _inline(element) -> str:
    """The text of a paragraph-like element: spans, links, spaces (text:s), tabs, line breaks, footnote bodies."""
    parts = [element.text or ""]
    for child in element:
        tag = child.tag
        if tag == f"{_TEXT}s":
            count = child.get(f"{_TEXT}c", "1")
            parts.append(" " * (min(int(count), 100) if count.isdigit() else 1))
        elif tag == f"{_TEXT}tab":
            parts.append("\t")
        elif tag == f"{_TEXT}line-break":
            parts.append("\n")
        elif tag == f"{_TEXT}note-body":
            parts.append(" (" + " ".join(_inline(p) for p in child) + ")")
        elif tag not in _SKIP:
            parts.append(_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _blocks(element, out: list[str], list_depth: int, headings: list[tuple[int, str]] | None = None) -> None:
    """Append the text blocks under `element` to `out`, in document order, and its headings `(level, title)` to
    `headings` when given."""
    for child in element:
        tag = child.tag
        if tag in _SKIP:
            continue
        if tag == f"{_TEXT}h":
            level = child.get(f"{_TEXT}outline-level", "1")
            level = min(max(int(level), 1), 6) if level.isdigit() else 1
            text = " ".join(_inline(child).split())
            if text:
                out.append("#" * level + " " + text)
                if headings is not None:
                    headings.append((level, text))
        elif tag == f"{_TEXT}p":
            text = _inline(child).strip()
            if text:
                out.append(text)
        elif tag == f"{_TEXT}list":
            for item in child:
                if item.tag not in (f"{_TEXT}list-item", f"{_TEXT}list-header"):
                    continue
                inner: list[str] = []
                found: list[tuple[int, str]] = []  # a numbered heading is often set as a list item: still a heading
                _blocks(item, inner, list_depth + 1, found)
                if headings is not None:
                    headings += found
                marked = {"#" * level + " " + text for level, text in found}
                indent = "  " * list_depth
                out.extend(b if b in marked or b.lstrip().startswith("- ") else f"{indent}- {b}" for b in inner)
        elif tag == f"{_TABLE}table":
            out.append(_table(child))
        else:  # sections, frames, text boxes, soft page breaks, ...
            _blocks(child, out, list_depth, headings)


def _table(table) -> str:
    """An ODF table as a Markdown table: repeated rows/columns expanded (capped), merged cells written once."""
    rows: list[list[str]] = []
    for row in _table_rows(table):
        cells: list[str] = []
        for cell in row:
            if cell.tag not in (f"{_TABLE}table-cell", f"{_TABLE}covered-table-cell"):
                continue
            text = "" if cell.tag == f"{_TABLE}covered-table-cell" else " ".join(_cell_text(cell).split())
            repeat = _repeat(cell, f"{_TABLE}number-columns-repeated")
            cells.extend([text] * min(repeat, MAX_COLUMNS - len(cells)))
            if len(cells) >= MAX_COLUMNS:
                break
        repeat = _repeat(row, f"{_TABLE}number-rows-repeated")
        rows.extend([cells] * (min(repeat, MAX_SHEET_ROWS - len(rows)) if any(cells) else 1))
        if len(rows) >= MAX_SHEET_ROWS:
            break
    rows = trim(rows)
    if len(rows) < 2 or max((len(r) for r in rows), default=0) < 2:
        return "\n".join(c for r in rows for c in r if c)  # a one-row/one-column box is just text
    return markdown_table(rows)


def _table_rows(table):
    for child in table:
        if child.tag == f"{_TABLE}table-row":
            yield child
        elif child.tag in (f"{_TABLE}table-header-rows", f"{_TABLE}table-rows", f"{_TABLE}table-row-group"):
            yield from _table_rows(child)


def _cell_text(cell) -> str:
    blocks: list[str] = []
    _blocks(cell, blocks, 0)
    return " ".join(blocks)


def _repeat(element, attribute: str) -> int:
    value = element.get(attribute, "1")
    return max(int(value), 1) if value.isdigit() else 1
