"""Watched folders: the collection converges to the folder after creates, edits, renames and deletes.

Fake embeddings (fast); each step waits until the watcher is idle and then
checks the stored sources against the files on disk. Convergence times are
printed (`pytest -s tests/test_watch.py`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.ingest.pipeline import content_hash, source_key
from rag.serve.api import DocQA

DEBOUNCE = 0.3


class CountingEmbeddings:
    """Counts embedded texts, so tests can tell a rename re-used the stored vectors."""

    def __init__(self, inner):
        self.inner, self.embedded = inner, 0
        self.name, self.dimension, self.max_wordpieces = inner.name, inner.dimension, inner.max_wordpieces

    def count_wordpieces(self, text):
        return self.inner.count_wordpieces(text)

    def embed_documents(self, texts):
        self.embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


@pytest.fixture
def qa(fake_settings):
    from rag.models.embedders.factory import make_embeddings

    return DocQA(fake_settings, embeddings=CountingEmbeddings(make_embeddings(fake_settings)))


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "watched"
    path.mkdir()
    return path


@pytest.fixture
def watcher(qa, folder):
    from rag.ingest.watch import FolderWatcher

    w = FolderWatcher(qa, folder, debounce_s=DEBOUNCE, retry_s=0.3)
    w.start()
    yield w
    w.stop()


def stored(qa) -> dict[str, str]:
    return {s.source: s.content_hash for s in qa.sources()}


def on_disk(folder: Path) -> dict[str, str]:
    """source -> content hash of every file in the folder: what the collection must converge to."""
    return {source_key(p): content_hash(p.read_bytes())
            for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")}


def converge(qa, folder: Path, watcher, *, timeout: float = 30.0, label: str = "") -> float:
    """Seconds until the stored sources equal the files on disk (and the watcher is idle)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if watcher.wait_idle(timeout=0.5) and stored(qa) == on_disk(folder):
            took = time.monotonic() - started
            print(f"\nconverged after {label or 'change'} in {took:.2f}s (debounce {DEBOUNCE}s)")
            return took
        time.sleep(0.05)
    raise AssertionError(f"not converged after {label}: stored {sorted(stored(qa))}, on disk {sorted(on_disk(folder))}")


def texts_of(qa, source: str) -> str:
    return " ".join(s.chunk.text for s in qa.store.scan() if s.chunk.source == source)


def test_create_modify_rename_delete_converge(qa, folder, watcher):
    a = folder / "alpha.txt"
    a.write_text("Alpha Corp makes anvils in Springfield. Its founder is Ada Stone.")
    converge(qa, folder, watcher, label="create")
    assert "anvils" in texts_of(qa, source_key(a))

    a.write_text("Alpha Corp now makes rockets in Shelbyville. Its founder is Ada Stone.")
    converge(qa, folder, watcher, label="modify")
    assert "rockets" in texts_of(qa, source_key(a)) and "anvils" not in texts_of(qa, source_key(a))
    assert qa.retrieve("Who makes rockets?", k=1)[0].source == source_key(a)

    before = qa.embeddings.embedded
    b = folder / "sub" / "renamed.txt"
    b.parent.mkdir()
    a.rename(b)
    converge(qa, folder, watcher, label="rename")
    assert qa.embeddings.embedded == before, "a rename must not embed again"
    assert set(stored(qa)) == {source_key(b)}
    hit = qa.retrieve("Who makes rockets?", k=1)[0]
    assert hit.source == source_key(b) and hit.title  # BM25 and the store agree on the new key

    b.unlink()
    converge(qa, folder, watcher, label="delete")
    assert stored(qa) == {}


def test_folder_rename_and_delete(qa, folder, watcher):
    sub = folder / "reports"
    sub.mkdir()
    for i in range(5):
        (sub / f"r{i}.md").write_text(f"# Report {i}\n\nQuarter {i} revenue was {i * 10} million.")
    converge(qa, folder, watcher, label="create 5 in a subfolder")
    before = qa.embeddings.embedded
    moved = folder / "archive"
    sub.rename(moved)
    converge(qa, folder, watcher, label="folder rename")
    assert qa.embeddings.embedded == before
    import shutil

    shutil.rmtree(moved)
    converge(qa, folder, watcher, label="folder delete")
    assert stored(qa) == {}


def test_burst_of_1000_files_is_batched(qa, folder, watcher):
    started = time.monotonic()
    for i in range(1000):
        (folder / f"note{i:04d}.txt").write_text(f"Note number {i} says the code word is w{i:04d}.")
    written = time.monotonic() - started
    took = converge(qa, folder, watcher, timeout=240, label="1000 new files")
    print(f"1000 files written in {written:.1f}s, indexed in {watcher.batches} batches")
    assert len(stored(qa)) == 1000
    assert watcher.batches <= 25, f"{watcher.batches} batches for one burst"
    assert qa.retrieve("code word w0777", k=1, mode="bm25")[0].source == source_key(folder / "note0777.txt")
    assert took < 240


def test_half_written_file_is_never_indexed_truncated(qa, folder, watcher):
    seen: list[str] = []
    watcher.on_batch = lambda report: seen.append(texts_of(qa, source_key(folder / "slow.txt")))
    path = folder / "slow.txt"
    with path.open("w") as fh:
        fh.write("The first half of the report says revenue grew.")
        fh.flush()
        time.sleep(DEBOUNCE * 5)  # longer than the debounce: the file is quiet but still open
        assert source_key(path) not in stored(qa)
        fh.write(" The second half says profits fell by 4 percent.")
    converge(qa, folder, watcher, label="slow write")
    assert "profits fell" in texts_of(qa, source_key(path))
    assert all("profits fell" in s for s in seen if s), "a truncated version was indexed"


def test_unparseable_file_is_retried_then_indexed(qa, folder, watcher):
    """A .docx copied in two steps: the first look finds a broken zip, a retry finds the whole file."""
    import docx

    document = docx.Document()
    document.add_paragraph("The lighthouse on Gull Island was automated in 1987.")
    full = folder.parent / "whole.docx"
    document.save(full)
    data = full.read_bytes()
    path = folder / "copy.docx"
    path.write_bytes(data[: len(data) // 2])  # closed half-written: looks finished, does not parse
    time.sleep(DEBOUNCE * 4)
    path.write_bytes(data)
    converge(qa, folder, watcher, label="retry of a broken docx")
    assert "automated in 1987" in texts_of(qa, source_key(path))


def test_broken_file_is_retried_before_it_is_reported_skipped(qa, folder):
    from rag.ingest.watch import FolderWatcher

    reports = []
    w = FolderWatcher(qa, folder, debounce_s=DEBOUNCE, retries=2, retry_s=0.3, on_batch=reports.append)
    w.start()
    try:
        started = time.monotonic()
        (folder / "broken.docx").write_bytes(b"PK\x03\x04 not really a docx")
        deadline = started + 30
        while time.monotonic() < deadline and not any(f.status == "skipped" for r in reports for f in r.files):
            time.sleep(0.05)
        took = time.monotonic() - started
    finally:
        w.stop()
    skipped = [f for r in reports for f in r.files if f.status == "skipped"]
    assert len(skipped) == 1 and "docx" in skipped[0].reason
    assert took >= 0.3 + 0.6, "reported before its two retries (0.3 s, then 0.6 s later)"
    assert stored(qa) == {}


def test_watched_folder_is_registered_and_resumed_by_the_ui(qa, folder):
    pytest.importorskip("gradio")
    from ui.handlers import Handlers

    h = Handlers(qa)
    h.watch(str(folder), None)
    try:
        assert "watching" in h.watched_markdown()
        (folder / "ui.txt").write_text("Registered folders are followed by the UI process.")
        watcher = next(iter(h._watchers.values()))
        converge(qa, folder, watcher, label="UI watcher")
    finally:
        h.stop_watchers()

    resumed = Handlers(qa)
    resumed.resume_watched()  # what build_app does on start
    try:
        assert len(resumed._watchers) == 1 and "(watching)" in resumed.watched_markdown()
        (folder / "later.txt").write_text("Files added after a restart are picked up too.")
        converge(qa, folder, next(iter(resumed._watchers.values())), label="resumed watcher")
        resumed.unwatch(str(folder), None)
        assert "No folder" in resumed.watched_markdown()
    finally:
        resumed.stop_watchers()


def test_ui_watch_is_limited_to_allowed_folders(tmp_path):
    pytest.importorskip("gradio")
    from rag.core.config import UISettings
    from ui.handlers import watch_refusal

    inside, outside = tmp_path / "shared" / "team", tmp_path / "private"
    assert watch_refusal(UISettings(), outside) is None  # loopback: the user is on this machine
    assert "RAG_UI__WATCH_ROOTS" in watch_refusal(UISettings(host="0.0.0.0"), outside)
    allowed = UISettings(host="0.0.0.0", watch_roots=[tmp_path / "shared"])
    assert watch_refusal(allowed, inside) is None
    assert "outside" in watch_refusal(allowed, outside)


def test_cli_watch_needs_folders(tmp_path):
    from typer.testing import CliRunner

    from rag.cli import app

    file = tmp_path / "a.txt"
    file.write_text("x")
    result = CliRunner().invoke(app, ["ingest", str(file), "--watch"])
    assert result.exit_code != 0 and "folders" in result.output


def test_cli_watch_follows_until_stopped(fake_settings, folder):
    import threading

    from rag.cli import _watch_folders

    qa = DocQA(fake_settings)
    (folder / "first.txt").write_text("The first file is ingested by the initial sync.")
    stop = threading.Event()
    thread = threading.Thread(target=_watch_folders, args=(qa, [folder], True, stop), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(stored(qa)) < 1:
        time.sleep(0.1)
    (folder / "second.txt").write_text("The second file arrives while watching.")
    while time.monotonic() < deadline and len(stored(qa)) < 2:
        time.sleep(0.1)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert stored(qa) == on_disk(folder)
