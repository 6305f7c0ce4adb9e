"""One batch of hostile files: each is ingested or skipped with a reason, the batch finishes,
memory stays bounded, and what was stored before is untouched."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

from tests.conftest import SEED_DIR
from tests.robustness.support import open_qa, run_measured, run_rag
from tests.test_loaders import _encrypted_pdf, make_pdf

RSS_LIMIT_MB = 1500  # the whole CLI process, models and Chroma included (fake embeddings)


def _zip_bomb_docx(path, unzipped_mb: int = 1024) -> None:
    """A .docx whose document.xml unzips to `unzipped_mb` MB of one repeated byte (about 1 MB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        with zf.open("word/document.xml", "w", force_zip64=True) as fh:
            block = b" " * 2**20
            for _ in range(unzipped_mb):
                fh.write(block)


def hostile_folder(root) -> dict[str, str]:
    """Write the hostile files; returns {file name: what must happen ('added' or 'skipped')}."""
    root.mkdir(parents=True, exist_ok=True)
    expect = {}

    def put(name, data, outcome):
        (root / name).write_bytes(data if isinstance(data, bytes) else data.encode())
        expect[name] = outcome

    put("empty.txt", b"", "skipped")
    put("binary.txt", bytes(range(256)) * 64, "skipped")
    good_pdf = make_pdf([["A perfectly ordinary page about hostile inputs."]] * 3)
    put("truncated.pdf", good_pdf[: len(good_pdf) // 2], "any")
    put("corrupt.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> garbage \xff\xfe", "skipped")
    put("encrypted.pdf", _encrypted_pdf("secret"), "skipped")
    _zip_bomb_docx(root / "bomb.docx", unzipped_mb=400)
    expect["bomb.docx"] = "skipped"
    with open(root / "huge.txt", "w") as fh:  # 100 MB of real text, over the 20 MB default limit
        line = "the quick brown fox jumps over the lazy dog again and again\n"
        fh.write(line * (100 * 2**20 // len(line) + 1))
    expect["huge.txt"] = "skipped"
    put("one_paragraph.txt", "\n".join(f"line {i} of one long paragraph with no blank line" for i in range(10000)), "added")
    put("invalid_utf8.txt", b"Valid start, then invalid bytes \xff\xfe\xfa and more text after them.\n" * 20, "any")
    put("utf16_no_bom.txt", "Text in UTF-16 without a byte order mark.\n".encode("utf-16-le") * 20, "any")
    os.symlink("loop_b.txt", root / "loop_a.txt")
    os.symlink("loop_a.txt", root / "loop_b.txt")
    expect["loop_a.txt"] = expect["loop_b.txt"] = "skipped"
    (root / "cycle").mkdir()
    os.symlink("..", root / "cycle" / "up")  # a folder loop: not followed
    os.mkfifo(root / "fifo.txt")  # reading would block forever
    expect["fifo.txt"] = "skipped"
    put("new\nline.txt", "A file name with a newline in it.", "added")
    put("ünïcødé 文档.txt", "Unicode file name, unicode text: 文档 ünïcødé.", "added")
    put("dots..name.txt", "Two dots inside a file name.", "added")
    put("control\x1b[31mred.txt", "An escape sequence in the file name.", "added")
    return expect


def test_hostile_batch(tmp_path):
    home = tmp_path / "home"
    assert run_rag(home, "ingest", str(SEED_DIR)).returncode == 0
    qa = open_qa(home)
    before = {s.source: qa.store.chunk_ids(s.source) for s in qa.sources()}
    del qa
    folder = tmp_path / "hostile"
    expect = hostile_folder(folder)
    # also reach the folder through `..`: the same files, not a second copy of them
    code, rss_mb, out, err = run_measured(home, "ingest", "--json", str(folder), str(folder / "cycle" / ".."),
                                          out_dir=tmp_path / "run")
    assert code == 0, err
    report = json.loads(out)
    results = {}
    for f in report["files"]:
        results.setdefault(os.path.basename(f["path"]), []).append(f)
    missing = set(expect) - set(results)
    assert not missing, f"no result for {missing}"
    for name, outcome in expect.items():
        first = results[name][0]
        assert first["status"] in ("added", "skipped"), (name, first)
        if first["status"] == "skipped":
            assert first["reason"], name
        if outcome != "any":
            assert first["status"] == outcome, (name, first)
    reasons = {name: rs[0]["reason"] for name, rs in results.items()}
    assert "zip bomb" in reasons["bomb.docx"] and "limit" in reasons["huge.txt"]
    assert "symbolic link" in reasons["loop_a.txt"] and reasons["fifo.txt"] == "not a regular file"
    assert rss_mb < RSS_LIMIT_MB, f"peak RSS {rss_mb:.0f} MB"
    print(f"\nhostile batch: peak RSS {rss_mb:.0f} MB; " + "; ".join(
        f"{n!r}: {rs[0]['status']}{' (' + rs[0]['reason'] + ')' if rs[0]['reason'] else ''}" for n, rs in sorted(results.items())))

    qa = open_qa(home)
    after = {s.source: qa.store.chunk_ids(s.source) for s in qa.sources()}
    assert {s: after[s] for s in before} == before  # earlier documents untouched
    added = [s for s in after if s not in before]
    assert len(added) == sum(1 for rs in results.values() if rs[0]["status"] == "added")  # `..` made no duplicates
    assert qa.check().ok
    assert qa.retrieve("newline in it", k=3, mode="bm25")[0].source.endswith("new\nline.txt")


def test_unreadable_file_is_skipped_with_a_reason(fake_settings, tmp_path, monkeypatch):
    """Tests run as root, so a permission error is simulated: reading one file raises PermissionError."""
    from pathlib import Path

    from rag.serve.api import DocQA

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ok.txt").write_text("A readable note about badgers.")
    locked = folder / "locked.txt"
    locked.write_text("Secret you cannot read.")
    real_read_bytes = Path.read_bytes

    def read_bytes(self):
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    qa = DocQA(fake_settings)
    report = qa.ingest([folder])
    status = {Path(f.path).name: (f.status, f.reason) for f in report.files}
    assert status["ok.txt"][0] == "added"
    assert status["locked.txt"] == ("skipped", "cannot read: Permission denied")
    assert qa.check().ok


def test_zip_bomb_refused_before_unzipping(tmp_path):
    import pytest

    from rag.core.errors import DocumentError
    from rag.ingest.loaders import check_unzipped_size, load_document

    _zip_bomb_docx(tmp_path / "bomb.docx", unzipped_mb=300)
    with pytest.raises(DocumentError, match="zip bomb"):
        load_document(tmp_path / "bomb.docx")
    small = io.BytesIO()
    with zipfile.ZipFile(small, "w") as zf:
        zf.writestr("a.xml", "x" * 1000)
    check_unzipped_size(tmp_path / "x.docx", small.getvalue(), limit=2000)  # under the limit: fine
    shutil.rmtree(tmp_path, ignore_errors=True)
