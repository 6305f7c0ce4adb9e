"""Tables in DOCX, HTML and PDF become Markdown tables; a split table repeats its header in every chunk.

The per-format tests ingest a 30-row table (long enough to be split across
chunks), ask about one cell, and check the retrieved and cited chunk holds
that row under the table's header.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest

from rag.ingest.chunking import (
    split_text,
    split_text_with_table_headers,
    table_header_prefix,
)
from rag.ingest.loaders import load_document
from rag.ingest.tables import markdown_table
from rag.serve.api import DocQA

HEADER = ["Lighthouse", "Island", "Height (m)", "First lit"]
NAMES = ["Amber Rock", "Black Head", "Cairn Point", "Dunmore", "Eagle Crag", "Fastnet Spit", "Gannet Ness",
         "Heron Bar", "Inish Beg", "Juniper Tor", "Kelp Reef", "Lantern Hill", "Merrow Cove", "North Shoal",
         "Otter Sound", "Puffin Stack", "Quarry Bay", "Raven Scar", "Skerry Point", "Tern Haven", "Urchin Key",
         "Vole Head", "Whale Gap", "Yarrow Cape", "Zephyr Isle", "Auk Light", "Brine Knoll", "Cormorant Leap",
         "Dulse Strand", "Eider Reach"]
ROWS = [[name, f"{['Gull', 'Seal', 'Crane'][i % 3]} Island", str(12 + i), str(1850 + 3 * i)]
        for i, name in enumerate(NAMES)]
TARGET = ROWS[NAMES.index("Skerry Point")]  # Skerry Point | Gull Island | 30 | 1904
QUESTION = "In which year was the Skerry Point lighthouse first lit?"
HEADER_MD = "| Lighthouse | Island | Height (m) | First lit |"
ROW_MD = "| " + " | ".join(TARGET) + " |"
INTRO = "The coastguard keeps this register of the lighthouses on the northern islands."
OUTRO = "Heights are measured from the base of the tower to the lantern."


def words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------- units


def test_markdown_table_escapes_pipes_and_pads_rows():
    md = markdown_table([["a", "b|c"], ["1"], ["", ""]])
    assert md.splitlines() == ["| a | b\\|c |", "| --- | --- |", "| 1 |  |"]


def test_split_table_repeats_header_within_limits():
    text = INTRO + "\n\n" + markdown_table([HEADER, *ROWS]) + "\n\n" + OUTRO
    pieces = split_text_with_table_headers(text, count_tokens=words, chunk_tokens=60, overlap_tokens=10)
    chunks = [prefix + text[span.start:span.end] for span, prefix in pieces]
    assert len(chunks) > 3
    for chunk in chunks:
        assert words(chunk) <= 60
        if "| --- |" in chunk or any(line.startswith("| ") for line in chunk.splitlines()):
            assert HEADER_MD in chunk, chunk  # every chunk holding rows says what the columns are
    # the spans still cover the whole text, in order
    assert pieces[0][0].start == 0 and pieces[-1][0].end == len(text)


def test_text_without_tables_splits_as_before():
    text = "One sentence here. Another one there.\n\n" * 30
    plain = split_text(text, count_tokens=words, chunk_tokens=40, overlap_tokens=5)
    assert [s for s, _ in split_text_with_table_headers(text, count_tokens=words, chunk_tokens=40,
                                                        overlap_tokens=5)] == plain


def test_header_prefix_only_inside_rows():
    text = "Intro.\n\n" + markdown_table([["k", "v"], ["a", "1"], ["b", "2"]]) + "\n\nAfter."
    assert table_header_prefix(text, 0) == ""
    assert table_header_prefix(text, text.index("| k")) == ""
    assert table_header_prefix(text, text.index("| b")) == "| k | v |\n| --- | --- |\n"
    assert table_header_prefix(text, text.index("After")) == ""


# --------------------------------------------------------------------------- documents


def docx_file(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_paragraph(INTRO)
    table = document.add_table(rows=len(ROWS) + 1, cols=len(HEADER))
    for r, row in enumerate([HEADER, *ROWS]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph(OUTRO)
    document.save(path)
    return path


def html_file(path: Path) -> Path:
    head = "".join(f"<th>{h}</th>" for h in HEADER)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in ROWS)
    path.write_text(
        f"<html><head><title>Lighthouse register</title></head><body><nav>Home | About</nav><article>"
        f"<h1>Lighthouse register</h1><p>{INTRO}</p><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
        f"</table><p>{OUTRO}</p></article><footer>Cookie settings</footer></body></html>", encoding="utf-8")
    return path


def _pdf(streams: list[str], *, inherited: tuple[int, int] | None = None) -> bytes:
    """A PDF whose pages draw the given content streams (Helvetica as /F1, Courier as /F2), each page 612 x 792
    points, or of size `inherited` given once in the page tree (a page without a MediaBox of its own)."""
    n = len(streams)
    font_id = 3 + 2 * n
    tree_box = f" /MediaBox [0 0 {inherited[0]} {inherited[1]}]" if inherited else ""
    page_box = "" if inherited else " /MediaBox [0 0 612 792]"
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>",
               2: ("<< /Type /Pages%s /Kids [%s] /Count %d >>" % (tree_box, " ".join(f"{3 + 2 * i} 0 R" for i in range(n)), n)).encode(),
               font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
               font_id + 1: b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>"}
    for i, stream in enumerate(streams):
        data = stream.encode("latin-1")
        objects[3 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R{page_box} /Resources << /Font << "
                              f"/F1 {font_id} 0 R /F2 {font_id + 1} 0 R >> >> /Contents {4 + 2 * i} 0 R >>").encode()
        objects[4 + 2 * i] = b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for key in sorted(objects):
        offsets[key] = out.tell()
        out.write(b"%d 0 obj\n" % key + objects[key] + b"\nendobj\n")
    xref, size = out.tell(), max(objects) + 1
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for key in range(1, size):
        out.write(b"%010d 00000 n \n" % offsets[key])
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))
    return out.getvalue()


def _text(x: float, y: float, s: str, font: str = "F1") -> str:
    return f"BT /{font} 10 Tf {x} {y} Td ({s}) Tj ET"


def ruled_table_page(rows: list[list[str]], *, top: float = 700, before: str = "", after: str = "") -> str:
    """A page with a ruled table (lines around every cell), text above and below it."""
    col_w, row_h, x = 120, 18, 60
    ops = [_text(60, top + 30, before)] if before else []
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            ops.append(_text(x + c * col_w + 4, top - (r + 1) * row_h + 5, cell))
    bottom, right = top - len(rows) * row_h, x + len(rows[0]) * col_w
    ops += [f"{x} {top - r * row_h} m {right} {top - r * row_h} l S" for r in range(len(rows) + 1)]
    ops += [f"{x + c * col_w} {top} m {x + c * col_w} {bottom} l S" for c in range(len(rows[0]) + 1)]
    if after:
        ops.append(_text(60, bottom - 30, after))
    return "\n".join(ops)


def unruled_table_page(rows: list[list[str]], *, top: float = 700, before: str = "", after: str = "",
                       col_w: float = 120, row_h: float = 14, font: str = "F1") -> str:
    """A page with a table set without rules, as typeset manuals set them: cells placed in columns, nothing drawn."""
    ops = [_text(60, top + 30, before)] if before else []
    for r, row in enumerate(rows):
        ops += [_text(60 + c * col_w, top - r * row_h, cell, font) for c, cell in enumerate(row) if cell]
    if after:
        ops.append(_text(60, top - len(rows) * row_h - 30, after))
    return "\n".join(ops)


def pdf_file(path: Path) -> Path:
    path.write_bytes(_pdf([ruled_table_page([HEADER, *ROWS], before=INTRO, after=OUTRO)]))
    return path


def unruled_pdf_file(path: Path) -> Path:
    path.write_bytes(_pdf([unruled_table_page([HEADER, *ROWS], before=INTRO, after=OUTRO)]))
    return path


MAKERS = {"docx": docx_file, "html": html_file, "pdf": pdf_file, "pdf-unruled": unruled_pdf_file}


@pytest.mark.parametrize("fmt", list(MAKERS))
def test_loader_writes_the_table_as_markdown(tmp_path, fmt):
    doc = load_document(MAKERS[fmt](tmp_path / f"register.{fmt.split('-')[0]}"))
    assert HEADER_MD in doc.text and ROW_MD in doc.text
    assert doc.text.index(INTRO) < doc.text.index(HEADER_MD) < doc.text.index(ROW_MD) < doc.text.index(OUTRO)


def test_pdf_without_rules_keeps_plain_text(tmp_path):
    from tests.test_loaders import make_pdf

    path = tmp_path / "plain.pdf"
    path.write_bytes(make_pdf([["Just a line of text.", "And another."]]))
    assert load_document(path).text == "Just a line of text.\nAnd another."


@pytest.mark.integration
@pytest.mark.parametrize("fmt", list(MAKERS))
def test_question_about_a_cell_retrieves_the_row_with_its_header(real_settings, tmp_path, fmt):
    settings = real_settings.model_copy(update={
        "chunking": real_settings.chunking.model_copy(update={"chunk_tokens": 96, "overlap_tokens": 16}),
        "llm": real_settings.llm.model_copy(update={"provider": "fake", "fake_responses": [
            "The Skerry Point lighthouse was first lit in 1904 [1]."]}),
    })
    qa = DocQA(settings)
    path = MAKERS[fmt](tmp_path / f"register.{fmt.split('-')[0]}")
    assert qa.ingest([path]).count("added") == 1
    assert len(list(qa.store.scan(include_text=False))) > 2, "the table should be split across chunks"

    hits = qa.retrieve(QUESTION, k=3)
    best = next(h for h in hits if ROW_MD in h.text)
    assert HEADER_MD in best.text, best.text
    assert hits.index(best) == 0, [h.text[:80] for h in hits]

    answer = qa.ask(QUESTION)
    assert not answer.abstained, answer.abstain_reason
    cited = answer.citations[0]
    assert ROW_MD in cited.text and HEADER_MD in cited.text


# --------------------------------------------------------------------------- tables set without rules


def _line(y: float, cells: list[tuple[float, str]], *, fixed: bool = False, size: float = 10) -> list:
    """`Word`s of one line: each cell `(x, text)` set word by word, about half the font size a character."""
    from rag.ingest.tables import Word

    out = []
    for x, text in cells:
        for word in text.split():
            width = 0.5 * size * len(word)
            out.append(Word(x, y - 0.2 * size, x + width, y + 0.9 * size, word, fixed))
            x += width + 0.25 * size
    return out


def test_unruled_table_rows_columns_header_and_wrapped_cells():
    from rag.ingest.tables import unruled_tables

    rows = [("%d", "day of the month, 1-31"), ("%H", "hour, 0-24"), ("%s", "seconds since the epoch"),
            ("%S", "second, integer 0-60 on output,")]
    body, y = [], 661
    for code, text in rows:
        body += _line(y, [(175, code), (215, text)])
        y -= 13
    body += _line(y, [(215, "(double) on in\x02")])  # the last cell wraps onto lines of its own, hyphenated
    y -= 13
    body += _line(y, [(215, "put")])
    # the header is centred over each column, so its second cell does not start where the column's cells do
    middle = (215 + max(w.right for w in body)) / 2
    header = _line(674, [(170, "Code"), (middle - 17.5, "Meaning")])
    words = _line(700, [(72, "The valid formats for reading time data are listed below in this table:")])
    words += header + body + _line(y - 30, [(72, "Any character is allowed in the string, but it must match exactly.")])

    [table] = unruled_tables(words)
    assert table.header
    assert table.rows == [["Code", "Meaning"], ["%d", "day of the month, 1-31"], ["%H", "hour, 0-24"],
                          ["%s", "seconds since the epoch"], ["%S", "second, integer 0-60 on output, (double) on in\x02put"]]
    assert table.markdown().splitlines()[:3] == ["| Code | Meaning |", "| --- | --- |", "| %d | day of the month, 1-31 |"]

    # a line above that is not set over the columns (a heading at the margin) is not taken for the header
    heading = _line(674, [(72, "Command"), (118, "recall and vertical motion")])
    [table] = unruled_tables(heading + body)
    assert not table.header and table.rows[0] == ["%d", "day of the month, 1-31"]


def test_unruled_table_finds_a_third_column_run_together_with_the_second():
    """Columns come from the empty x-ranges under all rows, not from the gaps of one line."""
    from rag.ingest.tables import unruled_tables

    data = [("beta", "beta", "shape1, shape2, ncp"), ("binomial", "binom", "size, prob"),
            ("hypergeometric", "hyper", "m, n, k"), ("log-normal", "lnorm", "meanlog, sdlog")]
    words = _line(700, [(120, "Distribution"), (240, "R name"), (290, "additional arguments")])
    for i, (name, short, args) in enumerate(data):
        words += _line(687 - 13 * i, [(120, name), (240, short), (290, args)])
    [table] = unruled_tables(words)
    assert table.rows[0] == ["Distribution", "R name", "additional arguments"]
    assert ["hypergeometric", "hyper", "m, n, k"] in table.rows


def test_a_header_set_again_below_a_caption_starts_a_table_of_its_own():
    """Tables stacked under captions ("Motion", "Process"), each with the same header: each is a table of its
    own, whose header is its first row, and the captions between them stay text, not cells or lost."""
    from rag.ingest.tables import unruled_tables

    groups = {"Motion": [("M-C-a", "Go to the beginning of the form."), ("M-C-e", "Go to the end of the form."),
                         ("M-C-b", "Go to the beginning of the sexp.")],
              "Process": [("C-c C-p", "Start a Maxima process."), ("C-c C-r", "Send the region to the process."),
                          ("C-c C-k", "Kill the Maxima process.")]}
    words, y = [], 700
    for caption, rows in groups.items():
        words += _line(y, [(72, caption)])
        words += _line(y - 12, [(80, "Key"), (240, "Description")])
        for i, (key, text) in enumerate(rows):
            words += _line(y - 24 - 12 * i, [(80, key), (240, text)])
        y -= 24 + 12 * len(rows)
    tables = unruled_tables(words)
    assert [t.rows[0] for t in tables] == [["Key", "Description"]] * 2
    assert [t.rows[1:] for t in tables] == [[list(r) for r in rows] for rows in groups.values()]


def test_prose_lists_and_code_listings_are_not_tables():
    from rag.ingest.tables import unruled_tables

    prose = [w for i in range(8) for w in _line(700 - 12 * i, [(72, "Words set one after another across the whole line of a page")])]
    assert unruled_tables(prose) == []
    two_rows = _line(700, [(72, "C-a"), (150, "Go to the beginning")]) + _line(687, [(72, "C-e"), (150, "Go to the end")])
    assert unruled_tables(two_rows) == [], "two rows are a pair of lines, not yet a table"
    code = [w for i, (cmd, note) in enumerate([('set format y "%t"', '# "5.0"'), ('set format y "%s"', '# "500"'),
                                               ('set format y "%.0P pi"', '# "2 pi"')])
            for w in _line(700 - 12 * i, [(100, cmd), (300, note)], fixed=True)]
    assert unruled_tables(code) == [], "a listing in a typewriter font with aligned comments is code"
    assert len(unruled_tables([replace(w, fixed=False) for w in code])) == 1  # the same lines in a text font: a table
    tagged = [w for i, name in enumerate(["double gammafn (double x)", "double lgammafn (double x)", "double digamma (double x)"])
              for w in _line(700 - 12 * i, [(100, name), (450, "[Function]")])]
    assert unruled_tables(tagged) == [], "definitions tagged alike: one column varies, so nothing is tabulated"


def test_pdf_unruled_table_between_paragraphs(tmp_path):
    rows = [["Format", "Explanation"], ["%d", "day of the month, 1-31"], ["%H", "hour, 0-24"], ["%M", "minute, 0-60"]]
    page = unruled_table_page(rows, before="The valid formats are:", after="Any other character must match.")
    path = tmp_path / "formats.pdf"
    path.write_bytes(_pdf([page]))
    text = load_document(path).text
    assert text == ("The valid formats are:\n| Format | Explanation |\n| --- | --- |\n| %d | day of the month, 1-31 |\n"
                    "| %H | hour, 0-24 |\n| %M | minute, 0-60 |\nAny other character must match."), text


def test_pdf_table_whose_rows_are_one_text_run_each(tmp_path):
    """Texinfo sets a row as one text run, its second cell placed by a kern: pdfium's text rects then span
    the gap between the cells, so only the words' own boxes show the columns."""
    # Helvetica advance widths (1/1000 em): digits 556; "Code" = C 722 + o, d, e 556 each
    rows = [("Code", 2390, "Meaning"), ("101", 1668, "The solver converged"), ("102", 1668, "The step became too small"),
            ("103", 1668, "The iteration limit was reached")]
    ops = [_text(60, 740, "The exit codes of the solver are listed below.")]
    for r, (code, width, meaning) in enumerate(rows):  # the second cell starts at x = 180 in every row
        ops.append(f"BT /F1 10 Tf 60 {700 - 14 * r} Td [({code}) -{round((120 - width / 100) * 100)} ({meaning})] TJ ET")
    ops.append(_text(60, 600, "A code above 101 means the solver stopped early."))
    path = tmp_path / "codes.pdf"
    path.write_bytes(_pdf(["\n".join(ops)]))
    text = load_document(path).text
    assert text == ("The exit codes of the solver are listed below.\n| Code | Meaning |\n| --- | --- |\n"
                    "| 101 | The solver converged |\n| 102 | The step became too small |\n"
                    "| 103 | The iteration limit was reached |\nA code above 101 means the solver stopped early."), text

def test_pdf_code_listing_in_a_typewriter_font_stays_text(tmp_path):
    rows = [['set format y "%t"', '# "5.0"'], ['set format y "%s"', '# "500"'], ['set format y "%P"', '# "2 pi"']]
    path = tmp_path / "listing.pdf"
    path.write_bytes(_pdf([unruled_table_page(rows, font="F2", col_w=180)]))
    text = load_document(path).text
    assert "|" not in text and 'set format y "%s"' in text, text


def test_a_table_whose_rows_spread_apart_stays_one_table():
    """A taller row (a larger font in one cell) breaks the even spacing; the rows below still belong to the table."""
    from rag.ingest.tables import unruled_tables

    rows = [("Control", "Explanation"), ("^", "superscript"), ("_", "subscript"), ("@", "phantom box"),
            ("~", "overprints"), ("&", "inserts space"), ("\\U+", "Unicode point")]
    words, y = [], 700.0
    for i, (key, text) in enumerate(rows):
        words += _line(y, [(100, key), (180, text)])
        y -= 24 if i == 3 else 13  # the row after "@" sits lower than the rhythm of the rows
    [table] = unruled_tables(words)
    assert [r[0] for r in table.rows] == [k for k, _ in rows]
    assert table.markdown().count("| --- |") == 1


def test_pdf_rows_between_rules_keep_cells_set_on_several_lines(tmp_path):
    """A table ruled between its rows only (no grid): a cell set on two lines, with its neighbour centred
    beside it, stays one row, and a row's second line does not join the row below it."""
    rows = [(["key"], ["description of key binding"]),
            (["Ctrl-U"], ["erase line before cursor"]),
            (["Left-Alt-key, optionally", "Windows-key"], ["meta-key for Emacs"]),
            (["Up-arrow"], ["start command history search"]),
            (["/dev/zero"], ["return the NUL character, not the", "same as the number zero"]),
            (["Tab"], ["complete input of the filename"])]
    x, col_w, line_h = 60, 150, 12
    ops = [_text(60, 765, "Reference manual 21/233"), f"{x} 758 m 552 758 l S",  # the running header's rule
           _text(60, 720, "Key bindings of the shell:")]
    y = 700.0
    ops.append(f"{x} {y} m {x + 2 * col_w} {y} l S")
    for cells in rows:
        height = 4 + line_h * max(len(c) for c in cells)
        for c, lines in enumerate(cells):
            first = y - 2 - (height - 4 - line_h * len(lines)) / 2 - line_h + 3  # centred in the row
            ops += [_text(x + c * col_w + 4, first - k * line_h, s) for k, s in enumerate(lines)]
        y -= height
        ops.append(f"{x} {y} m {x + 2 * col_w} {y} l S")
    ops.append(f"{x + col_w} 700 m {x + col_w} {y} l S")  # one rule between the columns: no grid
    ops += [_text(60, y - 30, "Table 1.14: key bindings."), f"{x} 60 m 552 60 l S"]
    path = tmp_path / "keys.pdf"
    path.write_bytes(_pdf(["\n".join(ops)]))
    text = load_document(path).text
    table = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    assert table == ("| key | description of key binding |\n| --- | --- |\n| Ctrl-U | erase line before cursor |\n"
                     "| Left-Alt-key, optionally Windows-key | meta-key for Emacs |\n"
                     "| Up-arrow | start command history search |\n"
                     "| /dev/zero | return the NUL character, not the same as the number zero |\n"
                     "| Tab | complete input of the filename |"), text
    assert text.index("Key bindings of the shell:") < text.index("| key |") < text.index("Table 1.14")


def test_drawn_rules_between_columns_decide_the_columns():
    """A space that lines up in every row of a column is a river; a vertical rule drawn between the columns
    says where the columns really are."""
    from rag.ingest.tables import unruled_tables

    data = [("Home page", "http://bugs/"), ("A package", "http://bugs/pkg"), ("A bug number", "http://bugs/nr")]
    words = []
    for i, (what, url) in enumerate(data):
        words += _line(700 - 13 * i, [(100, what), (200, "sensible-browser"), (290, url)])
    [table] = unruled_tables(words)
    assert len(table.rows[0]) == 3, "without rules the aligned space reads as a column"
    [table] = unruled_tables(words, dividers=[(190.0, 660.0, 715.0)])
    assert table.rows == [[what, f"sensible-browser {url}"] for what, url in data]
    [table] = unruled_tables(words, dividers=[(190.0, 690.0, 715.0)])  # a rule beside the first row only
    assert len(table.rows[0]) == 3


def test_grid_cells_are_read_where_they_are_on_a_page_whose_size_is_inherited():
    """A page that takes its MediaBox from the page tree (A4 here) is laid out at that size: pdfplumber's
    cell boxes, read by pdfium, must be placed on the page as it is, not on a Letter page."""
    import pypdfium2 as pdfium

    from rag.ingest.loaders import pdf as pdf_loader

    data = _pdf([ruled_table_page([HEADER, *ROWS[:4]], top=780)], inherited=(595, 842))
    pdf = pdfium.PdfDocument(data)
    assert pdf[0].get_size() == (595, 842)
    [text] = pdf_loader._with_pdfium_tables(pdf, data, [""], [0])  # no other reading: pdfplumber's stands
    assert HEADER_MD in text and "| " + " | ".join(ROWS[3]) + " |" in text, text


def test_the_reading_that_keeps_the_page_words_and_more_cells_is_kept():
    from rag.ingest.tables import better_table_reading

    plain = "Signals\nSIGHUP terminate the process\nSIGINT terminate the process"
    cut = "Signals\n| SIGHUP | terminat |\n| SIGINT | e the process |"  # a cell bound through a word
    whole = "Signals\n| SIGHUP | terminate the process |\n| SIGINT | terminate the process |"
    assert better_table_reading(plain, cut, whole) == whole
    partial = "Signals\nSIGHUP\n| terminate the process |\nSIGINT\n| terminate the process |"
    assert better_table_reading(plain, partial, whole) == whole, "the same words: more cells filled"
    assert better_table_reading(plain, whole, whole.replace("| ", "|  ")) == whole  # a tie keeps the grid's


def test_a_grid_the_word_positions_do_not_read_is_read_by_its_rules(tmp_path):
    """A header and one row in a ruled grid is too short for a table read from word positions alone (three
    rows at least); the grid's rules still make it one."""
    path = tmp_path / "one-row.pdf"
    path.write_bytes(_pdf([ruled_table_page([HEADER, ROWS[0]], before=INTRO, after=OUTRO)]))
    text = load_document(path).text
    assert HEADER_MD in text and "| " + " | ".join(ROWS[0]) + " |" in text, text


def test_rows_between_a_header_rule_and_a_bottom_rule_stay_rows():
    """Rules over a caption, under it, under the header and at the bottom (as gnuplot's manual draws them):
    the body's lines, each filling the columns, are rows of their own, not one row set on many lines."""
    from rag.ingest.tables import unruled_tables

    body = [("-", "-a", "unary minus"), ("!", "!a", "logical negation"), ("!", "a!", "factorial"),
            ("$", "$3", "call argument")]
    words = _line(700, [(160, "Unary Operators")]) + _line(686, [(100, "Symbol"), (160, "Example"), (220, "Explanation")])
    for i, row in enumerate(body):
        words += _line(672 - 13 * i, [(100, row[0]), (160, row[1]), (220, row[2])])
    rules = [(712.0, 95.0, 320.0), (697.0, 95.0, 320.0), (683.0, 95.0, 320.0), (630.0, 95.0, 320.0)]
    dividers = [(150.0, 630.0, 683.0), (210.0, 630.0, 683.0)]
    [table] = unruled_tables(words, rules, dividers)
    assert table.rows[-4:] == [list(row) for row in body]


def test_two_columns_of_running_text_are_not_a_table():
    """Two columns of prose side by side, ragged-right: each line fills its column and holds many words, in
    both columns. A table always has a column of short cells."""
    from rag.ingest.tables import unruled_tables

    left = ["the harbour record number was kept in the", "ledger for the year and the harbour record",
            "number was kept in the ledger for the year", "so the harbour board could read it later on",
            "and the ledger was kept in the harbour office"]
    right = ["the crane record number was kept in a book", "for the year and the crane record number",
             "was kept in the ledger for the next year", "so the crane operators could read it again",
             "and the book was kept in the crane office"]
    words = []
    for i, (a, b) in enumerate(zip(left, right)):
        words += _line(700 - 13 * i, [(72, a), (320, b)])
    assert unruled_tables(words) == []
    keyed = []
    for i, b in enumerate(right):  # the same text beside short keys: a table
        keyed += _line(700 - 13 * i, [(72, f"K{i}"), (320, b)])
    assert len(unruled_tables(keyed)) == 1


def test_an_html_table_in_a_box_the_extractor_drops_is_put_back_in_place(tmp_path):
    """DocBook and Publican set each table in `div.table > div.table-contents`; trafilatura dropped that box,
    and the table with it (5 of the Debian Handbook's 6 data tables)."""
    page = tmp_path / "ldap.html"
    page.write_text(
        '<html><head><title>LDAP Directory</title></head><body><div class="section"><div class="titlepage"><div><div>'
        '<h2 class="title">11.7. LDAP Directory</h2></div></div></div>'
        '<div class="para">The migration script asks a few questions about the LDAP database into which the data is '
        "to be migrated. Table 11.1 summarizes the answers given in the Falcot use-case, which the administrators "
        'chose after some thought.</div><div class="table"><a id="tab-migrate-all"></a><p class="title"><strong>'
        'Table 11.1. Answers to questions asked by the script</strong></p><div class="table-contents">'
        '<table summary="Answers"><thead><tr><th>Question</th><th>Answer</th></tr></thead><tbody>'
        "<tr><td>X.500 naming context</td><td>dc=falcot,dc=com</td></tr><tr><td>LDAP server hostname</td>"
        "<td>localhost</td></tr><tr><td>Manager DN</td><td>cn=admin,dc=falcot,dc=com</td></tr></tbody></table></div>"
        '</div><div class="para">You might notice that we extend the PERL5LIB variable. This is due to a bug report '
        "that the maintainers have not yet closed, so the variable must be set by hand for now.</div></div></body></html>",
        encoding="utf-8")
    text = load_document(page).text
    table = "| Question | Answer |\n| --- | --- |\n| X.500 naming context | dc=falcot,dc=com |"
    assert table in text
    assert text.index("chose after some thought.") < text.index(table) < text.index("You might notice")

    # two such tables one after the other: the first is placed before the second, the second before the text
    second = ('<div class="table"><p class="title"><strong>Table 11.2. Ports</strong></p><div class="table-contents">'
              "<table><thead><tr><th>Service</th><th>Port</th></tr></thead><tbody><tr><td>ldap</td><td>389</td></tr>"
              "<tr><td>ldaps</td><td>636</td></tr></tbody></table></div></div>")
    page.write_text(page.read_text(encoding="utf-8").replace('<div class="para">You might', second + '<div class="para">You might'),
                    encoding="utf-8")
    text = load_document(page).text
    ports = "| Service | Port |\n| --- | --- |\n| ldap | 389 |"
    assert text.index(table) < text.index(ports) < text.index("You might notice")


def test_a_ruled_table_without_a_bottom_rule_keeps_its_last_row():
    """DocBook's print style rules a table under its header and between its rows but draws no rule under the last
    row: the page's footer rule further down, longer than the table's, bounds no row with the rule above."""
    from rag.ingest.tables import unruled_tables

    words = _line(700, [(100, "Directory"), (210, "Description")])
    words += _line(684, [(100, "home"), (210, "User home directories (optional)")])
    words += _line(668, [(100, "lib<qual>"), (210, "Alternate format essential shared libraries")])
    words += _line(656, [(210, "(optional)")])
    words += _line(640, [(100, "root"), (210, "Home directory for the root user (optional)")])
    words += _line(615, [(100, "Each"), (130, "directory"), (180, "listed"), (215, "above"), (250, "is"),
                         (265, "specified"), (320, "below.")])
    rules = [(692.0, 95.0, 420.0), (676.0, 95.0, 420.0), (650.0, 95.0, 420.0), (560.0, 60.0, 420.0)]
    dividers = [(205.0, 636.0, 708.0)]
    [table] = unruled_tables(words, rules, dividers)
    assert table.rows == [["Directory", "Description"], ["home", "User home directories (optional)"],
                          ["lib<qual>", "Alternate format essential shared libraries (optional)"],
                          ["root", "Home directory for the root user (optional)"]]

