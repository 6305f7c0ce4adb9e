"""The segmented BM25 index: incremental updates score exactly like a fresh bm25s index of the live chunks."""

from __future__ import annotations

import random

import numpy as np
import pytest

from rag.index.bm25 import LexicalIndex
from rag.text.tokens import tokenize

WORDS = ("anvil volcano tremor founder workers seismometer capital france paris river bridge harbour "
         "engine copper festival museum glacier orchard pilot ferry lantern quarry").split()


def doc(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30)))


def bm25s_scores(live: dict[str, str], query: str) -> dict[str, float]:
    import bm25s

    ids = sorted(live)
    index = bm25s.BM25()
    index.index([tokenize(live[i]) or ["\x00"] for i in ids], show_progress=False)
    tokens = [t for t in tokenize(query) if t in index.vocab_dict]
    scores = index.get_scores(tokens) if tokens else np.zeros(len(ids))
    return {i: float(s) for i, s in zip(ids, scores) if s > 0}


def test_incremental_updates_equal_a_full_rebuild(tmp_path):
    rng = random.Random(7)
    index = LexicalIndex(tmp_path / "bm25")
    live: dict[str, str] = {}
    for step in range(12):
        added = [(f"c{step}-{j}", f"s{step % 4}", doc(rng)) for j in range(rng.randint(1, 40))]
        removed = rng.sample(sorted(live), min(len(live), rng.randint(0, 10)))
        if live and step % 3 == 0:  # an id written again (an updated file keeps some chunk ids)
            again = rng.choice(sorted(set(live) - set(removed)))
            added.append((again, "s0", doc(rng)))
        index.update(added, removed, generation=f"g{step}")
        for cid in removed:
            live.pop(cid)
        live.update({cid: text for cid, _, text in added})

        reopened = LexicalIndex(tmp_path / "bm25")  # what another process reads from disk
        assert reopened.generation() == f"g{step}"
        for query in ("anvil volcano", "pilot pilot ferry", "founder glacier harbour museum", "nothing"):
            want = bm25s_scores(live, query)
            for idx in (index, reopened):
                got = dict(idx.search(query, n=len(live)))
                assert got.keys() == want.keys()
                assert all(got[k] == pytest.approx(want[k], rel=1e-5) for k in want)
    assert len(list((tmp_path / "bm25").glob("*.npz"))) <= 6  # segments are merged as they pile up


def test_source_filter_and_rebuild(tmp_path):
    index = LexicalIndex(tmp_path / "bm25")
    index.rebuild([("a", "x.txt", "copper quarry"), ("b", "y.txt", "copper mine copper")], "g1")
    assert [cid for cid, _ in index.search("copper", 5)] == ["b", "a"]
    assert [cid for cid, _ in index.search("copper", 5, sources=["x.txt"])] == ["a"]
    index.update([("c", "z.txt", "ferry")], ["b"], "g2")
    assert [cid for cid, _ in index.search("copper", 5)] == ["a"]
    index.rebuild([], "g3")
    assert index.search("copper", 5) == [] and LexicalIndex(tmp_path / "bm25").generation() == "g3"


def test_old_layout_counts_as_stale(tmp_path):
    directory = tmp_path / "bm25"
    directory.mkdir()
    (directory / "meta.json").write_text('{"ids": ["a"], "sources": ["x"], "generation": "g"}')
    (directory / "tokens.jsonl").write_text('["a", "x", ["copper"]]\n')
    index = LexicalIndex(directory)
    assert index.generation() is None  # so ingest and search rebuild it from the store
    index.rebuild([("a", "x", "copper")], "g2")
    assert not (directory / "tokens.jsonl").exists() and index.search("copper", 1)[0][0] == "a"


def test_latin_accents_are_folded_and_other_scripts_kept():
    assert tokenize("Where did Tesla teach in Gospic?") == tokenize("Where did Tesla teach in Gospić?")
    assert tokenize("Müntzer, Katyń, São Paulo, naïve café") == tokenize("Muntzer, Katyn, Sao Paulo, naive cafe")
    assert tokenize("Straße Ærø ﬁle") == tokenize("Strasse Aero file")
    # a Greek accent is not a Latin one: the word is kept as written
    assert tokenize("Ελλάδα") != tokenize("Ελλαδα")
    assert tokenize("東京") == ["東", "京"]


def test_query_without_accents_finds_the_accented_document(tmp_path):
    index = LexicalIndex(tmp_path / "bm25")
    index.rebuild([("a", "x.txt", "Tesla taught a large class in Gospić"), ("b", "y.txt", "Tesla moved to Prague")], "g1")
    assert [cid for cid, _ in index.search("Gospic", 5)] == ["a"]
    assert [cid for cid, _ in index.search("GOSPIĆ", 5)] == ["a"]


def test_a_unit_written_on_to_its_number_is_found_either_way(tmp_path):
    assert tokenize("a 100Hz ripple, 10MΩ, 2.5GHz") == tokenize("a 100 Hz ripple, 10 MΩ, 2.5 GHz")
    assert tokenize("IPv6 and MP3 over x86") == ["ipv6", "mp3", "x86"]  # a letter first: one word
    index = LexicalIndex(tmp_path / "bm25")
    index.rebuild([("a", "x.txt", "A fluorescent lamp on 50Hz mains shows 100Hz ripples"),
                   ("b", "y.txt", "The resistance varies from 1 kΩ to around 100 kΩ")], "g1")
    assert [cid for cid, _ in index.search("ripples of 100 Hz", 5)][:1] == ["a"]
    assert [cid for cid, _ in index.search("a 1kΩ resistance", 5)][:1] == ["b"]


def test_an_identifier_with_underscores_finds_its_own_entry_first(tmp_path):
    index = LexicalIndex(tmp_path / "bm25")
    index.rebuild([("m", "conf.html", "maintenance_work_mem sets the memory of maintenance work; it defaults to 64MB "
                                      "and may be set well above the memory of one query"),
                   ("a", "conf.html", "autovacuum_work_mem sets the memory of each autovacuum worker, by default "
                                      "that of maintenance_work_mem"),
                   ("w", "conf.html", "work_mem sets the memory of a query operation before it writes temporary "
                                      "files")], "g1")
    # each holds the words work and mem; only one is about work_mem itself
    assert [cid for cid, _ in index.search("What is the default value of work_mem?", 5)][:1] == ["w"]


def test_index_of_the_previous_term_format_is_rebuilt(tmp_path):
    import json

    directory = tmp_path / "bm25"
    LexicalIndex(directory).rebuild([("a", "x.txt", "Gospić")], "g1")
    meta = json.loads((directory / "meta.json").read_text())
    meta["format"] = meta["format"] - 1  # written before accents were folded: its terms are "gospić"
    (directory / "meta.json").write_text(json.dumps(meta))
    assert LexicalIndex(directory).generation() is None  # stale: ingest and search rebuild it from the store
