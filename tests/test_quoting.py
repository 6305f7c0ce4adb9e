"""The short answer in the passage's own words (rag.answer.checks.quoting), alone and in the answer path."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.answer.checks.quoting import quote_exactly
from rag.serve.api import DocQA


@pytest.mark.parametrize("short, passage, quoted", [
    ("7 months old", "The patient, seven months old, recovered.", "seven months old"),
    ("BPP, ZPP, RP", "Classes such as BPP, ZPP and RP are defined by machines.", "BPP, ZPP and RP"),
    ("marry one of his wife's ladies-in-waitings", "He wished to marry one of his wife's ladies-in-waiting.",
     "marry one of his wife's ladies-in-waiting"),
    ("Gospic", "He taught a large class in Gospić.", "Gospić"),
    ("2", "Warsaw lies on two geomorphologic formations.", "two"),
    ("Neukio Biotherapeutics", "An assistant at Neukio\u00a0Biotherapeutics said so.", "Neukio Biotherapeutics"),
])
def test_the_passage_spelling_is_put_back(short, passage, quoted):
    assert quote_exactly(short, ["An unrelated passage about rivers.", passage]) == quoted


@pytest.mark.parametrize("short, passage", [
    ("it does not sleep", "Luther believed that the soul sleeps after death."),  # the negation would be lost
    ("was approved", "The drug was not approved in 2020."),  # the passage's extra word negates
    ("they are vetted on a phased basis", "Teachers are vetted on a phased basis."),  # "they" is not there
    ("the capital", "The capital of France is Paris."),  # already the passage's words
    ("Lyon", "The capital of France is Paris."),  # not in the passage at all
    ("seven months", "seven long, hard, cold months"),  # too far apart to be the same phrase
])
def test_other_answers_are_left_as_they_are(short, passage):
    assert quote_exactly(short, [passage]) == short


def test_the_answer_path_shows_the_passage_spelling(fake_settings, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "news.txt").write_text(
        "Six foreign-invested biotech companies completed changes to their business scope on Nov 14.")
    reply = "Answer: 6\nDetails: Six foreign-invested biotech companies completed changes to their business scope [1]."
    settings = fake_settings.model_copy(update={"answer": fake_settings.answer.model_copy(update={"min_relevance": -1.0})})
    qa = DocQA(settings, chat_model=GenericFakeChatModel(messages=iter([reply])))
    qa.ingest([tmp_path / "docs"])
    answer = qa.ask("How many biotech companies completed the changes?")
    assert not answer.abstained and answer.short_answer == "Six"
