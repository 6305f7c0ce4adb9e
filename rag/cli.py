"""The `rag` command line. Thin: parse arguments, call `DocQA`, print.

Errors from the library (`RagError`) become one red line and exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
import typer.core


class _Group(typer.core.TyperGroup):
    """Turns our errors into click errors: one readable line and exit code 1, also under CliRunner."""

    def invoke(self, ctx):
        from rag.core.errors import RagError

        try:
            return super().invoke(ctx)
        except RagError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True,
                  help="Ask questions of your documents, with citations.")

HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="Data directory (default $RAG_HOME or the user data dir).")]
CollOpt = Annotated[Optional[str], typer.Option("--collection", "-c", help="Collection name (default `default`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _open(home: Path | None, collection: str | None, **overrides):
    from rag.serve.api import DocQA

    # commands that answer start the warm-up themselves (`chat`, `ui`, `serve`); the others never need the LLM
    return DocQA.open(home=home, collection=collection, warm=False, **overrides)


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest (recursively).")],
    sync: Annotated[bool, typer.Option("--sync", help="Also remove documents whose files are gone from these folders.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Then keep following the folders: new and changed files are "
                                        "ingested, deleted ones removed, renames re-keyed (Ctrl-C stops).")] = False,
    home: HomeOpt = None, collection: CollOpt = None, as_json: JsonOpt = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait while another ingest writes to this collection.")] = 30.0,
    reread: Annotated[bool, typer.Option("--reread", help="Read unchanged files again too (after upgrading: a newer "
                                         "version may read them better, e.g. tables in PDFs).")] = False,
):
    """Parse, chunk, embed and store documents; unchanged files are skipped.

    Ctrl-C or SIGTERM stops after the batch being written: what was stored is kept,
    and running the same command again finishes the rest.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from rag.serve.interrupt import stop_on_signals

    if watch and not all(p.is_dir() for p in paths):
        raise typer.BadParameter("--watch follows folders: give folders only", param_hint="PATHS")
    qa = _open(home, collection)
    if watch:
        _watch_folders(qa, paths, as_json)
        return
    console = _console()
    with Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=_console_err(), transient=True,
                  disable=as_json) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=Path(path).name[:40])

        with stop_on_signals(qa.ingestor.request_stop):
            report = qa.ingest(paths, sync=sync, progress=progress, lock_timeout=wait, reread=reread)
    _print_report(console, report, as_json)
    if report.interrupted:
        _exit_interrupted(report)


def _print_report(console, report, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"summary": report.summary(), "interrupted": report.interrupted,
                          "files": [vars(f) for f in report.files]}, indent=2), flush=True)
        return
    for f in report.files:
        path = _printable(f.path)  # a file name may hold newlines or terminal escape sequences
        if f.status == "skipped":
            console.print(f"skipped  {path}: {f.reason}", markup=False, style="yellow")
        elif f.status in ("added", "updated", "removed", "renamed"):
            note = f": {f.reason}" if f.reason else ""  # e.g. scanned pages left out, or where a rename came from
            console.print(f"{f.status:8} {path} ({f.chunks} chunks){note}", markup=False)
        elif f.status == "interrupted" and f.reason != "not read before the stop":
            console.print(f"interrupted {path}: {f.reason}", markup=False, style="yellow")
    console.print(report.summary(), markup=False)


def _printable(text: str) -> str:
    """Control characters shown as escapes (`\\n`, `\\x1b`), so a name cannot break or recolour the output."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def _exit_interrupted(report) -> None:
    import signal

    kept = report.count("added") + report.count("updated")
    unread = sum(1 for f in report.files if f.status == "interrupted" and f.reason == "not read before the stop")
    partial = report.count("interrupted") - unread
    click.echo(
        f"stopped by {report.interrupted}: {kept} documents stored before the stop are kept and searchable; "
        f"{partial} partly stored and {unread} not read: run the same command again to finish", err=True)
    code = getattr(signal, report.interrupted, None)
    raise typer.Exit(128 + int(code) if code is not None else 1)


@app.command()
def check(
    repair: Annotated[bool, typer.Option("--repair", help="Fix what is found: finish or remove interrupted documents, rebuild BM25.")] = False,
    home: HomeOpt = None, collection: CollOpt = None, as_json: JsonOpt = False,
):
    """Verify the store and the BM25 index agree; exit code 1 if they do not."""
    qa = _open(home, collection)
    report = qa.check(repair=repair)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        console = _console()
        for line in report.repaired:
            console.print(f"repaired: {line}", markup=False)
        for p in report.problems[:50]:
            console.print(f"{p.kind}: {p.source + ': ' if p.source else ''}{p.detail}", markup=False)
        if len(report.problems) > 50:
            console.print(f"... and {len(report.problems) - 50} more", markup=False)
        console.print(report.summary(), markup=False)
    if not report.ok:
        raise typer.Exit(1)


def _watch_folders(qa, folders: list[Path], as_json: bool, stop=None) -> None:
    """Sync each folder, then follow them until Ctrl-C (or until `stop`, an Event, is set)."""
    import threading

    from rag.ingest.watch import FolderWatcher

    console = _console()
    stop = stop or threading.Event()
    watchers = [FolderWatcher(qa, f, on_batch=lambda r: _print_report(console, r, as_json)) for f in folders]
    try:
        for w in watchers:
            _print_report(console, w.start(), as_json)
            if not as_json:
                console.print(f"watching {w.folder} (Ctrl-C stops)", markup=False)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for w in watchers:
            w.stop()


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[Optional[int], typer.Option("-k", min=1, help="How many passages (default $RAG_RETRIEVAL__K, 5).")] = None,
    source: Annotated[Optional[list[str]], typer.Option("--source", "-s", help="Only search these documents.")] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="hybrid, dense or bm25 (default $RAG_RETRIEVAL__MODE).")] = None,
    home: HomeOpt = None, collection: CollOpt = None, as_json: JsonOpt = False,
):
    """Show the passages most relevant to a query."""
    qa = _open(home, collection)
    chunks = qa.retrieve(query, k=k, sources=source, mode=mode)
    if as_json:
        print(json.dumps([c.to_dict() for c in chunks], indent=2, ensure_ascii=False))
        return
    console = _console()
    if not chunks:
        console.print("no matching passages")
    for i, c in enumerate(chunks, start=1):
        where = display_source(c.source) + (f" p.{c.page}" if c.page else "") + (" (OCR)" if c.ocr else "")
        console.print(f"[bold][{i}][/] {c.score:.4f}  {where}", markup=True)
        console.print("    " + " ".join(c.text.split())[:400], markup=False)


@app.command()
def sources(home: HomeOpt = None, collection: CollOpt = None, as_json: JsonOpt = False):
    """List the indexed documents."""
    qa = _open(home, collection)
    items = qa.sources()
    if as_json:
        print(json.dumps([vars(s) for s in items], indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table("source", "title", "chunks", "ingested", box=None)
    for s in items:
        table.add_row(display_source(s.source), s.title[:50], str(s.chunks), s.ingested_at)
    console = _console()
    console.print(table)
    console.print(f"{len(items)} documents, {sum(s.chunks for s in items)} chunks")


@app.command()
def delete(
    source: Annotated[str, typer.Argument(help="A document as listed by `rag sources` (or its path).")],
    home: HomeOpt = None, collection: CollOpt = None,
):
    """Remove one document from the index."""
    qa = _open(home, collection)
    resolved = qa.resolve_source(source)
    n = qa.delete(resolved)
    _console().print(f"removed {resolved} ({n} chunks)", markup=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    k: Annotated[Optional[int], typer.Option("-k", help="Passages to retrieve.")] = None,
    source: Annotated[Optional[list[str]], typer.Option("--source", "-s", help="Only use these documents.")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print tokens as they are generated.")] = True,
    home: HomeOpt = None, collection: CollOpt = None, as_json: JsonOpt = False,
):
    """Answer a question from the documents, citing passages."""
    qa = _open(home, collection)
    qa.warm(background=True)  # the question waits for the saved prompt prefix, not to read it itself
    answer = _run_answer(qa, question, None, k=k, sources=source, live=stream and not as_json)
    if as_json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_answer(answer)


@app.command()
def chat(
    k: Annotated[Optional[int], typer.Option("-k", help="Passages to retrieve.")] = None,
    home: HomeOpt = None, collection: CollOpt = None,
):
    """A conversation in the terminal; follow-up questions work. Empty line or Ctrl-D ends it."""
    qa = _open(home, collection)
    console = _console()
    console.print(f"[dim]{qa.describe_llm()} · collection {qa.settings.collection} · empty line to quit[/]", markup=True)
    qa.warm(background=True)  # the model loads and reads its fixed prompt text while you type
    previous = None
    while True:
        try:
            question = console.input("[bold]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        previous = _run_answer(qa, question, previous, k=k, sources=None, live=True)
        print_answer(previous)


@app.command()
def ui(
    host: Annotated[Optional[str], typer.Option("--host", help="Address to bind (default 127.0.0.1; others need auth).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port (default 7860).")] = None,
    home: HomeOpt = None, collection: CollOpt = None,
):
    """Serve the browser UI."""
    from ui.app import serve

    serve(_open(home, collection).settings, host=host, port=port)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option("--host", help="Address to bind (default 127.0.0.1; others need RAG_API__TOKENS and TLS: RAG_API__SSL_CERTFILE/_KEYFILE).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port (default 8800).")] = None,
    home: HomeOpt = None, collection: CollOpt = None,
):
    """Serve the HTTP API: OpenAI-compatible chat completions with citations, search, documents (docs/api.md)."""
    _require("fastapi", "uvicorn")
    from rag.serve.http import serve as run_server

    run_server(_open(home, collection).settings, host=host, port=port)


@app.command()
def mcp(
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP at /mcp instead of stdio.")] = False,
    host: Annotated[Optional[str], typer.Option("--host", help="With --http: address to bind (others need RAG_API__TOKENS and TLS: RAG_API__SSL_CERTFILE/_KEYFILE).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="With --http: port (default 8801).")] = None,
    home: HomeOpt = None, collection: CollOpt = None,
):
    """Serve the MCP tools search, ask and list_sources (stdio by default; docs/api.md)."""
    _require("mcp", *(("uvicorn", "fastapi") if http else ()))
    from rag.serve.mcp import serve as run_mcp

    run_mcp(_open(home, collection).settings, http=http, host=host, port=port)


def _require(*modules: str) -> None:
    import importlib.util

    from rag.core.errors import ModelNotInstalledError

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ModelNotInstalledError(name, "pip install 'rag[api]'")


def _run_answer(qa, question: str, history, *, k, sources, live: bool):
    from rag.core.types import Answer, Evidence, Waiting

    final, streamed = None, False
    for event in qa.stream(question, history=history, k=k, sources=sources):
        if isinstance(event, Answer):
            final = event
        elif isinstance(event, Evidence):
            if live and event.quote:
                print(f"(best match, not yet an answer: {event.quote})", flush=True)
        elif isinstance(event, Waiting):
            if live:
                print(f"({event.ahead} question{'s' if event.ahead != 1 else ''} ahead of yours)", flush=True)
        elif live:
            streamed = True
            print(event, end="", flush=True)
    if streamed:
        print("\n")  # the verified answer with citations follows the raw stream
    return final


def print_answer(answer) -> None:
    """The answer, then each citation with its source and quote."""
    console = _console()
    if answer.standalone_question and answer.standalone_question != answer.question:
        console.print(f"[dim](searched for: {answer.standalone_question})[/]", markup=True)
    if answer.abstained:
        console.print(answer.text, markup=False)
        if answer.passages:
            console.print("[dim]Closest passages looked at:[/]", markup=True)
            for c in answer.passages[:3]:
                console.print(f"  - {display_source(c.source)}: " + " ".join(c.text.split())[:160] + "…", markup=False)
        return
    console.print(answer.text, markup=False)
    for c in answer.citations:
        where = display_source(c.source) + (f" p.{c.page}" if c.page else "") + (" (OCR)" if c.ocr else "")
        flag = "" if c.supported else "  (weak support)"
        console.print(f"  [{c.n}] {where} · \"{' '.join(c.quote.split())}\"{flag}", markup=False)
    t = answer.timings
    if t:
        console.print(f"[dim]retrieval {t.get('retrieval_ms', 0):.0f} ms · first token {t.get('first_token_ms', 0) / 1000:.1f} s"
                      f" · {t.get('tokens_per_s', 0):.1f} tokens/s[/]", markup=True)


@app.command()
def provision(home: HomeOpt = None, llm: Annotated[bool, typer.Option("--llm/--no-llm", help="Also assemble the local LLM.")] = True):
    """Prepare the offline models (embedder, tiktoken encodings, local LLM)."""
    from rag.models.provision import provision_all

    settings = _open(home, None).settings
    for name, path in provision_all(settings, include_llm=llm).items():
        _console().print(f"{name:12} {path}", markup=False)


@app.command("eval")
def eval_cmd(
    dataset: Annotated[Optional[Path], typer.Option("--dataset", help="Folder with corpus.jsonl (or documents.json, read from --files) and questions.jsonl.")] = None,
    retrieval_only: Annotated[bool, typer.Option("--retrieval-only", help="Measure retrieval only (no LLM).")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N questions (after shuffling with --seed).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Shuffle questions with this seed before --limit.")] = None,
    llm: Annotated[Optional[str], typer.Option("--llm", help="Chat model provider: local, openai or fake.")] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="Retrieval mode: hybrid, dense or bm25.")] = None,
    k: Annotated[Optional[int], typer.Option("--k", "-k", help="Passages per answer (default retrieval.k).")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="Only the questions of this split (dev or test; squad-dev-mini: dev or seen): each question's own 'split', else the dataset's split.json. A file-backed dataset ingests only that split's documents.")] = None,
    kind: Annotated[Optional[str], typer.Option("--kind", help="Only the questions of this kind (table, steps, definition, heading, fact).")] = None,
    files: Annotated[Optional[Path], typer.Option("--files", help="Where a file-backed dataset's documents are (<doc_id>.<ext>; default ~/.cache/rag-evals/<dataset>/files).")] = None,
    qids: Annotated[Optional[Path], typer.Option("--qids", help="Only the questions whose qid is listed in this file (one a line).")] = None,
    gold_passages: Annotated[bool, typer.Option("--gold-passages", help="Answer from each question's gold documents only: the reader's ceiling, retrieval cannot miss.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write metrics and per-question results as JSON here.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a Markdown report (and a PNG chart beside it) here.")] = None,
    compare: Annotated[Optional[tuple[Path, Path]], typer.Option("--compare", help="Print the metric differences of two --out files (A B).")] = None,
    home: HomeOpt = None,
):
    """Evaluate on a dataset folder, or compare two runs (see evals/README.md)."""
    if compare:
        from rag.eval.report import compare as compare_results
        from rag.eval.report import load_result

        a, b = compare
        _console().print(compare_results(load_result(a), load_result(b), (str(a), str(b))), markup=False)
        return
    if dataset is None:
        raise typer.BadParameter("give --dataset DIR (or --compare A.json B.json)", param_hint="--dataset")
    from rag.eval.runner import run_eval

    settings = _open(home, None).settings
    result = run_eval(settings, dataset, retrieval_only=retrieval_only, limit=limit, seed=seed, mode=mode,
                      llm=llm, k=k, progress=True, split=split, qids=_read_qids(qids) if qids else None,
                      gold_passages=gold_passages, kind=kind, files=files)
    _console().print(result.table(), markup=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        _console().print(f"wrote {out}", markup=False)
    if report:
        from rag.eval.report import write_report

        report.parent.mkdir(parents=True, exist_ok=True)
        md, png = write_report(result, report)
        _console().print(f"wrote {md} and {png}", markup=False)

# --- saved conversations and feedback ------------------------------------------------------------
conversations_app = typer.Typer(no_args_is_help=True, help="Saved conversations (from the UI or `DocQA.save_turn`).")
feedback_app = typer.Typer(no_args_is_help=True, help="Feedback on answers, and its export as an evaluation dataset.")
app.add_typer(conversations_app, name="conversations")
app.add_typer(feedback_app, name="feedback")
ConvArg = Annotated[str, typer.Argument(help="A conversation id as listed by `rag conversations list` (a unique prefix will do).")]


@conversations_app.command("list")
def conversations_list(home: HomeOpt = None, collection: CollOpt = None, as_json: JsonOpt = False):
    """List saved conversations, the most recently active first."""
    items = _open(home, collection).conversations()
    if as_json:
        print(json.dumps([{"id": c.conversation_id, "title": c.title, "turns": c.turn_count, "created_at": c.created_at,
                           "updated_at": c.updated_at} for c in items], indent=2, ensure_ascii=False))
        return
    console = _console()
    for c in items:
        console.print(f"{c.conversation_id}  {c.updated_at[:16].replace('T', ' ')}  {c.turn_count:>3} q  {c.title}",
                      markup=False)
    console.print(f"{len(items)} conversations", markup=False)


@conversations_app.command("show")
def conversations_show(conversation: ConvArg, home: HomeOpt = None, collection: CollOpt = None,
                       as_json: JsonOpt = False):
    """Print a saved conversation with its citations."""
    conv = _open(home, collection).conversation(conversation)
    if as_json:
        print(json.dumps({"id": conv.conversation_id, "title": conv.title, "created_at": conv.created_at,
                          "turns": [{"turn_id": t.turn_id, "question": t.question, **t.answer.to_dict()}
                                    for t in conv.turns]}, indent=2, ensure_ascii=False))
        return
    console = _console()
    console.print(f"[bold]{_rich_escape(conv.title)}[/] [dim]({conv.conversation_id})[/]", markup=True)
    for t in conv.turns:
        console.print(f"\n[bold]you>[/] {_rich_escape(t.question)}", markup=True)
        print_answer(t.answer)


@conversations_app.command("export")
def conversations_export(
    conversation: ConvArg,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the Markdown here (default: print it).")] = None,
    home: HomeOpt = None, collection: CollOpt = None,
):
    """Export a conversation as Markdown, with the cited passages."""
    md = _open(home, collection).export_conversation(conversation)
    if out is None:
        print(md, end="")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md, encoding="utf-8")
    _console().print(f"wrote {out}", markup=False)


@conversations_app.command("rename")
def conversations_rename(conversation: ConvArg, title: Annotated[str, typer.Argument(help="The new title.")],
                         home: HomeOpt = None, collection: CollOpt = None):
    """Rename a saved conversation."""
    conv = _open(home, collection).rename_conversation(conversation, title)
    _console().print(f"renamed {conv.conversation_id}: {conv.title}", markup=False)


@conversations_app.command("delete")
def conversations_delete(conversation: ConvArg, home: HomeOpt = None, collection: CollOpt = None):
    """Delete a saved conversation (feedback given on its answers is kept)."""
    qa = _open(home, collection)
    conv = qa.conversation(conversation)
    qa.delete_conversation(conv.conversation_id)
    _console().print(f"deleted {conv.conversation_id}: {conv.title}", markup=False)


@feedback_app.command("list")
def feedback_list(home: HomeOpt = None, collection: CollOpt = None, as_json: JsonOpt = False):
    """List the feedback given on answers, newest first."""
    items = _open(home, collection).feedback_items()
    if as_json:
        print(json.dumps([{"id": f.feedback_id, "rating": f.rating, "question": f.question, "history": list(f.history),
                           "comment": f.comment, "correction": f.correction, "turn_id": f.turn_id,
                           "created_at": f.created_at, "answer": f.answer.to_dict()} for f in items],
                         indent=2, ensure_ascii=False))
        return
    console = _console()
    for f in items:
        extra = "".join(f"  [{k}: {v}]" for k, v in (("comment", f.comment), ("correction", f.correction)) if v)
        console.print(f"{f.feedback_id}  {f.thumbs:4}  {f.question}{extra}", markup=False)
    console.print(f"{len(items)} ratings", markup=False)


@feedback_app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write (questions.jsonl, corpus.jsonl, review.jsonl).")],
    home: HomeOpt = None, collection: CollOpt = None,
):
    """Write the feedback as an evaluation dataset: `rag eval --dataset DIR` runs on it."""
    result = _open(home, collection).export_feedback(out)
    console = _console()
    console.print(result.summary(), markup=False)
    if result.needs_review:
        console.print(f"{result.needs_review} answers were marked wrong without a correction: add their gold answers "
                      f"from {out / 'review.jsonl'} to questions.jsonl by hand", markup=False)
    if not result.questions:
        console.print("no question to evaluate yet: rate answers up, or give corrections", markup=False)


def _rich_escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
def _read_qids(path: Path) -> list[str]:
    from rag.eval.datasets import read_qids

    return read_qids(path)


def display_source(source: str) -> str:
    """A path relative to the working directory when it is under it."""
    try:
        return Path(source).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return source


def _console_err():
    from rich.console import Console

    return Console(stderr=True)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    app(args=argv, prog_name="rag")


if __name__ == "__main__":
    main()
