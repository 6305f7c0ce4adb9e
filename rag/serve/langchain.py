"""LangChain-native views of a `DocQA`: a `BaseRetriever`, and a `Runnable` that answers.

For people composing LCEL chains. Both call `DocQA` and add no logic: the retriever
is `DocQA.retrieve` returning `Document`s, the runnable is `DocQA.ask`/`DocQA.stream`.
This is the one place our `Chunk` becomes a LangChain `Document`.

Example::

    qa = DocQA.open()
    docs = qa.as_retriever(k=3).invoke("gene therapy plan")      # list[Document], metadata: chunk_id, source, page, …
    chain = qa.as_runnable() | (lambda answer: answer.short_answer)
    chain.invoke("How many companies changed their business scope?")
    for event in qa.as_runnable().stream({"question": "and when?", "history": previous_answer}):
        ...                                                      # str tokens, then the Answer
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict, Field

from rag.core.types import Answer, Chunk

METADATA_FIELDS = ("chunk_id", "source", "title", "page", "section", "start", "end", "score", "url")


def chunk_to_document(chunk: Chunk) -> Document:
    """A `Document` holding the chunk's text, its id, and `METADATA_FIELDS` as metadata."""
    return Document(page_content=chunk.text, id=chunk.chunk_id,
                    metadata={f: getattr(chunk, f) for f in METADATA_FIELDS})


class DocQARetriever(BaseRetriever):
    """`DocQA.retrieve` as a LangChain retriever (hybrid dense + BM25 by default)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    qa: Any = Field(exclude=True, description="The DocQA to search.")
    k: int | None = Field(None, description="Passages per query (default retrieval.k).")
    sources: list[str] | None = Field(None, description="Only search these documents.")
    mode: str | None = Field(None, description="hybrid, dense or bm25 (default retrieval.mode).")

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        chunks = self.qa.retrieve(query, self.k, sources=self.sources, mode=self.mode)
        return [chunk_to_document(c) for c in chunks]


def question_and_history(value: Any) -> tuple[str, Any]:
    """A runnable's input as (question, history).

    Accepts a question string, or a dict with `question` (or `input`/`query`) and optional `history`:
    the previous `Answer`, (user, assistant) pairs, or LangChain messages.
    """
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict):
        question = next((value[key] for key in ("question", "input", "query") if value.get(key)), None)
        if isinstance(question, str):
            return question, _history(value.get("history"))
    raise ValueError(f"expected a question string or a dict with 'question' (and optional 'history'), "
                     f"got {type(value).__name__}")


def _history(history: Any) -> Any:
    if not history or isinstance(history, Answer) or not isinstance(history[0], BaseMessage):
        return history or None
    pairs, user = [], None
    for message in history:
        if isinstance(message, HumanMessage):
            user = message.text
        elif isinstance(message, AIMessage) and user is not None:
            pairs.append((user, message.text))
            user = None
    return pairs or None


class AnswerRunnable(Runnable[Any, Answer]):
    """`DocQA.ask` as a Runnable: `invoke` returns the `Answer`; `stream` yields str tokens, then the `Answer`.

    `batch` runs the questions on worker threads (a local model still answers one at a time).
    """

    def __init__(self, qa, *, k: int | None = None, sources: Sequence[str] | None = None):
        self.qa, self.k, self.sources = qa, k, list(sources) if sources else None

    @property
    def InputType(self) -> Any:  # noqa: N802 -- LangChain's name
        return str | dict

    @property
    def OutputType(self) -> Any:  # noqa: N802
        return Answer

    def _answer(self, value: Any) -> Answer:
        question, history = question_and_history(value)
        return self.qa.ask(question, history=history, k=self.k, sources=self.sources)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Answer:
        return self._call_with_config(self._answer, input, config, run_type="chain", **kwargs)

    def _events(self, inputs: Iterator[Any]) -> Iterator[str | Answer]:
        value = None
        for piece in inputs:  # a streaming upstream step sends its output in pieces
            try:
                value = piece if value is None else value + piece
            except TypeError:
                value = piece
        question, history = question_and_history(value)
        for event in self.qa.stream(question, history=history, k=self.k, sources=self.sources):
            if isinstance(event, (str, Answer)):  # other events (e.g. retrieval progress) are not ours to pass on
                yield event

    def transform(self, input: Iterator[Any], config: RunnableConfig | None = None,
                  **kwargs: Any) -> Iterator[str | Answer]:
        yield from self._transform_stream_with_config(input, self._events, config, run_type="chain", **kwargs)

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[str | Answer]:
        yield from self.transform(iter([input]), config, **kwargs)
