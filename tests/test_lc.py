"""The LangChain views of DocQA: a retriever in a stock LCEL chain, and the answering runnable."""

from __future__ import annotations

import itertools

import pytest
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from rag.core.types import Answer
from rag.serve.api import DocQA

DOC = ("Six foreign-invested biotech companies completed changes to their business scope on Nov 14. "
       "The notice was issued in September by the Ministry of Commerce.\n\n"
       "The pilot covers eight cities, including Beijing, Shanghai and Hainan province.")
ANSWER = "Answer: six\nDetails: Six foreign-invested biotech companies changed their business scope on Nov 14 [1]."
QUESTION = "How many companies changed their business scope?"


@pytest.fixture
def qa(fake_settings, tmp_path):
    def make(*responses):
        settings = fake_settings.model_copy(
            update={"answer": fake_settings.answer.model_copy(update={"min_relevance": -1.0})})
        qa = DocQA(settings, chat_model=GenericFakeChatModel(messages=itertools.cycle(responses or [ANSWER])))
        (tmp_path / "news.txt").write_text(DOC)
        qa.ingest([tmp_path / "news.txt"])
        return qa
    return make


def test_retriever_documents_carry_chunk_metadata(qa):
    retriever = qa().as_retriever(k=2)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("business scope")
    assert 1 <= len(docs) <= 2 and all(isinstance(d, Document) for d in docs)
    meta = docs[0].metadata
    assert {"chunk_id", "source", "title", "page", "start", "end", "score"} <= set(meta)
    assert meta["source"].endswith("news.txt") and docs[0].id == meta["chunk_id"]
    assert DOC[meta["start"]:meta["end"]] == docs[0].page_content
    assert qa().as_retriever(sources=["news.txt"]).invoke("pilot cities")


def test_retriever_in_a_stock_lcel_chain(qa):
    seen = []
    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from the context.\n\n{context}"), ("human", "{question}")])
    chain = ({"context": qa().as_retriever(k=2) | (lambda docs: "\n\n".join(d.page_content for d in docs)),
              "question": RunnablePassthrough()}
             | prompt | RunnableLambda(lambda p: seen.append(p) or p)
             | FakeListChatModel(responses=["Six companies."]) | StrOutputParser())
    assert chain.invoke(QUESTION) == "Six companies."
    system, human = seen[0].to_messages()
    assert "business scope on Nov 14" in system.content and human.content == QUESTION


def test_runnable_invoke_stream_batch(qa):
    runnable = qa().as_runnable()
    assert isinstance(runnable, Runnable)
    answer = runnable.invoke(QUESTION)
    assert isinstance(answer, Answer) and answer.short_answer == "six" and answer.citations

    events = list(runnable.stream({"question": QUESTION}))
    assert isinstance(events[-1], Answer) and len(events) > 3
    assert all(isinstance(e, str) for e in events[:-1]) and "".join(events[:-1]).startswith("Answer: six")

    answers = runnable.batch([QUESTION, {"question": "When did the companies change their business scope?"}])
    assert [type(a) for a in answers] == [Answer, Answer] and all(a.citations for a in answers)


def test_runnable_composes_with_other_runnables(qa):
    chain = (RunnableLambda(lambda d: {"question": d["q"].strip()}) | qa().as_runnable()
             | RunnableLambda(lambda a: a.short_answer))
    assert chain.invoke({"q": f"  {QUESTION}  "}) == "six"
    assert list(chain.stream({"q": QUESTION})) == ["six"]  # tokens flow through to the Answer
    assert chain.batch([{"q": QUESTION}] * 2) == ["six", "six"]


def test_runnable_follow_up_with_history(qa):
    # a follow-up is searched together with the previous question (no rewrite call)
    docqa = qa("Answer: six\nDetails: Six companies changed scope [1].",
               "Answer: eight cities\nDetails: The pilot covers eight cities, including Beijing [1].")
    runnable = docqa.as_runnable()
    first = runnable.invoke("How many companies changed scope?")
    second = runnable.invoke({"question": "and which cities does it cover?", "history": first})
    assert second.standalone_question == "How many companies changed scope? and which cities does it cover?"
    assert "eight" in second.text
    docqa2 = qa("Answer: eight cities\nDetails: The pilot covers eight cities, including Beijing [1].")
    third = docqa2.as_runnable().invoke({"question": "and which cities does it cover?", "history": [
        HumanMessage("How many companies changed scope?"), AIMessage("Six companies changed scope [1].")]})
    assert third.standalone_question == "How many companies changed scope? and which cities does it cover?"


def test_runnable_rejects_other_inputs(qa):
    with pytest.raises(ValueError, match="question"):
        qa().as_runnable().invoke({"text": "hi"})
