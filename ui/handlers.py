"""The browser UI's callbacks: a thin client of `DocQA`.

Callbacks parse what the page sends, call one DocQA method, and render the result
(`ui.render`). Errors the user can act on (`RagError`) are shown in the page;
anything else surfaces as `gr.Error`. The page that calls them: `ui.layout`.
"""

from __future__ import annotations

import html
import logging
import re
import time
from pathlib import Path

import gradio as gr

from rag.core.config import UISettings
from rag.core.errors import RagError
from rag.core.types import Answer, Citation, Evidence, FileResult, Waiting
from rag.serve.api import DocQA
from rag.serve.collections import Collections, upload_limit  # noqa: F401 -- upload_limit: ui.app
from rag.serve.http import (
    is_loopback,  # one rule for the UI and the HTTP API (fastapi comes with gradio)
)
from ui.access import LoginGuard
from ui.render import (
    EMPTY_CHAT,
    EMPTY_SOURCES,
    Turn,
    display_name,
    render_conversation,
    render_model_status,
    render_page_error,
    render_page_view,
    render_sources,
)

log = logging.getLogger(__name__)

STREAM_EVERY_S = 0.05  # re-render the streaming answer at most this often (the first token always at once)


class Handlers:
    """The callbacks, around one `DocQA` per collection (all sharing the models of the first)."""

    def __init__(self, qa: DocQA, guard: LoginGuard | None = None):
        self.base = qa
        self.guard = guard  # None: no login, everyone may do everything (loopback use)
        self._collections = Collections(qa)
        self._watchers: dict[tuple[str, str], object] = {}  # (collection, folder) -> FolderWatcher

    # --- roles ---------------------------------------------------------------------------
    def role(self, request: gr.Request | None) -> str:
        """`editor` or `reader`: the logged-in user's role (everyone is an editor without a login)."""
        if self.guard is None:
            return "editor"
        return self.guard.role(getattr(request, "username", None))

    def user(self, request: gr.Request | None) -> str:
        """Whose conversations and feedback these are: the signed-in user, "" without a login (loopback use)."""
        if self.guard is None:
            return ""
        name = getattr(request, "username", None)
        if not name:  # a login is configured, so Gradio signed this request in; never fall back to "everyone"
            raise gr.Error("sign in first: conversations belong to the signed-in user")
        return str(name)

    def require_editor(self, request: gr.Request | None, action: str) -> None:
        if self.role(request) != "editor":
            raise gr.Error(notice(f"{action} needs the editor role; "
                                  f"{getattr(request, 'username', None) or 'this user'} is a reader"))

    def require_existing(self, collection: str | None, request: gr.Request | None, text=None) -> None:
        """Readers may not create collections by naming a new one."""
        name = (collection or "").strip()
        if name and self.role(request) != "editor" and name not in self._surface(self.collections):
            raise gr.Error((text or notice)(f"collection {name!r} does not exist, "
                                            "and creating one needs the editor role"))

    # --- collections ---------------------------------------------------------------------
    def qa_for(self, collection: str | None) -> DocQA:
        """The DocQA of `collection`, opened on first use with the same settings and models."""
        return self._collections.get(collection)

    def collections(self) -> list[str]:
        """Names of the collections in the store, and any opened in this process."""
        return sorted(set(self._collections.names()) | {self._collections.default})

    # --- chat ----------------------------------------------------------------------------
    def chat(self, question: str, turns: list[Turn] | None, k: float, sources: list[str] | None,
             collection: str | None, request: gr.Request = None):
        """Stream one answer into the conversation; yields (textbox, conversation, sources panel, turns)."""
        turns = list(turns or [])
        question = (question or "").strip()
        self.require_existing(collection, request)
        if not question:
            gr.Warning("Type a question first.")
            yield gr.update(), render_conversation(turns), gr.update(), turns
            return
        previous = next((t.answer for t in reversed(turns) if t.answer is not None), None)
        turn = Turn(question)
        turns.append(turn)
        yield "", render_conversation(turns), render_sources(None, searching=True), turns
        try:
            qa = self.qa_for(collection)
            shown = 0.0
            for event in qa.stream(question, history=previous, k=int(k) if k else None, sources=sources or None):
                if isinstance(event, Answer):
                    turn.answer, turn.partial = event, ""
                    continue
                if isinstance(event, Evidence):  # within a second: what was found, before any answer
                    turn.evidence = event
                    yield gr.update(), render_conversation(turns), render_sources(event), turns
                    continue
                if isinstance(event, Waiting):
                    turn.ahead = event.ahead
                    yield gr.update(), render_conversation(turns), gr.update(), turns
                    continue
                turn.partial += event
                now = time.monotonic()
                if now - shown >= STREAM_EVERY_S:
                    shown = now
                    yield gr.update(), render_conversation(turns), gr.update(), turns
            if turn.answer is None:
                raise RuntimeError("the answer stream ended without a final answer")
        except RagError as exc:
            turn.error = str(exc)
            gr.Warning(notice(str(exc)))
            yield gr.update(), render_conversation(turns), render_sources(None), turns
            return
        except Exception as exc:
            log.exception("answering %r failed", question)
            turn.error = f"unexpected error: {exc}"
            yield gr.update(), render_conversation(turns), render_sources(None), turns
            raise gr.Error(notice(f"unexpected error: {exc}")) from exc
        yield gr.update(), render_conversation(turns), render_sources(turn.answer), turns

    def model_status(self):
        """(status line, timer): the language model's state; the timer stops polling once it is settled."""
        status = self.base.status()
        return render_model_status(status, self.base.warm_error), gr.Timer(active=status == "loading")

    def page_view(self, turns: list[Turn] | None, collection: str | None, evt: gr.EventData,
                  request: gr.Request = None) -> str:
        """A citation of a PDF passage was opened: its page as a picture, the quote highlighted (or why not).

        The browser only says which of this session's citations it opened (`cite-<turn>-<n>`); the file and
        the page come from the stored passage (`DocQA.page_image`).
        """
        cite = str((getattr(evt, "_data", None) or {}).get("cite", ""))
        c = citation_of(turns, cite)
        if c is None:
            return render_page_error(None, "this citation is not in the conversation any more: ask again")
        self.require_existing(collection, request)
        try:
            image = self.qa_for(collection).page_image(c.chunk_id, c.quote)
        except RagError as exc:
            return render_page_error(c, str(exc))
        except Exception as exc:  # shown where the page would be; the log has the traceback
            log.exception("showing the page of %s failed", c.source)
            return render_page_error(c, f"unexpected error: {exc}")
        return render_page_view(cite, c, image)

    def new_conversation(self):
        return EMPTY_CHAT, EMPTY_SOURCES, []

    def ask_api(self, question: str, k: int | None = None, sources: list[str] | None = None,
                collection: str | None = None, history: list[list[str]] | None = None,
                request: gr.Request = None) -> dict:
        """Answer one question; returns the answer as JSON. Pass the returned `history` back for a follow-up.

        Args:
            question: the question.
            k: passages to retrieve (default: the configured `retrieval.k`).
            sources: only use these documents (as listed in the Documents tab).
            collection: the collection to ask (default: the one the UI was started with).
            history: the conversation so far, `[[user, assistant], ...]`.
        """
        # an API client reads these messages as text, not in a pop-up: not escaped
        self.require_existing(collection, request, text=str)
        pairs = [tuple(p) for p in history or []] or None
        answer = self._surface(lambda: self.qa_for(collection).ask(question, history=pairs, k=int(k) if k else None,
                                                                   sources=sources or None), text=str)
        out = answer.to_dict()
        out["history"] = [list(p) for p in answer.history]
        return out

    # --- documents -----------------------------------------------------------------------
    def upload(self, files: list[str] | None, collection: str | None, request: gr.Request = None,
               progress=gr.Progress()):
        """Store and ingest uploaded files; returns (results table, documents table, sources choices, delete choices, file input)."""
        files = [f for f in (files or []) if f]
        try:
            self.require_editor(request, "uploading")
        except gr.Error:
            _forget_temp_copies(files)
            raise
        if not files:
            return (gr.update(), *self._document_views(collection), None)
        self._surface(self.qa_for, collection)
        progress(0, desc="saving uploads")

        def tick(done: int, total: int, path: str) -> None:
            progress((done - 1, total), desc=f"ingesting {Path(path).name}", unit="files")

        try:  # the HTTP API's upload path too (rag.serve.collections): the same limits either way
            results = self._surface(self._collections.add_uploads, collection, files, progress=tick)
        finally:
            _forget_temp_copies(files)
        progress(1.0, desc="done")
        gr.Info(notice(f"{len(files)} file{'s' if len(files) != 1 else ''}: {_summary(results)}"))
        return (result_rows(results), *self._document_views(collection), None)

    def delete(self, source: str | None, collection: str | None, request: gr.Request = None):
        """Remove one document; returns (documents table, sources choices, delete choices)."""
        self.require_editor(request, "deleting documents")
        if not source:
            gr.Warning("Choose a document to delete first.")
            return self._document_views(collection)
        # an uploaded file goes with its document (unless another collection holds it too)
        resolved, n = self._surface(self._collections.delete_document, collection, source)
        gr.Info(notice(f"removed {display_name(resolved)} ({n} chunks)"))
        return self._document_views(collection)

    def controls(self, request: gr.Request = None):
        """Page load: (upload, delete button, document to delete, folder to watch, watch, stop watching) usable
        only by editors (the server checks anyway)."""
        editor = self.role(request) == "editor"
        return tuple(gr.update(interactive=editor) for _ in range(6))

    def switch_collection(self, collection: str | None, request: gr.Request = None):
        """Open another collection; resets the conversation.

        Returns (collection dropdown, documents table, sources choices, delete choices,
        conversation, sources panel, turns).
        """
        name = (collection or "").strip() or self.base.settings.collection
        self.require_existing(name, request)
        self._surface(self.qa_for, name)
        return (gr.update(choices=self._surface(self.collections), value=name), *self._document_views(name),
                EMPTY_CHAT, EMPTY_SOURCES, [])

    def refresh(self, collection: str | None):
        """Page load: (collection dropdown, documents table, sources choices, delete choices)."""
        return (gr.update(choices=self._surface(self.collections)), *self._document_views(collection))

    def _document_views(self, collection: str | None):
        items = self._surface(lambda: self.qa_for(collection).sources())
        rows = [[display_name(s.source), s.title, s.chunks, s.ingested_at[:19].replace("T", " "), s.source] for s in items]
        choices = [(display_name(s.source), s.source) for s in items]
        return (gr.update(value=rows or None), gr.update(choices=choices, value=[]),
                gr.update(choices=choices, value=None))

    # --- watched folders -------------------------------------------------------------------
    def watch(self, folder: str | None, collection: str | None, request: gr.Request = None):
        """Follow a folder in the background, and remember it for the next start (editors only).

        Returns (watched-folders list, documents table, sources choices, delete choices, folder textbox).
        """
        from rag.ingest.watch import load_watched, save_watched

        self.require_editor(request, "watching a folder")
        self.require_existing(collection, request)
        folder = (folder or "").strip()
        if not folder:
            gr.Warning("Type the path of a folder on this machine first.")
            return (self.watched_markdown(), *self._document_views(collection), gr.update())
        name = (collection or "").strip() or self.base.settings.collection
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise gr.Error(f"{path} is not a folder on the machine running this app")
        refusal = watch_refusal(self.base.settings.ui, path)
        if refusal:
            raise gr.Error(refusal)
        report = self._surface(self._start_watcher, name, path)
        home = self.base.settings.home
        entries = [e for e in load_watched(home) if (e["collection"], e["folder"]) != (name, str(path))]
        save_watched(home, [*entries, {"folder": str(path), "collection": name}])
        if report is not None:
            gr.Info(f"watching {path}: {_summary(report.files)}")
        return (self.watched_markdown(), *self._document_views(collection), "")

    def unwatch(self, folder: str | None, collection: str | None, request: gr.Request = None):
        """Stop following a folder (its documents stay; editors only); returns the watched-folders list."""
        from rag.ingest.watch import load_watched, save_watched

        self.require_editor(request, "stopping a watch")
        name = (collection or "").strip() or self.base.settings.collection
        path = str(Path((folder or "").strip()).expanduser().resolve())
        watcher = self._watchers.pop((name, path), None)
        if watcher is not None:
            watcher.stop()
        home = self.base.settings.home
        save_watched(home, [e for e in load_watched(home) if (e["collection"], e["folder"]) != (name, path)])
        return self.watched_markdown()

    def resume_watched(self) -> None:
        """Start the watchers registered in an earlier run (folders that still exist)."""
        from rag.ingest.watch import load_watched

        for entry in load_watched(self.base.settings.home):
            path = Path(entry["folder"])
            if not path.is_dir():
                log.warning("not watching %s: no longer a folder", path)
                continue
            try:
                self._start_watcher(entry["collection"], path)
            except Exception:  # one bad entry must not keep the app from starting
                log.exception("cannot resume watching %s", path)

    def _start_watcher(self, collection: str, path: Path):
        from rag.ingest.watch import FolderWatcher

        key = (collection, str(path))
        if key in self._watchers and self._watchers[key].running:
            return None
        watcher = FolderWatcher(self.qa_for(collection), path)
        report = watcher.start()
        self._watchers[key] = watcher
        return report

    def stop_watchers(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()
        self._watchers.clear()

    def watched_markdown(self) -> str:
        """The folders being followed, with what their last batch did."""
        if not self._watchers:
            return "No folder is being watched."
        lines = []
        for (collection, folder), w in sorted(self._watchers.items()):
            state = "watching" if w.running else "stopped"
            last = f" · last change: {_summary(w.last_report.files)}" if w.last_report and w.last_report.files else ""
            error = f" · error: {w.error}" if w.error else ""
            lines.append(f"- {md_escape(folder)} → {md_escape(collection)} ({state}){md_escape(last)}{md_escape(error)}")
        return "\n".join(lines)

    @staticmethod
    def _surface(fn, *args, text=None, **kwargs):
        """Call `fn`; our errors become their message in the page, anything else an 'unexpected error'.

        Messages are escaped for the pop-up (`notice`) unless `text` says otherwise (API answers).
        """
        text = text or notice
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except RagError as exc:
            raise gr.Error(text(str(exc))) from exc
        except Exception as exc:
            log.exception("%s failed", getattr(fn, "__name__", fn))
            raise gr.Error(text(f"unexpected error: {exc}")) from exc


def citation_of(turns: list[Turn] | None, cite: str) -> Citation | None:
    """The citation with element id `cite` (`ui.render.cite_id`) among the answers of `turns`, or None."""
    m = re.fullmatch(r"cite-(\d+)-(\d+)", cite or "")
    turns = turns or []
    if not m or not 1 <= int(m.group(1)) <= len(turns):
        return None
    answer = turns[int(m.group(1)) - 1].answer
    return next((c for c in (answer.citations if answer else []) if c.n == int(m.group(2))), None)


def notice(text: str) -> str:
    """Text for a pop-up (`gr.Info/Warning/Error`): Gradio renders it as HTML, so file names and
    exception texts are escaped and show as written."""
    return html.escape(str(text), quote=True)


def watch_refusal(ui: UISettings, path: Path) -> str | None:
    """Why the UI may not watch `path` (it would expose the server's files to UI users), or None."""
    roots = [Path(r).expanduser().resolve() for r in ui.watch_roots]
    if roots:
        if any(path == r or path.is_relative_to(r) for r in roots):
            return None
        return f"{path} is outside the folders this app may watch (RAG_UI__WATCH_ROOTS)"
    if not is_loopback(ui.host):
        return ("watching folders from a UI reachable from other machines needs RAG_UI__WATCH_ROOTS "
                "(the folders it may watch); or use `rag ingest DIR --watch` on the server")
    return None


def _forget_temp_copies(files: list[str]) -> None:
    """Delete Gradio's temp copies of uploads: Gradio serves its cache, and we keep our own copy."""
    from gradio.utils import get_upload_folder

    cache = Path(get_upload_folder()).resolve()
    for f in files:
        path = Path(f).resolve()
        if path.is_relative_to(cache):
            path.unlink(missing_ok=True)


def result_rows(results: list[FileResult]) -> list[list]:
    return [[display_name(r.path), r.status, r.chunks, r.reason] for r in results]


def _summary(results: list[FileResult]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to do"


def md_escape(text: str) -> str:
    """Text inside our Markdown (the header, the watched-folders list): shown as written."""
    return html.escape(text).replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")
