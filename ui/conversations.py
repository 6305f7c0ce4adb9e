"""Saved conversations and answer feedback in the UI.

Every finished answer is saved (`DocQA.save_turn`) in a step chained after the
chat callback; the conversation id is kept in the session and in the browser's
localStorage (`gr.BrowserState`), so a reload reopens the conversation. The
Chat tab gets a list of the user's conversations in the collection (newest
first; picking one reopens it with its citations), rename / export as Markdown / delete of the
open one, and a feedback row (helpful / wrong, comment, correct answer) for any
answer of it, the latest by default.

Conversations and feedback belong to the signed-in user (`Handlers.user`): each
callback acts as that user, so nobody lists, reopens, renames, exports, deletes
or rates another user's conversations (`rag.memory.conversations`). Without a
login (loopback use) everyone is the same user, as before.
"""

from __future__ import annotations

import logging
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from rag.core.errors import ConversationError
from ui.render import (
    EMPTY_CHAT,
    EMPTY_SOURCES,
    Turn,
    e,
    render_conversation,
    render_sources,
)

log = logging.getLogger(__name__)

STORAGE_KEY = "rag-conversation"
NO_SAVED = {"conversation": "", "collection": ""}


@dataclass
class ConversationUI:
    """The components the conversation features add to the page."""

    conversation_id: gr.State
    saved: gr.BrowserState
    listing: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    export: gr.Button
    delete: gr.Button
    download: gr.File


@dataclass
class FeedbackUI:
    target: gr.Dropdown
    up: gr.Button
    down: gr.Button
    comment: gr.Textbox
    correction: gr.Textbox
    status: gr.Markdown


def browser_secret(home: Path) -> str:
    """The key that encrypts what the page keeps in localStorage, kept in the data dir (so it survives restarts)."""
    path = Path(home) / "ui-browser-secret"
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(24)
    try:
        with open(path, "x", encoding="ascii") as fh:  # two servers starting at once: the first one wins
            fh.write(secret)
        path.chmod(0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    return secret


def conversation_column(secret: str | None = None) -> ConversationUI:
    """The list of saved conversations and what can be done with the open one (call inside a Column).

    Args:
        secret: encrypts the conversation id kept in the browser; a stable one (`browser_secret`)
            lets a page reopen its conversation after a server restart too.
    """
    conversation_id = gr.State("")
    saved = gr.BrowserState(dict(NO_SAVED), storage_key=STORAGE_KEY, secret=secret)
    gr.Markdown("### Conversations")
    listing = gr.Radio([], value=None, show_label=False, elem_id="conversation-list",
                       info="Newest first; pick one to reopen it.")
    with gr.Accordion("Rename · export · delete", open=False, elem_id="conversation-actions"):
        title = gr.Textbox(label="Title of this conversation", elem_id="conversation-title", max_lines=1)
        rename = gr.Button("Rename", size="sm", elem_id="conversation-rename")
        export = gr.Button("Export as Markdown", size="sm", elem_id="conversation-export")
        download = gr.File(label="Markdown export", interactive=False, visible=False, elem_id="conversation-download")
        delete = gr.Button("Delete conversation", size="sm", variant="stop", elem_id="conversation-delete")
    return ConversationUI(conversation_id, saved, listing, title, rename, export, delete, download)


def feedback_row() -> FeedbackUI:
    """Rate an answer of the open conversation (call under the conversation)."""
    with gr.Column(elem_id="feedback", variant="panel"):
        with gr.Row(equal_height=False):
            target = gr.Dropdown([], value=None, label="Rate an answer", scale=4, elem_id="feedback-target",
                                 info="The latest answer unless you pick another.")
            with gr.Column(scale=1, min_width=110):
                up = gr.Button("✓ Helpful", size="sm", elem_id="feedback-up")
                down = gr.Button("✗ Wrong", size="sm", elem_id="feedback-down")
        with gr.Accordion("Add a comment or the correct answer (optional)", open=False):
            comment = gr.Textbox(label="Comment", elem_id="feedback-comment", max_lines=4)
            correction = gr.Textbox(label="The correct answer", elem_id="feedback-correction", max_lines=2,
                                    info="It becomes the expected answer when feedback is exported for evaluation.")
        status = gr.Markdown("", elem_id="feedback-status")
    return FeedbackUI(target, up, down, comment, correction, status)


class ConversationHandlers:
    """Callbacks for saving, listing, reopening, renaming, exporting and deleting conversations, and feedback."""

    def __init__(self, handlers):
        self.h = handlers  # ui.handlers.Handlers: qa_for(), _surface()
        self._save_lock = threading.Lock()

    # --- saving and reopening ----------------------------------------------------------------
    def save(self, turns: list[Turn] | None, conversation_id: str | None, collection: str | None,
             request: gr.Request = None):
        """After an answer: save the turns not saved yet.

        Returns (turns, conversation id, browser state, conversation list, feedback target).
        """
        turns = list(turns or [])
        qa = self.h.qa_for(collection)
        owner = self.h.user(request)
        pending = [t for t in turns if t.answer is not None and not getattr(t, "turn_id", "")]
        with self._save_lock:
            for t in pending:
                try:
                    saved = qa.save_turn(t.answer, conversation_id or None, question=t.question, owner=owner)
                except ConversationError as exc:
                    if not conversation_id:
                        raise gr.Error(f"the answer could not be saved: {exc}") from None
                    # the conversation was deleted meanwhile (another tab): this answer starts a new one
                    saved = self.h._surface(qa.save_turn, t.answer, None, question=t.question, owner=owner)
                t.turn_id = saved.turn_id
                conversation_id = saved.conversation_id
        state = {"conversation": conversation_id or "", "collection": qa.settings.collection}
        return (turns, conversation_id or "", state, self.listing(collection, conversation_id, request),
                self.targets(turns))

    def restore(self, saved: dict | None, collection: str | None, request: gr.Request = None):
        """Page load: reopen the conversation kept in the browser (if it still exists).

        Returns (collection dropdown, conversation, sources panel, turns, conversation id, browser state,
        conversation list, title, feedback target, and the three document views of `Handlers.refresh`).
        """
        saved = saved if isinstance(saved, dict) else {}
        conversation_id = str(saved.get("conversation") or "")
        name = str(saved.get("collection") or "") or (collection or "")
        current = (collection or "").strip() or self.h.base.settings.collection
        if conversation_id:
            try:
                conv = self.h.qa_for(name).conversation(conversation_id, owner=self.h.user(request))
            except ConversationError:
                conv = None  # deleted meanwhile, or another user's (a shared browser): start afresh
            except Exception:  # the collection itself is gone or broken: the page must still load
                log.exception("cannot reopen conversation %s of %s", conversation_id, name)
                conv = None
            if conv is not None:
                turns = turns_of(conv)
                other = conv.collection != current
                switch = gr.update(value=conv.collection) if other else gr.update()
                views = self.h._document_views(conv.collection) if other else (gr.update(),) * 3
                return (switch, render_conversation(turns), render_sources(turns[-1].answer if turns else None),
                        turns, conv.conversation_id, {"conversation": conv.conversation_id,
                                                      "collection": conv.collection},
                        self.listing(conv.collection, conv.conversation_id, request), conv.title, self.targets(turns),
                        *views)
        return (gr.update(), gr.update(), gr.update(), gr.update(), "", dict(NO_SAVED),
                self.listing(current, None, request), "", self.targets([]), *(gr.update(),) * 3)

    def open(self, conversation_id: str | None, collection: str | None, request: gr.Request = None):
        """A conversation picked in the list.

        Returns (conversation, sources panel, turns, conversation id, browser state, title, feedback target).
        """
        if not conversation_id:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        qa = self.h.qa_for(collection)
        conv = self.h._surface(qa.conversation, conversation_id, owner=self.h.user(request))
        turns = turns_of(conv)
        return (render_conversation(turns), render_sources(turns[-1].answer if turns else None), turns,
                conv.conversation_id, {"conversation": conv.conversation_id, "collection": conv.collection},
                conv.title, self.targets(turns))

    def new(self, collection: str | None, request: gr.Request = None):
        """'New conversation' or another collection: nothing open.

        Returns (conversation id, browser state, conversation list, title, feedback target, download).
        """
        return ("", {"conversation": "", "collection": (collection or "").strip()}, self.listing(collection, None, request), "",
                self.targets([]), gr.update(value=None, visible=False))

    # --- managing the open conversation --------------------------------------------------------
    def rename(self, conversation_id: str | None, title: str, collection: str | None, request: gr.Request = None):
        """Returns (conversation list, title)."""
        if not conversation_id:
            gr.Warning("Ask a question first: there is no saved conversation to rename.")
            return gr.update(), gr.update()
        conv = self.h._surface(self.h.qa_for(collection).rename_conversation, conversation_id, title,
                               owner=self.h.user(request))
        gr.Info(f"Renamed to “{e(conv.title)}”")
        return self.listing(collection, conv.conversation_id, request), conv.title

    def export(self, conversation_id: str | None, collection: str | None, request: gr.Request = None):
        """The open conversation as a Markdown file to download."""
        if not conversation_id:
            gr.Warning("Ask a question first: there is no saved conversation to export.")
            return gr.update(value=None, visible=False)
        qa, owner = self.h.qa_for(collection), self.h.user(request)
        conv = self.h._surface(qa.conversation, conversation_id, owner=owner)
        md = self.h._surface(qa.export_conversation, conv.conversation_id, owner=owner)
        slug = re.sub(r"[^A-Za-z0-9]+", "-", conv.title).strip("-")[:40].lower() or "conversation"
        path = Path(tempfile.mkdtemp(prefix="rag-export-")) / f"{slug}-{conv.conversation_id}.md"
        path.write_text(md, encoding="utf-8")
        return gr.update(value=str(path), visible=True)

    def delete(self, conversation_id: str | None, collection: str | None, request: gr.Request = None):
        """Delete the open conversation.

        Returns (conversation, sources panel, turns, conversation id, browser state, conversation list,
        title, feedback target, download).
        """
        if not conversation_id:
            gr.Warning("There is no saved conversation open to delete.")
            return (gr.update(),) * 9
        qa, owner = self.h.qa_for(collection), self.h.user(request)
        conv = self.h._surface(qa.conversation, conversation_id, owner=owner)
        self.h._surface(qa.delete_conversation, conv.conversation_id, owner=owner)
        gr.Info(f"Deleted “{e(conv.title)}”")
        return (EMPTY_CHAT, EMPTY_SOURCES, [], *self.new(collection, request))

    # --- feedback ----------------------------------------------------------------------------
    def rate(self, rating: str, turn_id: str | None, comment: str | None, correction: str | None,
             collection: str | None, request: gr.Request = None):
        """Record a rating of the chosen answer; returns the status line."""
        if not turn_id:
            gr.Warning("Ask a question first: there is no answer to rate yet.")
            return gr.update()
        fb = self.h._surface(self.h.qa_for(collection).feedback, turn_id, rating, comment=comment,
                             correction=correction, owner=self.h.user(request))
        what = "helpful" if fb.rating > 0 else "wrong"
        extra = " with your correction" if fb.correction else (" with your comment" if fb.comment else "")
        return f"Thanks: answer to “{md_safe(_short(fb.question, 60))}” marked {what}{extra}."

    def rate_up(self, turn_id, comment, correction, collection, request: gr.Request = None):
        return self.rate("up", turn_id, comment, correction, collection, request)

    def rate_down(self, turn_id, comment, correction, collection, request: gr.Request = None):
        return self.rate("down", turn_id, comment, correction, collection, request)

    # --- views ---------------------------------------------------------------------------------
    def listing(self, collection: str | None, selected: str | None, request: gr.Request | None = None):
        """The user's conversations, newest first, with `selected` picked."""
        owner = self.h.user(request)
        items = self.h._surface(lambda: self.h.qa_for(collection).conversations(owner=owner))
        choices = [(f"{c.title} · {c.updated_at[5:16].replace('T', ' ')}", c.conversation_id) for c in items]
        known = {c.conversation_id for c in items}
        return gr.update(choices=choices, value=selected if selected in known else None)

    @staticmethod
    def targets(turns: list[Turn]):
        """The saved answers of the conversation to rate, the latest chosen."""
        choices = [(f"{i}. {_short(t.question, 60)}", t.turn_id) for i, t in enumerate(turns, start=1)
                   if t.answer is not None and getattr(t, "turn_id", "")]
        return gr.update(choices=choices, value=choices[-1][1] if choices else None)


def turns_of(conv) -> list[Turn]:
    """A saved conversation as the UI's turns."""
    return [Turn(t.question, answer=t.answer, turn_id=t.turn_id) for t in conv.turns]


def md_safe(text: str) -> str:
    """User text inside our Markdown (toasts and the status line render HTML): shown as typed."""
    return re.sub(r"([\\`*_\[\]#|~])", r"\\\1", e(text))


def _short(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def wire(ch: ConversationHandlers, cui: ConversationUI, fui: FeedbackUI, *, answered, cleared, switched, loaded,
         turns, conversation, sources_panel, collection, doc_views) -> None:
    """Connect the components: `answered` are the chat events, `cleared` the new-conversation event,
    `switched` the collection change and `loaded` the page load (each chained with `.then`);
    `doc_views` are refreshed when a reload reopens a conversation of another collection."""
    private = dict(api_visibility="private")
    for event in answered:
        event.then(ch.save, inputs=[turns, cui.conversation_id, collection],
                   outputs=[turns, cui.conversation_id, cui.saved, cui.listing, fui.target], **private)
    for event in (cleared.then, switched.success):  # a refused collection name keeps the conversation
        event(ch.new, inputs=collection,
                   outputs=[cui.conversation_id, cui.saved, cui.listing, cui.title, fui.target, cui.download],
                   **private)
    loaded.then(ch.restore, inputs=[cui.saved, collection],
                outputs=[collection, conversation, sources_panel, turns, cui.conversation_id, cui.saved, cui.listing,
                         cui.title, fui.target, *doc_views], **private)
    cui.listing.input(ch.open, inputs=[cui.listing, collection],
                      outputs=[conversation, sources_panel, turns, cui.conversation_id, cui.saved, cui.title,
                               fui.target], **private)
    cui.rename.click(ch.rename, inputs=[cui.conversation_id, cui.title, collection],
                     outputs=[cui.listing, cui.title], **private)
    cui.title.submit(ch.rename, inputs=[cui.conversation_id, cui.title, collection],
                     outputs=[cui.listing, cui.title], **private)
    cui.export.click(ch.export, inputs=[cui.conversation_id, collection], outputs=cui.download, **private)
    cui.delete.click(ch.delete, inputs=[cui.conversation_id, collection],
                     outputs=[conversation, sources_panel, turns, cui.conversation_id, cui.saved, cui.listing,
                              cui.title, fui.target, cui.download], **private)
    feedback_io = dict(inputs=[fui.target, fui.comment, fui.correction, collection], outputs=fui.status, **private)
    fui.up.click(ch.rate_up, **feedback_io)
    fui.down.click(ch.rate_down, **feedback_io)
