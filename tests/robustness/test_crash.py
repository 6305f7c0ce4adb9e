"""kill -9 of a real `rag ingest` at random moments: a plain re-ingest converges to the uninterrupted result.

After each kill and re-ingest, the chunk ids, texts and per-document metadata
in Chroma and the BM25 postings equal those of one uninterrupted ingest of the
same 600 files: nothing duplicated, orphaned or half-written, and `rag check`
agrees. The 20-kill run is `slow` (`make stress`); 3 kills run by default.
The ingests keep the sentence view (rag.index.sentence_view, off by default): its records
are written before their chunks and removed after them, and must converge too.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time

import pytest

from rag.index.bm25 import lock_held
from tests.robustness import support
from tests.robustness.support import run_rag, snapshot, squad_corpus, start_rag

SENTENCE_VIEW = {"RAG_RETRIEVAL__SENTENCE_WEIGHT": "0.25", "RAG_RETRIEVAL__DENSE_WEIGHT": "0.25"}


def open_qa(home):
    return support.open_qa(home, retrieval={"sentence_weight": 0.25, "dense_weight": 0.25})

N_FILES = 600


def _start_and_wait_for_writing(home, folder):
    """Start `rag ingest`; return (process, when it took the ingest lock), i.e. once past start-up."""
    lock = open_qa(home)._state_dir / "ingest.lock"
    proc = start_rag(home, "ingest", str(folder), **SENTENCE_VIEW)
    deadline = time.monotonic() + 120
    while not lock_held(lock) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc, time.monotonic()


@pytest.fixture(scope="module")
def corpus_and_reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    folder = squad_corpus(base / "squad", N_FILES - 2)
    # two long files too, written in several parts: a kill can land inside one document
    paragraphs = [p.read_text() for p in sorted(folder.glob("p*.txt"))]
    for i, part in enumerate((paragraphs[:300], paragraphs[300:])):
        (folder / f"long{i}.txt").write_text(f"Long file {i}\n\n" + "\n\n".join(part))
    home = base / "reference"
    proc, writing_from = _start_and_wait_for_writing(home, folder)
    out, err = proc.communicate(timeout=600)
    seconds = time.monotonic() - writing_from  # how long the writing part of an ingest takes
    assert proc.returncode == 0, err
    reference = snapshot(open_qa(home))
    assert len({source for source, *_ in reference["chunks"].values()}) == N_FILES
    return folder, reference, seconds


def _kill_at(home, folder, after: float) -> bool:
    """Start an ingest and SIGKILL it `after` seconds into its writing; whether it was still running."""
    proc, _ = _start_and_wait_for_writing(home, folder)
    try:
        proc.wait(timeout=after)
    except Exception:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return proc.returncode == -signal.SIGKILL


def _kill_and_converge(folder, reference, seconds, tmp_path, kills: int, seed: int) -> list[dict]:
    """`kills` trials, each on a fresh home: kill -9 mid-ingest (a moment drawn at random over the
    writing; drawn again, earlier, on a fresh home if the ingest finished first), every third
    trial a second kill during the recovery, then a plain re-ingest that must converge."""
    rng = random.Random(seed)
    results = []
    for trial in range(kills):
        span = seconds
        for attempt in range(5):
            home = tmp_path / f"home{trial}-{attempt}"
            moment = rng.uniform(0.0, 1.0) * span
            if _kill_at(home, folder, moment):
                break
            span *= 0.6  # this machine is faster than when measured: aim earlier
        killed = [moment]
        if trial % 3 == 2:  # a second crash, during the recovery itself
            second = rng.uniform(0.0, 0.8) * span
            if _kill_at(home, folder, second):
                killed.append(second)
        before = open_qa(home).check()
        done = run_rag(home, "ingest", str(folder), **SENTENCE_VIEW)
        assert done.returncode == 0, done.stderr
        qa = open_qa(home)
        after = qa.check()
        got = snapshot(qa)
        results.append({"trial": trial, "killed_at_s": [round(k, 2) for k in killed], "attempts": attempt + 1,
                        "problems_before": sorted({p.kind for p in before.problems}), "ok_after": after.ok})
        assert after.ok, (trial, after.problems[:5])  # includes a probe of the vector index
        from rag.index.retrieve import index_text

        for sc in list(qa.store.scan())[::60]:  # and the dense index finds chunks by their text
            assert qa.retrieve(index_text(sc.chunk), k=1, mode="dense")[0].text == sc.chunk.text
        assert got["chunks"].keys() == reference["chunks"].keys(), f"trial {trial}: chunk ids differ"
        assert got == reference, f"trial {trial}: texts, metadata or BM25 postings differ"
    print(f"\ncrash trials (writing takes {seconds:.1f}s uninterrupted):")
    for r in results:
        print("  ", r)
    return results


def test_three_kills_converge(corpus_and_reference, tmp_path):
    folder, reference, seconds = corpus_and_reference
    _kill_and_converge(folder, reference, seconds, tmp_path, kills=3, seed=10)


@pytest.mark.slow
def test_twenty_kills_converge(corpus_and_reference, tmp_path):
    folder, reference, seconds = corpus_and_reference
    results = _kill_and_converge(folder, reference, seconds, tmp_path, kills=20, seed=2026)
    assert len(results) == 20


def test_check_finds_and_repairs_damage(fake_settings, tmp_path):
    """`rag check` on a home with a half-written document and a stale, orphaned BM25 index."""
    from rag.serve.api import DocQA
    from tests.robustness.support import rag_env  # noqa: F401  (same fake settings as the CLI runs)

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"d{i}.txt").write_text(f"Document {i}.\n\n" + " ".join(f"word{i}x{j}" for j in range(400)))
    qa = DocQA(fake_settings)
    qa.ingest([folder])
    assert qa.check().ok
    # damage: drop half of one document's chunks, and an orphan in BM25
    victim = sorted(qa.store.chunk_ids(str(folder / "d1.txt")))
    qa.store._collection.delete(ids=victim[: len(victim) // 2])
    qa.lexical.update([("orphan0000", "nowhere", "ghost text")], [], qa.lexical.generation())
    report = qa.check()
    kinds = {p.kind for p in report.problems}
    assert {"incomplete-document", "bm25-orphan"} <= kinds, kinds
    assert "rag check --repair" in report.summary()
    repaired = qa.check(repair=True)
    assert repaired.ok, repaired.problems
    assert any("re-ingested" in line for line in repaired.repaired)
    assert len(qa.store.chunk_ids(str(folder / "d1.txt"))) == len(victim)


def test_rag_check_command_reports_and_repairs(tmp_path, fake_env):
    from typer.testing import CliRunner

    from rag.cli import app

    for key, value in SENTENCE_VIEW.items():
        fake_env.setenv(key, value)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha.\n\n" + " ".join(f"alpha{j}" for j in range(600)))
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(folder)]).exit_code == 0
    ok = runner.invoke(app, ["check"])
    assert ok.exit_code == 0 and "consistent" in ok.output
    qa = open_qa(tmp_path / "home")
    ids = sorted(qa.store.chunk_ids(str(folder / "a.txt")))
    qa.store.delete_ids(ids[:1])  # an interrupted write, as a crash would leave it
    bad = runner.invoke(app, ["check"])
    assert bad.exit_code == 1 and "incomplete-document" in bad.output and "rag check --repair" in bad.output
    fixed = runner.invoke(app, ["check", "--repair"])
    assert fixed.exit_code == 0, fixed.output
    assert "re-ingested" in fixed.output and "consistent" in fixed.output


def _many_chunks(folder):
    """60 documents of about 20 chunks each: Chroma writes an index's files to disk once it holds 1,000 records."""
    folder.mkdir(parents=True)
    for i in range(60):
        sentences = " ".join(f"Entry {i}-{j} records the reading value{i}x{j} for unit{j}." for j in range(150))
        (folder / f"d{i}.txt").write_text(f"Document {i}\n\n{sentences}")
    return folder


def _cut_short_id_maps(home) -> int:
    """Cut every vector index's id map in half, as a kill while Chroma writes it leaves it; how many."""
    maps = list((home / "chroma").glob("*/index_metadata.pickle"))
    for path in maps:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return len(maps)


def _dense_finds_its_chunks(qa) -> None:
    from rag.index.retrieve import index_text

    stored = list(qa.store.scan())
    assert stored
    for sc in stored[:: max(1, len(stored) // 25)]:
        assert qa.retrieve(index_text(sc.chunk), k=1, mode="dense")[0].text == sc.chunk.text


def test_a_vector_index_chroma_cannot_load_is_embedded_again_by_the_next_ingest(tmp_path):
    """Chroma cannot load a collection whose index files a kill cut short: every read and write fails. The
    records are safe, so a plain ingest embeds them again, for the chunks and the sentence view alike."""
    folder = _many_chunks(tmp_path / "docs")
    reference_home, home = tmp_path / "reference", tmp_path / "home"
    for h in (reference_home, home):
        done = run_rag(h, "ingest", str(folder), **SENTENCE_VIEW)
        assert done.returncode == 0, done.stderr
    reference = snapshot(open_qa(reference_home))
    assert _cut_short_id_maps(home) == 2  # the chunks' index and the sentence view's

    searched = run_rag(home, "search", "Which reading does entry 7-12 record?", **SENTENCE_VIEW)
    assert searched.returncode != 0 and "rag check --repair" in searched.stderr, searched.stderr
    checked = run_rag(home, "check", **SENTENCE_VIEW)
    assert checked.returncode == 1 and "vectors-unreadable" in checked.stdout, checked.stdout + checked.stderr
    again = run_rag(home, "ingest", str(folder), **SENTENCE_VIEW)
    assert again.returncode == 0, again.stderr
    assert "embedded the" in again.stderr and "stored chunks again" in again.stderr, again.stderr
    assert "60 unchanged" in again.stdout, again.stdout  # nothing was read or chunked again

    qa = open_qa(home)
    assert qa.check().ok, qa.check().problems[:5]
    assert snapshot(qa) == reference
    _dense_finds_its_chunks(qa)
    assert not list((home / "chroma").glob("*.unreadable")), "the unreadable index's folder is removed"


def test_a_rebuild_of_the_vector_index_cut_short_is_done_again(tmp_path):
    """Killed while embedding the chunks again, a rebuild leaves an index Chroma loads but that lacks most
    vectors; the collection's mark says so, `rag check` reports it and the next ingest finishes it."""
    from rag.index.damage import REBUILD_KEY, set_aside

    folder = _many_chunks(tmp_path / "docs")
    home = tmp_path / "home"
    assert run_rag(home, "ingest", str(folder), **SENTENCE_VIEW).returncode == 0
    qa = open_qa(home)
    count = qa.store.count()
    qa.store._mark(REBUILD_KEY, True)  # the state a kill mid-rebuild leaves: marked, the chunks' index begun anew
    for folder_of_index in set_aside(qa.store._client, qa.store._collection):
        shutil.rmtree(folder_of_index)
    del qa
    checked = run_rag(home, "check", **SENTENCE_VIEW)
    assert checked.returncode == 1 and "vectors-rebuilding" in checked.stdout, checked.stdout + checked.stderr
    again = run_rag(home, "ingest", str(folder), **SENTENCE_VIEW)
    assert again.returncode == 0, again.stderr
    assert f"embedded the {count} stored chunks again" in again.stderr, again.stderr
    qa = open_qa(home)
    assert qa.check().ok and not qa.store.rebuilding
    _dense_finds_its_chunks(qa)


def test_check_repair_rebuilds_a_vector_index_that_lost_its_vectors(tmp_path):
    """An index Chroma still loads but whose vectors are cut short finds nothing for most chunks: `rag check`
    probes it, and `--repair` embeds the stored chunks into a new one."""
    folder = _many_chunks(tmp_path / "docs")
    home = tmp_path / "home"
    assert run_rag(home, "ingest", str(folder)).returncode == 0
    (vectors,) = (home / "chroma").glob("*/data_level0.bin")
    vectors.write_bytes(vectors.read_bytes()[:1000])
    checked = run_rag(home, "check")
    assert checked.returncode == 1 and "dense-missing" in checked.stdout, checked.stdout + checked.stderr
    repaired = run_rag(home, "check", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "stored chunks again" in repaired.stdout and "consistent" in repaired.stdout, repaired.stdout
    qa = support.open_qa(home)
    assert qa.check().ok
    _dense_finds_its_chunks(qa)


def test_an_unloadable_index_whose_folder_cannot_be_found_says_what_to_do(tmp_path, monkeypatch):
    """When the index's folder cannot be set aside (a Chroma whose files are laid out otherwise), the writer
    stops with one line that says how to go on, and the stored records stay as they are."""
    import rag.index.store
    from rag.core.errors import StoreDamagedError

    folder = _many_chunks(tmp_path / "docs")
    home = tmp_path / "home"
    assert run_rag(home, "ingest", str(folder)).returncode == 0
    assert _cut_short_id_maps(home) == 1
    monkeypatch.setattr(rag.index.store, "set_aside", lambda client, collection: [])
    qa = support.open_qa(home)
    with pytest.raises(StoreDamagedError, match="--collection <new name>"):
        qa.ingest([folder])
    assert not qa.store.rebuilding  # nothing was begun that the next writer would take for a rebuild cut short
