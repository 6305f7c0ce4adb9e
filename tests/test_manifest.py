"""The manifest of stored documents (rag.index.manifest): it answers `sources()` without a scan, and only while
it describes the store exactly as a scan would (fake embeddings)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rag.core.types import SourceInfo
from rag.index.manifest import SourceManifest
from rag.index.store import ChunkStore, make_client
from rag.serve.api import DocQA


def info(source: str, chunks: int = 1, content_hash: str = "h") -> SourceInfo:
    return SourceInfo(source=source, title=source.upper(), chunks=chunks, content_hash=content_hash,
                      ingested_at="2026-11-26T12:00:00+00:00", url=None)


def test_replace_load_and_compare_and_set_patch(tmp_path):
    m = SourceManifest(tmp_path / "sources.sqlite")
    assert m.generation() is None and m.load("g1") is None
    m.replace("g1", [info("b"), info("a", 3)])
    assert m.load("g1") == [info("a", 3), info("b")] and m.load("g2") is None
    assert m.patch("g1", "g2", [info("c", 2), info("a", 4)], ["b"])
    assert m.load("g2") == [info("a", 4), info("c", 2)] and m.load("g1") is None
    assert not m.patch("g1", "g3", [info("z")], [])  # not current before that write: left as it was
    assert m.load("g2") == [info("a", 4), info("c", 2)]
    m.invalidate()
    assert m.generation() is None and m.load("g2") is None


def test_a_damaged_manifest_is_ignored(tmp_path):
    path = tmp_path / "sources.sqlite"
    path.write_bytes(b"not a database" * 100)
    m = SourceManifest(path)
    assert m.generation() is None and m.load("g") is None
    m.replace("g", [info("a")])  # the next ingest rewrites it
    assert m.load("g") in (None, [info("a")])


@pytest.fixture
def folder(tmp_path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(6):
        (docs / f"d{i}.txt").write_text(f"Document {i} talks about harbour number {i}.\n\nIt has a second part {i}.")
    return docs


def no_scans(monkeypatch, store):
    def refuse():
        raise AssertionError("scanned the store although the manifest was current")
    monkeypatch.setattr(store, "scan_sources", refuse)


def test_ingest_keeps_the_manifest_equal_to_a_scan(fake_settings, folder, tmp_path, monkeypatch):
    qa = DocQA(fake_settings)
    qa.ingest([folder])
    store = qa.store
    assert store.manifest.load(store.generation) == store.scan_sources()
    (folder / "d1.txt").write_text("Document 1 was rewritten: it now talks about lighthouses.")
    (folder / "d2.txt").unlink()
    (folder / "d9.txt").write_text("A new document about ferries.")
    with monkeypatch.context() as m:
        no_scans(m, store)
        report = qa.ingest([folder], sync=True)  # every file's state comes from the manifest
        listed = qa.sources()
    assert (report.count("updated"), report.count("added"), report.count("removed")) == (1, 1, 1)
    assert listed == store.scan_sources()
    assert {Path(s.source).name for s in listed} == {"d0.txt", "d1.txt", "d3.txt", "d4.txt", "d5.txt", "d9.txt"}
    qa.delete("d3.txt")
    moved = tmp_path / "docs" / "renamed.txt"
    (folder / "d4.txt").rename(moved)
    qa.ingestor.move_source(str((folder / "d4.txt").resolve()), str(moved.resolve()))
    with monkeypatch.context() as m:
        no_scans(m, store)
        listed = qa.sources()
        assert qa.resolve_source("renamed.txt") == str(moved.resolve())
    assert listed == store.scan_sources()


def test_a_write_it_did_not_see_makes_it_stale(fake_settings, folder, monkeypatch):
    qa = DocQA(fake_settings)
    qa.ingest([folder])
    # another client of the same collection (another machine on a shared Chroma server: no manifest of ours)
    other = ChunkStore(make_client(fake_settings), fake_settings.collection, model_name=qa.store.model_name,
                       dimension=qa.store.dimension, backend=qa.store.backend)
    other.delete_source(qa.sources()[0].source)
    assert qa.store.manifest.load(qa.store.generation) is None
    scanned = qa.store.scan_sources()
    assert qa.sources() == scanned and len(scanned) == 5
    report = qa.ingest([folder])  # scans, stores the deleted file again, and saves the manifest
    assert report.count("added") == 1 and report.count("unchanged") == 5
    assert qa.store.manifest.load(qa.store.generation) == qa.store.scan_sources()


def test_a_write_killed_midway_makes_it_stale(fake_settings, folder):
    qa = DocQA(fake_settings)
    qa.ingest([folder])
    store = qa.store
    before = store.scan_sources()
    # a process killed after the generation moved and part of a document was written, before the end
    store._bump()
    victim = next(sc for sc in store.scan(include_text=False) if sc.chunk.source.endswith("d0.txt"))
    store._collection.delete(ids=[victim.chunk.chunk_id])
    assert store.manifest.load(store.generation) is None  # so the next ingest scans, and redoes d0
    report = qa.ingest([folder])
    assert report.count("updated") + report.count("added") == 1
    def state(infos):
        return [(s.source, s.chunks, s.content_hash) for s in infos]
    assert state(store.scan_sources()) == state(before)
    assert store.manifest.load(store.generation) == store.scan_sources()


def test_random_operations_never_let_it_differ_from_a_scan(fake_settings, folder):
    rng = random.Random(3)
    qa = DocQA(fake_settings)
    for step in range(12):
        names = sorted(p.name for p in folder.iterdir())
        action = rng.choice(["write", "write", "remove", "delete", "ingest"])
        if action == "write" or not names:
            name = f"d{rng.randint(0, 9)}.txt"
            body = " ".join(f"Sentence {j} of step {step} says {rng.random():.6f}." for j in range(rng.randint(1, 40)))
            (folder / name).write_text(body)
        elif action == "remove":
            (folder / rng.choice(names)).unlink()
        elif action == "delete" and qa.sources():
            qa.delete(rng.choice(qa.sources()).source)
        qa.ingest([folder], sync=rng.random() < 0.5)
        current = qa.store.manifest.load(qa.store.generation)
        assert current is not None and current == qa.store.scan_sources(), step


def test_check_finds_a_manifest_that_hides_damage_and_repair_rebuilds_it(fake_settings, folder):
    (folder / "d2.txt").write_text("Document 2.\n\n" + " ".join(f"word{j}" for j in range(400)))  # several chunks
    qa = DocQA(fake_settings)
    qa.ingest([folder])
    store = qa.store
    # damage by something other than this tool: no generation change, so the manifest still claims d2 whole
    victim = next(sc for sc in store.scan(include_text=False) if sc.chunk.source.endswith("d2.txt"))
    store._collection.delete(ids=[victim.chunk.chunk_id])
    report = qa.check()
    assert {"incomplete-document", "manifest"} <= {p.kind for p in report.problems}
    repaired = qa.check(repair=True)
    assert repaired.ok, repaired.problems
    assert any("re-ingested" in line and "d2.txt" in line for line in repaired.repaired)
    assert store.manifest.load(store.generation) == store.scan_sources()
