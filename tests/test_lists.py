"""List completion (rag.answer.checks.lists): a one-item answer to a question asking for several becomes the whole list."""

from __future__ import annotations

from rag.answer.checks.lists import asks_for_several, complete_list
from rag.answer.context import Passage
from rag.core.types import Chunk

TEXT = ("Shanghai’s Pudong New Area witnessed the first batch of six foreign-invested biotechnology companies, "
        "including Merck Testing and Frontera Therapeutics, completing changes on Nov 14. The notice was issued by "
        "the\u00a0Ministry of Commerce, the\u00a0National Health Commission\u00a0and the\u00a0National Medical Products "
        "Administration, permitting companies to take part.")
PASSAGES = [Passage(1, Chunk("c1", TEXT, "seed"), TEXT)]


def test_questions_asking_for_several():
    assert asks_for_several("Which of them are named?")
    assert asks_for_several("Which two companies are named?")
    assert asks_for_several("What are the names of the products?")
    assert not asks_for_several("Where is Merck Testing headquartered?")
    assert not asks_for_several("Who is the Party secretary of Shanghai?")


def test_one_named_item_becomes_the_coordination_it_stands_in():
    assert complete_list("Which of them are named?", "Merck Testing", PASSAGES) == "Merck Testing and Frontera Therapeutics"
    assert complete_list("Which authorities issued the notice? Name them.", "National Health Commission", PASSAGES) == (
        "the Ministry of Commerce, the National Health Commission and the National Medical Products Administration")


def test_the_users_own_words_count_when_the_rewrite_lost_the_plural():
    rewritten = "Which of the foreign-invested biotech companies completed the change of business scope?"
    assert complete_list(rewritten, "Merck Testing", PASSAGES) == "Merck Testing"
    assert complete_list(rewritten, "Merck Testing", PASSAGES, asked="Which of them are named?") == (
        "Merck Testing and Frontera Therapeutics")


def test_single_answers_and_full_lists_are_left_alone():
    assert complete_list("Which company is headquartered in Germany?", "Merck Testing", PASSAGES) == "Merck Testing"
    assert complete_list("Which of them are named?", "Merck Testing and Frontera Therapeutics", PASSAGES) == (
        "Merck Testing and Frontera Therapeutics")
    assert complete_list("Which of them are named?", "Bayer", PASSAGES) == "Bayer"  # not in a passage: unchanged


def test_the_answer_path_names_every_company(fake_settings, tmp_path):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    from rag.serve.api import DocQA

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "news.txt").write_text(TEXT)
    settings = fake_settings.model_copy(update={"answer": fake_settings.answer.model_copy(update={"min_relevance": -1.0})})
    reply = ("Answer: Merck Testing\nDetails: The first batch of six foreign-invested biotechnology companies, "
             "including Merck Testing and Frontera Therapeutics, completed changes on Nov 14 [1].")
    qa = DocQA(settings, chat_model=GenericFakeChatModel(messages=iter([reply])))
    qa.ingest([tmp_path / "docs"])
    ans = qa.ask("Which of the six foreign-invested biotech companies are named?")
    assert ans.short_answer == "Merck Testing and Frontera Therapeutics" and not ans.abstained
    assert ans.raw_reply == reply  # the model's own reply is kept as it was
