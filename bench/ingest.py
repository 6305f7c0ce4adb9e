"""Ingest throughput: today's default vs the fast pipeline vs the textbook LangChain one, side by side.

    python bench/ingest.py [--docs N] [--rounds R] [--backends torch,onnx,onnx-int8] [--no-textbook]

Writes the squad-dev-mini paragraphs as .txt files (one file each), then, after a
warm-up of every pipeline (weights loaded, ONNX export provisioned), runs R
rounds, each pipeline once per round in turn, so that machine noise hits all alike:

  raw        SentenceTransformer.encode on exactly the texts the pipeline embeds
  torch      DocQA.ingest(folder) with the torch backend and no embedding cache: the default when the
             speed issue was filed
  <backend>  DocQA.ingest(folder) with that backend and a cold embedding cache (a fresh home)
  <backend>+sentences  the same with the sentence view on (rag.index.sentence_view: every sentence embedded too)
  textbook   read the files, RecursiveCharacterTextSplitter(1000, 200), HuggingFaceEmbeddings
             (the same model, loaded by path), Chroma.from_documents into a fresh folder

and prints per pipeline the median seconds for the whole folder, chunks/s, and the
ratios: speed-up over today's default (same chunks, target >= 2x) and over the
textbook pipeline on the same folder (wall time, target >= 2.5x; the textbook
makes fewer, larger chunks, so its chunks/s ratio is printed too). Then the
re-ingest of the unchanged folder (target >= 100x faster than the first), and the
ingest of one file of a repeated paragraph, where the cache embeds each distinct chunk once.
(The embedder reads "title + chunk", so boilerplate shared by files with different
titles is embedded once per title, not once overall.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ours(tmp: Path, name: str, folder: Path, backend: str, cache: bool, sentences: bool = False):
    from rag.core.config import load_settings
    from rag.serve.api import DocQA

    # a fresh home (empty store, BM25 and embedding cache), the provisioned models of the user's cache;
    # sentences=True: with the sentence view (rag.index.sentence_view, off by default), which embeds every sentence too
    defaults = load_settings()
    retrieval = {"sentence_weight": 0.25, "dense_weight": 0.25} if sentences else {}
    qa = DocQA(load_settings(home=tmp / name, cache=defaults.cache_dir,
                             embedding={"backend": backend, "cache": cache}, retrieval=retrieval))
    t = time.perf_counter()
    report = qa.ingest([folder])
    return time.perf_counter() - t, qa.store.count(), qa, report


def textbook(tmp: Path, name: str, folder: Path, model_path: Path):
    """The pipeline of the LangChain tutorials, as a user would write it."""
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    t = time.perf_counter()
    docs = [Document(page_content=p.read_text(), metadata={"source": str(p)}) for p in sorted(folder.glob("*.txt"))]
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    embeddings = HuggingFaceEmbeddings(model_name=str(model_path), model_kwargs={"device": "cpu"})
    Chroma.from_documents(chunks, embeddings, persist_directory=str(tmp / name), collection_name="bench",
                          client_settings=ChromaSettings(anonymized_telemetry=False, is_persistent=True,
                                                         persist_directory=str(tmp / name)))
    return time.perf_counter() - t, len(chunks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=620)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backends", default="onnx-int8", help="fast backends to time besides torch (comma-separated)")
    ap.add_argument("--no-textbook", action="store_true", help="skip the LangChain pipeline")
    ap.add_argument("--repeated-kb", type=int, default=300, help="size of the repeated-paragraph file")
    ap.add_argument("--repeated-only", action="store_true", help="only the repeated-paragraph file")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b and b != "torch"]

    from rag.core.config import load_settings
    from rag.index.retrieve import index_text
    from rag.models.embedders.files import embedding_model_path, ensure_onnx_embedding

    settings = load_settings()
    model_path = embedding_model_path(settings)
    if backends:
        ensure_onnx_embedding(settings)
    run_textbook = not args.no_textbook
    if run_textbook:
        try:
            import langchain_chroma  # noqa: F401, E401
            import langchain_huggingface
        except ImportError:
            print("textbook pipeline skipped: pip install langchain-huggingface langchain-chroma")
            run_textbook = False

    if args.repeated_only:
        fast = backends[-1] if backends else "torch"
        with tempfile.TemporaryDirectory() as tmp_name:
            warm = Path(tmp_name) / "warm"
            warm.mkdir()
            (warm / "w.txt").write_text("Warm-up: loads both models outside the timings.")
            for backend in {"torch", fast}:
                ours(Path(tmp_name), f"warm-{backend}", warm, backend, False)
            print_repeated(*repeated(Path(tmp_name), fast, args.repeated_kb), fast, args.repeated_kb)
        return
    rows = [json.loads(l) for l in open(REPO / "evals/datasets/squad-dev-mini/corpus.jsonl")][: args.docs]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "docs"
        folder.mkdir()
        for r in rows:
            (folder / f"{r['doc_id']}.txt").write_text(f"{r['title'].replace('_', ' ')}\n\n{r['text']}")

        # warm-up: loads weights, gives every pipeline warm kernels, yields the texts the pipeline embeds
        _, n, warm, report = ours(tmp, "warm-torch", folder, "torch", False)
        texts = [index_text(s.chunk) for s in warm.store.scan()]
        model = warm.embeddings.model
        for b in backends:
            ours(tmp, f"warm-{b}", folder, b, False)
        if run_textbook:
            textbook(tmp, "warm-textbook", folder, model_path)

        seconds: dict[str, list[float]] = {"raw": [], "torch": [], **{b: [] for b in backends},
                                           **{f"{b}+sentences": [] for b in backends}}
        if run_textbook:
            seconds["textbook"] = []
        textbook_chunks = 0
        for round_ in range(args.rounds):
            t = time.perf_counter()
            model.encode(texts, batch_size=settings.embedding.batch_size, normalize_embeddings=True)
            seconds["raw"].append(time.perf_counter() - t)
            s, count, qa, _ = ours(tmp, f"torch-{round_}", folder, "torch", False)
            assert count == n
            seconds["torch"].append(s)
            for b in backends:
                s, count, fast_qa, _ = ours(tmp, f"{b}-{round_}", folder, b, True)
                assert count == n
                seconds[b].append(s)
                s, count, _, _ = ours(tmp, f"{b}-sentences-{round_}", folder, b, True, sentences=True)
                assert count == n
                seconds[f"{b}+sentences"].append(s)
            if run_textbook:
                s, textbook_chunks = textbook(tmp, f"textbook-{round_}", folder, model_path)
                seconds["textbook"].append(s)
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in seconds.items()), flush=True)

        fast = backends[-1] if backends else "torch"
        t = time.perf_counter()
        again = (fast_qa if backends else qa).ingest([folder])
        again_s = time.perf_counter() - t
        assert again.count("unchanged") == report.count("added")

        s_plain, s_cached, n_rep = repeated(tmp, fast, args.repeated_kb)

    med = {k: statistics.median(v) for k, v in seconds.items()}
    print()
    print(f"corpus: {report.count('added')} files (squad-dev-mini paragraphs), {n} chunks in our pipeline"
          + (f", {textbook_chunks} in the textbook one" if run_textbook else ""))
    print(f"{'pipeline':18} {'seconds':>8} {'chunks/s':>9} {'vs torch':>9} {'vs textbook':>12}")
    for k, s in med.items():
        chunks = textbook_chunks if k == "textbook" else n
        vs_torch = med["torch"] / s if k not in ("raw", "textbook") else float("nan")
        vs_textbook = med["textbook"] / s if run_textbook and k != "raw" else float("nan")
        print(f"{k:18} {s:8.1f} {chunks / s:9.1f} {vs_torch:8.2f}x {vs_textbook:11.2f}x")
    print(f"(median of {args.rounds} rounds; 'vs' = how many times faster on the same folder)")
    if backends:
        print(f"{fast} pipeline / today's default (torch, no cache): {med['torch'] / med[fast]:.2f}x  (target >= 2x)")
    if run_textbook:
        print(f"{fast} pipeline / textbook LangChain, same folder:   {med['textbook'] / med[fast]:.2f}x  (target >= 2.5x)"
              f"; per chunk {(n / med[fast]) / (textbook_chunks / med['textbook']):.2f}x")
    print(f"torch pipeline / raw encode: {med['raw'] / med['torch']:.3f}")
    print(f"re-ingest unchanged: {again_s:.3f} s, first / re-ingest {med[fast] / again_s:.0f}x  (target >= 100x)")
    print_repeated(s_plain, s_cached, n_rep, fast, args.repeated_kb)


def repeated(tmp: Path, fast: str, kb: int):
    """One text file of a repeated paragraph (the issue's 10 MB case, smaller): every chunk text recurs."""
    folder = tmp / "repeated"
    folder.mkdir(exist_ok=True)
    paragraph = ("The quarterly report is attached for your review. Please confirm receipt by Friday. "
                 "Questions about the figures go to the finance desk on the third floor.\n\n")
    (folder / "repeated.txt").write_text(paragraph * (kb * 1024 // len(paragraph)))
    s_plain, n, _, _ = ours(tmp, "repeated-torch", folder, "torch", False)
    s_cached, _, qa, _ = ours(tmp, "repeated-fast", folder, fast, True)
    return s_plain, s_cached, n


def print_repeated(s_plain: float, s_cached: float, n: int, fast: str, kb: int) -> None:
    print(f"repeated paragraph, one {kb} KB file ({n} chunks): torch without cache {s_plain:.1f} s, "
          f"{fast} + cache {s_cached:.1f} s ({s_plain / s_cached:.1f}x)")


if __name__ == "__main__":
    main()
