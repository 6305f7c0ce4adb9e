"""An ingest stopped by SIGTERM/Ctrl-C keeps what it finished, says so, and a re-run resumes.

Found by trying it: one `rag ingest` of a folder holding the seed
article, a few broken files and a large text file, stopped with SIGTERM while
the large file was being embedded, left the collection empty.
"""

from __future__ import annotations

import shutil
import signal

import pytest

from tests.conftest import SEED_DIR
from tests.robustness.support import embed_calls, open_qa, run_rag, start_rag, wait_for

SEED_PHRASE = "business scope"


def _folder(tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(SEED_DIR, folder)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not really a pdf")
    (folder / "broken.docx").write_bytes(b"PK\x03\x04 truncated zip")
    words = "river mountain valley harbour lantern orchard quarry meadow glacier canyon".split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] + str(i % 97) for j in range(12)) for i in range(12000)]
    # sorted first, so the old pipeline put it in the same batch as everything after it
    (folder / "00_large.txt").write_text("Large file\n\n" + "\n\n".join(lines))
    return folder


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_stopped_ingest_keeps_finished_files_and_resumes(tmp_path, sig):
    folder = _folder(tmp_path)
    home, log = tmp_path / "home", tmp_path / "embed.log"
    proc = start_rag(home, "ingest", str(folder), delay=0.3, log=log)
    # the seed article is one batch, then the large file goes out in parts: stop during those
    wait_for(lambda: len(embed_calls(log)) >= 3, 120, "the large file to be embedding")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, (out, err)
    assert f"stopped by {sig.name}" in err and "kept and searchable" in err and "run the same command again" in err
    assert "added" in out and "000_" in out  # the seed article is listed as stored
    embedded_before = sum(embed_calls(log))

    qa = open_qa(home)
    sources = {s.source: s for s in qa.sources()}
    seed = next(s for s in sources if "000_" in s)
    assert sources[seed].content_hash != "inconsistent"
    assert any(c.source == seed for c in qa.retrieve(SEED_PHRASE, k=5, mode="bm25"))
    # fake embeddings carry no meaning: the dense index finds a stored chunk by its own text
    from rag.index.retrieve import index_text

    some = next(qa.store.scan(where={"source": seed}))
    for mode in ("dense", "hybrid"):
        assert qa.retrieve(index_text(some.chunk), k=1, mode=mode)[0].chunk_id == some.chunk.chunk_id, mode
    large = next(s for s in sources if s.endswith("00_large.txt"))
    assert sources[large].content_hash == "inconsistent"  # partly stored, and known to be
    report = qa.check()
    assert [p.kind for p in report.problems] == ["incomplete-document"], report.problems
    del qa

    # a plain re-run finishes the job without embedding the stored parts again
    done = run_rag(home, "ingest", str(folder), log=log)
    assert done.returncode == 0, done.stderr
    qa = open_qa(home)
    assert qa.check().ok
    total = {s.source: s.chunks for s in qa.sources()}
    embedded_after = sum(embed_calls(log)) - embedded_before
    assert embedded_after < total[large], "stored parts of the large file were embedded again"
    # every distinct text embedded exactly once (identical texts share one vector: the embedding cache): each
    # chunk's, and each of its sentences' when the store keeps a sentence view (rag.index.sentence_view)
    from rag.index.sentence_view import sentence_texts

    chunks = [sc.chunk for sc in qa.store.scan()]
    distinct_chunks = {index_text(c) for c in chunks}
    sentences = {t for c in chunks for t in sentence_texts(c)} if qa.store.sentences is not None else set()
    assert len(distinct_chunks) <= sum(total.values())
    assert len(distinct_chunks | sentences) == embedded_before + embedded_after


def test_small_files_are_not_held_back_by_a_large_one(fake_settings, tmp_path, monkeypatch):
    """A large file read first does not delay the small ones behind it (they are stored before its parts)."""
    from rag.ingest import pipeline as ingest_mod
    from rag.serve.api import DocQA

    monkeypatch.setattr(ingest_mod, "_FLUSH_CHUNKS", 8)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "00_large.txt").write_text("\n\n".join(f"paragraph {i} " + "filler words here " * 30 for i in range(100)))
    for i in range(5):
        (folder / f"small{i}.txt").write_text(f"Small note {i} about otters.")
    qa = DocQA(fake_settings)
    order = []
    store_write = qa.store.write_parts

    def spy(records, vectors, complete, *rest):
        order.extend(source for source, _ in complete)
        return store_write(records, vectors, complete, *rest)

    monkeypatch.setattr(qa.store, "write_parts", spy)
    report = qa.ingest([folder])
    assert report.count("added") == 6
    names = [s.rsplit("/", 1)[1] for s in order]
    assert names[-1] == "00_large.txt" and sorted(names[:-1]) == [f"small{i}.txt" for i in range(5)]


def test_stop_request_in_process_then_next_ingest_runs(fake_settings, tmp_path, monkeypatch):
    """`request_stop` (what the signal handler calls) from Python: the batch in flight is kept, --sync removes
    nothing, and the same long-running process ingests normally afterwards."""
    from rag.ingest import pipeline as ingest_mod
    from rag.serve.api import DocQA

    monkeypatch.setattr(ingest_mod, "_FLUSH_CHUNKS", 2)
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(10):
        (folder / f"d{i}.txt").write_text(f"Note {i} about herons.")
    qa = DocQA(fake_settings)
    qa.ingest([folder])
    for i in range(10):
        (folder / f"d{i}.txt").write_text(f"Note {i} about herons, revised.")

    def progress(done, total, path):
        if done == 5:
            qa.ingestor.request_stop("test")

    report = qa.ingest([folder], sync=True, progress=progress)
    assert report.interrupted == "test" and report.count("removed") == 0
    assert report.count("interrupted") >= 5 and report.count("updated") >= 2
    assert len(qa.sources()) == 10 and qa.check().ok  # nothing lost, nothing half-written
    again = qa.ingest([folder])
    assert not again.interrupted and again.count("updated") + report.count("updated") == 10
