"""`DocQA`: the Python API, and what the CLI and the UI are built on.

Example::

    from rag import DocQA
    qa = DocQA.open(home="~/.local/share/rag")
    qa.ingest(["corpus/"])
    for chunk in qa.retrieve("How many companies changed their business scope?", k=3):
        print(chunk.score, chunk.source, chunk.text[:80])
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.core.config import Settings, load_settings
from rag.core.errors import DocumentError, NoDocumentsError, UnknownSourceError
from rag.core.types import Answer, Chunk, Evidence, IngestReport, SourceInfo, Waiting

if TYPE_CHECKING:
    from rag.memory.conversations import Conversation, ConversationTurn
    from rag.memory.feedback import Feedback, FeedbackExport

_OPEN_LOCK = threading.RLock()
log = logging.getLogger(__name__)


class DocQA:
    """A document collection you can ingest into, search and ask questions of."""

    def __init__(self, settings: Settings, *, embeddings=None, chat_model=None):
        """Build from loaded settings; `embeddings`/`chat_model` replace the configured ones (tests)."""
        self.settings = settings
        if embeddings is not None:
            self.embeddings = embeddings
        if chat_model is not None:
            self.chat_model = chat_model
        self._warm_lock = threading.Lock()
        self._warming: threading.Thread | None = None  # the warm-up thread, once started
        self._search_ready = threading.Event()  # the warm-up opened what search needs (set on failure too)
        self._warm_done = threading.Event()
        self._ready = threading.Event()  # the warm-up finished without an error
        self.warm_error: Exception | None = None  # why the last warm-up failed
        self.warm_timings: dict[str, float] = {}  # seconds per warm-up stage (search, model)
        self._given: OrderedDict[tuple[str, str], str] = OrderedDict()  # (question, reply) -> short answer
        self._given_lock = threading.Lock()

    @classmethod
    def open(cls, home: str | Path | None = None, *, collection: str | None = None,
             environ=None, config_file: str | Path | None = None, warm: bool = True, **overrides: Any) -> "DocQA":
        """Open (creating if needed) a collection under a data directory.

        The models load in the background as soon as this returns (`warm`): search first, then the
        local language model, which restores its fixed prompt text from disk. A question asked
        meanwhile gets its evidence at once and its answer when the model is ready.

        Args:
            home: data directory; default `$RAG_HOME`, else the user data dir.
            collection: collection name (default `default`).
            environ: environment mapping to read settings from (default `os.environ`).
            config_file: optional TOML settings file.
            warm: load the models in the background now; False for scripts that only ingest or search
                (the models then load on first use, and `qa.warm()` is still there).
            **overrides: any other setting, nested as dicts (`retrieval={"k": 8}`).
        """
        if home is not None:
            overrides["home"] = Path(home).expanduser()
        if collection is not None:
            overrides["collection"] = collection
        qa = cls(load_settings(environ=environ, config_file=config_file, **overrides))
        if warm:
            qa.warm(background=True)
        return qa

    # --- components, built lazily and once -------------------------------------------------
    @cached_property
    def embeddings(self):
        from rag.models.embedders.factory import make_embeddings

        return make_embeddings(self.settings)

    @cached_property
    def store(self):
        from rag.index.manifest import SourceManifest
        from rag.index.store import ChunkStore, make_client

        # Chroma's embedded client fails when two threads open the same folder at once
        with _OPEN_LOCK:
            return ChunkStore(make_client(self.settings), self.settings.collection,
                              model_name=self.settings.embedding.model_name, dimension=self.embeddings.dimension,
                              backend=self.settings.embedding.backend,
                              sentences=self.settings.retrieval.sentence_weight > 0,
                              manifest=SourceManifest(self._state_dir / "sources.sqlite"))

    def collections(self) -> list[str]:
        """Names of the collections in this store (embedded folder or Chroma server)."""
        from rag.index.sentence_view import is_sentence_collection
        from rag.index.store import make_client

        with _OPEN_LOCK:
            client = make_client(self.settings)
        names = (getattr(c, "name", c) for c in client.list_collections())
        return sorted(n for n in names if not is_sentence_collection(n))  # rag.index.sentence_view: part of another

    def with_collection(self, name: str) -> "DocQA":
        """The same settings and loaded models, another collection."""
        other = DocQA(self.settings.model_copy(update={"collection": name}))
        for attr in ("embeddings", "chat_model", "page_renderer"):
            if attr in self.__dict__:
                setattr(other, attr, self.__dict__[attr])
        return other

    @cached_property
    def _state_dir(self) -> Path:
        # BM25 and locks are per collection and per store location (embedded or a server URL)
        where = self.settings.chroma_url or "embedded"
        tag = hashlib.sha256(where.encode()).hexdigest()[:8]
        return self.settings.home / "index" / f"{self.settings.collection}-{tag}"

    @cached_property
    def lexical(self):
        from rag.index.bm25 import LexicalIndex

        return LexicalIndex(self._state_dir / "bm25", writer_lock=self._state_dir / "ingest.lock")

    @cached_property
    def retriever(self):
        from rag.index.retrieve import HybridRetriever

        return HybridRetriever(self.store, self.lexical, self.embeddings, self.settings.retrieval)

    @cached_property
    def ingestor(self):
        from rag.ingest.pipeline import Ingestor

        return Ingestor(self.store, self.lexical, self.embeddings, self.settings,
                        lock_path=self._state_dir / "ingest.lock")

    # --- documents ---------------------------------------------------------------------------
    def ingest(self, paths: Iterable[str | Path], *, sync: bool = False, progress=None,
               lock_timeout: float = 30.0, reread: bool = False) -> IngestReport:
        """Ingest files and folders; unchanged files are skipped, changed ones replaced.

        Args:
            paths: files and/or folders (searched recursively).
            sync: also remove documents whose files are gone from the given folders.
            progress: optional callback `(done, total, path)`.
            lock_timeout: seconds to wait for another ingest of this collection.
            reread: read unchanged files again (after an upgrade that reads documents better; their
                report says "updated").
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        self._after_warm_start()
        return self.ingestor.ingest_paths(paths, sync=sync, progress=progress, lock_timeout=lock_timeout,
                                          reread=reread)

    def ingest_texts(self, rows: Iterable[dict], *, progress=None) -> IngestReport:
        """Ingest in-memory documents: dicts with `source`, `text`, optional `title` and `url`."""
        self._after_warm_start()
        return self.ingestor.ingest_texts(rows, progress=progress)

    def sources(self) -> list[SourceInfo]:
        """The indexed documents."""
        return self.store.sources()

    def resolve_source(self, name: str) -> str:
        """Map a user's name for a document (stored name, path, or unique file name) to its source."""
        known = [s.source for s in self.sources()]
        if name in known:
            return name
        from rag.ingest.pipeline import source_key

        key = source_key(Path(name))
        if key in known:
            return key
        matches = [s for s in known if Path(s).name == name]
        if len(matches) == 1:
            return matches[0]
        hint = f"; it matches {len(matches)} documents, give the full path" if matches else ""
        raise UnknownSourceError(f"no indexed document named {name!r}{hint}: list them with `rag sources`")

    def delete(self, source: str) -> int:
        """Remove one document's chunks; returns how many were removed."""
        return self.ingestor.delete(self.resolve_source(source))

    def page_image(self, chunk_id: str, quote: str = ""):
        """The page of a stored PDF passage as a PNG, `quote` highlighted (a `rag.ingest.pages.PageImage`).

        The file and page come from the stored chunk, never from the caller, and the file must still be
        the one that was ingested.

        Raises:
            UnknownSourceError: no such passage in this collection.
            DocumentError: the passage has no page, or its file is missing, changed or not a PDF.
        """
        found = self.store.get([chunk_id]) if chunk_id else []
        if not found:
            raise UnknownSourceError("this passage is no longer in the collection (its document was re-ingested "
                                     "or deleted): ask again to see its page")
        chunk = found[0]
        if not chunk.page:
            raise DocumentError(chunk.source, "the passage has no page number, so there is no page to show")
        known = {s.source: s.content_hash for s in self.sources()}
        return self.page_renderer.render(chunk.source, int(chunk.page), quote, known=known)

    @cached_property
    def page_renderer(self):
        from rag.ingest.pages import PageRenderer

        return PageRenderer()

    def check(self, *, repair: bool = False):
        """Verify the store and the BM25 index agree (`rag check`); with `repair`, fix what is found.

        Returns a `rag.index.integrity.CheckReport` (after repairing: of the repaired state,
        with `repaired` listing what was done).
        """
        from rag.index import integrity
        from rag.index.retrieve import index_text
        from rag.text.tokens import search_tokens

        report = integrity.check(self.store, self.lexical, index_text=index_text, tokenize=search_tokens)
        if repair and not report.ok:
            done = integrity.repair(self.store, self.lexical, self.ingestor, index_text=index_text)
            report = integrity.check(self.store, self.lexical, index_text=index_text, tokenize=search_tokens)
            report.repaired = done
        return report

    @cached_property
    def chat_model(self):
        from rag.models.chat.factory import make_chat_model

        return make_chat_model(self.settings)

    def describe_llm(self) -> str:
        """One line naming the language model in use."""
        from rag.models.chat.factory import describe_llm

        return describe_llm(self.settings)

    # --- answers -----------------------------------------------------------------------------
    def stream(self, question: str, *, history=None, k: int | None = None,
               sources: Iterable[str] | None = None) -> Iterator[str | Evidence | Waiting | Answer]:
        """Yield what was found, then answer tokens as they are generated, then the final `Answer`.

        Events, in order: one `Evidence` (the passages retrieved and the sentence most
        likely to hold the answer: a best match, not yet an answer) as soon as
        retrieval is done; `Waiting(ahead)` while the local model is busy with other
        questions; `str` tokens; the `Answer` with verified citations, always last.

        Args:
            question: the question; a follow-up is searched together with the previous question.
            history: the previous `Answer` (or a list of (user, assistant) pairs).
            k: passages to retrieve (default `retrieval.k`).
            sources: restrict retrieval to these documents.
        """
        from rag.answer.flow import AnswerDeps, answer_stream

        self._after_warm_start()
        if self.store.count() == 0:
            raise NoDocumentsError(self.settings.collection)
        resolved = [self.resolve_source(s) for s in sources] if sources else None
        from rag.models.chat.queue import generation_queue

        deps = AnswerDeps(
            retrieve=lambda q, n, src: self._search(q, n, sources=src),
            chat_model=self.chat_model, count_tokens=self.count_tokens, settings=self.settings,
            queue=generation_queue(self.chat_model),
        )
        for event in answer_stream(question, deps, history=self._recognised(history), k=k, sources=resolved):
            if isinstance(event, Answer):
                self._remember(event)
            yield event

    _GIVEN_MAX = 512  # answers remembered per collection for `_recognised`

    def _remember(self, answer: Answer) -> None:
        if answer.history:
            with self._given_lock:
                self._given[answer.history[-1]] = answer.short_answer
                while len(self._given) > self._GIVEN_MAX:
                    self._given.popitem(last=False)

    def _recognised(self, history):
        """`history` as given, or, when it is (user, assistant) text pairs whose last pair is an answer this
        object gave (HTTP API and LangChain clients send the conversation back as text), an `Answer`
        with the client's pairs and that answer's short answer: a follow-up's prompt then shows the short answer,
        as it does when the caller passes the `Answer` itself. Only a pair given back verbatim is recognised,
        and nothing of the conversation it came from is carried over (several people share one server)."""
        if not history or isinstance(history, Answer):
            return history
        pairs = [(str(u), str(a)) for u, a in history]
        with self._given_lock:
            given = self._given.get(pairs[-1])
        if given is None:
            return history
        return Answer(text=pairs[-1][1], question=pairs[-1][0], short_answer=given, history=pairs)

    def warm(self, *, background: bool = False) -> threading.Thread | None:
        """Load the models and have the local LLM restore (or, the first time, read) the fixed parts of its prompts.

        After this the first question costs only what is new in it. Search is made ready first,
        then the language model, so evidence never waits for it. With `background=True` it runs
        in a thread and returns it: a question asked meanwhile gets its evidence at once and its
        answer after the warm-up (it takes its place in line behind it). A warm-up already under
        way (`DocQA.open` starts one) is not started twice.

        Raises:
            RagError: (without `background`) a model could not load; in the background the error
                is kept in `warm_error` and the question that needs the model raises it.
        """
        with self._warm_lock:
            thread = self._warming
            if thread is None or not thread.is_alive():
                self._import_shared()
                # take the model's place in line now, before any question can: a question asked at once
                # waits for the fixed prompt text to be restored instead of reading it itself
                queue, ticket = self._model_ticket()
                self.warm_error = None
                self._warm_done.clear()
                thread = threading.Thread(target=self._warm, args=(queue, ticket), name="rag-warm", daemon=True)
                self._warming = thread
                thread.start()
        if background:
            return thread
        thread.join()
        if self.warm_error is not None:
            raise self.warm_error
        return None

    @property
    def ready(self) -> bool:
        """The warm-up finished: search and the language model are loaded, the fixed prompt text is in place."""
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the warm-up ends (or `timeout` seconds pass); True when it succeeded."""
        self._warm_done.wait(timeout)
        return self._ready.is_set()

    def status(self) -> str:
        """`idle` (nothing loaded yet: loads on first use), `loading`, `ready` or `failed` (see `warm_error`)."""
        if self._ready.is_set():
            return "ready"
        if self._warming is None:
            return "idle"
        return "failed" if self._warm_done.is_set() else "loading"

    def _model_ticket(self):
        try:
            from rag.models.chat.queue import generation_queue

            queue = generation_queue(self.chat_model)
        except Exception:  # noqa: BLE001 -- the warm-up itself meets (and keeps) the error
            return None, None
        return (queue, queue.join()) if queue is not None else (None, None)

    def _warm(self, queue, ticket) -> None:
        started = time.perf_counter()
        # the model's weights load beside the search warm-up, so the model is ready about when search is, not
        # after it (its runtime was imported by `warm`, before this thread started)
        loading = threading.Thread(target=self._load_model, name="rag-load-model", daemon=True)
        loading.start()
        try:
            try:  # search first: a question's evidence needs only this
                self.embeddings.embed_query("warm up")
                self.count_tokens("warm up")  # the tokenizer that packs the evidence: a second to load
                self.retriever.warm()  # the in-memory vectors of exact dense search (rag.index.exact)
                if self.store.count() > 0:
                    self.retriever.search("warm up", 1)  # reads BM25 and the sentence view
            except Exception as exc:  # noqa: BLE001 -- kept for the caller, see warm()
                self._failed(exc)
            finally:
                self._search_ready.set()
                self.warm_timings["search_s"] = round(time.perf_counter() - started, 3)
            t = time.perf_counter()
            try:
                from rag.answer.flow import warm_prompts

                loading.join()
                model = self.chat_model
                if hasattr(model, "warm"):
                    if queue is not None:
                        queue.wait(ticket)
                    model.warm(warm_prompts(self.settings))
            except Exception as exc:  # noqa: BLE001 -- kept for the caller, see warm()
                self._failed(exc)
            self.warm_timings["model_s"] = round(time.perf_counter() - t, 3)
        finally:
            if queue is not None:
                queue.leave(ticket)
            if self.warm_error is None:
                self._ready.set()
            self._warm_done.set()

    def _import_shared(self) -> None:
        """Import, in the calling thread, what the warm-up's threads and the caller would otherwise import at
        the same moment: numpy (under Chroma, ONNX Runtime and llama.cpp) and the local model's runtime. Two
        threads importing numpy at once can meet it half initialised ("cannot import name 'NDArray' from
        partially initialized module"); about 0.12 s."""
        try:
            import numpy  # noqa: F401

            runtime = getattr(self._chat_model_or_none(), "import_runtime", None)
            if runtime is not None:
                runtime()
        except Exception as exc:  # noqa: BLE001 -- the warm-up meets it again and keeps it
            log.debug("import before the warm-up failed: %s", exc, exc_info=exc)

    def _chat_model_or_none(self):
        try:
            return self.chat_model
        except Exception:  # noqa: BLE001 -- the model's warm-up meets it again and keeps it
            return None

    def _load_model(self) -> None:
        """Load the chat model's weights (a local model's; others have nothing to load)."""
        started = time.perf_counter()
        try:
            load = getattr(self._chat_model_or_none(), "load", None)
            if load is not None:
                load()
                self.warm_timings["load_s"] = round(time.perf_counter() - started, 3)
        except Exception as exc:  # noqa: BLE001 -- `warm` meets the same error and keeps it
            log.debug("model load failed: %s", exc, exc_info=exc)

    def _failed(self, exc: Exception) -> None:
        if self.warm_error is None:
            self.warm_error = exc
        log.debug("warm-up failed: %s", exc, exc_info=exc)

    def _after_warm_start(self) -> None:
        """Wait for a warm-up under way to open what search needs, rather than open it a second time."""
        thread = self._warming
        if thread is not None and thread is not threading.current_thread():
            self._search_ready.wait()

    def ask(self, question: str, *, history=None, k: int | None = None,
            sources: Iterable[str] | None = None) -> Answer:
        """Answer a question from the documents, with `[n]` citations; see `stream`."""
        final = None
        for event in self.stream(question, history=history, k=k, sources=sources):  # skips Evidence, Waiting, tokens
            if isinstance(event, Answer):
                final = event
        return final

    # --- LangChain ---------------------------------------------------------------------------
    def as_retriever(self, k: int | None = None, sources: Iterable[str] | None = None, mode: str | None = None):
        """This collection as a LangChain `BaseRetriever`.

        Its `Document`s carry `chunk_id, source, title, page, start, end, score, url` in metadata.
        """
        from rag.serve.langchain import DocQARetriever

        return DocQARetriever(qa=self, k=k, sources=list(sources) if sources else None, mode=mode)

    def as_runnable(self, *, k: int | None = None, sources: Iterable[str] | None = None):
        """`ask` as a LangChain `Runnable`: a question (or `{"question", "history"}`) to an `Answer`.

        `.stream()` yields str tokens, then the `Answer`; `.batch()` answers several questions.
        """
        from rag.serve.langchain import AnswerRunnable

        return AnswerRunnable(self, k=k, sources=sources)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the chunker and the answer's evidence budget count them (tiktoken, `chunking.encoding`)."""
        if not hasattr(self, "_encoding"):
            from rag.models.tokenizer import get_encoding

            self._encoding = get_encoding(self.settings.chunking.encoding, self.settings.cache_dir)
        return len(self._encoding.encode(text, disallowed_special=()))

    # --- search ------------------------------------------------------------------------------
    def retrieve(self, question: str, k: int | None = None, *, sources: Iterable[str] | None = None,
                 mode: str | None = None) -> list[Chunk]:
        """The `k` passages most relevant to `question` (hybrid dense + BM25 by default)."""
        return self.search(question, k, sources=sources, mode=mode).chunks

    def search(self, question: str, k: int | None = None, *, sources: Iterable[str] | None = None,
               mode: str | None = None):
        """Like `retrieve`, with the per-retriever scores (`rag.index.retrieve.Retrieval`)."""
        self._after_warm_start()
        if self.store.count() == 0:
            raise NoDocumentsError(self.settings.collection)
        if sources:
            sources = [self.resolve_source(s) for s in sources]
        return self._search(question, k, sources=sources, mode=mode)

    def _search(self, question: str, k: int | None, **kwargs):
        from rag.models.chat.queue import searches

        with searches.running():  # background model work (reading a prompt prefix at start) steps aside
            return self.retriever.search(question, k, **kwargs)

    # --- saved conversations and feedback ------------------------------------------------------
    @cached_property
    def conversation_store(self):
        """The saved conversations of this collection (`rag.memory.conversations.ConversationStore`)."""
        from rag.memory.conversations import DB_NAME, ConversationStore

        return ConversationStore(self.settings.home / DB_NAME, self.settings.collection)

    @cached_property
    def feedback_store(self):
        """The feedback given on this collection's answers (`rag.memory.feedback.FeedbackStore`)."""
        from rag.memory.conversations import DB_NAME
        from rag.memory.feedback import FeedbackStore

        return FeedbackStore(self.settings.home / DB_NAME, self.settings.collection)

    def _conversations_of(self, owner: str | None):
        if owner is None:
            return self.conversation_store
        from rag.memory.conversations import DB_NAME, ConversationStore

        return ConversationStore(self.settings.home / DB_NAME, self.settings.collection, owner)

    def _feedback_of(self, owner: str | None):
        if owner is None:
            return self.feedback_store
        from rag.memory.conversations import DB_NAME
        from rag.memory.feedback import FeedbackStore

        return FeedbackStore(self.settings.home / DB_NAME, self.settings.collection, owner)

    # Every conversation and feedback method takes `owner`: the user on whose behalf it acts (the UI passes the
    # signed-in user, "" without a login). An owner sees and changes only their own conversations and feedback;
    # another owner's are "not found". None (the default: the CLI and Python on the server) sees all of them.
    def conversations(self, *, owner: str | None = None) -> list[Conversation]:
        """This collection's saved conversations (`Conversation`, without turns), most recently active first."""
        return self._conversations_of(owner).list()

    def conversation(self, conversation_id: str, *, owner: str | None = None) -> Conversation:
        """One saved conversation with its turns (a unique prefix of the id will do).

        Continue it with `qa.ask(question, history=conv.last_answer)`.
        """
        return self._conversations_of(owner).get(conversation_id)

    def save_turn(self, answer: Answer, conversation_id: str | None = None, *,
                  question: str | None = None, owner: str | None = None) -> ConversationTurn:
        """Save an answer as the next turn of a conversation (a new one, owned by `owner`, when
        `conversation_id` is None).

        Returns the `ConversationTurn` (its `conversation_id` continues the conversation, its
        `turn_id` names the answer for `feedback`).
        """
        return self._conversations_of(owner).add_turn(question or answer.question, answer, conversation_id)

    def rename_conversation(self, conversation_id: str, title: str, *, owner: str | None = None) -> Conversation:
        return self._conversations_of(owner).rename(conversation_id, title)

    def delete_conversation(self, conversation_id: str, *, owner: str | None = None) -> None:
        """Remove a saved conversation (feedback given on it is kept)."""
        self._conversations_of(owner).delete(conversation_id)

    def export_conversation(self, conversation_id: str, *, owner: str | None = None) -> str:
        """The conversation as Markdown, with each cited passage and its supporting quote."""
        return self._conversations_of(owner).to_markdown(conversation_id)

    def feedback(self, answer_or_turn_id: Answer | str, rating, comment: str | None = None,
                 correction: str | None = None, *, owner: str | None = None) -> Feedback:
        """Rate an answer; the record becomes evaluation data (`rag feedback export`).

        Args:
            answer_or_turn_id: an `Answer`, or the `turn_id` of a saved turn (one of `owner`'s).
            rating: "up" / "down" (or 1 / -1, True / False).
            comment: what was good or wrong, free text.
            correction: the right answer; it becomes the question's gold answer.
            owner: who rates (see above).

        Returns:
            The stored `Feedback`; rating the same answer again replaces it.
        """
        store = self._feedback_of(owner)
        if isinstance(answer_or_turn_id, Answer):
            answer = answer_or_turn_id
            earlier = [q for q, _ in answer.history[:-1]]
            return store.record(answer, rating, comment=comment, correction=correction, history=earlier)
        turn = self._conversations_of(owner).turn(answer_or_turn_id)
        return store.record(turn.answer, rating, comment=comment, correction=correction,
                            question=turn.question, history=turn.history, turn_id=turn.turn_id,
                            conversation_id=turn.conversation_id)

    def feedback_items(self, *, owner: str | None = None) -> list[Feedback]:
        """The feedback given on this collection's answers, newest first."""
        return self._feedback_of(owner).list()

    def export_feedback(self, folder: str | Path) -> FeedbackExport:
        """Write the feedback as an evaluation dataset for `rag eval --dataset` (see `rag.memory.feedback`)."""
        from rag.memory.feedback import export_dataset, rebuild_text

        def document(source: str):
            chunks = [sc.chunk for sc in self.store.scan(where={"source": source})]
            if not chunks:
                return None
            return rebuild_text(chunks), chunks[0].title, chunks[0].url

        return export_dataset(self.feedback_items(), Path(folder).expanduser(), document)
