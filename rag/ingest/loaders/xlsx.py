"""Excel .xlsx workbooks: each sheet is one page, `## sheet name` over a Markdown table of its values as displayed.

openpyxl (imported inside `load_xlsx`) reads the workbook read-only, streaming
rows, with the values Excel cached for formulas (`data_only`), external links
dropped and VBA ignored; it parses XML through defusedxml / lxml without
entity resolution. Dates and numbers are written the way the cell's number
format shows them (`display_value`).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

from rag.core.errors import DocumentError, EmptyDocumentError
from rag.ingest.loaders.base import (
    MAX_TITLE_CHARS,
    LoadedDocument,
    join_pages,
    short_cause,
)
from rag.ingest.loaders.encoding import normalise_text
from rag.ingest.loaders.sheets import (
    MAX_BOOK_ROWS,
    MAX_COLUMNS,
    MAX_SHEET_ROWS,
    cap_note,
    capped_rows,
    sheet_text,
)
from rag.ingest.loaders.zipped import open_zip

_OLE_HINT = "password-protected, or an old .xls renamed: save an unprotected copy as .xlsx"


def load_xlsx(path: Path, data: bytes) -> LoadedDocument:
    """Extract every worksheet as a Markdown table under its name; one page per sheet (its position)."""
    open_zip(path, data, ".xlsx", ole_hint=_OLE_HINT).close()
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False,
                                      keep_vba=False)
    except Exception as exc:  # KeyError, InvalidFileException, XML errors, ...
        raise DocumentError(str(path), f"not a valid .xlsx file ({short_cause(exc)})") from None
    try:
        page_texts, notes, failed = _sheet_texts(book)
        title = (book.properties.title or "").strip() if book.properties is not None else ""
    finally:
        book.close()
    if not page_texts:
        if failed:
            raise DocumentError(str(path), f"not a valid .xlsx file ({failed[0]})")
        raise EmptyDocumentError(str(path), "no values in workbook")
    text, pages = join_pages(page_texts)
    return LoadedDocument(text=text, title=(title or path.stem)[:MAX_TITLE_CHARS], url=None, pages=pages,
                          notes=tuple(notes + failed))


def _sheet_texts(book) -> tuple[list[tuple[int, str]], list[str], list[str]]:
    """(sheet position, text) for sheets with values; notes on capped sheets; sheets that failed."""
    page_texts: list[tuple[int, str]] = []
    notes: list[str] = []
    failed: list[str] = []
    budget = MAX_BOOK_ROWS
    for number, name in enumerate(book.sheetnames, 1):
        sheet = book[name]
        if not hasattr(sheet, "iter_rows"):  # a chart sheet
            continue
        if budget <= 0:
            notes.append(f"sheet {name!r}: not read (the workbook's first {MAX_BOOK_ROWS:,} rows were read)")
            continue
        try:
            rows, more, wide = _sheet_rows(sheet, min(budget, MAX_SHEET_ROWS))
        except Exception as exc:  # one malformed sheet must not cost the others
            failed.append(f"sheet {name!r} could not be read ({short_cause(exc)})")
            continue
        budget -= len(rows)
        if more:
            notes.append(cap_note(f"sheet {name!r}", len(rows)))
        if wide:
            notes.append(f"sheet {name!r}: only the first {MAX_COLUMNS} columns were read")
        text = normalise_text(sheet_text(name, rows))
        if text:
            page_texts.append((number, text))
    return page_texts, notes, failed


def _sheet_rows(sheet, limit: int) -> tuple[list[list[str]], bool, bool]:
    """Up to `limit` non-empty rows of displayed values, whether more followed, whether columns were cut."""
    declared = sheet.max_column if isinstance(sheet.max_column, int) else 0
    sheet.reset_dimensions()  # a wrong <dimension> must not pad every row to 16384 columns
    cells = sheet.iter_rows(max_col=MAX_COLUMNS)
    rows = ([display_value(c.value, getattr(c, "number_format", None)) for c in row] for row in cells)
    kept, more = capped_rows(rows, limit)
    return kept, more, declared > MAX_COLUMNS


# --------------------------------------------------------------------------- values as displayed

_ISO_DATE_FORMATS = {"mm-dd-yy", "m/d/yy", "m/d/yyyy", "mm/dd/yy", "mm/dd/yyyy", "d-mmm-yy", "m/d/yy h:mm"}
_DATE_TOKEN = re.compile(
    r'"[^"]*"|\\.|\[[^\]]*\]|yyyy|yy|mmmmm|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|am/pm|a/p|\.0+|.',
    re.IGNORECASE,
)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NUMBER = re.compile(r"[0#?][0#?,]*(?:\.[0#?]*)?(?:[Ee][+-][0#]+)?|\.[0#?]+")


def display_value(value, number_format: str | None = None) -> str:
    """A cell value the way Excel shows it under `number_format` ('#,##0.00' -> '1,250.00')."""
    if value is None:
        return ""
    fmt = number_format or "General"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return _format_date(value, fmt)
    if isinstance(value, dt.timedelta):
        return _format_duration(value)
    if isinstance(value, (int, float)):
        return _format_number(value, fmt)
    return str(value)


def _general(value: float) -> str:
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.15g}"


def _format_number(value, fmt: str) -> str:
    section = _first_section(fmt)
    if section.lower() in ("general", "@", "") or "/" in section:
        return _general(value)
    cleaned = re.sub(r"\[\$([^\]-]*)(?:-[^\]]*)?\]", r"\1", section)  # [$€-407] -> €
    cleaned = re.sub(r"\[[^\]]*\]", "", cleaned)  # [Red], [>=100]
    cleaned = re.sub(r"_.|\*.", "", cleaned)  # padding and fill characters
    cleaned = re.sub(r'"([^"]*)"', r"\1", cleaned)
    cleaned = re.sub(r"\\(.)", r"\1", cleaned)
    match = _NUMBER.search(cleaned)
    if match is None:
        return _general(value)
    spec = match.group(0)
    if "e" in spec.lower():
        digits = len(spec.lower().split("e")[0].partition(".")[2])
        return cleaned[:match.start()] + f"{value:.{digits}E}" + cleaned[match.end():]
    integer, _, fraction = spec.partition(".")
    decimals = sum(1 for ch in fraction if ch in "0#?")
    shown = value * 100 if "%" in cleaned else value
    rounded = round(abs(shown), decimals)
    number = f"{rounded:,.{decimals}f}" if "," in integer else f"{rounded:.{decimals}f}"
    if "#" in fraction and "0" not in fraction:  # '#,##0.##': optional decimals
        number = number.rstrip("0").rstrip(".")
    sign = "-" if shown < 0 and rounded != 0 else ""
    return (sign + cleaned[:match.start()] + number + cleaned[match.end():]).strip()


def _first_section(fmt: str) -> str:
    """The part of a format for positive numbers (formats hold up to four `;`-separated sections)."""
    depth_quote = False
    for i, ch in enumerate(fmt):
        if ch == '"':
            depth_quote = not depth_quote
        elif ch == ";" and not depth_quote:
            return fmt[:i]
    return fmt


def _format_date(value, fmt: str) -> str:
    section = _first_section(fmt).strip()
    if section.lower() in _ISO_DATE_FORMATS or section.lower() in ("general", ""):
        return _iso(value)  # Excel's default short date follows the reader's locale; ISO is unambiguous
    try:
        return _apply_date_format(value, section) or _iso(value)
    except (ValueError, AttributeError, IndexError):
        return _iso(value)


def _iso(value) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, dt.time):
        return value.isoformat(timespec="minutes")
    return value.isoformat()


def _apply_date_format(value, section: str) -> str:
    """Render a date/time with an Excel format such as 'dd mmm yyyy' or 'h:mm AM/PM'."""
    tokens = _DATE_TOKEN.findall(section)
    lowered = [t.lower() for t in tokens]
    twelve_hour = any(t in ("am/pm", "a/p") for t in lowered)
    year, month, day = (value.year, value.month, value.day) if not isinstance(value, dt.time) else (1900, 1, 1)
    hour, minute, second = ((value.hour, value.minute, value.second) if not isinstance(value, dt.date)
                            or isinstance(value, dt.datetime) else (0, 0, 0))
    out: list[str] = []
    last_unit = ""
    for i, (token, low) in enumerate(zip(tokens, lowered)):
        if low.startswith('"'):
            out.append(token[1:-1])
        elif low.startswith("\\"):
            out.append(token[1:])
        elif low.startswith("["):
            continue  # locale, colour or elapsed-time markers
        elif low in ("yyyy", "yy"):
            out.append(f"{year:04d}" if low == "yyyy" else f"{year % 100:02d}")
            last_unit = "y"
        elif low in ("m", "mm") and (last_unit == "h" or any(t in ("s", "ss") for t in lowered[i + 1:i + 3])):
            out.append(f"{minute:02d}" if low == "mm" else str(minute))
            last_unit = "min"
        elif low in ("m", "mm", "mmm", "mmmm", "mmmmm"):
            name = _MONTHS[month - 1]
            out.append({"m": str(month), "mm": f"{month:02d}", "mmm": name[:3], "mmmm": name, "mmmmm": name[0]}[low])
            last_unit = "mon"
        elif low in ("d", "dd"):
            out.append(f"{day:02d}" if low == "dd" else str(day))
            last_unit = "d"
        elif low in ("ddd", "dddd"):
            name = _DAYS[dt.date(year, month, day).weekday()]
            out.append(name[:3] if low == "ddd" else name)
        elif low in ("h", "hh"):
            shown = (hour % 12 or 12) if twelve_hour else hour
            out.append(f"{shown:02d}" if low == "hh" else str(shown))
            last_unit = "h"
        elif low in ("s", "ss"):
            out.append(f"{second:02d}" if low == "ss" else str(second))
            last_unit = "s"
        elif low in ("am/pm", "a/p"):
            am = hour < 12
            out.append(("AM" if am else "PM") if low == "am/pm" else ("A" if am else "P"))
        elif low.startswith(".0"):
            continue  # fractions of a second
        else:
            out.append(token)
    return "".join(out).strip()


def _format_duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
