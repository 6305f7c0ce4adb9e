"""Word .docx files: paragraphs and tables in document order, title, and the zip-bomb check.

python-docx is imported inside the functions that need it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError
from rag.ingest.layout import locate_headings, section_paths
from rag.ingest.loaders.base import (
    MAX_TITLE_CHARS,
    LoadedDocument,
    format_size,
    short_cause,
)
from rag.ingest.loaders.encoding import normalise_text

_HEADING_LEVELS = {"Title": 0, **{f"Heading {n}": n for n in range(1, 10)}}
_MAX_UNZIPPED_BYTES = 256 * 2**20  # a text-only .docx unzips to a few times its size; more is a zip bomb


def load_docx(path: Path, data: bytes) -> LoadedDocument:
    """Extract paragraphs and table cells of a .docx in document order."""
    document = _open_docx(path, data)
    try:
        blocks, heading, headings = _docx_blocks(document)
        core_title = (document.core_properties.title or "").strip()
    except Exception as exc:  # malformed XML inside an otherwise valid zip
        raise DocumentError(str(path), f"not a valid .docx file ({short_cause(exc)})") from None
    text = normalise_text("\n\n".join(blocks))
    if not text:
        raise EmptyDocumentError(str(path), "no text in document")
    return LoadedDocument(text=text, title=core_title or heading or path.stem, url=None,
                          sections=section_paths(locate_headings(text, headings)))


def _open_docx(path: Path, data: bytes):
    """Open a .docx with python-docx, explaining the usual ways a file is not one."""
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        # OLE container: an old binary .doc renamed, or a password-protected document.
        raise DocumentError(str(path), "not a valid .docx file (old .doc or password-protected: save as .docx)")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DocumentError(str(path), "not a valid .docx file")
    check_unzipped_size(path, data)
    import docx

    try:
        return docx.Document(io.BytesIO(data))
    except Exception as exc:  # PackageNotFoundError, KeyError, BadZipFile, XML errors
        raise DocumentError(str(path), f"not a valid .docx file ({short_cause(exc)})") from None


def check_unzipped_size(path: Path, data: bytes, limit: int = _MAX_UNZIPPED_BYTES) -> None:
    """Refuse a zip-based document whose members would unzip past `limit`, before any is unzipped.

    The sizes come from the zip's central directory; a member that lies about
    its size fails zipfile's own length check when read, so it cannot sneak past.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentError(str(path), f"not a valid .docx file ({short_cause(exc)})") from None
    if total > limit:
        raise DocumentError(str(path), f"unzips to {format_size(total)}, over the {format_size(limit)} limit "
                                       "for documents (a zip bomb?)")


def _docx_blocks(document) -> tuple[list[str], str | None, list[tuple[int, str]]]:
    """Text blocks (paragraphs, one block per table) in order, the first Title/Heading paragraph, and the
    (level, text) of every Heading paragraph (the Title is level 0)."""
    from docx.table import Table

    blocks: list[str] = []
    heading: str | None = None
    headings: list[tuple[int, str]] = []
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            block = _docx_table_markdown(item)
        else:
            block = item.text.strip()
            style = (item.style.name if item.style is not None else "") or ""
            if block and heading is None and (style == "Title" or style.startswith("Heading")):
                heading = block[:MAX_TITLE_CHARS]
            level = _HEADING_LEVELS.get(style)
            if block and level is not None:
                headings.append((level, block))
        if block:
            blocks.append(block)
    return blocks, heading, headings


def _docx_table_markdown(table) -> str:
    """A table as a Markdown table (see `rag.ingest.tables`)."""
    from rag.ingest.tables import docx_table_markdown

    return docx_table_markdown(table)
