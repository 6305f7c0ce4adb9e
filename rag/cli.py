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
        from rag.errors import RagError

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
    from rag.api import DocQA

    return DocQA.open(home=home, collection=collection, **overrides)


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest (recursively).")],
    sync: Annotated[bool, typer.Option("--sync", help="Also remove documents whose files are gone from these folders.")] = False,
    home: HomeOpt = None, collection: CollOpt = None, as_json: JsonOpt = False,
):
    """Parse, chunk, embed and store documents; unchanged files are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    qa = _open(home, collection)
    console = _console()
    with Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=_console_err(), transient=True,
                  disable=as_json) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=Path(path).name[:40])

        report = qa.ingest(paths, sync=sync, progress=progress)
    if as_json:
        print(json.dumps({"summary": report.summary(), "files": [vars(f) for f in report.files]}, indent=2))
        return
    for f in report.files:
        if f.status == "skipped":
            console.print(f"[yellow]skipped[/] {f.path}: {f.reason}", markup=True)
        elif f.status in ("added", "updated", "removed"):
            console.print(f"{f.status:8} {f.path} ({f.chunks} chunks)")
    console.print(report.summary())


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="How many passages.")] = 5,
    source: Annotated[Optional[list[str]], typer.Option("--source", "-s", help="Only search these documents.")] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="hybrid, dense or bm25.")] = None,
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
        where = display_source(c.source) + (f" p.{c.page}" if c.page else "")
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


def _run_answer(qa, question: str, history, *, k, sources, live: bool):
    from rag.types import Answer

    final, streamed = None, False
    for event in qa.stream(question, history=history, k=k, sources=sources):
        if isinstance(event, Answer):
            final = event
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
        where = display_source(c.source) + (f" p.{c.page}" if c.page else "")
        flag = "" if c.supported else "  (weak support)"
        console.print(f"  [{c.n}] {where} · \"{' '.join(c.quote.split())}\"{flag}", markup=False)
    t = answer.timings
    if t:
        console.print(f"[dim]retrieval {t.get('retrieval_ms', 0):.0f} ms · first token {t.get('first_token_ms', 0) / 1000:.1f} s"
                      f" · {t.get('tokens_per_s', 0):.1f} tokens/s[/]", markup=True)


@app.command()
def provision(home: HomeOpt = None, llm: Annotated[bool, typer.Option("--llm/--no-llm", help="Also assemble the local LLM.")] = True):
    """Prepare the offline models (embedder, tiktoken encodings, local LLM)."""
    from rag.provision import provision_all

    settings = _open(home, None).settings
    for name, path in provision_all(settings, include_llm=llm).items():
        _console().print(f"{name:12} {path}", markup=False)


@app.command("eval")
def eval_cmd(
    dataset: Annotated[Optional[Path], typer.Option("--dataset", help="Folder with corpus.jsonl and questions.jsonl.")] = None,
    retrieval_only: Annotated[bool, typer.Option("--retrieval-only", help="Measure retrieval only (no LLM).")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N questions (after shuffling with --seed).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Shuffle questions with this seed before --limit.")] = None,
    llm: Annotated[Optional[str], typer.Option("--llm", help="Chat model provider: local, openai or fake.")] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="Retrieval mode: hybrid, dense or bm25.")] = None,
    k: Annotated[Optional[int], typer.Option("--k", "-k", help="Passages per answer (default retrieval.k).")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="Only the questions of this split of the dataset's split.json (dev or test).")] = None,
    qids: Annotated[Optional[Path], typer.Option("--qids", help="Only the questions whose qid is listed in this file (one a line).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write metrics and per-question results as JSON here.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write a Markdown report (and a PNG chart beside it) here.")] = None,
    compare: Annotated[Optional[tuple[Path, Path]], typer.Option("--compare", help="Print the metric differences of two --out files (A B).")] = None,
    home: HomeOpt = None,
):
    """Evaluate on a dataset folder, or compare two runs (see evals/README.md)."""
    if compare:
        from rag.report import compare as compare_results, load_result

        a, b = compare
        _console().print(compare_results(load_result(a), load_result(b), (str(a), str(b))), markup=False)
        return
    if dataset is None:
        raise typer.BadParameter("give --dataset DIR (or --compare A.json B.json)", param_hint="--dataset")
    from rag.evaluate import run_eval

    settings = _open(home, None).settings
    result = run_eval(settings, dataset, retrieval_only=retrieval_only, limit=limit, seed=seed, mode=mode,
                      llm=llm, k=k, progress=True, split=split, qids=_read_qids(qids) if qids else None)
    _console().print(result.table(), markup=False)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        _console().print(f"wrote {out}", markup=False)
    if report:
        from rag.report import write_report

        report.parent.mkdir(parents=True, exist_ok=True)
        md, png = write_report(result, report)
        _console().print(f"wrote {md} and {png}", markup=False)

def _read_qids(path: Path) -> list[str]:
    from rag.evaluate import read_qids

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
