"""Helpers for the robustness tests: real `rag` subprocesses on fake embeddings, corpora, snapshots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import FAKE_ENV

REPO = Path(__file__).resolve().parents[2]
SQUAD = REPO / "evals" / "datasets" / "squad-dev-mini" / "corpus.jsonl"


def rag_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **FAKE_ENV, "RAG_HOME": str(home), "PYTHONPATH": str(REPO), **extra}
    return env


def start_rag(home: Path, *args: str, delay: float = 0.0, log: Path | None = None, **extra: str) -> subprocess.Popen:
    """`rag <args>` as a real process (fake embeddings, `delay` seconds per embedded batch)."""
    env = rag_env(home, RAG_TEST_EMBED_DELAY=str(delay), **extra)
    if log is not None:
        env["RAG_TEST_EMBED_LOG"] = str(log)
    return subprocess.Popen([sys.executable, "-m", "tests.robustness.slow_cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_rag(home: Path, *args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    proc = start_rag(home, *args, **kw)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def embed_calls(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def squad_corpus(folder: Path, n: int = 600) -> Path:
    """The first `n` squad-dev-mini paragraphs, one .txt file each (title line, blank line, text)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(SQUAD, encoding="utf-8") as fh:
        for i, line in zip(range(n), fh):
            row = json.loads(line)
            (folder / f"p{i:04d}.txt").write_text(f"{row['title'].replace('_', ' ')}\n\n{row['text']}\n", encoding="utf-8")
    return folder


def open_qa(home: Path, **overrides):
    from rag.serve.api import DocQA

    return DocQA.open(home=home, environ={}, embedding={"provider": "fake", "model_name": "fake"},
                      llm={"provider": "fake"}, **overrides)


def snapshot(qa) -> dict:
    """What must be identical between an interrupted-then-resumed and an uninterrupted ingest."""
    chunks = {sc.chunk.chunk_id: (sc.chunk.source, sc.chunk.text, sc.index, sc.total, sc.content_hash)
              for sc in qa.store.scan()}
    qa.retriever.ensure_lexical_current()
    postings = {cid: (source, tuple(tokens)) for cid, (source, tokens) in qa.lexical.postings().items()}
    out = {"chunks": chunks, "postings": postings, "count": qa.store.count()}
    if qa.store.sentences is not None:  # rag.index.sentence_view: which chunks have how many sentence vectors
        got = qa.store.sentences._collection.get(include=["metadatas"])
        counts: dict[str, int] = {}
        for meta in got["metadatas"]:
            counts[meta["chunk_id"]] = counts.get(meta["chunk_id"], 0) + 1
        out["sentences"] = counts
    return out


def run_measured(home: Path, *args: str, out_dir: Path, timeout: float = 600, **extra: str):
    """Run `rag <args>`; (returncode, peak RSS of the process in MB, stdout, stderr)."""
    import signal

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "stdout", "w") as out, open(out_dir / "stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "rag.cli", *args], cwd=REPO, env=rag_env(home, **extra),
                                stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.send_signal(signal.SIGKILL)
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, (out_dir / "stdout").read_text(), (out_dir / "stderr").read_text()
