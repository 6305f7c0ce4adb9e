"""Repetitive content cannot crowd out the rest: identical chunks count once in every ranking.

A log file, a templated report or a mail archive repeats text: one file of one repeated sentence becomes
thousands of identical chunks with identical vectors. Chroma's approximate index then returns only those
(its graph fills with them), BM25 ties them, and min-max fusion of a ranking that is all ties gave each of
them full marks. Dense search is now exact over the distinct vectors (`rag.index.exact`), BM25 keeps one
chunk per distinct text (`rag.index.bm25._distinct_top`), fusion ignores a ranking that cannot tell its items
apart, and a passage whose text was already returned is not returned again.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from rag.core.config import load_settings
from rag.index.bm25 import LexicalIndex, _distinct_top
from rag.index.retrieve import convex_fuse
from rag.serve.api import DocQA
from tests.conftest import shared_cache

LINE = "The server logged a routine heartbeat message and nothing else happened during this interval. "
DOCS = {
    "lighthouse.txt": ("The Skerry Point lighthouse was built in 1874 by the engineer Thomas Arkwright. Its lamp was "
                       "first lit with whale oil and later converted to electricity in 1931. The tower is 41 metres "
                       "tall and painted with red and white bands.", "Who built the Skerry Point lighthouse?"),
    "cheese.txt": ("Valdorino cheese is made from raw sheep milk in the mountain villages of northern Sardinia. It is "
                   "aged for at least nine months in limestone caves, which gives its rind a grey colour.",
                   "How long is Valdorino cheese aged?"),
    "comet.txt": ("The comet Halvorsen-3 returns to the inner solar system every 17 years. Astronomers at the Kiruna "
                  "observatory discovered it in 1962 using a wide-field photographic camera.",
                  "Where was the comet Halvorsen-3 discovered?"),
}


# --- the parts, without models ------------------------------------------------------------------
def test_a_ranking_of_ties_gives_its_weight_to_the_other():
    dense = [(f"copy{i}", 0.61) for i in range(50)]  # 50 identical chunks: no information
    bm25 = [("seed", 7.5), ("copy0", 1.0), ("other", 0.5)]
    fused = convex_fuse([(dense, 0.5), (bm25, 0.5)])
    assert fused[0][0] == "seed" and fused[0][1] == pytest.approx(1.0)
    assert convex_fuse([([("only", 0.3)], 0.5), ([], 0.5)]) == [("only", 1.0)]  # one item is not a tie


def test_bm25_keeps_one_chunk_per_distinct_text(tmp_path):
    index = LexicalIndex(tmp_path / "bm25")
    rows = [(f"log-{i:05d}", "log.txt", LINE + "heartbeat") for i in range(2000)]
    rows += [("seed", "seed.txt", "The heartbeat monitor of the lighthouse keeper beeped twice."),
             ("other", "other.txt", "A heartbeat is the sound of a beating heart.")]
    index.rebuild(rows, "g1")
    hits = index.search("heartbeat lighthouse keeper", 5)
    ids = [cid for cid, _ in hits]
    assert ids[0] == "seed"
    assert "other" in ids
    assert sum(cid.startswith("log-") for cid in ids) == 1  # 2000 copies count once


def test_distinct_top_is_best_first_and_skips_copies():
    scores = np.array([5.0, 5.0, 5.0, 4.0, 0.0, 3.0, 5.0])
    sigs = np.array([1, 1, 1, 2, 3, 4, 1], dtype=np.uint64)
    assert _distinct_top(scores, sigs, 3) == [0, 3, 5]
    assert _distinct_top(scores, sigs, 10) == [0, 3, 5]  # the zero score is not a hit


def test_exact_vectors_follow_writes(fake_settings, monkeypatch):
    """This process's writes are applied from the store's journal; another process's by re-reading the ids."""
    qa = DocQA(fake_settings)
    qa.ingest_texts([{"source": "a.txt", "text": "Alpha text about apples."},
                     {"source": "b.txt", "text": "Beta text about bananas."}])
    vector = qa.embeddings.embed_query
    qa.retriever.warm()
    exact = qa.retriever._exact
    reads = []
    real_all_ids = qa.store.all_ids
    monkeypatch.setattr(qa.store, "all_ids", lambda: reads.append(1) or real_all_ids())
    qa.ingest_texts([{"source": "c.txt", "text": "Gamma text about cherries."}])
    qa.delete("a.txt")
    hits = exact.nearest(vector("Gamma text about cherries."), 5)
    assert reads == []  # followed from the journal
    sources = {qa.store.get([cid])[0].source for cid, _ in hits}
    assert sources == {"b.txt", "c.txt"}
    other = DocQA(fake_settings)  # another writer (as another process would be)
    other.ingest_texts([{"source": "d.txt", "text": "Delta text about dates."}])
    hits = exact.nearest(vector("Delta text about dates."), 5)
    assert reads == [1] and {qa.store.get([cid])[0].source for cid, _ in hits} == {"b.txt", "c.txt", "d.txt"}


# --- a real collection --------------------------------------------------------------------------
def build(tmp_path, copies: int) -> tuple[DocQA, dict]:
    settings = load_settings(environ={}, home=tmp_path / "home", cache=shared_cache(), llm={"provider": "fake"})
    qa = DocQA(settings)
    qa.ingest_texts([{"source": name, "text": text} for name, (text, _) in DOCS.items()])
    started = time.perf_counter()
    # one repeated sentence: about 8 sentences per chunk, so 8 * copies sentences make `copies` chunks
    report = qa.ingest_texts([{"source": "heartbeat.log", "text": LINE * (8 * copies)}])
    figures = {"ingest_s": time.perf_counter() - started, "chunks": report.files[0].chunks}
    return qa, figures


def assert_holds(qa: DocQA, figures: dict, copies: int) -> None:
    assert figures["chunks"] >= copies
    started = time.perf_counter()
    qa.retriever.warm()
    figures["load_s"] = time.perf_counter() - started
    for mode in ("dense", "bm25", "hybrid"):
        for name, (_, question) in DOCS.items():
            started = time.perf_counter()
            found = qa.retrieve(question, 5, mode=mode)
            figures[f"{mode}_ms"] = max(figures.get(f"{mode}_ms", 0), 1000 * (time.perf_counter() - started))
            assert found[0].source == name, (mode, question, [c.source for c in found])
            assert [c.source for c in found].count("heartbeat.log") <= 2  # copies do not fill the results
    report = qa.check()
    assert report.ok, [str(p) for p in report.problems]
    print(figures)


@pytest.mark.integration
def test_thousands_of_identical_chunks_leave_every_document_findable(tmp_path):
    qa, figures = build(tmp_path, 3000)
    assert_holds(qa, figures, 3000)


@pytest.mark.integration
@pytest.mark.slow
def test_thirty_thousand_identical_chunks_leave_every_document_findable(tmp_path):
    """The issue's case: about 30,000 identical chunks from one file (a ~14 MB log of one line)."""
    qa, figures = build(tmp_path, 30_000)
    assert_holds(qa, figures, 30_000)
