"""Cost growth to 100k chunks: ingest rate, incremental ingest, search latency, BM25 and memory.

    python bench/scale.py [--sizes 1000,10000,100000] [--backend onnx-int8] [--queries 60]
                          [--no-server] [--no-llm] [--out bench/scale.json] [--plot bench/scale.png]

Documents are the 620 squad-dev-mini paragraphs, re-issued under new ids with
light rewording (sentences rotated, common words swapped for synonyms, a
record number in the title), so that BM25 and the embedder see distinct chunks of
real prose. One collection is grown through the sizes (each step ingests the
documents that bring it to the next size, in-memory rows through the same
ingest path as files), and at each size it measures:

  ingest     chunks/s of the step
  search     hybrid search (k=5, the default settings) p50/p95 over squad
             questions, embedded Chroma, and (at the sizes given, unless
             --no-server) the same collection served by `chroma run` on loopback
  bm25       index size on disk, and the time of its update in the step
  rss        resident memory of this process (embedding model loaded)

At the largest size, 1% new documents are ingested into the collection, and the
same documents alone into an empty one; the ratio is the cost of size (target <= 3).
Last, RSS with the local LLM loaded as well (unless --no-llm or not provisioned).
Prints a table, writes JSON and a PNG plot of the curves.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SYNONYMS = [("large", "big"), ("small", "little"), ("began", "started"), ("city", "town"), ("also", "as well"),
            ("however", "but"), ("many", "numerous"), ("important", "significant"), ("called", "named"),
            ("built", "constructed"), ("around", "about"), ("known", "recognised"), ("first", "earliest"),
            ("used", "employed"), ("became", "turned into"), ("several", "a number of"), ("later", "afterwards"),
            ("main", "principal"), ("during", "in the course of"), ("people", "persons")]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reword(text: str, title: str, variant: int) -> str:
    """A light, deterministic rewording of a paragraph: same facts, different wording and order."""
    rng = random.Random(variant * 7919 + len(text))
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    k = variant % len(sentences)
    sentences = sentences[k:] + sentences[:k]
    out = " ".join(sentences)
    for a, b in rng.sample(SYNONYMS, 6):
        out = re.sub(rf"\b{a}\b", b, out) if rng.random() < 0.5 else re.sub(rf"\b{b}\b", a, out)
    return out


def documents(paragraphs: list[dict], start: int):
    """An endless stream of reworded documents from variant `start` on."""
    variant = start
    while True:
        p = paragraphs[variant % len(paragraphs)]
        cycle = variant // len(paragraphs) + 1
        # the title is in every chunk the embedder and BM25 see: with the record number, no two chunks are equal
        title = f"{p['title'].replace('_', ' ')} (record {cycle})"
        yield {"source": f"doc-{variant:07d}", "title": title, "text": reword(p["text"], title, cycle)}
        variant += 1


class NeighbourVectors:
    """Real embeddings for the first `real_chunks` texts, then vectors borrowed from them.

    Embedding 100k chunks takes hours on a shared 2-core machine; the storage and
    search side does not care how a vector was computed, only how vectors are
    spread. Past `real_chunks`, a reworded chunk gets the real vector of a random
    earlier chunk of the same article plus noise (cosine ~0.97 to it, like a light
    rewording), so the collection keeps the clusters real text forms.
    """

    def __init__(self, real, real_chunks: int, seed: int = 0):
        self.real, self.real_chunks = real, real_chunks
        self.by_article: dict[str, list] = {}
        self.embedded = 0
        self.synthetic = 0
        self.rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        if name == "real":
            raise AttributeError(name)
        return getattr(self.real, name)

    @staticmethod
    def article(text: str) -> str:
        return re.sub(r" \(record \d+\)$", "", text.split("\n", 1)[0])

    def embed_documents(self, texts):
        if self.embedded < self.real_chunks:
            vectors = self.real.embed_documents(texts)
            self.embedded += len(texts)
            for t, v in zip(texts, vectors):
                self.by_article.setdefault(self.article(t), []).append(np.asarray(v, dtype=np.float32))
            return vectors
        out = []
        pool = [v for vs in self.by_article.values() for v in vs]
        for t in texts:
            base = self.by_article.get(self.article(t)) or pool
            v = base[self.rng.integers(len(base))] + self.rng.normal(0, 0.0125, len(pool[0])).astype(np.float32)
            out.append((v / np.linalg.norm(v)).tolist())
        self.synthetic += len(texts)
        return out

    def embed_query(self, text):
        return self.real.embed_query(text)


def timed_lexical(qa) -> list[float]:
    """Record the seconds of every BM25 update/rebuild of this DocQA."""
    spent: list[float] = []
    lex = qa.lexical
    for name in ("update", "rebuild"):
        real = getattr(lex, name)

        def wrapped(*a, _real=real, **kw):
            t = time.perf_counter()
            try:
                return _real(*a, **kw)
            finally:
                spent.append(time.perf_counter() - t)

        setattr(lex, name, wrapped)
    return spent


def search_latency(qa, questions: list[str]) -> tuple[float, float]:
    qa.retrieve(questions[0], k=5)  # warm: BM25 loaded, kernels warm
    times = []
    for q in questions:
        t = time.perf_counter()
        qa.retrieve(q, k=5)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_latency(qa, questions: list[str]) -> tuple[float, float]:
    """The same collection behind `chroma run` on loopback (a copy of the embedded folder)."""
    from rag.serve.api import DocQA

    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        exe = Path(shutil.which("chroma") or "chroma")
    path = Path(tempfile.mkdtemp(prefix="scale-server-"))
    shutil.copytree(qa.settings.home / "chroma", path / "data")
    port = free_port()
    proc = subprocess.Popen([str(exe), "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.3)
        remote = DocQA(qa.settings.model_copy(update={"chroma_url": f"http://127.0.0.1:{port}"}),
                       embeddings=qa.embeddings)
        # the BM25 index is derived data: the client keeps its own copy, here the one already built
        shutil.copytree(qa.lexical.directory, remote.lexical.directory, dirs_exist_ok=True)
        return search_latency(remote, questions)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--backend", default="onnx-int8")
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--real-chunks", type=int, default=10**9,
                    help="embed only this many chunks for real, then borrow vectors (see NeighbourVectors)")
    ap.add_argument("--no-server", action="store_true", help="skip the `chroma run` measurements")
    ap.add_argument("--no-llm", action="store_true", help="skip loading the local LLM for the RSS figure")
    ap.add_argument("--home", type=Path, help="data dir to build in (default: a temporary one, removed)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "scale.json")
    ap.add_argument("--plot", type=Path, default=REPO / "bench" / "scale.png")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from rag.core.config import load_settings
    from rag.serve.api import DocQA

    corpus = REPO / "evals/datasets/squad-dev-mini"
    paragraphs = [json.loads(l) for l in open(corpus / "corpus.jsonl")]
    questions = [json.loads(l)["question"] for l in open(corpus / "questions.jsonl")][: args.queries]
    tmp = Path(tempfile.mkdtemp(prefix="scale-"))
    home = args.home or tmp / "home"
    settings = load_settings(home=home, embedding={"backend": args.backend})  # RAG_CACHE etc. from the environment
    from rag.models.embedders.factory import make_embeddings

    vectors = NeighbourVectors(make_embeddings(settings), args.real_chunks)
    qa = DocQA(settings, embeddings=vectors if args.real_chunks < max(sizes) else None)
    lexical_spent = timed_lexical(qa)
    stream = documents(paragraphs, 0)
    # warm-up outside the timings: model, tokenizers and the store opened once
    from rag.models.tokenizer import get_encoding

    get_encoding(settings.chunking.encoding, settings.cache_dir)
    vectors.real.inner.embed_documents(["warm-up"]) if hasattr(vectors.real, "inner") else None
    qa.store.count()
    print(f"rss before loading anything: {rss_mb():.0f} MB", flush=True)

    results: list[dict] = []
    docs_total = 0
    try:
        for size in sizes:
            step_docs, step_chunks, step_seconds = 0, 0, 0.0
            lexical_spent.clear()
            while qa.store.count() < size:
                # documents for the chunks still missing, at the chunks per document seen so far (~1.5)
                per_doc = (qa.store.count() / docs_total) if docs_total else 1.5
                want = max(1, min(5000, math.ceil((size - qa.store.count()) / per_doc)))
                docs_total += want
                rows = [next(stream) for _ in range(want)]
                before = qa.store.count()
                t = time.perf_counter()
                report = qa.ingest_texts(rows)
                step_seconds += time.perf_counter() - t
                step_docs += report.count("added")
                step_chunks += qa.store.count() - before
                print(f"  {qa.store.count()} chunks ({step_chunks / step_seconds:.1f} chunks/s)", flush=True)
            n = qa.store.count()
            p50, p95 = search_latency(qa, questions)
            row = {"chunks": n, "documents": step_docs, "ingest_chunks_per_s": step_chunks / step_seconds,
                   "vectors": "real" if vectors.synthetic == 0 else f"{vectors.embedded} real, {vectors.synthetic} borrowed",
                   "search_p50_ms": p50, "search_p95_ms": p95,
                   "bm25_bytes": qa.lexical.size_bytes(), "bm25_update_s": sum(lexical_spent),
                   "rss_mb": rss_mb()}
            if not args.no_server:
                row["server_p50_ms"], row["server_p95_ms"] = server_latency(qa, questions)
            results.append(row)
            print(json.dumps(row), flush=True)

        # 1% new documents: into the largest collection, and the same documents alone
        n = qa.store.count()
        extra = documents(paragraphs, 10_000_000)
        rows = [next(extra) for _ in range(max(1, round(n / 100 / (n / docs_total))))]  # ~1% of the chunks
        vectors.real_chunks = 10**12  # the 1% is embedded for real, alone and into the collection alike
        alone = DocQA(load_settings(home=tmp / "alone", embedding={"backend": args.backend}))
        alone_spent = timed_lexical(alone)
        t = time.perf_counter()
        alone.ingest_texts(rows)
        alone_s = time.perf_counter() - t
        lexical_spent.clear()
        t = time.perf_counter()
        qa.ingest_texts(rows)
        into_s = time.perf_counter() - t
        incremental = {"collection_chunks": n, "new_documents": len(rows), "new_chunks": alone.store.count(),
                       "alone_s": alone_s, "into_collection_s": into_s, "ratio": into_s / alone_s,
                       "bm25_update_alone_s": sum(alone_spent), "bm25_update_into_s": sum(lexical_spent)}
        print(json.dumps(incremental), flush=True)

        llm_rss = None
        if not args.no_llm:
            from rag.models.chat.gguf import QWEN_GGUF_SHA256, QWEN_GGUF_SIZE, gguf_path
            from rag.models.files import is_verified

            if is_verified(gguf_path(settings.cache_dir), QWEN_GGUF_SIZE, QWEN_GGUF_SHA256):
                from rag.models.chat.llama_cpp import _get_llama, _llama_key

                s = settings.llm
                _get_llama(_llama_key(gguf_path(settings.cache_dir), s.n_ctx, s.n_threads, s.n_batch))
                llm_rss = rss_mb()
                print(f"rss with the local LLM loaded too: {llm_rss:.0f} MB", flush=True)
            else:
                print("local LLM not provisioned: RSS without it only (run `rag provision`)")
    finally:
        if args.home is None:
            shutil.rmtree(tmp, ignore_errors=True)

    out = {"backend": args.backend, "sizes": results, "incremental": incremental, "rss_with_llm_mb": llm_rss,
           "cpus": os.cpu_count()}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print_table(out)
    plot(out, args.plot)


def print_table(out: dict) -> None:
    print()
    head = f"{'chunks':>8} {'ingest/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'srv p50':>8} {'srv p95':>8} {'bm25 MB':>8} {'bm25 upd s':>10} {'RSS MB':>7}  vectors (ingest/s of a step with borrowed vectors excludes embedding)"
    print(head)
    for r in out["sizes"]:
        print(f"{r['chunks']:8d} {r['ingest_chunks_per_s']:9.1f} {r['search_p50_ms']:7.1f} {r['search_p95_ms']:7.1f} "
              f"{r.get('server_p50_ms', float('nan')):8.1f} {r.get('server_p95_ms', float('nan')):8.1f} "
              f"{r['bm25_bytes'] / 1e6:8.1f} {r['bm25_update_s']:10.2f} {r['rss_mb']:7.0f}  {r['vectors']}")
    inc = out["incremental"]
    print(f"1% new ({inc['new_chunks']} chunks, {inc['new_documents']} documents): alone {inc['alone_s']:.1f} s, "
          f"into {inc['collection_chunks']} chunks {inc['into_collection_s']:.1f} s, ratio {inc['ratio']:.2f} (target <= 3); "
          f"BM25 update {inc['bm25_update_alone_s']:.2f} s alone, {inc['bm25_update_into_s']:.2f} s into the collection")
    if out.get("rss_with_llm_mb"):
        print(f"RSS with the local LLM loaded too: {out['rss_with_llm_mb']:.0f} MB (target <= 3000)")


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = out["sizes"]
    x = [r["chunks"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    ax.plot(x, [r["search_p50_ms"] for r in rows], "o-", label="embedded p50")
    ax.plot(x, [r["search_p95_ms"] for r in rows], "o--", label="embedded p95")
    if any("server_p50_ms" in r for r in rows):
        ax.plot(x, [r.get("server_p50_ms") for r in rows], "s-", label="chroma run p50")
        ax.plot(x, [r.get("server_p95_ms") for r in rows], "s--", label="chroma run p95")
    ax.axhline(80, color="grey", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="chunks", ylabel="ms", title="hybrid search latency")
    ax.legend(fontsize=8)
    ax = axes[1]
    real = [r for r in rows if r.get("vectors", "real") == "real"]
    borrowed = [r for r in rows if r.get("vectors", "real") != "real"]
    ax.plot([r["chunks"] for r in real], [r["ingest_chunks_per_s"] for r in real], "o", label="embedded")
    ax.plot([r["chunks"] for r in borrowed], [r["ingest_chunks_per_s"] for r in borrowed], "x",
            label="borrowed vectors (pipeline without the model)")
    ax.legend(fontsize=8)
    ax.set(xscale="log", xlabel="chunks", ylabel="chunks/s", title=f"ingest rate of each step ({out['backend']})")
    ax.set_ylim(bottom=0)
    ax = axes[2]
    ax.plot(x, [r["rss_mb"] for r in rows], "o-", label="RSS MB")
    ax.plot(x, [r["bm25_bytes"] / 1e6 for r in rows], "s-", label="BM25 index MB")
    if out.get("rss_with_llm_mb"):
        ax.axhline(out["rss_with_llm_mb"], color="C3", ls="--", lw=1, label="RSS with LLM (largest)")
    ax.set(xscale="log", xlabel="chunks", ylabel="MB", title="memory and index size")
    ax.legend(fontsize=8)
    fig.suptitle(f"one machine, {out['cpus']} cores, shared with other jobs (latency spread = load)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--replot"]:  # bench/scale.py --replot scale.json scale.png
        data = json.loads(Path(sys.argv[2]).read_text())
        print_table(data)
        plot(data, Path(sys.argv[3]))
    else:
        main()
