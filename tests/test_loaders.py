"""Tests for rag.ingest.loaders: every format, the source-URL rule, and bad input."""

from __future__ import annotations

import io
import pathlib
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.core.errors import DocumentError, EmptyDocumentError, UnsupportedFileError
from rag.ingest.loaders import (
    SUPPORTED_SUFFIXES,
    LoadedDocument,
    load_document,
    load_text,
)

SEED = Path(__file__).resolve().parents[1] / "corpus" / "000_5b84014dd9f50f41.txt"
SEED_URL = "https://english.shanghai.gov.cn/en-Latest-WhatsNew/20241120/60e7fc3d653148baa8b08b505d6dfb73.html"


# --------------------------------------------------------------------------- helpers


def _pdf_string(text: str) -> str:
    """Escape text for a PDF literal string."""
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF: one Helvetica text line per entry, one page per inner list."""
    n = len(pages)
    font_id = 3 + 2 * n
    info_id = font_id + 1
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: ("<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join(f"{3 + 2 * i} 0 R" for i in range(n)), n)).encode(),
        font_id: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for i, lines in enumerate(pages):
        page_id, content_id = 3 + 2 * i, 4 + 2 * i
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        ops += [f"({_pdf_string(line)}) Tj T*" for line in lines]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects[page_id] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {content_id} 0 R >>"
        ).encode()
        objects[content_id] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    trailer_info = ""
    if title is not None:
        objects[info_id] = f"<< /Title ({_pdf_string(title)}) >>".encode("latin-1")
        trailer_info = f" /Info {info_id} 0 R"
    size = max(objects) + 1
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for obj_id in sorted(objects):
        offsets[obj_id] = out.tell()
        out.write(b"%d 0 obj\n" % obj_id + objects[obj_id] + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % size)
    for obj_id in range(1, size):
        if obj_id in offsets:
            out.write(b"%010d 00000 n \n" % offsets[obj_id])
        else:
            out.write(b"0000000000 65535 f \n")
    out.write(f"trailer\n<< /Size {size} /Root 1 0 R{trailer_info} >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    """Write bytes or UTF-8 text to tmp_path/name and return the path."""
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


# --------------------------------------------------------------------------- formats


def test_supported_suffixes():
    assert SUPPORTED_SUFFIXES == frozenset({".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx",
                                            ".pptx", ".xlsx", ".csv", ".epub", ".odt", ".eml",  # tests/test_formats.py
                                            ".png", ".jpg", ".jpeg"})  # images: read by OCR (rag[ocr])


def test_txt_title_is_first_line_and_no_pages(tmp_path):
    doc = load_document(write(tmp_path, "notes.txt", "\n\n  My Notes  \r\nBody line one.\r\nBody line two.\r\n"))
    assert doc.title == "My Notes"
    assert doc.text == "  My Notes\nBody line one.\nBody line two."
    assert doc.url is None and doc.pages == () and doc.page_at(3) is None


def test_txt_long_first_line_falls_back_to_stem(tmp_path):
    doc = load_document(write(tmp_path, "long-one.txt", "x" * 300 + "\nmore"))
    assert doc.title == "long-one"


def test_markdown_title_from_first_h1_outside_code(tmp_path):
    md = "Intro text\n\n```bash\n# not a title\n```\n\n## Sub\n\n# Real Title\n\nSome *markdown* [link](http://x.y)."
    doc = load_document(write(tmp_path, "readme.md", md))
    assert doc.title == "Real Title"
    assert "Some *markdown* [link](http://x.y)." in doc.text


def test_markdown_extension_and_front_matter(tmp_path):
    doc = load_document(write(tmp_path, "post.markdown", "---\ntitle: Front Title\n---\n\n# Heading\n\nText."))
    assert doc.title == "Front Title"


def test_pdf_pages_and_spans(tmp_path):
    pages = [["Hello page one.", "Second line of page one."], ["Page two says (hi)."]]
    path = write(tmp_path, "two.pdf", make_pdf(pages, title="A PDF Title"))
    doc = load_document(path)
    assert doc.title == "A PDF Title"
    assert [number for number, _, _ in doc.pages] == [1, 2]
    for (number, start, end), lines in zip(doc.pages, pages):
        page_text = doc.text[start:end]
        assert page_text == "\n".join(lines), (number, page_text)
    first_end, second_start = doc.pages[0][2], doc.pages[1][1]
    assert doc.text[first_end:second_start] == "\n\n"
    assert doc.page_at(0) == 1
    assert doc.page_at(first_end) == 1  # the separator belongs to the page before
    assert doc.page_at(second_start) == 2
    assert doc.page_at(len(doc.text) - 1) == 2
    assert doc.page_at(-1) is None


def test_pdf_without_title_uses_stem(tmp_path):
    doc = load_document(write(tmp_path, "report-2024.pdf", make_pdf([["Only page."]])))
    assert doc.title == "report-2024"
    assert doc.text == "Only page."


def test_scanned_pdf_is_empty(tmp_path):
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(EmptyDocumentError, match="OCR"):
        load_document(write(tmp_path, "scan.pdf", buf.getvalue()))


def _encrypted_pdf(user_password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf([["Secret text here."]]))).pages:
        writer.add_page(page)
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_encrypted_pdf_with_password_fails_clearly(tmp_path):
    with pytest.raises(DocumentError, match="encrypted PDF") as info:
        load_document(write(tmp_path, "locked.pdf", _encrypted_pdf("secret")))
    assert not isinstance(info.value, EmptyDocumentError)


def test_encrypted_pdf_with_empty_password_opens(tmp_path):
    doc = load_document(write(tmp_path, "owner-only.pdf", _encrypted_pdf("")))
    assert "Secret text here." in doc.text


def test_docx_paragraphs_headings_tables(tmp_path):
    import docx

    document = docx.Document()
    document.core_properties.title = ""
    document.add_paragraph("Preamble before any heading.")
    document.add_heading("Quarterly Report", level=1)
    document.add_paragraph("Revenue grew strongly.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Region", "Sales"
    table.cell(1, 0).text, table.cell(1, 1).text = "Europe", "42"
    document.add_paragraph("Closing words.")
    path = tmp_path / "report.docx"
    document.save(path)

    doc = load_document(path)
    assert doc.title == "Quarterly Report"
    assert doc.pages == () and doc.url is None
    order = ["Preamble before", "Quarterly Report", "Revenue grew", "Region | Sales", "Europe | 42", "Closing words."]
    positions = [doc.text.index(part) for part in order]
    assert positions == sorted(positions)


def test_docx_core_title_wins(tmp_path):
    import docx

    document = docx.Document()
    document.core_properties.title = "Core Title"
    document.add_heading("Heading Title", level=1)
    document.add_paragraph("Body.")
    path = tmp_path / "t.docx"
    document.save(path)
    assert load_document(path).title == "Core Title"


def test_html_main_text_without_junk(tmp_path):
    html = """<!doctype html><html><head><title>Main Title</title>
    <meta property="og:title" content="OG Title">
    <link rel="canonical" href="https://example.com/articles/42">
    <style>.junk-style { color: red }</style></head>
    <body><header><nav><ul><li><a href="/">Home</a></li><li><a href="/about">About us menu</a></li></ul></nav></header>
    <div class="cookie-banner">We use cookies. Accept all cookies</div>
    <main><article><h1>Gene therapy in Shanghai</h1>
    <p>The first main paragraph talks about gene therapy companies that joined the sector in Pudong this year.</p>
    <p>A second paragraph explains the regulatory changes and what they mean for foreign investors.</p>
    <script>var junkScriptVariable = 1;</script></article></main>
    <aside>Related sidebar junk links</aside>
    <footer>Copyright 2024 Footer junk. All rights reserved.</footer></body></html>"""
    doc = load_document(write(tmp_path, "page.html", html))
    assert doc.title == "Main Title"
    assert doc.url == "https://example.com/articles/42"
    assert "first main paragraph" in doc.text and "second paragraph" in doc.text
    for junk in ("About us menu", "Footer junk", "junkScriptVariable", "junk-style", "sidebar junk", "Accept all cookies"):
        assert junk not in doc.text
    assert "<" not in doc.text


def test_html_og_metadata_fallback(tmp_path):
    html = """<html><head><meta property="og:title" content="Only OG"><meta property="og:url" content="https://ex.org/p">
    </head><body><p>Some reasonably long paragraph of body text that should be extracted as content.</p></body></html>"""
    doc = load_document(write(tmp_path, "og.htm", html))
    assert (doc.title, doc.url) == ("Only OG", "https://ex.org/p")


def test_html_script_injection_not_kept(tmp_path):
    html = "<html><body><p>Hello reader.</p><script>alert(1)</script><img src=x onerror=alert(1)><p>Bye.</p></body></html>"
    doc = load_document(write(tmp_path, "xss.html", html))
    assert "<script" not in doc.text.lower()
    assert "onerror" not in doc.text and "alert(1)" not in doc.text
    assert "Hello reader." in doc.text


def test_html_fallback_when_trafilatura_finds_nothing(tmp_path, monkeypatch):
    import trafilatura

    monkeypatch.setattr(trafilatura, "extract", lambda *a, **k: None)
    html = """<html><head><title>T</title><script>junkScript()</script></head><body>
    <nav>Menu junk</nav><div id="cookie-consent">Cookie junk</div><p>Real content here.</p>
    <form><input name=q>Search form junk</form><footer>Footer junk</footer></body></html>"""
    doc = load_document(write(tmp_path, "fallback.html", html))
    assert "Real content here." in doc.text
    for junk in ("Menu junk", "Cookie junk", "junkScript", "Search form junk", "Footer junk"):
        assert junk not in doc.text


def test_html_declared_charset(tmp_path):
    html = '<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head><body><p>Un caf\xe9 na\xefve, tr\xe8s bon.</p></body></html>'
    doc = load_document(write(tmp_path, "cp.html", html.encode("cp1252")))
    assert doc.title == "Café"
    assert "Un café naïve, très bon." in doc.text


# --------------------------------------------------------------------------- source URL rule


@pytest.mark.skipif(not SEED.exists(), reason="seed corpus not present")
def test_seed_article():
    doc = load_document(SEED)
    assert doc.url == SEED_URL
    assert "Be the first to share" not in doc.text
    assert "Coupons" not in doc.text
    assert SEED_URL not in doc.text
    assert "Merck Testing" in doc.text
    assert doc.title.startswith("6 foreign-invested biotech companies")
    assert doc.text.endswith("testing, and manufacturing.")


def test_trailing_url_and_leftovers_dropped():
    body = "Title\n\nBody paragraph one, long enough to outweigh the page leftovers below it."
    text = body + "\n\n,https://ex.com/a.html\n\n0 comment\n    No Comments Yet.\nProfile\nCart\n"
    doc = load_text(text)
    assert doc.url == "https://ex.com/a.html"
    assert doc.text == body


def test_short_note_is_not_gutted():
    text = "Hi\nhttps://ex.com/x\nA short line that is longer than the greeting."
    doc = load_text(text)
    assert doc.url is None and doc.text == text


@pytest.mark.parametrize("line", ["Source: https://ex.com/x", "URL: <https://ex.com/x>", "https://ex.com/x."])
def test_trailing_url_variants(line):
    assert load_text(f"Body text.\n{line}\nShare").url == "https://ex.com/x"


def test_leading_source_line_keeps_text():
    text = "Title\nSource: https://ex.com/story\n\nThe story body."
    doc = load_text(text)
    assert doc.url == "https://ex.com/story"
    assert doc.text == text


def test_no_url_nothing_dropped():
    text = "Title\n\nBody.\n\nProfile\nCart"
    doc = load_text(text)
    assert doc.url is None and doc.text == text


def test_url_followed_by_long_line_is_content():
    long_line = "This closing paragraph is long enough to be real content rather than navigation leftovers from a scraper."
    text = f"Body.\nhttps://ex.com/inline\n{long_line}"
    doc = load_text(text)
    assert doc.url is None and doc.text == text


def test_reference_list_is_not_a_source():
    text = "Body.\n\nReferences:\nhttps://a.example/1\nhttps://b.example/2"
    doc = load_text(text)
    assert doc.url is None and doc.text == text


def test_url_far_from_end_is_ignored():
    text = "Body.\nhttps://ex.com/early\n" + "\n".join(f"short {i}" for i in range(30))
    assert load_text(text).url is None


def test_load_text_explicit_metadata_wins():
    doc = load_text("first line\nbody\nhttps://ex.com/detected\nCart", name="row-7.txt", title="Given", url="https://given")
    assert (doc.title, doc.url) == ("Given", "https://given")
    assert "Cart" not in doc.text
    assert load_text("", name="row-8.txt").title == "row-8"


# --------------------------------------------------------------------------- normalisation and encodings


def test_normalisation(tmp_path):
    raw = "a  \r\nb\t\r\n\r\n\r\n\r\n\r\nc\x00d\x07e\rf\x0cg"
    doc = load_text(raw)
    assert doc.text == "a\nb\n\n\nc" + "de\nf\ng"


def test_latin1_and_cp1252(tmp_path):
    assert load_document(write(tmp_path, "l1.txt", "café naïve".encode("latin-1"))).text == "café naïve"
    text = "“Smart quotes” — café naïve € résumé"
    assert load_document(write(tmp_path, "cp.txt", text.encode("cp1252"))).text == text


def test_utf8_bom_and_utf16_bom(tmp_path):
    text = "Grüße aus 上海\nzweite Zeile"
    assert load_document(write(tmp_path, "u8.txt", text.encode("utf-8-sig"))).text == text
    assert load_document(write(tmp_path, "u16le.txt", text.encode("utf-16"))).text == text
    assert load_document(write(tmp_path, "u16be.md", b"\xfe\xff" + text.encode("utf-16-be"))).text == text


def test_other_legacy_encoding(tmp_path):
    text = "Привет, это русский текст для проверки кодировки. Съешь же ещё этих мягких французских булок."
    assert load_document(write(tmp_path, "ru.txt", text.encode("cp1251"))).text == text


# --------------------------------------------------------------------------- bad input


def test_empty_file(tmp_path):
    with pytest.raises(EmptyDocumentError, match="empty file"):
        load_document(write(tmp_path, "empty.txt", b""))


def test_blank_file(tmp_path):
    with pytest.raises(EmptyDocumentError):
        load_document(write(tmp_path, "blank.md", "  \n\n\t\n"))


@pytest.mark.parametrize("data", [bytes(range(256)) * 4, b"\x01\x02\x03abc\x04\x05\x06\x0e\x0f" * 50])
def test_binary_txt(tmp_path, data):
    with pytest.raises(UnsupportedFileError, match="binary file, not text"):
        load_document(write(tmp_path, "bin.txt", data))


def test_random_bytes_pdf(tmp_path):
    import random

    data = random.Random(0).randbytes(4096)
    with pytest.raises(DocumentError, match="corrupt PDF"):
        load_document(write(tmp_path, "random.pdf", data))


def test_truncated_pdf(tmp_path):
    data = make_pdf([["Hello page one."], ["Page two."]])
    with pytest.raises(DocumentError, match="corrupt PDF") as info:
        load_document(write(tmp_path, "cut.pdf", data[: len(data) // 2]))
    assert not isinstance(info.value, EmptyDocumentError)


def test_not_a_zip_docx(tmp_path):
    with pytest.raises(DocumentError, match="not a valid .docx file"):
        load_document(write(tmp_path, "fake.docx", b"this is plain text, not a zip archive"))


def test_zip_but_not_docx(tmp_path):
    import zipfile

    path = tmp_path / "other.docx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(DocumentError, match="not a valid .docx file"):
        load_document(path)


@pytest.mark.parametrize("name", ["data.xyz", "Makefile", "old.doc"])
def test_unknown_suffix(tmp_path, name):
    with pytest.raises(UnsupportedFileError, match="unsupported file type") as info:
        load_document(write(tmp_path, name, "text"))
    assert ".pdf" in info.value.reason


def test_missing_file(tmp_path):
    with pytest.raises(DocumentError, match="not found"):
        load_document(tmp_path / "nope.txt")


def test_too_large_checked_before_reading(tmp_path, monkeypatch):
    path = write(tmp_path, "big.txt", "x" * 5000)

    def refuse(*args, **kwargs):
        raise AssertionError("file was read")

    monkeypatch.setattr(pathlib.Path, "open", refuse)
    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    monkeypatch.setattr(pathlib.Path, "read_text", refuse)
    with pytest.raises(DocumentError, match="limit") as info:
        load_document(path, max_bytes=1000)
    assert "RAG_CHUNKING__MAX_FILE_MB" in info.value.reason
    assert "1000 bytes" in info.value.reason


def test_too_large_message_in_mb(tmp_path, monkeypatch):
    path = write(tmp_path, "big.txt", "x")

    class FakeStat:
        st_size = 80 * 2**20
        st_mode = stat.S_IFREG | 0o644

    monkeypatch.setattr(pathlib.Path, "stat", lambda self, **kwargs: FakeStat())
    with pytest.raises(DocumentError) as info:
        load_document(path)
    assert info.value.reason == "file is 80.0 MB, over the 64 MB limit (set RAG_CHUNKING__MAX_FILE_MB)"


def test_loaded_document_is_frozen():
    doc = LoadedDocument(text="t", title="t", url=None)
    with pytest.raises(AttributeError):
        doc.text = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------- layout and sections


def test_pdf_layout_noise_and_outline_sections(tmp_path):
    from tests.test_layout import typeset_pdf

    body = [["Tide tables", "High water is at noon.", "Low water follows six hours later."],
            ["Ferry times", "The first ferry leaves at seven.", "The last ferry leaves at ten."],
            ["Fares", "Adults pay four pounds.", "Children travel free."],
            ["Contacts", "Call the harbour office.", "It opens at nine."]]
    pages = [[(72, 750, f"Harbour Guide {n + 1}")] + [(72, 700 - 14 * i, t) for i, t in enumerate(lines)]
             + [(300, 40, f"{n + 1}/4")] for n, lines in enumerate(body)]
    outline = [(0, "Tide tables", 0), (0, "Ferries", 1), (1, "Ferry times", 1), (1, "Fares", 2), (0, "Contacts", 3)]
    doc = load_document(write(tmp_path, "guide.pdf", typeset_pdf(pages, outline)))
    assert "Harbour Guide" not in doc.text and "/4" not in doc.text
    assert doc.text.startswith("Tide tables\nHigh water is at noon.")
    assert doc.section_at(doc.text.index("Adults pay")) == "Ferries › Fares"
    assert doc.section_at(doc.text.index("first ferry")) == "Ferries › Ferry times"
    assert doc.page_at(doc.text.index("Adults pay")) == 3


def test_pdf_without_outline_has_no_sections(tmp_path):
    doc = load_document(write(tmp_path, "plain.pdf", make_pdf([["Only page."]])))
    assert doc.sections == () and doc.section_at(0) == ""


def test_markdown_html_docx_headings_give_sections(tmp_path):
    md = load_document(write(tmp_path, "guide.md", "# Guide\n\nIntro.\n\n## Install\n\nRun it.\n"))
    assert md.section_at(md.text.index("Run it")) == "Guide › Install"
    assert load_document(write(tmp_path, "notes.txt", "# Not a heading\n\nText.")).sections == ()
    page = ("<html><head><title>Harbour guide</title></head><body><article><h1>Harbour guide</h1>"
            "<p>Welcome to the harbour, where ferries sail every day of the week.</p><h2>Ferries</h2>"
            "<p>The ferry leaves at seven in the morning and returns at noon.</p><h3>Fares</h3>"
            "<p>Adults pay four pounds and children travel free on every crossing.</p></article></body></html>")
    html = load_document(write(tmp_path, "guide.html", page))
    assert html.section_at(html.text.index("Adults pay")) == "Ferries › Fares"  # the h1 repeats the title
    import docx

    document = docx.Document()
    document.add_heading("Ferries", level=1)
    document.add_paragraph("The ferry leaves at seven.")
    document.add_heading("Fares", level=2)
    document.add_paragraph("Adults pay four pounds.")
    document.save(tmp_path / "guide.docx")
    word = load_document(tmp_path / "guide.docx")
    assert word.section_at(word.text.index("Adults pay")) == "Ferries › Fares"
    assert word.section_at(word.text.index("The ferry")) == "Ferries"



def test_html_headings_nested_in_wrappers_still_give_sections(tmp_path):
    """DocBook and Publican pages set each heading inside `div.titlepage > div > div`, which trafilatura drops:
    the headings go back before the text that follows them. A sidebar's heading is not made a section, and a
    page that starts as XML does (an `<?xml ?>` line first) is read without a parser warning."""
    import warnings

    para = "For any work with the package tool, the list of available packages needs to be updated first. " * 2

    def section(number: str, title: str, text: str, inner: str = "") -> str:
        return (f'<div class="section"><div class="titlepage"><div><div><h3 class="title"><a id="s{number}"></a>'
                f"{number}.\u00a0{title}</h3></div></div></div><div class=\"para\">\n\t\t\t{text}</div>{inner}</div>")

    page = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
            "<head><title>6.2. Package commands</title></head><body>"
            '<div class="sphinxsidebar"><h3>Contents</h3><ul><li>Initialization</li></ul></div>'
            '<div class="section"><div class="titlepage"><div><div><h2 class="title">6.2. Package commands</h2>'
            f'</div></div></div><div class="para">{para}</div>'
            + section("6.2.1", "Initialization", "Run the update command before installing anything at all. " * 3)
            + section("6.2.2", "Installing and Removing", "Install a package with the install command and its name. " * 3)
            + "</div></body></html>")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        doc = load_document(write(tmp_path, "apt.html", page))
    assert doc.section_at(doc.text.index("Install a package")) == "6.2.2. Installing and Removing"
    assert doc.section_at(doc.text.index("Run the update")) == "6.2.1. Initialization"
    assert doc.section_at(doc.text.index("For any work")) == ""  # under the page's title only, not "Contents"
    xhtml = '<?xml version="1.0" encoding="UTF-8"?>\n<link rel="next" href="b.html" /><p>The text of the page.</p>'
    with warnings.catch_warnings():  # bs4 warns that this "XML" is read as HTML: it is, as a browser reads it
        warnings.simplefilter("error")
        assert load_document(write(tmp_path, "b.html", xhtml)).text == "The text of the page."


def test_html_text_reads_as_a_browser_shows_it(tmp_path):
    """A paragraph whose source lines are wrapped and indented (DocBook, Sphinx) reads as one line, while
    preformatted text keeps its lines; a heading whose first words come from inline elements
    (`<code>smallint</code>, integer`) still goes back before them, and markup nested in inline code keeps its
    place; a note box's "Note" is no section, so the
    text after the box stays under its section, and a section that opens with a note box keeps its heading."""

    def section(number: str, title: str, body: str) -> str:
        return (f'<div class="sect2"><div class="titlepage"><div><div><h3 class="title">{number}.\u00a0{title}</h3>'
                f"</div></div></div>{body}</div>")

    note = '<div class="note"><h3 class="title">Note</h3><p>\n     Values outside the range\n     are refused.\n    </p></div>'
    page = ("<html><head><title>8.1. Numeric Types</title></head><body><div class=\"sect1\"><div class=\"titlepage\">"
            "<div><div><h2 class=\"title\">8.1. Numeric Types</h2></div></div></div>"
            "<p>\n     Numeric types consist of integers and\n     decimals of several sizes.\n    </p>"
            + section("8.1.1", "Integer Types", "<p>\n     The types <code>smallint</code>, <code>integer</code>, and\n"
                      "     <code>bigint</code> store whole numbers of various ranges.\n    </p>" + note
                      + "<p>\n     The type integer is the common choice for most columns.\n    </p>"
                        '<p>The notation <code class="type">float(<em class="replaceable"><code>p</code></em>)</code>'
                        " gives the precision in binary digits.</p>"
                        "<pre>CREATE TABLE t (\n    id integer\n);</pre>")
            + section("8.1.2", "Serial Types", note.replace("Values", "Serial values")
                      + "<p>\n     The serial types are notational conveniences for identifiers.\n    </p>")
            + "</div></body></html>")
    doc = load_document(write(tmp_path, "numeric.html", page))
    lines = doc.text.split("\n")
    assert "Numeric types consist of integers and decimals of several sizes." in lines
    assert "The types smallint, integer, and bigint store whole numbers of various ranges." in lines
    assert "    id integer" in lines  # preformatted: its line and indentation kept
    assert "The notation float(p) gives the precision in binary digits." in lines  # markup nested in code
    assert doc.section_at(doc.text.index("The types smallint")) == "8.1.1. Integer Types"
    assert doc.section_at(doc.text.index("The type integer is")) == "8.1.1. Integer Types"  # after the note box
    assert doc.section_at(doc.text.index("The serial types")) == "8.1.2. Serial Types"
    assert all("Note" not in label for _, label in doc.sections)


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_load_text_never_keeps_cr_or_nul(text):
    doc = load_text(text)
    assert "\r" not in doc.text and "\x00" not in doc.text
    assert load_text(doc.text).text == doc.text or doc.url is not None
