"""Several processes on one home (and two homes on one Chroma server): one writer, consistent readers."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from rag.index.bm25 import lock_held
from tests.robustness.support import (
    REPO,
    open_qa,
    run_rag,
    squad_corpus,
    start_rag,
    wait_for,
)

N_SQUAD = 300  # files in the corpus the concurrency tests ingest

_BM25_WRITER = """
import sys, time
from pathlib import Path
from rag.index.bm25 import LexicalIndex
index = LexicalIndex(Path(sys.argv[1]))
a = [(f"a{i:04d}", "A", f"alpha apple number{i}") for i in range(400)]
b = [(f"b{i:04d}", "B", f"beta banana number{i}") for i in range(40)]
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    index.rebuild(a if n % 2 else b, "A" if n % 2 else "B")
    n += 1
print(n)
"""


def test_bm25_reader_never_pairs_ids_with_another_versions_scores(tmp_path):
    """A reader in one process while another process rewrites the index: every hit is a real match."""
    from rag.index.bm25 import LexicalIndex

    directory = tmp_path / "bm25"
    LexicalIndex(directory).rebuild([("a0000", "A", "alpha apple")], "A0")
    writer = subprocess.Popen([sys.executable, "-c", _BM25_WRITER, str(directory), "6"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    reads, wrong = 0, []
    while writer.poll() is None:
        index = LexicalIndex(directory)  # a fresh process-like reader: loads whatever is current
        for word, prefix in (("alpha", "a"), ("beta", "b")):
            try:
                hits = index.search(word, 5)
            except Exception as exc:  # a torn read shows up as an error too
                wrong.append(f"{type(exc).__name__}: {exc}")
                continue
            reads += 1
            wrong += [cid for cid, _ in hits if not cid.startswith(prefix)]
    writes = int(writer.communicate()[0])
    print(f"\nBM25: {reads} reads during {writes} rewrites by another process, {len(wrong)} inconsistent")
    assert writes > 5 and reads > 20
    assert not wrong, f"{len(wrong)} inconsistent results in {reads} reads during {writes} rewrites: {wrong[:5]}"


@pytest.fixture(scope="module")
def squad(tmp_path_factory):
    return squad_corpus(tmp_path_factory.mktemp("concurrency") / "squad", N_SQUAD)


def test_second_ingest_on_one_home_refuses_or_waits(squad, tmp_path):
    home = tmp_path / "home"
    lock = open_qa(home)._state_dir / "ingest.lock"
    first = start_rag(home, "ingest", str(squad), delay=4.0)  # holds the lock while the others start
    wait_for(lambda: lock_held(lock), 60, "the first ingest to take the lock")
    refused = run_rag(home, "ingest", str(squad), "--wait", "0")
    assert refused.returncode == 1
    assert "another ingest is writing to collection 'default'" in refused.stderr and "run the command again" in refused.stderr
    waited = start_rag(home, "ingest", str(squad), "--wait", "300")
    assert first.wait(300) == 0
    out, err = waited.communicate(timeout=300)
    assert waited.returncode == 0, err
    assert f"{N_SQUAD} unchanged" in out  # it waited for the first one and found everything done
    qa = open_qa(home)
    assert len(qa.sources()) == N_SQUAD and qa.check().ok


def test_searches_from_another_process_during_an_ingest_are_consistent(squad, tmp_path, monkeypatch):
    from rag.index.bm25 import LexicalIndex
    from rag.index.retrieve import index_text
    from rag.text.tokens import tokenize

    home = tmp_path / "home"
    ingest = start_rag(home, "ingest", str(squad), delay=2.0)
    qa = open_qa(home)
    writes = []
    real_commit = LexicalIndex._commit
    monkeypatch.setattr(LexicalIndex, "_commit",
                        lambda self, segments, gen: (writes.append(len(segments)), real_commit(self, segments, gen)))
    words = ["football", "broncos", "university", "river", "church", "empire", "music", "war"]
    searches, during, problems = 0, 0, []
    while ingest.poll() is None or searches < 10:
        during += ingest.poll() is None
        if qa.store.count() == 0:
            time.sleep(0.1)
            continue
        word = words[searches % len(words)]
        for mode in ("bm25", "hybrid"):
            chunks = qa.retrieve(word, k=5, mode=mode)
            searches += 1
            for c in chunks:
                stored = qa.store.get([c.chunk_id])
                if not stored or stored[0].text != c.text:
                    problems.append(f"{mode}: {c.chunk_id} not stored as returned")
                elif mode == "bm25" and tokenize(word)[0] not in tokenize(index_text(c)):
                    problems.append(f"bm25 hit {c.chunk_id} does not contain {word!r}")
    out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, err
    print(f"\n{searches} searches ({during} during the ingest), {len(problems)} inconsistent, "
          f"{len(writes)} BM25 writes by the reading process")
    assert searches >= 10 and during >= 3 and not problems, (searches, during, problems[:5])
    # the reader reloaded what the writer saved instead of rebuilding BM25 after every batch
    assert len(writes) <= 1, f"the reading process rewrote BM25 {len(writes)} times during one ingest"
    assert qa.retrieve("Broncos", k=1, mode="bm25") and qa.check().ok


# --- two homes, one Chroma server ------------------------------------------------------------


def test_two_homes_on_one_server_collection_take_turns(squad, tmp_path, chroma_server):
    import chromadb

    from rag.index.lease import WRITER_KEY

    env = {"RAG_CHROMA_URL": chroma_server}
    first = start_rag(tmp_path / "home-a", "ingest", str(squad), delay=4.0, **env)
    host, port = chroma_server.rsplit(":", 1)
    client = chromadb.HttpClient(host="127.0.0.1", port=int(port))

    def leased() -> bool:
        try:
            return bool((client.get_collection("default").metadata or {}).get(WRITER_KEY))
        except Exception:
            return False

    wait_for(leased, 90, "the first home to take the server writer lease")
    refused = run_rag(tmp_path / "home-b", "ingest", str(squad), "--wait", "0", **env)
    assert refused.returncode == 1, refused.stdout
    assert "on the Chroma server is being written by" in refused.stderr
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert not leased()  # released at the end
    second = run_rag(tmp_path / "home-b", "ingest", str(squad), "--wait", "0", **env)
    assert second.returncode == 0, second.stderr
    assert f"{N_SQUAD} unchanged" in second.stdout
    check = run_rag(tmp_path / "home-b", "check", **env)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_stalled_writer_loses_its_lease_and_is_refused(fake_settings, chroma_server):
    from rag.core.errors import IngestLockedError
    from rag.index.lease import ServerLease
    from rag.serve.api import DocQA

    qa = DocQA(fake_settings.model_copy(update={"chroma_url": chroma_server}))
    client = qa.store._client
    stalled = ServerLease(client, "default", ttl=0.5, settle=0.1)
    stalled.acquire(timeout=5)
    other = ServerLease(client, "default", ttl=30, settle=0.1)
    with pytest.raises(IngestLockedError, match="being written by"):
        other.acquire(timeout=0)
    time.sleep(0.8)  # the first writer stalls past its expiry
    other.acquire(timeout=5)
    with pytest.raises(IngestLockedError, match="lost the writer lease"):
        stalled.renew()
    other.release()


@pytest.mark.parametrize("empty_at_open", [True, False])
def test_dense_search_sees_another_processes_ingest(tmp_path, empty_at_open):
    """Chroma's embedded client caches its vector index: a UI open beside a CLI ingest must not go stale."""
    from rag.index.retrieve import index_text

    home = tmp_path / "home"
    first = squad_corpus(tmp_path / "first", 20)
    if not empty_at_open:
        assert run_rag(home, "ingest", str(first)).returncode == 0
    qa = open_qa(home)  # the long-running process (the UI, say)
    if not empty_at_open:
        some = next(qa.store.scan())
        assert qa.retrieve(index_text(some.chunk), k=1, mode="dense")[0].chunk_id == some.chunk.chunk_id
    later = tmp_path / "later"
    later.mkdir()
    (later / "zeppelin.txt").write_text("Zeppelins over the harbour.\n\nA new document about airships.")
    assert run_rag(home, "ingest", str(later)).returncode == 0  # another process writes
    new = next(s for s in qa.store.scan() if s.chunk.source.endswith("zeppelin.txt"))
    for mode in ("dense", "hybrid"):
        assert qa.retrieve(index_text(new.chunk), k=1, mode=mode)[0].chunk_id == new.chunk.chunk_id, mode


@pytest.mark.slow
def test_ui_cli_and_python_on_one_home(squad, tmp_path):
    """The UI answering, a CLI ingest writing and Python searching, all at once on one home: no error."""
    from gradio_client import Client

    from rag.core.config import load_settings
    from rag.serve.api import DocQA
    from tests.conftest import serving, shared_cache

    home = tmp_path / "home"
    settings = load_settings(environ={}, home=home, cache=shared_cache(),
                             embedding={"provider": "fake", "model_name": "fake"},
                             llm={"provider": "fake", "fake_responses": ["The passages say so [1]."]},
                             answer={"min_relevance": -1.0})
    seed = squad_corpus(tmp_path / "seed", 5)
    assert run_rag(home, "ingest", str(seed)).returncode == 0
    ui_qa, py_qa = DocQA(settings), DocQA(settings)
    errors, asked, searched = [], 0, 0
    with serving(ui_qa) as url:
        client = Client(url, verbose=False)
        ingest = start_rag(home, "ingest", str(squad), delay=2.0)
        started = time.monotonic()
        while ingest.poll() is None or time.monotonic() - started < 30:
            try:
                result = client.predict("Who won Super Bowl 50?", api_name="/ask")
                asked += bool(result["answer"])
                for mode in ("hybrid", "bm25", "dense"):
                    py_qa.retrieve("Denver Broncos", k=3, mode=mode)
                    searched += 1
            except Exception as exc:  # any error fails the test, after the ingest is collected
                errors.append(f"{type(exc).__name__}: {exc}")
        out, err = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, err
    assert not errors, errors[:3]
    print(f"\nUI asks {asked}, Python searches {searched}, errors {len(errors)}")
    assert asked >= 5 and searched >= 15
    assert py_qa.check().ok and len(py_qa.sources()) == N_SQUAD + 5
