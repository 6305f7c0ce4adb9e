"""The browser UI's page: the Gradio Blocks layout, and its events wired to `ui.handlers.Handlers`.

Example::

    from rag import DocQA
    from ui.layout import build_app
    build_app(DocQA.open()).launch()      # or: ui.app.serve(settings), what `rag ui` runs
"""

from __future__ import annotations

import gradio as gr

from rag.ingest.loaders import SUPPORTED_SUFFIXES
from rag.serve.api import DocQA
from ui.access import LoginGuard
from ui.conversations import (
    ConversationHandlers,
    browser_secret,
    conversation_column,
    feedback_row,
    wire,
)
from ui.handlers import Handlers, md_escape
from ui.render import CITE_JS, CSS, EMPTY_CHAT, EMPTY_SOURCES, PAGE_JS, render_model_status

DOC_HEADERS = ["document", "title", "chunks", "ingested", "source"]
RESULT_HEADERS = ["file", "status", "chunks", "reason"]
CONCURRENT_QUESTIONS = 16  # questions in progress at once (Gradio's default is one per event)


def build_app(qa: DocQA, guard: LoginGuard | None = None) -> gr.Blocks:
    """The Gradio app around `qa` (its collection is the initial one); `guard` gives users their roles."""
    h = Handlers(qa, guard)
    h.resume_watched()  # folders registered in an earlier run (none in a fresh home)
    settings = qa.settings
    with gr.Blocks(title="Document Q&A", analytics_enabled=False) as demo:
        turns = gr.State([])
        with gr.Row(equal_height=True):
            gr.Markdown(f"## Document Q&A\nAnswers from your documents; every claim cites its passage. "
                        f"<small>Model: {md_escape(qa.describe_llm())}</small>")
            collection = gr.Dropdown([settings.collection], value=settings.collection, label="Collection",
                                     allow_custom_value=True, scale=0, min_width=220,
                                     info="Pick, or type a new name + Enter.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=220, elem_id="conversations"):
                        saved_ui = conversation_column(browser_secret(settings.home))
                    with gr.Column(scale=3):
                        conversation = gr.HTML(EMPTY_CHAT, elem_id="conversation", css_template=CSS,
                                               js_on_load=CITE_JS, autoscroll=True, min_height=320)
                        with gr.Row(equal_height=True):
                            question = gr.Textbox(placeholder="Ask a question about your documents…",
                                                  show_label=False, scale=5, elem_id="question", autofocus=True)
                            ask = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                        # whether the language model is ready: the page is usable before it is (evidence first)
                        model_status = gr.HTML(render_model_status(qa.status(), qa.warm_error), elem_id="model-status")
                        status_timer = gr.Timer(0.5, active=qa.status() == "loading")
                        new = gr.Button("New conversation", size="sm", elem_id="new-conversation")
                        feedback_ui = feedback_row()
                    with gr.Column(scale=2):
                        gr.Markdown("### Sources")
                        # the page of a cited PDF passage, asked for when its citation is opened (CITE_JS)
                        page_view = gr.HTML("", elem_id="page-view", css_template=CSS, js_on_load=PAGE_JS)
                        sources_panel = gr.HTML(EMPTY_SOURCES, elem_id="sources-panel", css_template=CSS,
                                                js_on_load=None)
                        with gr.Accordion("Settings", open=False, elem_id="settings"):
                            k = gr.Slider(1, 20, value=settings.retrieval.k, step=1, label="Passages to retrieve (top-k)")
                            only = gr.Dropdown([], value=[], multiselect=True, label="Only these documents",
                                               info="Empty: search all documents.", elem_id="only-sources")
                            gr.Textbox(qa.describe_llm(), label="Language model", interactive=False)
            with gr.Tab("Documents", id="documents"):
                upload = gr.File(file_count="multiple", label="Add documents (drop several at once)",
                                 elem_id="upload")
                gr.Markdown(f"Accepted: {', '.join(sorted(SUPPORTED_SUFFIXES))}; "
                            f"up to {settings.ui.upload_max_mb:g} MB each.")
                results = gr.Dataframe(headers=RESULT_HEADERS, label="Last upload", interactive=False,
                                       elem_id="upload-results")
                documents = gr.Dataframe(headers=DOC_HEADERS, label="Indexed documents", interactive=False,
                                         elem_id="documents")
                with gr.Row(equal_height=True):
                    # custom values: API clients name a document without loading the page's choices first
                    to_delete = gr.Dropdown([], value=None, label="Document to delete", scale=3, elem_id="to-delete",
                                            allow_custom_value=True)
                    delete = gr.Button("Delete", variant="stop", scale=1, elem_id="delete")
                with gr.Row(equal_height=True):
                    watch_folder = gr.Textbox(label="Watch a folder on this machine", scale=3, elem_id="watch-folder",
                                              placeholder="/path/to/folder: kept in sync, also after a restart")
                    watch = gr.Button("Watch", scale=1, elem_id="watch")
                    unwatch = gr.Button("Stop watching", scale=1, size="sm", elem_id="unwatch")
                watched = gr.Markdown(h.watched_markdown(), elem_id="watched")

        doc_views = [documents, only, to_delete]
        # many questions at once: each shows its evidence at once; the local model then answers them
        # one at a time in arrival order (rag.models.chat.queue.GenerationQueue) and each is told its place in line
        chat_io = dict(inputs=[question, turns, k, only, collection],
                       outputs=[question, conversation, sources_panel, turns], show_progress="hidden",
                       concurrency_limit=CONCURRENT_QUESTIONS)
        asked = ask.click(h.chat, **chat_io, api_name="chat", api_visibility="undocumented")
        submitted = question.submit(h.chat, **chat_io, api_visibility="private")
        cleared = new.click(h.new_conversation, outputs=[conversation, sources_panel, turns], api_visibility="private")
        conversation.open_page(h.page_view, inputs=[turns, collection], outputs=page_view, show_progress="minimal",
                               api_visibility="private")
        # upload and delete are callable by API clients too (undocumented): the callbacks check the user's role
        upload.upload(h.upload, inputs=[upload, collection], outputs=[results, *doc_views, upload],
                      show_progress_on=results, api_name="upload", api_visibility="undocumented")
        delete.click(h.delete, inputs=[to_delete, collection], outputs=doc_views, api_name="delete",
                     api_visibility="undocumented")
        documents.select(_selected_source, inputs=documents, outputs=to_delete, api_visibility="private")
        switched = collection.input(h.switch_collection, inputs=collection,
                         outputs=[collection, *doc_views, conversation, sources_panel, turns],
                         api_visibility="private")
        for event in (cleared, switched):  # the page of a citation no longer shown goes too
            event.then(lambda: "", outputs=page_view, api_visibility="private")
        loaded = demo.load(h.refresh, inputs=collection, outputs=[collection, *doc_views], api_visibility="private")
        wire(ConversationHandlers(h), saved_ui, feedback_ui, answered=[asked, submitted], cleared=cleared,
             switched=switched, loaded=loaded, turns=turns, conversation=conversation, sources_panel=sources_panel,
             collection=collection, doc_views=doc_views)
        watch.click(h.watch, inputs=[watch_folder, collection], outputs=[watched, *doc_views, watch_folder],
                    api_visibility="private")
        unwatch.click(h.unwatch, inputs=[watch_folder, collection], outputs=watched, api_visibility="private")
        demo.load(h.watched_markdown, outputs=watched, api_visibility="private")
        demo.load(h.model_status, outputs=[model_status, status_timer], api_visibility="private",
                  show_progress="hidden")
        status_timer.tick(h.model_status, outputs=[model_status, status_timer], api_visibility="private",
                          show_progress="hidden")
        demo.load(h.controls, outputs=[upload, delete, to_delete, watch_folder, watch, unwatch],
                  api_visibility="private")
        gr.api(h.ask_api, api_name="ask", concurrency_limit=CONCURRENT_QUESTIONS)
    return demo


def _selected_source(table, evt: gr.SelectData):
    """Clicking a row of the documents table picks it for deletion."""
    row = evt.row_value if getattr(evt, "row_value", None) else None
    return gr.update(value=row[-1]) if row else gr.update()
