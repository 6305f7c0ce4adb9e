"""PowerPoint .pptx decks: one slide = one page, title first, text boxes, tables, chart data, then speaker notes.

python-pptx (imported inside `load_pptx`) parses with entity resolution off and
never runs macros; the zip is checked first (`rag.ingest.loaders.zipped`).
"""

from __future__ import annotations

import io
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError
from rag.ingest.loaders.base import (
    MAX_TITLE_CHARS,
    LoadedDocument,
    join_pages,
    short_cause,
)
from rag.ingest.loaders.encoding import normalise_text
from rag.ingest.loaders.zipped import open_zip
from rag.ingest.tables import markdown_table

NOTES_LABEL = "Speaker notes:"
_OLE_HINT = "password-protected, or an old .ppt renamed: save an unprotected copy as .pptx"
_MAX_SHAPE_DEPTH = 20  # groups inside groups


def load_pptx(path: Path, data: bytes) -> LoadedDocument:
    """Extract each slide's text as its own page; slides without text are left out."""
    open_zip(path, data, ".pptx", ole_hint=_OLE_HINT).close()
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
        slides = list(deck.slides)
    except Exception as exc:  # PackageNotFoundError, KeyError, XMLSyntaxError, ...
        raise DocumentError(str(path), f"not a valid .pptx file ({short_cause(exc)})") from None
    page_texts: list[tuple[int, str]] = []
    notes: list[str] = []
    first_title = None
    for number, slide in enumerate(slides, 1):
        try:
            title, text = _slide_text(slide)
        except Exception as exc:  # one broken slide must not cost the others
            notes.append(f"slide {number} could not be read ({short_cause(exc)})")
            continue
        first_title = first_title or title
        if text:
            page_texts.append((number, text))
    if not page_texts:
        if notes and len(notes) == len(slides):
            raise DocumentError(str(path), f"not a valid .pptx file (no slide could be read: {notes[0]})")
        raise EmptyDocumentError(str(path), "no text in presentation" if slides else "presentation has no slides")
    text, pages = join_pages(page_texts)
    core_title = _core_title(deck)
    return LoadedDocument(text=text, title=(core_title or first_title or path.stem)[:MAX_TITLE_CHARS], url=None,
                          pages=pages, notes=tuple(notes))


def _core_title(deck) -> str:
    try:
        return (deck.core_properties.title or "").strip()
    except Exception:  # a malformed docProps/core.xml: fall back to the slide title
        return ""


def _slide_text(slide) -> tuple[str | None, str]:
    """(the slide's title, its text): `## title`, the other shapes top to bottom, then the speaker notes."""
    title_shape = slide.shapes.title
    title = normalise_text(title_shape.text_frame.text).replace("\n", " ").strip() if title_shape is not None else ""
    blocks = [f"## {title}"] if title else []
    others = [s for s in slide.shapes if title_shape is None or s.shape_id != title_shape.shape_id]
    for shape in _reading_order(others):
        blocks.extend(_shape_blocks(shape, 0))
    notes = _notes_text(slide)
    if notes:
        blocks.append(f"{NOTES_LABEL}\n{notes}")
    return title or None, normalise_text("\n\n".join(b for b in blocks if b))


def _reading_order(shapes) -> list:
    """Shapes top to bottom, then left to right (z-order is drawing order, not reading order)."""
    return sorted(shapes, key=lambda s: (s.top or 0, s.left or 0))


def _shape_blocks(shape, depth: int) -> list[str]:
    """Text blocks of one shape: a text frame, a table, a chart's data, or a group's shapes."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if depth > _MAX_SHAPE_DEPTH:
        return []
    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        return [b for s in _reading_order(shape.shapes) for b in _shape_blocks(s, depth + 1)]
    if getattr(shape, "has_table", False) and shape.has_table:
        return [_table_markdown(shape.table)]
    if getattr(shape, "has_chart", False) and shape.has_chart:
        return [_chart_text(shape.chart)]
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        lines = ["  " * p.level + p.text.strip() for p in shape.text_frame.paragraphs if p.text.strip()]
        return ["\n".join(lines)] if lines else []
    return []


def _table_markdown(table) -> str:
    """A slide table as a Markdown table; a merged cell is written once."""
    rows = [["" if cell.is_spanned else cell.text for cell in row.cells] for row in table.rows]
    if len(rows) < 2 or max((len(r) for r in rows), default=0) < 2:
        return "\n".join(" ".join(c.split()) for r in rows for c in r if c.strip())
    return markdown_table(rows)


def _chart_text(chart) -> str:
    """A chart's title and its data (categories x series) as a Markdown table."""
    title = ""
    try:
        if chart.has_title and chart.chart_title.has_text_frame:
            title = chart.chart_title.text_frame.text.strip()
    except Exception:  # charts vary widely; their data still counts
        title = ""
    try:
        plot = chart.plots[0]
        categories = [str(c) for c in plot.categories]
        series = list(plot.series)
        rows = [[""] + [s.name or "" for s in series]]
        for i, category in enumerate(categories):
            rows.append([category] + [_number(s.values[i]) if i < len(s.values) else "" for s in series])
        table = markdown_table(rows) if categories and series else ""
    except Exception:  # a chart without a plot, or with data python-pptx cannot read
        table = ""
    return "\n\n".join(p for p in (f"Chart: {title}" if title else "", table) if p)


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.15g}" if isinstance(value, float) else str(value)


def _notes_text(slide) -> str:
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return normalise_text(frame.text) if frame is not None else ""
