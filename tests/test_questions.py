"""Questions that correct themselves, and answers of the wrong kind (rag.answer.checks.questions), alone and in the answer path."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.answer.checks.questions import (
    answer_type_problem,
    echo_problem,
    resolve_corrections,
)
from rag.serve.api import DocQA
from tests.test_answer import DOC


@pytest.mark.parametrize("asked, meant", [
    # a restart: the repair is a question of its own
    ("What colour, uh, how tall is the lighthouse?", "How tall is the lighthouse?"),
    ("When did she no sorry where did she study law?", "Where did she study law?"),
    ("Which river or rather which lake feeds the canal?", "Which lake feeds the canal?"),
    ("How long was er what did the bridge cost?", "What did the bridge cost?"),
    # a replacement: the repair takes the place of the abandoned words
    ("How many ships did Spain I mean Portugal send?", "How many ships did Portugal send?"),
    ("Who founded the club in 1901 no uh 1910?", "Who founded the club in 1910?"),
    ("What is the capital of Peru or rather of Chile?", "What is the capital of Chile?"),
    ("Who led the army sorry the navy in the war?", "Who led the navy in the war?"),
    ("Who governed Lyon in the 9th century I apologize Arles?", "Who governed Arles in the 9th century?"),
    ("What is the oldest mill or rather the largest working mill in the county?",
     "What is the largest working mill in the county?"),
    ("What was the first law, scratch that, the second law passed by the council?",
     "What was the second law passed by the council?"),
    ("Who painted the chapel actually I mean restored?", "Who restored the chapel?"),
    ("What is Spain 's or uh the UK 's largest port?", "What is the UK 's largest port?"),
    ("Which model of car I mean is the fastest?", "Which model of car is the fastest?"),
    # a filler that corrects nothing is dropped
    ("How much uh money did the fund raise?", "How much money did the fund raise?"),
])
def test_self_corrections_are_read_as_meant(asked, meant):
    assert resolve_corrections(asked) == meant


@pytest.mark.parametrize("question", [
    "Which team had no wins in 1998?",
    "Would he rather stay in Paris?",
    "What did the factory use instead of coal?",
    "Where did the emperor make that demand?",
    "Why did the minister say sorry to the farmers?",
    "Is the flag red or blue?",
    "What does no-till farming avoid?",
    "Who wrote 'No Time to Die'?",
    "How did the railway change the town?",
    "What was the population of Warsaw in 1939?",
    "What, in the end, did the treaty give Poland?",
    "How many members, in total, does the council have?",
])
def test_ordinary_questions_are_left_alone(question):
    assert resolve_corrections(question) == question


@pytest.mark.parametrize("question, short", [
    ("In what year was the fort built?", "Charlesfort"),
    ("What year did the war end?", "the Treaty of Paris"),
    ("How many people lived there?", "the old town"),
    ("What percentage of power came from coal?", "the northern grid"),
    ("Who designed the bridge?", "1885"),
    ("Where was the priest from?", "1294"),
    ("Where did the treaty get signed?", "in March 1648"),
])
def test_an_answer_of_the_wrong_kind_is_named(question, short):
    assert answer_type_problem(question, short)


@pytest.mark.parametrize("question, short", [
    ("In what year was the fort built?", "1562"),
    ("In what year was the fort built?", "in the 16th century"),
    ("What year did the war end?", "the 1990s"),
    ("How many people lived there?", "about 40,000"),
    ("How many people lived there?", "three hundred"),
    ("How often are elections held?", "every four years"),
    ("How often does the river flood?", "rarely"),  # amounts in words pass: only a missing amount counts
    ("How tall is the tower?", "taller than the church"),
    ("How long did the siege last?", "a long winter"),
    ("What percentage of power came from coal?", "12%"),
    ("Who designed the bridge?", "Gustave Eiffel"),
    ("Where was the priest from?", "Normandy"),
    ("When was the fort built?", "after the war"),  # "when" is left alone: answers come in many forms
    ("Did the fort survive?", "no"),
    ("What did the fort protect?", "1562"),
])
def test_answers_of_the_asked_kind_pass(question, short):
    assert answer_type_problem(question, short) == ""


@pytest.mark.parametrize("question, short", [
    ("Who married the wedding couple?", "the wedding couple"),
    ("What does CGT stand for?", "CGT."),
    ("What is the name of a Bodhisattva vow?", "Bodhisattva vow"),  # "the name of …" is asked, not the vow
    ("Who is the president of Neukio?", "Neukio"),
    ("What is the meaning of polynomial-space reduction?", "polynomial - space reduction"),
    ("Where did Tesla teach in Gospic?", "Gospić"),  # accents and case do not make it new
    ("Who did the Norman or wait no I mean the Irish culture influence?", "Irish culture"),  # a correction, no choice
    ("When Vikings arrived in the 880s I mean when did Rollo arrive?", "880s"),  # the abandoned words too
])
def test_an_answer_that_repeats_the_question_is_named(question, short):
    assert echo_problem(question, short)


@pytest.mark.parametrize("question, short", [
    ("Who won, the Broncos or the Steelers?", "the Broncos"),  # a choice: the answer is one of its words
    ("Which team won between the Broncos and the Steelers?", "the Broncos"),
    ("Other than Downtown San Bernardino, what is another business district?", "Downtown Riverside"),
    ("Which district lies between San Bernardino and Riverside?", "Downtown Riverside"),
    ("What does CGT stand for?", "cell and gene therapy"),
    ("Who is Chen Li?", "Chen Li"),  # the question is its subject: the text says who she is
    ("What are CAR-T products?", "CAR-T products"),
    ("Tell me about the Zhangjiang park", "the Zhangjiang park"),
    ("How many of the 12 ships returned?", "twelve"),
    ("Who founded Alpha Corp?", "Ada Stone, founder of Alpha Corp"),  # question words plus new ones
    ("Is the lab in Springfield?", "yes"),
    ("What did the founder found?", ""),
])
def test_answers_that_say_something_new_pass(question, short):
    assert echo_problem(question, short) == ""


@pytest.fixture
def docs(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "news.txt").write_text(DOC)
    return tmp_path / "docs"


def settings_with(fake_settings, **answer):
    """Fake embeddings cannot judge relevance: every passage is relevant enough."""
    return fake_settings.model_copy(
        update={"answer": fake_settings.answer.model_copy(update={"min_relevance": -1.0, **answer})})


class RecordingChat(GenericFakeChatModel):
    """The fake chat model, keeping the messages it was sent."""

    seen: list = []

    def _generate(self, messages, *args, **kwargs):
        self.seen.append(messages)
        return super()._generate(messages, *args, **kwargs)


def test_the_model_and_the_search_get_the_question_as_meant(fake_settings, docs):
    model = RecordingChat(messages=iter(["Answer: eight cities\nDetails: The pilot covers eight cities [1]."]))
    model.seen = []
    qa = DocQA(settings_with(fake_settings, resolve_corrections=True), chat_model=model)
    qa.ingest([docs])
    asked = "How many companies, I mean cities, does the pilot cover?"
    ans = qa.ask(asked)
    assert ans.question == asked
    assert ans.standalone_question == "How many cities does the pilot cover?"
    assert not ans.abstained and ans.short_answer == "eight cities"
    prompt = model.seen[0][-1].content
    assert "How many cities does the pilot cover?" in prompt and "companies, I mean" not in prompt


def test_by_default_the_question_is_used_as_typed(fake_settings, docs):
    assert fake_settings.answer.resolve_corrections is False
    qa = DocQA(settings_with(fake_settings), chat_model=GenericFakeChatModel(
        messages=iter(["Answer: eight cities\nDetails: The pilot covers eight cities [1]."])))
    qa.ingest([docs])
    asked = "How many companies, I mean cities, does the pilot cover?"
    assert qa.ask(asked).standalone_question == asked


def test_an_answer_of_the_wrong_kind_abstains_and_says_which_step(fake_settings, docs):
    reply = "Answer: the Ministry of Commerce\nDetails: The notice was issued in September by the Ministry of Commerce [1]."
    qa = DocQA(settings_with(fake_settings), chat_model=GenericFakeChatModel(messages=iter([reply, reply])))
    qa.ingest([docs])
    wrong_kind = qa.ask("In what year was the notice issued?")
    assert wrong_kind.abstained and wrong_kind.abstain_step == "answer_type"
    assert "year" in wrong_kind.abstain_reason
    right_kind = qa.ask("Who issued the notice?")
    assert not right_kind.abstained and right_kind.short_answer == "the Ministry of Commerce"



def test_an_echoing_answer_abstains_and_says_which_step(fake_settings, docs):
    echo = "Answer: the business scope\nDetails: Six foreign-invested biotech companies completed changes to their business scope on Nov 14 [1]."
    right = "Answer: Nov 14\nDetails: Six foreign-invested biotech companies completed changes to their business scope on Nov 14 [1]."
    qa = DocQA(settings_with(fake_settings), chat_model=GenericFakeChatModel(messages=iter([echo, right])))
    qa.ingest([docs])
    asked = "When did the companies complete changes to the business scope?"
    echoed = qa.ask(asked)
    assert echoed.abstained and echoed.abstain_step == "echo" and "repeats" in echoed.abstain_reason
    answered = qa.ask(asked)
    assert not answered.abstained and answered.short_answer == "Nov 14"


def test_a_question_that_is_its_own_subject_is_answered_by_its_text(fake_settings, docs):
    reply = "Answer: the Ministry of Commerce\nDetails: The notice was issued in September by the Ministry of Commerce [1]."
    qa = DocQA(settings_with(fake_settings), chat_model=GenericFakeChatModel(messages=iter([reply])))
    qa.ingest([docs])
    answer = qa.ask("What is the Ministry of Commerce?")
    assert not answer.abstained and "issued in September by the Ministry of Commerce" in answer.text
