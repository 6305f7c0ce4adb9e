"""Typeset pages as a reader sees them (rag.ingest.layout) and PDFs generated here that have all the layout noise."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from rag.ingest import layout
from rag.ingest.layout import (
    clean_chars,
    clean_pages,
    column_order,
    is_page_number,
    join_hyphens,
    listing_kind,
    listing_notes,
    locate_headings,
    markdown_headings,
    place_headings,
    section_at,
    section_paths,
    strip_running_lines,
)
from rag.ingest.loaders import load_document

# --------------------------------------------------------------------------- characters


def test_ligatures_quotes_and_dashes_are_normalised():
    assert clean_chars("the ﬁle ﬂows, eﬀort, oﬃce, baﬄe") == "the file flows, effort, office, baffle"
    assert clean_chars("‘single’ “double” 1999–2022 x − y") == "'single' \"double\" 1999-2022 x - y"
    assert clean_chars("a\u00a0b\u200bc — d") == "a bc — d"  # the em dash stays


def test_tex_spacing_accents_are_composed():
    assert clean_chars("Hans-Bernhard Br¨oker, P´eter Juh´asz, J´erˆome") == "Hans-Bernhard Bröker, Péter Juhász, Jérôme"
    assert clean_chars("na¨ıve") == "naïve"


def test_line_end_marks_survive_for_the_hyphen_step():
    assert clean_chars("con\x02figuration soft\xadware") == "con\x02figuration soft\xadware"


# --------------------------------------------------------------------------- headers, footers, page numbers


@pytest.mark.parametrize("line", ["103", "103/233", "- 12 -", "Page 3 of 9", "page 4", "iv", "(7)", "  42  "])
def test_page_number_lines(line):
    assert is_page_number(line)


@pytest.mark.parametrize("line", ["103 apples", "Chapter 3", "x = 4", "I am", "2.5", "lid", "mild", "civic"])
def test_not_page_number_lines(line):
    assert not is_page_number(line)


FERRIES = ["Ada", "Brae", "Cora", "Dun", "Eda", "Fife", "Gala", "Hoy"]


def _book(n: int = 8) -> list[list[str]]:
    pages = []
    for i in range(n):
        number = i + 1
        header = f"Harbour Manual {number}" if number % 2 else f"{number} Harbour Manual"
        pages.append([header, f"Ferry {FERRIES[i]} sails at dawn.", f"{FERRIES[i]} returns at dusk.",
                      "Confidential draft", f"- {number} -"])
    return pages


def test_running_headers_footers_and_page_numbers_are_removed():
    kept, report = strip_running_lines(_book())
    assert kept[0] == ["Ferry Ada sails at dawn.", "Ada returns at dusk."]
    assert all(len(page) == 2 for page in kept)
    assert (report.headers, report.footers, report.page_numbers) == (8, 8, 8)


def test_a_header_carrying_its_page_number_goes_even_when_unique():
    pages = [[f"Chapter {1 + i // 3}: Topic {i // 3} {i + 1}", f"{FERRIES[i]} sails at dawn."] for i in range(8)]
    pages[4][0] = "Chapter 2: A chapter only this page names 5"
    kept, _ = strip_running_lines(pages)
    assert kept[4] == ["Eda sails at dawn."]


def test_content_lines_at_the_edges_stay():
    # a first line on 3 of 10 pages, without a number: content that happens to start pages, not a header
    pages = [["Syntax:", f"set term {name.lower()}", f"{name} is a terminal."] for name in FERRIES[:3]]
    pages += [[f"About {name}", f"{name} sails at dawn.", f"{name} returns at dusk."] for name in FERRIES[3:]]
    kept, report = strip_running_lines(pages)
    assert kept == pages
    assert (report.headers, report.footers, report.page_numbers) == (0, 0, 0)


def test_a_page_number_read_mid_page_goes_and_other_numbers_stay():
    """Under a chapter's running title the printed page number is the second line; on some pages the text layer
    puts it between the text and the footnotes. It goes wherever it is, once the pages agree how printed
    numbers follow page order; a footnote's number and a number in the text stay."""
    pages = [["Quay Operations", str(i + 1), f"{FERRIES[i]} sails at dawn.", f"{FERRIES[i]} returns at dusk."]
             for i in range(6)]
    pages[4] = ["Quay Operations", f"{FERRIES[4]} sails at dawn.", "Tugs assist at berth", "5", "2",
                "2 Berths are numbered from the north.", "7", "Cranes stop in high wind."]
    kept, report = strip_running_lines(pages, ["Chapter 2. Quay Operations"])
    assert kept[4] == [f"{FERRIES[4]} sails at dawn.", "Tugs assist at berth", "2",
                       "2 Berths are numbered from the north.", "7", "Cranes stop in high wind."]
    assert all(page[:1] == [f"{FERRIES[i]} sails at dawn."] for i, page in enumerate(kept))
    assert report.page_numbers == 6


def test_a_table_header_under_the_running_header_stays():
    pages = [[f"Manual {i + 1}", "Function Arguments Returns", f"row {i}"] for i in range(3)]
    pages += [[f"Manual {i + 4}", "Plain text.", "More."] for i in range(5)]
    kept, _ = strip_running_lines(pages)
    assert kept[0][0] == "Function Arguments Returns"


# --------------------------------------------------------------------------- contents and index pages


TOC = ["Contents", "1 Introduction . . . . . . . . . . 3", "1.1 Scope . . . . . . . . . 3",
       "2 Networking . . . . . . . . . . 4", "2.1 Configuring the network . . . 4", "2.2 Firewalls . . . . . . 5",
       "Index . . . . . . . . . . . 6"]
INDEX = ["Index", "address, 4", "firewall, 5, 7", "gateway, 4", "relay, 4–5", "scope, 3", "tide tables, 12"]


def test_contents_and_index_pages_are_recognised():
    assert listing_kind(TOC) == "table of contents"
    assert listing_kind(INDEX) == "index"
    assert listing_kind(["Canvas size 32", "Comments 33", "Coordinates 33", "Datastrings 33", "Environment 35"],
                        ["CONTENTS gnuplot 5.4 3"]) == "table of contents"
    # the last page of a contents names the index among its entries: still a table of contents
    assert listing_kind(TOC[1:] + ["Index 181"]) == "table of contents"
    assert listing_kind(TOC[1:] + ["Index . . . . . . . . . . 181"]) == "table of contents"


def test_an_index_read_as_a_table_is_still_an_index():
    """An index set in two columns can come out of the PDF reader as a Markdown table: its cells are entries."""
    rows = ["| address, 4 | relay, 4–5 |", "| --- | --- |", "| firewall, 5, 7 | scope, 3 |",
            "| gateway, 4 | tide tables, 12 |", "| harbour, 9 | wharf, 2 |"]
    assert listing_kind(["Index", *rows]) == "index"
    numbers = ["| Year | Ferries |", "| --- | --- |", "| 2019 | 12 |", "| 2020 | 9 |", "| 2021 | 11 |", "| 2022 | 14 |"]
    assert listing_kind(numbers) == "", "a table of numbers stays a table"


def test_an_index_whose_page_numbers_are_read_apart_is_still_an_index():
    """Texinfo sets an index's page numbers in a column that the text layer reads apart from the entries: the
    lines end in dot leaders alone, or name only a symbol (`!=`). Such pages, and the next page of the index
    (single letters and stray commas between its entries), are not indexed; a page of prose with a few
    dotted lines is, and so is a form whose blanks are dot leaders."""
    from rag.ingest.layout import listing_pages

    entries = ["! . . . . . . . . . . . . . 166, 167", "!= . . . . . . . . . . . . . 164", "pbaspect . . . . . . . . . . .",
               "pcg . . . . . . . . . . . . . .", "pchip . . . . . . . . . . . . .", "pclose . . . . . . . . . . . . ."]
    assert listing_kind(["Operator Index", "!", *entries]) == "index"
    after = ["G", "GEPBALANCE . . . . . . . . . . .", "gradient_function . . . . . . . .", "H", "hess_matrix", "HESS",
             "I", "ifourier . . . . . . . . . . . 18", ", , ,", "imag 25 28 29"]
    prose = ["The ferry leaves at nine and returns at five.", "Fill in the form . . . . . . .",
             "Tickets are sold on board.", "Children under five travel free.", "Dogs must be kept on a lead.",
             "The crossing takes forty minutes."]
    found = listing_pages([["Opening hours of the office are posted."] * 6, ["Operator Index", "!", *entries],
                           after, prose])
    assert found == {1: "index", 2: "index"}
    # a form to fill in has dot leaders too, but no "Index" or "Contents" over them: it is content
    form = ["Leave request", "Name . . . . . . . . . . . .", "Department . . . . . . . . .", "First day . . . . . . . . .",
            "Last day . . . . . . . . . .", "Signature . . . . . . . . . .", "Hand the form to your manager."]
    assert listing_kind(form) == ""
    # a blank verso inside the index is part of its run (one note), not a break in it
    found = listing_pages([["Opening hours of the office are posted."] * 6, ["Operator Index", "!", *entries], [],
                           ["Function Index", *entries[2:], *entries[2:]]])
    assert listing_notes(found) == ["pages 2–4: index, not indexed"]


def test_a_table_of_numbers_is_not_a_listing():
    table = ["Year Ferries", "2019 12", "2020 9", "2021 11", "2022 14", "2023 15"]
    assert listing_kind(table) == ""
    prose = ["The ferry leaves at 9.", "It returns at 17.", "Tickets cost 4.", "Children pay 2.", "Dogs go free."]
    assert listing_kind(prose) == ""


def test_slide_titles_stay_headings_when_the_slides_hold_only_short_lines(tmp_path):
    """A slide deck printed to PDF: a title slide, then slides whose bullets are a few words each. The first
    line of running text may come slides later; only the first page's title block is left out."""
    slides = [[(72, 500, "Harbour Authority Review", 28), (72, 450, "Operations team", 18)]]
    for title, bullets in [("Ferry routes", ["Gull Island", "North pier", "Summer only"]),
                           ("Staff by site", ["Harbour office 12", "Pier 4", "Lighthouse 2"]),
                           ("Next steps", ["The new timetable starts in June for every route."] * 2)]:
        slides.append([(72, 500, title, 20)] + [(90, 460 - 22 * i, line, 12) for i, line in enumerate(bullets)])
    path = tmp_path / "slides.pdf"
    path.write_bytes(typeset_pdf(slides, width=720, height=540))
    doc = load_document(path)
    labels = [label for _, label in doc.sections]
    assert labels == ["Ferry routes", "Staff by site", "Next steps"], labels
    assert doc.section_at(doc.text.index("North pier")) == "Ferry routes"


def test_a_heading_that_repeats_the_one_above_adds_nothing_to_the_path():
    from rag.ingest.layout import section_paths

    paths = section_paths([(0, 0, "8.1. Numeric Types"), (20, 2, "8.1. Numeric Types"), (40, 3, "8.1.1. Integer Types"),
                           (90, 2, "8.2. Monetary Types")])
    assert [p for _, p in paths] == ["8.1. Numeric Types", "8.1. Numeric Types",
                                     "8.1. Numeric Types › 8.1.1. Integer Types", "8.1. Numeric Types › 8.2. Monetary Types"]


def test_listing_notes_group_runs():
    assert listing_notes({1: "table of contents", 2: "table of contents", 3: "table of contents", 9: "index"}) == [
        "pages 2–4: table of contents, not indexed", "page 10: index, not indexed"]


def test_a_document_that_is_only_a_list_keeps_it():
    cleaned = clean_pages(["\n".join(TOC)])
    assert cleaned.listings == {} and "Networking" in cleaned.texts[0]


# --------------------------------------------------------------------------- hyphenation


def test_line_end_hyphenation_is_joined():
    assert join_hyphens(["The con-\nfiguration file."]) == ["The configuration file."]
    assert join_hyphens(["The con\x02figuration file."]) == ["The configuration file."]  # pdfium's mark


def test_real_hyphens_stay():
    # written with a hyphen elsewhere in the document: the split one keeps it
    assert join_hyphens(["A non-\nzero value.", "Any non-zero value."])[0] == "A non-\nzero value."
    assert join_hyphens(["A non\x02zero value.", "Any non-zero value."])[0] == "A non-zero value."
    assert join_hyphens(["The S\x02Plus system, S-\nPlus."]) == ["The S-Plus system, S-\nPlus."]  # capitals
    assert join_hyphens(["case\x02by-case"]) == ["case-by-case"]  # a compound broken at its own hyphen
    assert join_hyphens(["self-\ncontained"]) == ["self-\ncontained"]  # no evidence: a prefix that keeps it


def test_joined_form_wins_when_the_document_uses_it():
    assert join_hyphens(["data-\nbase", "the database and the database"])[0] == "database"


def test_clean_pages_in_order():
    pages = ["\n".join(p) for p in _book(6)]
    pages[2] = "Harbour Manual 3\nThe con-\nfiguration of the ﬁle.\nConfidential draft\n- 3 -"
    cleaned = clean_pages(pages)
    assert cleaned.texts[2] == "The configuration of the file."
    assert cleaned.headers == 6 and cleaned.footers == 6 and cleaned.page_numbers == 6


# --------------------------------------------------------------------------- two columns


def _two_column_boxes():
    boxes = [(72, 740, 540, 752)]  # a title over both columns
    for row in range(12):
        y = 700 - row * 14
        boxes.append((72, y, 290, y + 10))  # left column line
        boxes.append((322, y, 540, y + 10))  # right column line, same baseline
    return boxes


def test_two_columns_are_read_column_by_column():
    boxes = _two_column_boxes()
    order = column_order(boxes, 612)
    assert order is not None
    flat = [i for line in order for i in line]
    assert flat[0] == 0  # the title first
    left = [i for i in range(1, len(boxes)) if boxes[i][0] == 72]
    right = [i for i in range(1, len(boxes)) if boxes[i][0] == 322]
    assert flat[1:] == left + right


def test_one_column_and_tables_are_left_alone():
    prose = [(72, 700 - 14 * r, 540, 710 - 14 * r) for r in range(20)]
    assert column_order(prose, 612) is None
    table = []
    for r in range(12):  # short cells in three columns: a table, not two columns of prose
        y = 700 - 14 * r
        table += [(72, y, 120, y + 10), (250, y, 290, y + 10), (350, y, 540, y + 10)]
    assert column_order(table, 612) is None
    ragged = []
    for r in range(12):  # cells that fill most of their side but end where their text ends
        y = 700 - 14 * r
        ragged += [(72, y, 150 + 9 * (r % 5), y + 10), (170, y, 240 + 11 * (r % 4), y + 10),
                   (330, y, 470 + 13 * (r % 6), y + 10)]
    assert column_order(ragged, 612) is None


# --------------------------------------------------------------------------- sections


def test_section_paths_follow_levels():
    headings = [(0, 0, "1 Intro"), (10, 1, "1.1 Scope"), (20, 0, "2 Networking"), (30, 1, "2.1 Configuring"),
                (40, 2, "2.1.1 Addresses"), (50, 1, "2.2 Firewalls")]
    sections = section_paths(headings)
    assert sections[3] == (30, "2 Networking › 2.1 Configuring")
    assert sections[4] == (40, "2 Networking › 2.1 Configuring › 2.1.1 Addresses")
    assert sections[5] == (50, "2 Networking › 2.2 Firewalls")
    assert section_at(sections, 5) == "1 Intro" and section_at(sections, 45) == sections[4][1]
    assert section_at(((10, "A"),), 3) == ""


def test_headings_at_one_offset_keep_the_deepest():
    assert section_paths([(0, 0, "Part I"), (0, 1, "Copyright")]) == ((0, "Part I › Copyright"),)


def test_outline_entries_are_placed_at_their_lines():
    text = "Title page\n\n1 Introduction\nIntro text.\n1.1 Scope\nScope text.\n\nMore scope on page 3."
    pages = ((1, 0, 10), (2, 12, 58), (3, 60, len(text)))
    outline = [(0, "Introduction", 1), (1, "Scope", 1), (1, "Not on the page", 2), (0, "Gone", 7)]
    placed = place_headings(outline, text, pages)
    assert placed == [(12, 0, "1 Introduction"), (39, 1, "1.1 Scope"), (None, 1, "Not on the page")]
    # not found: no section of its own, the text stays under the heading before it
    assert section_paths(placed) == ((12, "1 Introduction"), (39, "1 Introduction › 1.1 Scope"))


def test_wrapped_and_run_in_headings_are_found():
    text = "2.7 Index vectors; selecting and\nmodifying subsets\nText.\nValid The valid(x) function is used."
    pages = ((1, 0, len(text)),)
    outline = [(0, "Index vectors; selecting and modifying subsets", 0), (1, "Valid", 0)]
    assert place_headings(outline, text, pages) == [
        (0, 0, "2.7 Index vectors; selecting and modifying subsets"), (text.index("Valid"), 1, "Valid")]
    appendix = "Appendix A A sample session\nText."
    assert place_headings([(0, "A A sample session", 0)], appendix, ((1, 0, len(appendix)),)) == [
        (0, 0, "Appendix A A sample session")]


def test_a_title_split_into_two_bookmarks_is_one_heading_and_a_stray_mark_is_not_part_of_it():
    """Some print styles make one bookmark per line of a wrapped title (`3.17. /srv : Data for services provided by
    this`, `system`), and a page number or footnote mark can sit on the line above a heading: the section is the
    whole title, without the mark. Two numbered headings on adjacent lines stay two."""
    text = ("16\n3.17. /srv : Data for services provided by this\nsystem\n3.17.1. Purpose\n/srv holds served data.\n"
            "3.18. /tmp : Temporary files\n3.19. /usr : Secondary hierarchy\nShared data.")
    pages = ((1, 0, len(text)),)
    outline = [(0, "3.17. /srv : Data for services provided by this", 0), (0, "system", 0), (1, "3.17.1. Purpose", 0),
               (0, "3.18. /tmp : Temporary files", 0), (0, "3.19. /usr : Secondary hierarchy", 0)]
    paths = dict(section_paths(place_headings(outline, text, pages)))
    assert paths[text.index("3.17. /srv")] == "3.17. /srv : Data for services provided by this system"
    assert paths[text.index("3.17.1.")] == "3.17. /srv : Data for services provided by this system › 3.17.1. Purpose"
    assert paths[text.index("3.18.")] == "3.18. /tmp : Temporary files"
    assert paths[text.index("3.19.")] == "3.19. /usr : Secondary hierarchy"
    assert len(paths) == 4


def test_an_unfound_parent_still_names_its_children():
    assert section_paths([(None, 0, "I Gnuplot"), (5, 1, "Copyright")]) == ((5, "I Gnuplot › Copyright"),)


def test_markdown_and_located_headings():
    md = "# Guide\n\nIntro.\n\n```\n# not a heading\n```\n\n## Install\n\nSteps."
    assert markdown_headings(md) == [(0, 1, "Guide"), (md.index("## Install"), 2, "Install")]
    text = "Logger Objects¶\nLoggers log.\nLevels\nNumbers."
    assert locate_headings(text, [(2, "Navigation"), (2, "Logger Objects ¶"), (2, "Levels")]) == [
        (0, 2, "Logger Objects"), (text.index("Levels"), 2, "Levels")]


# --------------------------------------------------------------------------- a generated typeset PDF


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _encode(s: str) -> bytes:
    """WinAnsi bytes of a PDF string, with the fi ligature as byte 0x80 (see `typeset_pdf`)."""
    return b"".join(b"\x80" if ch == "ﬁ" else ch.encode("cp1252") for ch in _esc(s))


def typeset_pdf(pages: list[list[tuple]], outline=(), width: int = 612, height: int = 792) -> bytes:
    """A PDF of positioned Helvetica lines `(x, y, text)` or `(x, y, text, font size)` (10 by default) per page,
    with an outline `(level, title, page index)`.

    "ﬁ" is written as byte 0x80, the `fi` ligature glyph (its ToUnicode maps it to U+FB01).
    """
    n = len(pages)
    objs: dict[int, bytes] = {}
    font, tounicode = 3 + 2 * n, 4 + 2 * n
    cmap = (b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /L def 1 begincodespacerange "
            b"<00> <FF> endcodespacerange 1 beginbfchar <80> <FB01> endbfchar endcmap CMapName currentdict /CMap "
            b"defineresource pop end end")
    objs[tounicode] = b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream"
    objs[font] = (b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Type /Encoding /BaseEncoding "
                  b"/WinAnsiEncoding /Differences [128 /fi] >> /ToUnicode %d 0 R >>" % tounicode)
    objs[2] = ("<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{3 + 2 * i} 0 R" for i in range(n)), n)).encode()
    for i, lines in enumerate(pages):
        stream = b"\n".join(b"BT /F1 %g Tf 1 0 0 1 %g %g Tm (%s) Tj ET" % (line[3] if len(line) > 3 else 10, line[0], line[1],
                                                                            _encode(line[2])) for line in lines)
        objs[3 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Resources << /Font << "
                           f"/F1 {font} 0 R >> >> /Contents {4 + 2 * i} 0 R >>").encode()
        objs[4 + 2 * i] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    catalog = "<< /Type /Catalog /Pages 2 0 R >>"
    if outline:
        root = tounicode + 1
        ids = [root + 1 + k for k in range(len(outline))]
        parent: dict[int, int | None] = {}
        stack: list[int] = []
        for k, (level, _, _) in enumerate(outline):
            while stack and outline[stack[-1]][0] >= level:
                stack.pop()
            parent[k] = stack[-1] if stack else None
            stack.append(k)
        children: dict[int | None, list[int]] = {}
        for k in range(len(outline)):
            children.setdefault(parent[k], []).append(k)
        for k, (_, title, page) in enumerate(outline):
            siblings, kids = children[parent[k]], children.get(k, [])
            j = siblings.index(k)
            entry = [f"/Title ({_esc(title)})", f"/Parent {ids[parent[k]] if parent[k] is not None else root} 0 R",
                     f"/Dest [{3 + 2 * page} 0 R /XYZ 0 {height} 0]"]
            entry += [f"/Prev {ids[siblings[j - 1]]} 0 R"] if j > 0 else []
            entry += [f"/Next {ids[siblings[j + 1]]} 0 R"] if j + 1 < len(siblings) else []
            entry += [f"/First {ids[kids[0]]} 0 R /Last {ids[kids[-1]]} 0 R /Count {len(kids)}"] if kids else []
            objs[ids[k]] = ("<< " + " ".join(entry) + " >>").encode("latin-1")
        top = children[None]
        objs[root] = f"<< /Type /Outlines /First {ids[top[0]]} 0 R /Last {ids[top[-1]]} 0 R /Count {len(top)} >>".encode()
        catalog = f"<< /Type /Catalog /Pages 2 0 R /Outlines {root} 0 R >>"
    objs[1] = catalog.encode()
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for k in sorted(objs):
        offsets[k] = out.tell()
        out.write(b"%d 0 obj\n" % k + objs[k] + b"\nendobj\n")
    xref, size = out.tell(), max(objs) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for k in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[k] if k in offsets else b"0000000000 65535 f \n")
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
    return out.getvalue()


def _page(number: int | None, body: list[str]) -> list[tuple[float, float, str]]:
    """A page: running header and footer (from page 2 on), page number at the bottom, body lines top down."""
    lines = [(72, 700 - 14 * i, text) for i, text in enumerate(body)]
    if number is not None:
        lines = [(72, 750, "Harbour Manual")] + lines
        lines += [(72, 60, "Confidential draft"), (300, 40, f"- {number} -")]
    return lines


CONFIG_PARAGRAPH = "Set the address of each gateway in the port table and restart the relay daemon."
MANUAL_PAGES = [
    _page(None, ["Harbour Operations Manual", "Version 2"]),
    _page(2, TOC),
    _page(3, ["1 Introduction", "This manual covers the harbour relay. Its con-",
              "figuration lives in one ﬁle. Use a non-", "zero port; a non-zero port is required.",
              "1.1 Scope", "The scope is the ferry terminal and the pier."]),
    _page(4, ["2 Networking", "Networks connect the quay to the office.", "2.1 Configuring the network",
              CONFIG_PARAGRAPH]),
    _page(5, ["More about gateways: each has one address.", "2.2 Firewalls", "Firewalls block unknown traffic."]),
    _page(6, INDEX),
]
MANUAL_OUTLINE = [(0, "Contents", 1), (0, "Introduction", 2), (1, "Scope", 2), (0, "Networking", 3),
                  (1, "Configuring the network", 3), (1, "Firewalls", 4), (0, "Index", 5)]


@pytest.fixture
def manual(tmp_path) -> Path:
    path = tmp_path / "harbour.pdf"
    path.write_bytes(typeset_pdf(MANUAL_PAGES, MANUAL_OUTLINE))
    return path


def test_typeset_pdf_reads_as_a_reader_sees_it(manual):
    doc = load_document(manual)
    assert [n for n, _, _ in doc.pages] == [1, 3, 4, 5]  # contents (2) and index (6) are not indexed
    assert "page 2: table of contents, not indexed" in doc.notes
    assert "page 6: index, not indexed" in doc.notes
    for noise in ("Confidential draft", "- 3 -", ". . .", "firewall, 5"):
        assert noise not in doc.text, noise
    assert "Harbour Manual" not in doc.text and doc.text.startswith("Harbour Operations Manual")  # title page kept
    assert "Its configuration lives in one file." in doc.text  # hyphenation joined, ligature spelled out
    assert "Use a non-zero port" in doc.text and "nonzero" not in doc.text  # written so elsewhere: kept
    start = doc.text.index(CONFIG_PARAGRAPH)
    assert doc.section_at(start) == "2 Networking › 2.1 Configuring the network"
    assert doc.page_at(start) == 4
    assert doc.section_at(doc.text.index("More about gateways")) == "2 Networking › 2.1 Configuring the network"
    assert doc.section_at(doc.text.index("Firewalls block")) == "2 Networking › 2.2 Firewalls"
    assert doc.section_at(doc.text.index("The scope is")) == "1 Introduction › 1.1 Scope"
    assert doc.section_at(0) == ""


def _chapter_page(number: int, top: str, body: list[str]) -> list[tuple[float, float, str]]:
    """A page of a DocBook-style specification: the chapter's title (or its heading) on top, no page number there,
    the page number at the bottom."""
    return [(72, 750, top)] + [(72, 700 - 14 * i, text) for i, text in enumerate(body)] + [(300, 40, str(number))]


def test_a_chapter_title_heading_each_of_its_pages_and_a_contents_run_on_are_not_text(tmp_path):
    """DocBook's print styles head every page of a chapter with the chapter's title alone (no page number; each
    title on fewer than half the pages), and set a table of contents' page numbers in a column that the text
    layer reads apart, so its later pages have neither numbered entries nor a "Contents" title. The title is
    a running header because the outline names it; a line that no outline entry names stays."""
    toc = ["Contents", "1. Harbour Networks . . . . . . . . . . 4", "1.1. Gateways . . . . . . . . . . 4",
           "1.2. Routes . . . . . . . . . . 5", "1.3. Relays . . . . . . . . . . 6", "2. Quay Operations . . . . . . 8"]
    toc_on = ["2.1. Berths . . . . . . . . . . . . . .", ". . . . . . . . . . . . . . . . 8",
              "2.2. Tides . . . . . . . . . . . . . . .", ". . . . . . . . . . . . . . . . 9",
              "2.3. Cranes . . . . . . . . . . . . . .", ". . . . . . . . . . . . . . . . 10"]
    net, quay = "Harbour Networks", "Quay Operations"
    pages = [
        [(72, 700, "Harbour Specification"), (72, 680, "Version 3")],
        [(72, 700 - 14 * i, line) for i, line in enumerate(toc)] + [(300, 40, "ii")],
        [(72, 700 - 14 * i, line) for i, line in enumerate(toc_on)] + [(300, 40, "iii")],
        _chapter_page(4, f"Chapter 1. {net}", ["1.1. Gateways", "Each gateway has one address on the quay."]),
        _chapter_page(5, net, ["1.2. Routes", "The relay keeps one route for each"]),
        _chapter_page(6, net, ["gateway of the quay.", "1.3. Relays", "Relays restart at midnight."]),
        _chapter_page(7, net, ["Relays log every restart."]),
        _chapter_page(8, f"Chapter 2. {quay}", ["2.1. Berths", "Berths are numbered from the north."]),
        _chapter_page(9, quay, ["2.2. Tides", "Tide tables are posted daily."]),
        _chapter_page(10, quay, ["2.3. Cranes", "Cranes stop in high wind."]),
        _chapter_page(11, quay, ["Cranes are inspected monthly."]),
    ]
    outline = [(0, "Contents", 1), (0, f"Chapter 1. {net}", 3), (1, "1.1. Gateways", 3), (1, "1.2. Routes", 4),
               (1, "1.3. Relays", 5), (0, f"Chapter 2. {quay}", 7), (1, "2.1. Berths", 7), (1, "2.2. Tides", 8),
               (1, "2.3. Cranes", 9)]
    path = tmp_path / "spec.pdf"
    path.write_bytes(typeset_pdf(pages, outline))
    doc = load_document(path)
    assert "pages 2–3: table of contents, not indexed" in doc.notes
    assert ". . ." not in doc.text
    assert doc.text.count(net) == 1 and doc.text.count(quay) == 1  # the chapters' headings only
    assert "The relay keeps one route for each\n\ngateway of the quay." in doc.text  # pages meet, no header between
    assert doc.section_at(doc.text.index("gateway of the quay")) == f"Chapter 1. {net} › 1.2. Routes"
    # without the outline the same lines are content: a title on 3 of 11 pages, no number
    kept, report = strip_running_lines([[line for _, _, line in page] for page in pages])
    assert sum(page.count(net) for page in kept) == 3 and report.headers == 0
    kept, report = strip_running_lines([[line for _, _, line in page] for page in pages],
                                       [title for _, title, _ in outline])
    assert sum(page.count(net) for page in kept) == 0 and report.headers == 6


def test_interleaved_two_columns_read_in_order(tmp_path):
    left = [f"Left column line {i:02d} of prose that fills the column" for i in range(12)]  # justified: one width
    right = [f"Right column line {i:02d} of prose that fills it too" for i in range(12)]
    lines = []
    for i in range(12):  # the content stream alternates between the columns, line by line
        lines += [(50, 700 - 14 * i, left[i]), (320, 700 - 14 * i, right[i])]
    path = tmp_path / "columns.pdf"
    path.write_bytes(typeset_pdf([lines]))
    text = load_document(path).text
    order = [text.index(line) for line in left + right]
    assert order == sorted(order), text


def test_a_reference_card_in_three_columns_is_read_column_by_column(tmp_path):
    """A reference card sets three columns of command / meaning pairs on a landscape page, on one baseline
    grid: each column is read whole before the next, and no row joins the pairs of neighbouring columns."""
    columns = {
        "Files": [("ls", "List files."), ("cp", "Copy files."), ("mv", "Move files."), ("rm", "Remove files."),
                  ("mkdir", "Make directories."), ("find", "Find files."), ("du", "Sum disk usage."),
                  ("df", "Show free space."), ("ln -s", "Make a link."), ("touch", "Create a file."),
                  ("chmod", "Change modes.")],
        "Packages": [("apt show", "Show a package."), ("apt install", "Install packages."),
                     ("apt remove", "Remove packages."), ("apt update", "Refresh the lists."),
                     ("apt search", "Search packages."), ("dpkg -L", "List a package's files."),
                     ("dpkg -S", "Find a file's package."), ("apt-mark", "Hold a package."),
                     ("apt purge", "Remove with config."), ("apt policy", "Show priorities."),
                     ("apt clean", "Empty the cache.")],
        "Network": [("ip addr", "Show addresses."), ("ping host", "Reach a host."), ("ssh host", "Log in remotely."),
                    ("scp a b", "Copy between hosts."), ("ss -tlnp", "List open ports."), ("dig name", "Ask DNS."),
                    ("curl URL", "Fetch a page."), ("wget URL", "Download a file."), ("nft list", "Show the firewall."),
                    ("hostname", "Name this host."), ("whois name", "Look up a domain.")],
    }
    lines = []
    for c, (title, pairs) in enumerate(columns.items()):
        x = 40 + 280 * c
        lines.append((x, 540, title, 12))
        lines += [(x + dx, 520 - 14 * i, text) for i, pair in enumerate(pairs) for dx, text in zip((0, 95), pair)]
    path = tmp_path / "card.pdf"
    path.write_bytes(typeset_pdf([lines], width=842, height=595))
    text = load_document(path).text
    order = [text.index(title) for title in columns]
    assert order == sorted(order), text
    for c, (title, pairs) in enumerate(columns.items()):
        end = order[c + 1] if c + 1 < len(order) else len(text)
        for key, meaning in pairs:  # each pair inside its own column's stretch of the text
            assert order[c] < text.index(key) < end and order[c] < text.index(meaning) < end, text
    def names(line: str, pairs) -> bool:
        return any(re.search(r"(?<![\w-])" + re.escape(key) + r"(?![\w-])", line) for key, _ in pairs)

    for line in text.splitlines():  # no line holds commands of two columns
        assert sum(names(line, pairs) for pairs in columns.values()) <= 1, line


def _options_page() -> list[tuple]:
    """A page of a Texinfo-style manual: a paragraph whose first line is indented, then a list of options, each
    term at the margin after a little space and its description indented below it."""
    lines, y = [], 700.0

    def put(x, text, step=13.0):
        nonlocal y
        lines.append((x, y, text))
        y -= step

    put(87, "R accepts the following command-line options, which change how a session")
    put(72, "starts and ends; the defaults suit most interactive use.", 20)
    put(72, "--save")
    put(72, "--no-save")
    put(130, "Control whether data sets should be saved or not at the end of the R ses-")
    put(130, "sion. The default is to ask.", 20)
    put(72, "--no-environ")
    put(130, "Do not read any user file to set environment variables.", 20)
    put(72, "--no-readline")
    put(130, "(UNIX only) Turn off command-line editing via readline. This is useful")
    put(130, "when running R from within Emacs.", 20)
    put(72, "--vanilla")
    put(130, "Combine --no-save, --no-environ and --no-readline.", 20)
    put(72, "Most options control what happens at the beginning and at the end of a session.")
    put(72, "The startup mechanism reads the site files first, then the user's own files.")
    put(72, "Each file may set environment variables for the session.")
    return lines


def test_a_list_of_terms_with_indented_descriptions_reads_term_and_description_on_one_line(tmp_path):
    """Texinfo's tables of options, Sphinx's and DocBook's definition lists: a description's later sentences
    ("The default is to ask.") are read with the term they describe, as the HTML loader reads a `<dl>`."""
    path = tmp_path / "options.pdf"
    path.write_bytes(typeset_pdf([_options_page()]))
    text = load_document(path).text
    assert ("- --save, --no-save: Control whether data sets should be saved or not at the end of the R session. "
            "The default is to ask.") in text, text
    assert "- --no-environ: Do not read any user file to set environment variables." in text
    assert ("- --no-readline: (UNIX only) Turn off command-line editing via readline. This is useful when running R "
            "from within Emacs.") in text
    assert "- --vanilla: Combine --no-save, --no-environ and --no-readline." in text
    # the paragraphs around the list stay as they were
    assert text.startswith("R accepts the following command-line options, which change how a session\nstarts")
    assert text.rstrip().endswith("Most options control what happens at the beginning and at the end of a session.\n"
                                  "The startup mechanism reads the site files first, then the user's own files.\n"
                                  "Each file may set environment variables for the session.")


def _text_lines(rows):
    """(left, bottom, right, top, text) lines from (left, text[, gap]) rows, top down, 13 pt apart and 20 before
    a row marked with a gap, as `definition_lists` reads a page."""
    out, y = [], 700.0
    for left, text, *gap in rows:
        y -= 20 if gap else 13
        out.append((left, y, left + 6 * len(text), y + 10, text))
    return out


def test_indented_lines_that_are_no_definition_list_stay_lines():
    from rag.ingest.layout import definition_lists

    prose = [(87, "A paragraph opens with an indented line and goes on"), (72, "at the margin for its other lines.")] * 4
    assert definition_lists(_text_lines(prose)) == []
    headings = [(72, "6.1.1. / : Root directory", 1), (110, "On Linux the kernel lives in /boot."),
                (72, "6.1.2. /bin : Commands", 1), (110, "Every command is a file."),
                (72, "6.1.3. /dev : Devices", 1), (110, "Devices are files too.")]
    assert definition_lists(_text_lines(headings)) == [], "numbered headings over an indented body are no terms"
    listing = [(72, "Examples:", 1), (110, "plot sin(x)"), (72, "Second:", 1), (110, "plot cos(x)"),
               (72, "Third:", 1), (110, "plot tan(x)")]
    assert definition_lists(_text_lines(listing), [False, True] * 3) == [], "code under a caption is no description"
    assert [d.items for d in definition_lists(_text_lines(listing))] == [
        ["- Examples: plot sin(x)", "- Second: plot cos(x)", "- Third: plot tan(x)"]]


def test_a_term_of_several_names_shares_its_description_and_a_labelled_term_may_have_none():
    """Texinfo's @itemx sets each further name of an option (or form of a call) on a line of its own, with no gap:
    up to four such lines are one term. A term that carries its own value ("selected: "off" | "on"", a property
    and its values) is an item by itself; the term right under it is the next item, not another name."""
    from rag.ingest.layout import definition_lists

    options = [(72, "--restore", 1), (72, "--no-restore"), (72, "--no-restore-data"),
               (130, "Control whether saved images should be restored at startup."),
               (72, "--no-restore-history", 1), (130, "Control whether the history file should be restored."),
               (72, "--no-Rconsole", 1), (130, "(Windows only) Prevent loading the Rconsole file.")]
    assert [d.items for d in definition_lists(_text_lines(options))] == [[
        "- --restore, --no-restore, --no-restore-data: Control whether saved images should be restored at startup.",
        "- --no-restore-history: Control whether the history file should be restored.",
        "- --no-Rconsole: (Windows only) Prevent loading the Rconsole file."]]
    properties = [(72, 'resize: "off" | {"on"}', 1), (130, "Control whether the figure can be resized."),
                  (72, 'selected: {"off"} | "on"', 1), (72, 'selectionhighlight: "off" | {"on"}'),
                  (72, 'selectiontype: "alt" | {"normal"}'), (130, "Selection type of the latest mouse click."),
                  (72, "tag: string", 1), (130, "A user-defined string to label the object.")]
    assert [d.items for d in definition_lists(_text_lines(properties))] == [[
        '- resize: "off" | {"on"}: Control whether the figure can be resized.',
        '- selected: {"off"} | "on"', '- selectionhighlight: "off" | {"on"}',
        '- selectiontype: "alt" | {"normal"}: Selection type of the latest mouse click.',
        "- tag: string: A user-defined string to label the object."]]


def test_a_pdf_without_bookmarks_takes_its_sections_from_larger_type(tmp_path):
    """No outline (a browser's print, a word processor's export without bookmarks): lines set larger than
    the body text are the headings, the largest level 1; the title alone at the top of page 1 is none."""
    body = "The gateway forwards packets between the two networks every day."
    first = [(72, 740, "Harbour Network Handbook", 24), (72, 700, "1 Networking", 16)]
    first += [(72, 680 - 14 * i, f"{body} Line {i}.") for i in range(4)]
    first += [(72, 600, "1.1 Configuring the network", 13)]
    first += [(72, 580 - 14 * i, f"Set the address of the gateway first. Step {i}.") for i in range(4)]
    second = [(72, 740, "2 Firewalls", 16)] + [(72, 720 - 14 * i, f"Firewalls block traffic. Rule {i}.") for i in range(4)]
    path = tmp_path / "handbook.pdf"
    path.write_bytes(typeset_pdf([first, second]))
    doc = load_document(path)
    assert doc.section_at(doc.text.index("Set the address")) == "1 Networking › 1.1 Configuring the network"
    assert doc.section_at(doc.text.index("Firewalls block")) == "2 Firewalls"
    assert doc.section_at(doc.text.index("The gateway forwards")) == "1 Networking"
    assert all("Handbook" not in label for _, label in doc.sections)


def test_the_title_block_above_the_first_text_gives_no_headings(tmp_path):
    """Authors, affiliation and date set large under the title (a report's or a LaTeX article's title block)
    are no sections; the heading right above the first running text is, and so is the larger one right above
    that (a chapter over its first section), whether the title block has a page of its own or not."""
    body = "The gateway forwards packets between the two networks every day."
    block = [(72, 740, "Harbour Network Handbook", 24), (72, 700, "Anna Berg and Tomas Lind", 13),
             (72, 684, "Harbour Authority, Operations Department", 13), (72, 668, "March 2024", 13)]
    chapter = [(72, 600, "1 Networking", 16), (72, 580, "1.1 Configuring the network", 13)]
    chapter += [(72, 560 - 14 * i, f"{body} Line {i}.") for i in range(4)]
    chapter += [(72, 480, "1.2 Addresses", 13)] + [(72, 460 - 14 * i, f"Each host has one address. {i}.") for i in range(4)]
    for pages in ([block + chapter], [block, [(x, y + 100, text, *size) for x, y, text, *size in chapter]]):
        path = tmp_path / "handbook.pdf"
        path.write_bytes(typeset_pdf(pages))
        doc = load_document(path)
        labels = [label for _, label in doc.sections]
        assert doc.section_at(doc.text.index("The gateway forwards")) == "1 Networking › 1.1 Configuring the network"
        assert doc.section_at(doc.text.index("Each host")) == "1 Networking › 1.2 Addresses"
        assert not any(name in label for label in labels for name in ("Berg", "Department", "March", "Handbook"))


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="prints the page with Debian's chromium")
def test_a_browser_printed_two_column_page_reads_column_by_column(tmp_path):
    """A browser sets two columns of prose ragged-right (not justified), each glyph a box of its own: the
    columns are not taken for a two-column table (whose rows would read across both), so the page reads
    column by column, its title over both columns whole."""
    import re
    import subprocess

    paragraphs = "".join(
        f"<h2>{i} The {topic}</h2>" + "".join(
            f"<p>Paragraph {i}.{j} about the {topic}. "
            + " ".join(f"The {topic} record {i}{j}{k} was kept in the ledger for {1900 + 7 * i + j + k}." for k in range(5))
            + "</p>" for j in (1, 2, 3))
        for i, topic in enumerate(["harbour", "ferry", "lighthouse", "tide", "pier", "dock", "crane", "warehouse"], 1))
    page = tmp_path / "report.html"
    page.write_text("<html><head><style>body{font-family:serif;font-size:10pt;margin:30px} .cols{column-count:2;"
                    "column-gap:28px}</style></head><body><h1>Annual report of the harbour board</h1>"
                    f"<div class='cols'>{paragraphs}</div></body></html>")
    pdf = tmp_path / "report.pdf"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", str(page)], capture_output=True, timeout=120, check=True)
    text = load_document(pdf).text
    assert text.startswith("Annual report of the harbour board\n"), text[:200]
    assert re.findall(r"Paragraph (\d\.\d)", text) == [f"{i}.{j}" for i in range(1, 9) for j in (1, 2, 3)]
    assert "|" not in text and "The harbour record 111 was kept" in " ".join(text.split())


def test_ingested_chunks_carry_section_and_page(fake_settings, manual):
    from rag.index.retrieve import index_text
    from rag.serve.api import DocQA

    qa = DocQA(fake_settings)
    qa.ingest([manual])
    chunks = {c.chunk.text: c.chunk for c in qa.store.scan()}
    config = next(c for text, c in chunks.items() if CONFIG_PARAGRAPH in text)
    assert config.section == "2 Networking › 2.1 Configuring the network" and config.page == 4
    assert "Configuring the network" not in config.text.replace("2.1 Configuring the network", "")
    assert index_text(config).split("\n")[:2] == ["harbour", "2 Networking › 2.1 Configuring the network"]
    scope = next(c for text, c in chunks.items() if "ferry terminal" in text)
    assert scope.section == "1 Introduction › 1.1 Scope" and scope.page == 3
    assert all("Confidential" not in text and "Index" != text for text in chunks)
    # the heading path is searchable although the paragraph never says "configure" or "network"
    hits = qa.retrieve("How do I configure the network?", k=1, mode="bm25")
    assert CONFIG_PARAGRAPH in hits[0].text and hits[0].section.endswith("Configuring the network")


def test_sections_survive_the_store_and_old_records_load(fake_settings, manual):
    from rag.core.types import Chunk
    from rag.index.store import StoredChunk, from_record, to_metadata

    chunk = Chunk("id", "text", "src", section="A › B")
    meta = to_metadata(StoredChunk(chunk, "h", "now", 0))
    assert meta["section"] == "A › B" and from_record("id", "text", meta).chunk.section == "A › B"
    old = {k: v for k, v in meta.items() if k != "section"}  # written before sections existed
    assert from_record("id", "text", old).chunk.section == ""
    assert "section" not in to_metadata(StoredChunk(Chunk("id", "t", "src"), "h", "now", 0))


def test_citation_shows_the_section(fake_settings):
    from rag.core.types import Citation
    from rag.serve.http import CITATION_FIELDS
    from ui.render import render_citation

    c = Citation(n=1, chunk_id="c", source="/docs/m.pdf", page=4, section="2 Net <x> › 2.1 Configuring",
                 quote="q", text="q")
    html = render_citation(0, c)
    assert "2.1 Configuring" in html and "2 Net &lt;x&gt; › 2.1 Configuring" in html and "<x>" not in html
    assert "section" in CITATION_FIELDS


def test_markdown_sections_reach_the_chunks(fake_settings, tmp_path):
    from rag.serve.api import DocQA

    path = tmp_path / "guide.md"
    path.write_text("# Guide\n\nIntro words.\n\n## Install\n\nRun the installer twice.\n\n## Use\n\nPress start.")
    qa = DocQA(fake_settings)
    qa.ingest([path])
    by_text = {c.chunk.text: c.chunk.section for c in qa.store.scan()}
    assert by_text["## Install\n\nRun the installer twice."] == "Guide › Install"
    assert by_text["## Use\n\nPress start."] == "Guide › Use"


def test_layout_module_is_pure():
    # no PDF library at import: the loader feeds it page texts and boxes
    source = Path(layout.__file__).read_text()
    assert "pypdfium2" not in source and "pypdf" not in source and "pdfplumber" not in source


def test_a_heading_keeps_its_number_but_not_a_spelled_out_chapter_word():
    from rag.ingest.layout import heading_label

    assert heading_label("4.2 Configuring the network", "Configuring the network") == "4.2 Configuring the network"
    assert heading_label("IV Results", "Results") == "IV Results"
    assert heading_label("A.1 Installing", "Installing") == "A.1 Installing"
    assert heading_label("Appendix C The command-line editor", "The command-line editor") == \
        "Appendix C The command-line editor"
    # Sphinx's LaTeX sets a chapter as "CHAPTER / ONE / INTRODUCTION": the word is not the heading's number
    assert heading_label("ONE", "Introduction", "INTRODUCTION") is None
    assert heading_label("INTRODUCTION", "Introduction") == "INTRODUCTION"
