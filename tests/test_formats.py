"""The office, book and mail formats: .pptx, .xlsx, .csv, .epub, .odt, .eml.

Every test file is made here, the way the programs that write them do (python-pptx,
openpyxl, the stdlib `email` package, and the zip layouts of EPUB and ODT), then read
back through `load_document`: text, pages, titles, tables that keep their column
names when chunked, ingestion end to end, and bad files skipped with a reason.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import subprocess
import sys
import zipfile
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from rag.core.errors import DocumentError, EmptyDocumentError, UnsupportedFileError
from rag.ingest.chunking import split_text_with_table_headers
from rag.ingest.loaders import SUPPORTED_SUFFIXES, load_document
from rag.ingest.loaders.base import unsupported_reason
from rag.ingest.loaders.xlsx import display_value

REGIONS = [("North", "$1.2M", "+8%"), ("South", "$0.9M", "-3%"), ("East", "$1.7M", "+2%"), ("Central", "$0.4M", "0%"),
           ("Coast", "$1.1M", "+4%"), ("Mountain", "$0.6M", "+1%"), ("Lakes", "$0.8M", "-1%"), ("Plains", "$0.5M", "+6%"),
           ("Desert", "$0.3M", "+9%"), ("Islands", "$0.2M", "-5%"), ("West", "$2.4M", "+15%")]
CUSTOMERS = [f"Customer {i:02d} Ltd" for i in range(1, 40)] + ["Initech"]
SHIPS = [(f"Ship {i:02d}", f"{i % 28 + 1} March 1891", "Coal") for i in range(1, 25)]
SHIPS.append(("Sea Swift", "2 April 1891", "Timber and salt"))
STOPS = [(f"{8 + i // 4:02d}:{(i % 4) * 15:02d}", f"Viewpoint {i}", "Anna") for i in range(24)] + [
    ("16:30", "Skogafoss waterfall", "Jon")]


# --------------------------------------------------------------------------- test files


def make_pptx(path: Path) -> Path:
    """A 3-slide deck: a title slide, a table with speaker notes, bullets with notes."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Q3 Business Review"
    first = deck.slides.add_slide(deck.slide_layouts[0])
    first.shapes.title.text = "Q3 Business Review"
    first.placeholders[1].text = "Northwind Traders, October 2024"
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Regional revenue"
    rows = [("Region", "Q3 revenue", "Growth"), *REGIONS]
    table = second.shapes.add_table(len(rows), 3, Inches(1), Inches(1.5), Inches(8), Inches(5)).table
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    second.notes_slide.notes_text_frame.text = "West grew fastest because of the new Denver store."
    third = deck.slides.add_slide(deck.slide_layouts[1])
    third.shapes.title.text = "Next steps"
    body = third.placeholders[1].text_frame
    body.text = "Open two stores in Texas"
    sub = body.add_paragraph()
    sub.text, sub.level = "Austin opens in March", 1
    body.add_paragraph().text = "Hire a regional manager"
    third.notes_slide.notes_text_frame.text = "Ask Dana for the Texas lease dates."
    deck.save(path)
    return path


def make_xlsx(path: Path) -> Path:
    """Two sheets: orders with dates, amounts and a SUM formula (with Excel's cached value); staff with percentages."""
    import openpyxl

    book = openpyxl.Workbook()
    book.properties.title = "Orders 2024"
    orders = book.active
    orders.title = "Orders"
    orders.append(["Order date", "Customer", "Amount (EUR)"])
    for i, customer in enumerate(CUSTOMERS):
        orders.append([dt.datetime(2024, 3, 1) + dt.timedelta(days=i), customer, 1000 + i * 10.5])
    total_row = len(CUSTOMERS) + 2
    orders.append([])  # an empty row before the total
    orders.cell(total_row + 1, 1, "Total")
    orders.cell(total_row + 1, 3, f"=SUM(C2:C{total_row - 1})")
    for r in range(2, total_row + 2):
        orders.cell(r, 1).number_format = "dd mmm yyyy"
        orders.cell(r, 3).number_format = "#,##0.00"
    orders["E1"] = None  # an empty column is not a column
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Role", "Start date", "Bonus"])
    staff.append(["Maria Lopez", "Warehouse lead", dt.date(2021, 6, 1), 0.125])
    staff.append(["Tom Berg", "Driver", dt.date(2023, 1, 16), 0.05])
    for r in (2, 3):
        staff[f"C{r}"].number_format = "yyyy-mm-dd"
        staff[f"D{r}"].number_format = "0.0%"
    book.save(path)
    total = sum(1000 + i * 10.5 for i in range(len(CUSTOMERS)))
    _set_cached_value(path, "xl/worksheets/sheet1.xml", f"SUM(C2:C{total_row - 1})", repr(total))
    return path


def _set_cached_value(path: Path, member: str, formula: str, value: str) -> None:
    """Store a formula's computed value, as Excel does on save (openpyxl writes formulas without one)."""
    rewrite_zip(path, path, lambda name, blob: blob if name != member else re.sub(
        rf"(<f>{re.escape(formula)}</f>)(?:<v\s*/>|<v>[^<]*</v>)?", rf"\g<1><v>{value}</v>", blob.decode()).encode())


def rewrite_zip(src: Path, dst: Path, change) -> Path:
    """Copy a zip, passing each member through `change(name, bytes)` (None drops the member)."""
    archive = zipfile.ZipFile(io.BytesIO(Path(src).read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in archive.infolist():
            blob = change(info.filename, archive.read(info.filename))
            if blob is not None:
                target.writestr(info, blob)
    Path(dst).write_bytes(out.getvalue())
    return Path(dst)


def make_csv(path: Path) -> Path:
    """A German-Excel export: `;` delimiter, decimal commas, cp1252."""
    lines = ["Produkt;Preis (€);Menge"] + [f"Artikel {i};{i},50;{i * 3}" for i in range(1, 40)]
    lines += ["Crème brûlée;3,20;25", "Müsli;2,99;40"]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


_CONTAINER = ('<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
              '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
              '</rootfiles></container>')


def _xhtml(title: str, body: str) -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>{title}</title><link rel=\"stylesheet\" href=\"../style.css\"/></head><body>{body}</body></html>")


def make_epub(path: Path, *, encryption: str | None = None, chapters: list[tuple[str, str]] | None = None) -> Path:
    """An EPUB 3 book: a cover page without text, then `chapters` (title, XHTML body); by default two chapters
    (the second with a table)."""
    rows = "".join(f"<tr><td>{s}</td><td>{d}</td><td>{c}</td></tr>" for s, d, c in SHIPS)
    chapters = chapters or [
        ("Chapter 1: The Storm", "<section><h1>Chapter 1: The Storm</h1><p>On the night of the great storm, Elena "
         "climbed the 212 steps of the Fastnet lighthouse to relight the lamp.</p><p>The wind reached 140 km/h.</p>"
         "<ul><li>oil</li><li>wicks</li></ul></section>"),
        ("Chapter 2: The Logbook", "<section><h1>Chapter 2: The Logbook</h1><p>The keeper's logbook recorded every "
         f"ship that passed.</p><table><tr><th>Ship</th><th>Date</th><th>Cargo</th></tr>{rows}</table></section>"),
    ]
    manifest = "".join(f'<item id="ch{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>'
                       for i in range(len(chapters)))
    spine = "".join(f'<itemref idref="ch{i}"/>' for i in range(len(chapters)))
    opf = ('<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
           'unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="uid">'
           "urn:uuid:0f1e2d3c</dc:identifier><dc:title>The Lighthouse Keeper</dc:title><dc:language>en</dc:language>"
           '</metadata><manifest><item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
           '<item id="cover" href="text/cover.xhtml" media-type="application/xhtml+xml"/>'
           f'<item id="css" href="style.css" media-type="text/css"/>{manifest}</manifest>'
           f'<spine><itemref idref="cover"/>{spine}</spine></package>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        book.writestr("META-INF/container.xml", _CONTAINER)
        if encryption:
            book.writestr("META-INF/encryption.xml", encryption)
        book.writestr("OEBPS/content.opf", opf)
        book.writestr("OEBPS/style.css", "p { margin: 0 }")
        book.writestr("OEBPS/nav.xhtml", _xhtml("Contents", "<nav><ol><li>Chapter 1</li></ol></nav>"))
        book.writestr("OEBPS/text/cover.xhtml", _xhtml("Cover", '<div><img src="cover.jpg" alt=""/></div>'))
        for i, (title, body) in enumerate(chapters):
            book.writestr(f"OEBPS/text/ch{i}.xhtml", _xhtml(title, body))
    return path


_ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
           'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
           'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
           'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"')


def make_odt(path: Path, *, content_prefix: str = "", encrypted: bool = False, body: str = "") -> Path:
    """An .odt as LibreOffice writes it: a heading, paragraphs, a list and a table with a header row; then `body`."""
    def row(cells, tag="table-cell"):
        return "<table:table-row>" + "".join(
            f'<table:{tag} office:value-type="string"><text:p>{c}</text:p></table:{tag}>' for c in cells) + (
            '<table:table-cell table:number-columns-repeated="2"/>') + "</table:table-row>"

    rows = "".join(row(stop) for stop in STOPS)
    content = (f'{content_prefix}<office:document-content {_ODF_NS} office:version="1.3"><office:body><office:text>'
               '<text:sequence-decls><text:sequence-decl text:display-outline-level="0" text:name="Table"/>'
               '</text:sequence-decls>'
               '<text:h text:outline-level="1">Field trip to the glacier</text:h>'
               '<text:p>We leave Reykjavik at 07:30<text:s text:c="2"/>and return by 19:00.</text:p>'
               '<text:list><text:list-item><text:p>Bring crampons</text:p></text:list-item>'
               '<text:list-item><text:p>Pack lunch</text:p></text:list-item></text:list>'
               '<text:h text:outline-level="2">Schedule</text:h>'
               '<table:table table:name="Schedule"><table:table-column table:number-columns-repeated="5"/>'
               f'<table:table-header-rows>{row(("Time", "Stop", "Guide"))}</table:table-header-rows>{rows}'
               '<table:table-row table:number-rows-repeated="1000"><table:table-cell table:number-columns-repeated="5"/>'
               '</table:table-row></table:table>'
               f'<text:p>Questions go to <text:span>Anna</text:span>.</text:p>{body}'
               '</office:text></office:body></office:document-content>')
    meta = (f'<office:document-meta {_ODF_NS} office:version="1.3"><office:meta><dc:title>Field Trip Plan</dc:title>'
            '<meta:generator>LibreOffice/7.6</meta:generator></office:meta></office:document-meta>')
    encryption = ('<manifest:encryption-data manifest:checksum-type="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0'
                  '#sha256-1k" manifest:checksum="AAAA"/>' if encrypted else "")
    manifest = (f'<manifest:manifest {_ODF_NS} manifest:version="1.3">'
                '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>'
                f'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">{encryption}'
                '</manifest:file-entry><manifest:file-entry manifest:full-path="meta.xml" manifest:media-type="text/xml"/>'
                '</manifest:manifest>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as odt:
        odt.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text")
        odt.writestr("content.xml", bytes(range(256)) * 4 if encrypted else content)
        odt.writestr("meta.xml", meta)
        odt.writestr("META-INF/manifest.xml", manifest)
    return path


def make_eml(path: Path, *, html_only: bool = False) -> Path:
    """A message with a text and an HTML body, a PDF attachment, an .exe and a forwarded message."""
    from tests.test_loaders import make_pdf

    message = EmailMessage()
    message["From"] = "Ann Lee <ann@northwind.example>"
    message["To"] = "ops@northwind.example, Bo Chen <bo@northwind.example>"
    message["Subject"] = "Q3 figures and the Denver lease"
    message["Date"] = format_datetime(dt.datetime(2024, 10, 7, 9, 30, tzinfo=dt.timezone.utc))
    html = ("<html><body><p>Hi team,</p><p>The Denver lease runs until <b>June 2027</b>.</p><table><tr><th>Site</th>"
            "<th>Lease end</th></tr><tr><td>Denver</td><td>June 2027</td></tr></table></body></html>")
    if html_only:
        message.set_content(html, subtype="html")
    else:
        message.set_content("Hi team,\n\nThe Denver lease runs until June 2027. The Q3 report is attached.\n\nAnn\n")
        message.add_alternative(html, subtype="html")
    pdf = make_pdf([["Q3 report: revenue was 4.5 million euros."], ["Costs were 3.1 million euros."]], title="Q3 report")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="q3-report.pdf")
    message.add_attachment(b"MZ\x90\x00" + bytes(400), maintype="application", subtype="octet-stream",
                           filename="setup.exe")
    forwarded = EmailMessage()
    forwarded["From"] = "legal@northwind.example"
    forwarded["Subject"] = "Old lease"
    forwarded.set_content("The previous Denver lease ended in 2019.")
    message.add_attachment(forwarded)
    path.write_bytes(bytes(message))
    return path


MAKERS = {".pptx": make_pptx, ".xlsx": make_xlsx, ".csv": make_csv, ".epub": make_epub, ".odt": make_odt,
          ".eml": make_eml}


def page_text(doc, number: int) -> str:
    return next(doc.text[s:e] for n, s, e in doc.pages if n == number)


# --------------------------------------------------------------------------- what each format gives


def test_new_suffixes_are_supported():
    assert {".pptx", ".xlsx", ".csv", ".epub", ".odt", ".eml"} <= SUPPORTED_SUFFIXES
    assert "save it as .pptx" in unsupported_reason(".ppt") and "save it as .xlsx" in unsupported_reason(".xls")


def test_pptx_one_page_per_slide_with_title_table_and_notes(tmp_path):
    doc = load_document(make_pptx(tmp_path / "review.pptx"))
    assert doc.title == "Q3 Business Review"
    assert [n for n, _, _ in doc.pages] == [1, 2, 3]
    assert page_text(doc, 1) == "## Q3 Business Review\n\nNorthwind Traders, October 2024"
    slide2 = page_text(doc, 2)
    assert slide2.startswith("## Regional revenue\n\n| Region | Q3 revenue | Growth |\n| --- | --- | --- |\n| North |")
    assert "| West | $2.4M | +15% |" in slide2
    assert slide2.endswith("Speaker notes:\nWest grew fastest because of the new Denver store.")  # after the slide text
    slide3 = page_text(doc, 3)
    assert slide3.index("## Next steps") < slide3.index("Open two stores in Texas") < slide3.index("Austin opens")
    assert slide3.endswith("Speaker notes:\nAsk Dana for the Texas lease dates.")
    assert doc.page_at(doc.text.index("Denver store")) == 2


def test_xlsx_sheets_are_pages_with_values_as_displayed(tmp_path):
    doc = load_document(make_xlsx(tmp_path / "orders.xlsx"))
    assert doc.title == "Orders 2024" and [n for n, _, _ in doc.pages] == [1, 2]
    orders, staff = page_text(doc, 1), page_text(doc, 2)
    assert orders.startswith("## Orders\n\n| Order date | Customer | Amount (EUR) |\n| --- | --- | --- |\n")
    assert "| 01 Mar 2024 | Customer 01 Ltd | 1,000.00 |" in orders
    assert "| 09 Apr 2024 | Initech | 1,409.50 |" in orders
    assert orders.endswith("| Total |  | 48,190.00 |")  # the formula's cached value, formatted; empty row gone
    assert staff == ("## Staff\n\n| Name | Role | Start date | Bonus |\n| --- | --- | --- | --- |\n"
                     "| Maria Lopez | Warehouse lead | 2021-06-01 | 12.5% |\n| Tom Berg | Driver | 2023-01-16 | 5.0% |")


@pytest.mark.parametrize(("value", "fmt", "shown"), [
    (1234.5, "#,##0.00", "1,234.50"),
    (-1234.5, "#,##0.00;[Red](#,##0.00)", "-1,234.50"),
    (0.256, "0%", "26%"),
    (3.0, "General", "3"),
    (0.1 + 0.2, "General", "0.3"),
    (1250, '"$"#,##0', "$1,250"),
    (1250, "[$€-407] #,##0.00", "€ 1,250.00"),
    (12345.678, "0.00E+00", "1.23E+04"),
    (True, "General", "TRUE"),
    (dt.datetime(2024, 3, 5), "mm-dd-yy", "2024-03-05"),  # Excel's locale short date: ISO
    (dt.datetime(2024, 3, 5, 14, 7), "d mmmm yyyy h:mm AM/PM", "5 March 2024 2:07 PM"),
    (dt.datetime(2024, 3, 5), "dddd, mmm d", "Tuesday, Mar 5"),
    (dt.time(9, 45), "hh:mm", "09:45"),
    (dt.timedelta(hours=26, minutes=5), "[h]:mm:ss", "26:05:00"),
    (None, "General", ""),
])
def test_xlsx_display_value(value, fmt, shown):
    assert display_value(value, fmt) == shown


def test_csv_cp1252_semicolons(tmp_path):
    doc = load_document(make_csv(tmp_path / "preise.csv"))
    assert doc.title == "preise" and doc.pages == ()
    assert doc.text.startswith("## preise\n\n| Produkt | Preis (€) | Menge |\n| --- | --- | --- |\n| Artikel 1 | 1,50 | 3 |")
    assert doc.text.endswith("| Crème brûlée | 3,20 | 25 |\n| Müsli | 2,99 | 40 |")


def test_csv_quoted_commas_and_tabs(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text('name,city,note\n"Lee, Ann",Oslo,"says ""hi"""\nBo,Bergen,\n', encoding="utf-8")
    assert load_document(path).text.endswith('| Lee, Ann | Oslo | says "hi" |\n| Bo | Bergen |  |')
    tsv = tmp_path / "tabs.csv"
    tsv.write_text("a\tb\n1\t2\n3\t4\n", encoding="utf-8")
    assert "| 3 | 4 |" in load_document(tsv).text


def test_epub_chapters_in_spine_order_are_pages(tmp_path):
    doc = load_document(make_epub(tmp_path / "keeper.epub"))
    assert doc.title == "The Lighthouse Keeper"
    assert [n for n, _, _ in doc.pages] == [1, 2]  # the cover has no text and is no page
    first, second = page_text(doc, 1), page_text(doc, 2)
    assert first.startswith("# Chapter 1: The Storm\n\nOn the night of the great storm")
    assert "- oil\n- wicks" in first
    assert second.startswith("# Chapter 2: The Logbook")
    assert "| Ship | Date | Cargo |\n| --- | --- | --- |\n| Ship 01 | 2 March 1891 | Coal |" in second
    assert doc.page_at(doc.text.index("Timber and salt")) == 2
    # each chapter's headings are its passages' sections, as an HTML page's are
    assert doc.section_at(doc.text.index("On the night of the great storm")) == "Chapter 1: The Storm"
    assert doc.section_at(doc.text.index("Timber and salt")) == "Chapter 2: The Logbook"


def test_odt_headings_paragraphs_lists_and_tables(tmp_path):
    doc = load_document(make_odt(tmp_path / "trip.odt"))
    assert doc.title == "Field Trip Plan" and doc.pages == ()
    assert doc.text.startswith("# Field trip to the glacier\n\nWe leave Reykjavik at 07:30  and return by 19:00.\n\n"
                               "- Bring crampons\n\n- Pack lunch\n\n## Schedule\n\n| Time | Stop | Guide |\n| --- | --- | --- |")
    assert "| 16:30 | Skogafoss waterfall | Jon |" in doc.text  # repeated empty cells and rows trimmed
    assert doc.text.endswith("| 16:30 | Skogafoss waterfall | Jon |\n\nQuestions go to Anna.")
    assert doc.section_at(doc.text.index("| 16:30 |")) == "Field trip to the glacier › Schedule"
    assert doc.section_at(doc.text.index("We leave Reykjavik")) == "Field trip to the glacier"


def test_a_line_that_starts_with_a_hash_is_no_heading_in_a_book(tmp_path):
    """Manuals show root commands as `# apt-get install ...`: written out as a `#` line, such a command read as a
    heading and, being level 1, closed the real section path for everything after it."""
    body = ("<section><h1>Installation</h1><h2>From the repository</h2><p>Install the package as root:</p>"
            "<pre># apt-get install live-build\n# lb config</pre><p># the hash opens this paragraph</p>"
            "<p>The build takes about ten minutes.</p><ul><li><p>Pieces of wire, with a crocodile clip.</p></li>"
            "<li><p>A condenser microphone.</p><p>It needs no battery.</p></li></ul>"
            '<p>The pendulum resonated at around <img class="math" src="_images/math/95.png" alt="2.5 Hz"/>, close to '
            'its natural frequency.</p><img alt="_images/pendulum.jpg" src="_images/pendulum.jpg"/>'
            '<div class="math"><p><img class="math" src="_images/math/96.png" alt="f = 1/(2 pi) sqrt(g/l)"/></p></div>'
            "<h2>From source</h2><p>Run make install.</p></section>")
    doc = load_document(make_epub(tmp_path / "live.epub", chapters=[("Installation", body)]))
    assert doc.section_at(doc.text.index("The build takes")) == "Installation › From the repository"
    assert doc.section_at(doc.text.index("Run make install")) == "Installation › From source"
    assert [path for _, path in doc.sections] == ["Installation", "Installation › From the repository",
                                                  "Installation › From source"]
    assert "# apt-get install live-build" in doc.text  # the command itself is kept, as text
    # a list item whose text is a paragraph is one line, as a browser shows it
    assert "- Pieces of wire, with a crocodile clip.\n\n- A condenser microphone.\n\nIt needs no battery." in doc.text
    # a formula set as an image reads as its alt text; a figure's file name does not
    assert "resonated at around 2.5 Hz, close to its natural frequency." in doc.text
    assert "f = 1/(2 pi) sqrt(g/l)" in doc.text and "pendulum.jpg" not in doc.text

    odt = load_document(make_odt(tmp_path / "trip.odt", body=(
        "<text:p># apt-get install crampons</text:p><text:p>Boots are rented at the hut.</text:p>"
        '<text:h text:outline-level="2">Return</text:h><text:p>The bus leaves at six.</text:p>'
        # a numbered heading as a converter from Word writes it: inside a list item
        '<text:list><text:list-item><text:h text:outline-level="2">Costs</text:h></text:list-item></text:list>'
        "<text:p>The trip costs 90 euros.</text:p>")))
    assert odt.section_at(odt.text.index("Boots are rented")) == "Field trip to the glacier › Schedule"
    assert odt.section_at(odt.text.index("The bus leaves")) == "Field trip to the glacier › Return"
    assert "\n## Costs\n" in odt.text
    assert odt.section_at(odt.text.index("The trip costs")) == "Field trip to the glacier › Costs"


def test_an_html_formula_image_reads_as_its_alt_text(tmp_path):
    page = tmp_path / "pendulum.html"
    page.write_text("<html><head><title>Pendulum</title></head><body><article><h1>Pendulum</h1>"
                    "<p>A simple pendulum of length one metre swings with a period of about "
                    '<img class="math" src="m/1.png" alt="2.0 s"/> at the surface of the Earth, whatever its mass '
                    "within the small-angle approximation that the next section derives.</p>"
                    '<p><img src="img/pendulum.png" alt="img/pendulum.png"/></p>'
                    "<p>Longer pendulums swing more slowly, in proportion to the square root of their length.</p>"
                    "</article></body></html>", encoding="utf-8")
    doc = load_document(page)
    assert "with a period of about 2.0 s at the surface of the Earth" in doc.text
    assert "pendulum.png" not in doc.text


def test_a_definition_list_keeps_each_term_with_its_description(tmp_path):
    from rag.text.sentences import sentence_spans

    # as Sphinx writes an API reference: each entry a <dl>, the signature its <dt> with a permalink, the
    # description its <dd>; two signatures may share one description, full of links to other entries
    entry = ('<dl class="py method"><dt id="{id}"><span class="sig-name">{name}</span>(<em>{args}</em>)'
             '<a class="headerlink" href="#{id}" title="Permalink to this definition">¶</a></dt><dd>{body}</dd></dl>')
    page = tmp_path / "kettle.html"
    page.write_text(
        "<html><head><title>kettle — boiling water</title></head><body><div role='main'><section>"
        "<h1>kettle — boiling water<a class='headerlink' href='#kettle'>¶</a></h1>"
        "<p>This module drives the kettle attached to the serial port, from filling to boiling and keeping the "
        "water warm, and reports what the kettle is doing.</p>"
        + entry.format(id="k.boil", name="boil", args="target=100",
                       body="<p>Heats the water until it reaches <em>target</em> degrees Celsius, then switches the "
                            "element off.</p><p>The element draws 2.2 kW while it heats.</p>")
        + '<dl class="py method"><dt id="k.pause"><span>pause</span>()</dt><dt id="k.resume"><span>resume</span>()'
          '</dt><dd><p>These methods are described in <a href="#control"><span>Controlling a running '
          'kettle</span></a>.</p></dd></dl>'
        + entry.format(id="k.fill", name="fill", args="litres",
                       body='<p>Identical to <a href="#k.pour"><code>pour()</code></a>, using the tap as its '
                            'source; the kettle must stand on its base, unplugged, while it fills.</p>')
        + "<p>The kettle refuses to heat when it holds less than 0.3 litres, whatever the method asked.</p>"
        "</section></div></body></html>", encoding="utf-8")
    doc = load_document(page)
    assert "¶" not in doc.text
    sentences = [" ".join(doc.text[s.start:s.end].split()).removeprefix("- ") for s in sentence_spans(doc.text)]
    # the term opens the first sentence of its description, not a sentence of its own
    assert any(s.startswith("boil(target=100): Heats the water until it reaches target degrees") for s in sentences)
    assert "The element draws 2.2 kW while it heats." in sentences
    assert any(s.startswith("pause(); resume(): These methods are described in Controlling a running kettle")
               for s in sentences)
    assert any(s.startswith("fill(litres): Identical to pour(), using the tap as its source") for s in sentences)


def test_a_docbook_reference_page_keeps_its_sections_and_drops_its_navigation_bar(tmp_path):
    # as DocBook's chunked HTML writes a reference page: a Prev / Up / Next table over and under the text, a
    # section that opens with a list of terms, whose heading the extractor drops
    nav = ('<div class="nav{where}"><table width="100%" summary="Navigation {where}"><tr><th colspan="3">PURGE'
           '</th></tr><tr><td><a accesskey="p" href="sql-prune.html">Prev</a></td><td><a accesskey="u" '
           'href="sql-commands.html">Up</a></td><td><a accesskey="n" href="sql-query.html">Next</a></td></tr>'
           '</table><hr/></div>')
    page = tmp_path / "sql-purge.html"
    page.write_text(
        "<html><head><title>PURGE</title></head><body>" + nav.format(where="header")
        + '<div class="refentry"><div class="refnamediv"><h2>PURGE</h2><p>PURGE — remove expired rows from a '
          'table</p></div><div class="refsect1"><h2>Description</h2><p>PURGE removes the rows whose retention '
          'period has ended from the named table, and returns the space they held to the table for reuse by later '
          'inserts. It takes a lock that blocks writers but not readers of the table.</p></div>'
          '<div class="refsect1"><h2>Parameters</h2><div class="variablelist"><dl class="variablelist">'
          '<dt><span class="term"><code>table_name</code>\n <a class="indexterm" name="i1"></a>\n </span></dt>'
          '<dd><p>The name (optionally schema-qualified) of the table to purge.</p></dd>'
          '<dt><span class="term"><code>BATCH</code> <code>rows</code></span></dt><dd><p>The number of rows '
          'removed in one transaction; the default is 10000.</p></dd>'
          '<dt><span class="term"><code>-q</code><br/></span><span class="term"><code>--quiet</code></span></dt>'
          '<dd><p>Do not report the number of rows removed.</p><p>Errors are still reported.</p></dd>'
          '</dl></div></div>'
          '<div class="refsect1"><h2>Notes</h2><p>Rows that a running transaction still sees are kept until '
          'that transaction ends, so a purge during a long report removes fewer rows than expected.</p></div>'
          "</div>" + nav.format(where="footer") + "</body></html>", encoding="utf-8")
    doc = load_document(page)
    assert "Prev" not in doc.text and "|" not in doc.text
    assert "- table_name: The name (optionally schema-qualified) of the table to purge." in doc.text
    assert "- BATCH rows: The number of rows removed in one transaction; the default is 10000." in doc.text
    # the spellings of one option on the term's line, and a description's paragraphs on its item's line: a
    # paragraph on a line of its own would read as the text after the list
    assert "- -q, --quiet: Do not report the number of rows removed. Errors are still reported.\n" in doc.text
    starts = dict(doc.sections)
    sections = [doc.section_at(doc.text.index(words)) for words in
                ("PURGE removes the rows", "- BATCH rows", "Rows that a running transaction")]
    assert sections == ["Description", "Parameters", "Notes"], (sections, starts)


def test_a_definition_list_in_a_book_reads_as_in_a_web_page(tmp_path):
    # as Sphinx writes an EPUB: each term in a list item of its own, a term that ends in its own full stop
    body = ("<section><h1>Output terminals</h1><ul><li><dl class='simple'><dt>CCS: Constant Current Source.</dt>"
            "<dd><p>A resistor from this terminal to ground carries 1.1 mA whatever its value.</p>"
            "<p>The largest resistor allowed is 2 kΩ.</p></dd></dl></li>"
            "<li><dl class='simple'><dt>PV1</dt><dd><p>Set from software anywhere from -5 V to +5 V.</p></dd></dl>"
            "</li></ul></section>")
    doc = load_document(make_epub(tmp_path / "eyes.epub", chapters=[("Terminals", body)]))
    assert ("- CCS: Constant Current Source. A resistor from this terminal to ground carries 1.1 mA whatever its "
            "value. The largest resistor allowed is 2 kΩ.\n") in doc.text
    assert "- PV1: Set from software anywhere from -5 V to +5 V." in doc.text
    assert "-\n" not in doc.text  # no item left empty by the list the term stood in


def test_odt_title_falls_back_to_first_heading(tmp_path):
    path = rewrite_zip(make_odt(tmp_path / "a.odt"), tmp_path / "untitled.odt",
                       lambda name, blob: None if name == "meta.xml" else blob)
    assert load_document(path).title == "Field trip to the glacier"


def test_eml_headers_body_and_attachments(tmp_path):
    doc = load_document(make_eml(tmp_path / "lease.eml"))
    assert doc.title == "Q3 figures and the Denver lease"
    assert doc.text.startswith("From: Ann Lee <ann@northwind.example>\nTo: ops@northwind.example, Bo Chen "
                               "<bo@northwind.example>\nDate: Mon, 07 Oct 2024 09:30:00 +0000\n"
                               "Subject: Q3 figures and the Denver lease\n\nHi team,\n\nThe Denver lease runs until "
                               "June 2027.")  # text/plain preferred over the HTML part
    assert "<b>" not in doc.text and "| Site |" not in doc.text
    assert "## Attachment: q3-report.pdf\n\nQ3 report: revenue was 4.5 million euros.\n\nCosts were" in doc.text
    assert "## Attachment: attachment-3.eml\n\nFrom: legal@northwind.example" in doc.text
    assert "The previous Denver lease ended in 2019." in doc.text
    assert doc.notes == ("attachment setup.exe: skipped (unsupported file type .exe)",)


def test_eml_html_body_goes_through_the_html_path(tmp_path):
    doc = load_document(make_eml(tmp_path / "html.eml", html_only=True))
    assert "Hi team," in doc.text and "The Denver lease runs until" in doc.text and "<p>" not in doc.text
    assert "| Site | Lease end |\n| --- | --- |\n| Denver | June 2027 |" in doc.text


def test_eml_nesting_is_capped(tmp_path):
    inner = EmailMessage()
    inner["From"], inner["Subject"] = "a@example.com", "level 0"
    inner.set_content("deepest text")
    for level in range(1, 6):
        outer = EmailMessage()
        outer["From"], outer["Subject"] = "a@example.com", f"level {level}"
        outer.set_content(f"text of level {level}")
        outer.add_attachment(inner)
        inner = outer
    path = tmp_path / "nested.eml"
    path.write_bytes(bytes(inner))
    doc = load_document(path)
    assert "text of level 2" in doc.text and "deepest text" not in doc.text
    assert any("nested more than 3 deep" in note for note in doc.notes)


# --------------------------------------------------------------------------- tables keep their header when chunked


@pytest.mark.parametrize(("suffix", "row", "columns"), [
    (".xlsx", "| 09 Apr 2024 | Initech | 1,409.50 |", ("Order date", "Customer", "Amount (EUR)")),
    (".csv", "| Müsli | 2,99 | 40 |", ("Produkt", "Preis (€)", "Menge")),
    (".pptx", "| West | $2.4M | +15% |", ("Region", "Q3 revenue", "Growth")),
    (".epub", "| Sea Swift | 2 April 1891 | Timber and salt |", ("Ship", "Date", "Cargo")),
    (".odt", "| 16:30 | Skogafoss waterfall | Jon |", ("Time", "Stop", "Guide")),
])
def test_a_table_row_keeps_its_column_names_when_chunked(tmp_path, suffix, row, columns):
    doc = load_document(MAKERS[suffix](tmp_path / f"doc{suffix}"))
    regions = [(s, e) for _, s, e in doc.pages] or [(0, len(doc.text))]
    chunks = []
    for start, end in regions:
        for span, header in split_text_with_table_headers(doc.text[start:end], count_tokens=lambda s: len(s.split()),
                                                          chunk_tokens=60):
            chunks.append((header, doc.text[start + span.start:start + span.end]))
    assert len(chunks) > 2
    header, text = next((h, t) for h, t in chunks if row in t)
    assert header, "the row's chunk starts inside the table, so the header is repeated"
    stored = header + text
    assert stored.startswith("| " + " | ".join(columns) + " |\n| --- |")


# --------------------------------------------------------------------------- end to end


def test_each_format_is_ingested_and_retrieved_with_its_page(fake_settings, tmp_path):
    from rag.models.embedders.factory import make_embeddings
    from rag.serve.api import DocQA

    folder = tmp_path / "docs"
    folder.mkdir()
    for suffix, make in MAKERS.items():
        make(folder / f"sample{suffix}")
    qa = DocQA(fake_settings, embeddings=make_embeddings(fake_settings))
    report = qa.ingest([folder])
    assert report.count("added") == 6, [(f.path, f.status, f.reason) for f in report.files]
    cases = [  # (file, question, text the chunk holds, page)
        ("sample.pptx", "Why did West grow fastest? Denver store", "Denver store", 2),
        ("sample.xlsx", "When did Maria Lopez start as warehouse lead?", "Maria Lopez", 2),
        ("sample.csv", "What does Müsli cost?", "Müsli", None),
        ("sample.epub", "Which ship carried timber and salt?", "Timber and salt", 2),
        ("sample.odt", "Who guides at Skogafoss waterfall?", "Skogafoss waterfall", None),
        ("sample.eml", "What was Q3 revenue in the attached report?", "4.5 million euros", None),
    ]
    for name, question, expected, page in cases:
        chunks = qa.retrieve(question, k=3, sources=[name], mode="bm25")
        top = next((c for c in chunks if expected in c.text), None)
        assert top is not None, (name, [c.text[:80] for c in chunks])
        assert top.page == page, name
        assert Path(top.source).name == name and top.title
    titles = {Path(s.source).name: s.title for s in (r.chunk for r in qa.store.scan(include_text=False))}
    assert titles["sample.pptx"] == "Q3 Business Review" and titles["sample.epub"] == "The Lighthouse Keeper"
    assert titles["sample.eml"] == "Q3 figures and the Denver lease" and titles["sample.odt"] == "Field Trip Plan"
    eml = next(f for f in report.files if f.path.endswith("sample.eml"))
    assert "setup.exe: skipped (unsupported file type .exe)" in eml.reason  # the note reaches the ingest summary


# --------------------------------------------------------------------------- bad files


def _zip_bomb(src: Path, dst: Path) -> Path:
    """The file with its first zip member claiming to unzip to 2 GB (what a zip bomb's directory says)."""
    data = bytearray(src.read_bytes())
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, 2**31)
    dst.write_bytes(bytes(data))
    return dst


ZIP_FORMATS = [".pptx", ".xlsx", ".epub", ".odt"]


@pytest.mark.parametrize("suffix", ZIP_FORMATS)
def test_truncated_zip_formats(tmp_path, suffix):
    good = MAKERS[suffix](tmp_path / f"good{suffix}").read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DocumentError, match=rf"not a valid \{suffix} file \(not a zip archive, or truncated\)"):
        load_document(path)


@pytest.mark.parametrize("suffix", ZIP_FORMATS)
def test_zip_bombs_are_refused_before_unzipping(tmp_path, suffix):
    path = _zip_bomb(MAKERS[suffix](tmp_path / f"good{suffix}"), tmp_path / f"bomb{suffix}")
    with pytest.raises(DocumentError, match="zip bomb"):
        load_document(path)


@pytest.mark.parametrize("suffix", ZIP_FORMATS)
def test_other_zips_and_non_zips(tmp_path, suffix):
    path = tmp_path / f"other{suffix}"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match=rf"not a valid \{suffix} file \(.+\)") as info:
        load_document(path)
    assert "\n" not in info.value.reason
    text = tmp_path / f"text{suffix}"
    text.write_text("just some text")
    with pytest.raises(DocumentError, match="not a zip archive"):
        load_document(text)


@pytest.mark.parametrize(("suffix", "what"), [(".pptx", "old .ppt"), (".xlsx", "old .xls")])
def test_password_protected_office_files(tmp_path, suffix, what):
    path = tmp_path / f"secret{suffix}"  # Office encrypts into an OLE container
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024))
    with pytest.raises(DocumentError, match=f"password-protected, or an {what} renamed"):
        load_document(path)


def test_password_protected_odt(tmp_path):
    with pytest.raises(DocumentError, match="password-protected .odt"):
        load_document(make_odt(tmp_path / "secret.odt", encrypted=True))


def test_drm_epub(tmp_path):
    encryption = ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                  'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
                  '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><enc:CipherData>'
                  '<enc:CipherReference URI="OEBPS/text/ch1.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>')
    with pytest.raises(DocumentError, match=r"encrypted EPUB \(DRM\)"):
        load_document(make_epub(tmp_path / "drm.epub", encryption=encryption))


def test_corrupt_xml_inside_the_zip(tmp_path):
    odt = rewrite_zip(make_odt(tmp_path / "a.odt"), tmp_path / "broken.odt",
                      lambda name, blob: blob[: len(blob) // 2] if name == "content.xml" else blob)
    with pytest.raises(DocumentError, match=r"not a valid .odt file \(content.xml: "):
        load_document(odt)
    epub = rewrite_zip(make_epub(tmp_path / "a.epub"), tmp_path / "broken.epub",
                       lambda name, blob: blob[:60] if name.endswith(".opf") else blob)
    with pytest.raises(DocumentError, match=r"not a valid .epub file \(OEBPS/content.opf: "):
        load_document(epub)
    pptx = rewrite_zip(make_pptx(tmp_path / "a.pptx"), tmp_path / "broken.pptx",
                       lambda name, blob: blob[:100] if name == "ppt/presentation.xml" else blob)
    with pytest.raises(DocumentError, match=r"not a valid .pptx file"):
        load_document(pptx)
    xlsx = rewrite_zip(make_xlsx(tmp_path / "a.xlsx"), tmp_path / "broken.xlsx",
                       lambda name, blob: blob[:100] if name == "xl/workbook.xml" else blob)
    with pytest.raises(DocumentError, match=r"not a valid .xlsx file"):
        load_document(xlsx)


_XXE = '<?xml version="1.0"?><!DOCTYPE {root} [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'


def test_external_entities_are_never_resolved(tmp_path):
    def inject(root, old):
        def change(name, blob, root=root, old=old):
            if old.encode() not in blob:
                return blob
            body = re.sub(r"^<\?xml[^>]*\?>", "", blob.decode().strip()).replace(old, "&xxe;", 1)
            return (_XXE.format(root=root) + body).encode()
        return change

    odt = rewrite_zip(make_odt(tmp_path / "a.odt"), tmp_path / "xxe.odt", inject("office:document-content", "Jon"))
    with pytest.raises(DocumentError, match="EntitiesForbidden"):
        load_document(odt)
    epub = rewrite_zip(make_epub(tmp_path / "a.epub"), tmp_path / "xxe.epub", inject("package", "The Lighthouse"))
    with pytest.raises(DocumentError, match="EntitiesForbidden"):
        load_document(epub)
    for made, root, old in ((make_pptx(tmp_path / "a.pptx"), "p:sld", "Regional revenue"),
                            (make_xlsx(tmp_path / "a.xlsx"), "worksheet", "Initech")):
        path = rewrite_zip(made, tmp_path / f"xxe{made.suffix}", inject(root, old))
        try:
            text = load_document(path).text
        except DocumentError:
            continue  # refused: fine
        assert "root:" not in text  # read, with the entity left unresolved


def test_empty_files(tmp_path):
    for suffix in MAKERS:
        path = tmp_path / f"empty{suffix}"
        path.write_bytes(b"")
        with pytest.raises(EmptyDocumentError, match="empty file"):
            load_document(path)
    blank = tmp_path / "blank.csv"
    blank.write_text(" ;;\n;;\n\n")
    with pytest.raises(EmptyDocumentError, match="no values"):
        load_document(blank)
    import openpyxl

    openpyxl.Workbook().save(tmp_path / "blank.xlsx")
    with pytest.raises(EmptyDocumentError, match="no values in workbook"):
        load_document(tmp_path / "blank.xlsx")
    from pptx import Presentation

    Presentation().save(tmp_path / "blank.pptx")
    with pytest.raises(EmptyDocumentError, match="presentation has no slides"):
        load_document(tmp_path / "blank.pptx")
    headers_only = tmp_path / "headers.eml"
    headers_only.write_bytes(b"From: a@example.com\r\nSubject: nothing here\r\n\r\n")
    with pytest.raises(EmptyDocumentError, match="no text in message"):
        load_document(headers_only)


def test_not_an_email_and_binary_csv(tmp_path):
    garbage = tmp_path / "garbage.eml"
    garbage.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 4)
    with pytest.raises(DocumentError, match="not a valid e-mail message"):
        load_document(garbage)
    binary = tmp_path / "data.csv"
    binary.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(UnsupportedFileError, match="binary file"):
        load_document(binary)


def test_bad_attachments_are_noted_and_the_message_kept(tmp_path):
    message = EmailMessage()
    message["From"], message["Subject"] = "a@example.com", "two attachments"
    message.set_content("The body survives.")
    message.add_attachment(b"%PDF-1.4 garbage", maintype="application", subtype="pdf", filename="broken.pdf")
    message.add_attachment(b"", maintype="text", subtype="plain", filename="empty.txt")
    path = tmp_path / "bad-attachments.eml"
    path.write_bytes(bytes(message))
    doc = load_document(path)
    assert "The body survives." in doc.text
    assert [n.split(":")[0] for n in doc.notes] == ["attachment broken.pdf", "attachment empty.txt"]
    assert "corrupt PDF" in doc.notes[0] and "empty file" in doc.notes[1]


def test_huge_sheets_are_capped_with_a_note(tmp_path, monkeypatch):
    import openpyxl

    from rag.ingest.loaders import csvfile, xlsx

    monkeypatch.setattr(xlsx, "MAX_SHEET_ROWS", 50)
    monkeypatch.setattr(csvfile, "MAX_SHEET_ROWS", 50)
    book = openpyxl.Workbook()
    for i in range(500):
        book.active.append([i, f"row {i}"])
    book.save(tmp_path / "big.xlsx")
    doc = load_document(tmp_path / "big.xlsx")
    assert "| 48 | row 48 |" in doc.text and "row 50" not in doc.text  # the header row is row 0
    assert doc.notes == ("sheet 'Sheet': only the first 50 rows were read",)
    (tmp_path / "big.csv").write_text("".join(f"{i},row {i}\n" for i in range(500)))
    doc = load_document(tmp_path / "big.csv")
    assert "row 49" in doc.text and "row 50" not in doc.text
    assert doc.notes == ("big.csv: only the first 50 rows were read",)


def test_a_bad_file_is_skipped_and_the_batch_goes_on(fake_settings, tmp_path):
    from rag.models.embedders.factory import make_embeddings
    from rag.serve.api import DocQA

    folder = tmp_path / "docs"
    folder.mkdir()
    make_pptx(folder / "good.pptx")
    (folder / "cut.xlsx").write_bytes(make_xlsx(tmp_path / "x.xlsx").read_bytes()[:2000])
    _zip_bomb(make_epub(tmp_path / "e.epub"), folder / "bomb.epub")
    (folder / "secret.pptx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024))
    report = DocQA(fake_settings, embeddings=make_embeddings(fake_settings)).ingest([folder])
    status = {Path(f.path).name: (f.status, f.reason) for f in report.files}
    assert status["good.pptx"][0] == "added"
    for name in ("cut.xlsx", "bomb.epub", "secret.pptx"):
        assert status[name][0] == "skipped" and status[name][1] and "\n" not in status[name][1]


def test_importing_the_loaders_stays_cheap():
    code = ("import sys, rag.ingest.loaders; heavy = {'pptx', 'openpyxl', 'defusedxml', 'bs4', 'email.mime'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
