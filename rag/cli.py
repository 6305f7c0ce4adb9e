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
            raise click.ClickException(str(exc)) from exc


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
def provision(home: HomeOpt = None, llm: Annotated[bool, typer.Option("--llm/--no-llm", help="Also assemble the local LLM.")] = True):
    """Prepare the offline models (embedder, tiktoken encodings, local LLM)."""
    from rag.provision import provision_all

    settings = _open(home, None).settings
    for name, path in provision_all(settings, include_llm=llm).items():
        _console().print(f"{name:12} {path}", markup=False)


@app.command("eval")
def eval_cmd(
    dataset: Annotated[Path, typer.Option("--dataset", help="Folder with corpus.jsonl and questions.jsonl.")],
    retrieval_only: Annotated[bool, typer.Option("--retrieval-only", help="Measure retrieval only (no LLM).")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N questions (after shuffling with --seed).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Shuffle questions with this seed before --limit.")] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="Retrieval mode: hybrid, dense or bm25.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write metrics JSON here.")] = None,
    home: HomeOpt = None,
):
    """Evaluate on a dataset folder (see evals/README.md)."""
    from rag.evaluate import run_eval

    settings = _open(home, None).settings
    result = run_eval(settings, dataset, retrieval_only=retrieval_only, limit=limit, seed=seed, mode=mode,
                      progress=True)
    _console().print(result.table(), markup=False)
    if out:
        out.write_text(json.dumps(result.to_json(), indent=2))
        _console().print(f"wrote {out}", markup=False)


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
