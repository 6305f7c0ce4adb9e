"""Answers of the wrong kind, answers that echo the question, and "Who is X?" (rag.answer.checks.questions)."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.answer.checks.questions import answer_type_problem, echo_problem
from rag.serve.api import DocQA
from tests.test_answer import DOC


@pytest.mark.parametrize("question, short", [
    ("In what year was the fort built?", "Charlesfort"),
    ("What year did the war end?", "the Treaty of Paris"),
    ("How many people lived there?", "the old town"),
    ("What percentage of power came from coal?", "the northern grid"),
    ("Who designed the bridge?", "1885"),
    ("Where was the painter born?", "1721"),
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
    ("Where was the painter born?", "Lyon"),
    ("When was the fort built?", "after the war"),  # "when" is left alone: answers come in many forms
    ("Did the fort survive?", "no"),
    ("What did the fort protect?", "1562"),
])
def test_answers_of_the_asked_kind_pass(question, short):
    assert answer_type_problem(question, short) == ""




@pytest.mark.parametrize("question, short", [
    ("Who repaired the old clock tower?", "the old clock tower"),
    ("What does CGT stand for?", "CGT."),
    ("What is the name of a Bodhisattva vow?", "Bodhisattva vow"),  # "the name of …" is asked, not the vow
    ("Who is the president of Neukio?", "Neukio"),
    ("What is the meaning of polynomial-space reduction?", "polynomial - space reduction"),
    ("Where did the poet teach in Orléans?", "orleans"),  # accents and case do not make it new
    ("Who is Ann Lee?", "Ann Lee"),  # names the subject, not who she is
    ("What does the logging module use?", "logging module"),
    ("Which module reads py.warnings?", "py.warnings"),  # an identifier, but as the question writes it
])
def test_an_answer_that_repeats_the_question_is_named(question, short):
    assert echo_problem(question, short)


@pytest.mark.parametrize("question, short", [
    ("Who won, the Broncos or the Steelers?", "the Broncos"),  # a choice: the answer is one of its words
    ("Which team won between the Broncos and the Steelers?", "the Broncos"),
    ("Other than Downtown San Bernardino, what is another business district?", "Downtown Riverside"),
    ("Which district lies between San Bernardino and Riverside?", "Downtown Riverside"),
    ("What does CGT stand for?", "cell and gene therapy"),
    ("Who is Ann Lee?", "the chief engineer of the dam project"),
    ("How many of the 12 ships returned?", "twelve"),
    ("Who founded Alpha Corp?", "Ada Stone, founder of Alpha Corp"),  # question words plus new ones
    ("Is the lab in Springfield?", "yes"),
    ("What did the founder found?", ""),
    # an identifier made of the question's words is new when the question does not write it
    ("On which IRC channel are Debian Live users and developers present?", "#debian-live"),
    ("Where does the Debian Live config keep its includes?", "config/includes.chroot"),
    ("Which logger receives the warnings that the py warnings module issues?", "py.warnings"),
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


def test_who_is_x_is_answered_with_who_x_is(fake_settings, docs):
    # the model names the subject; the short answer says what the passage says the subject is
    (docs / "people.txt").write_text("The change helps the whole industry, said Chen Li, executive assistant to "
                                     "president of Neukio Biotherapeutics, at the launch.")
    qa = DocQA(settings_with(fake_settings, vetoes=["echo"], min_confidence=0.0), chat_model=GenericFakeChatModel(
        messages=iter(["Answer: Chen Li\nDetails: Chen Li said so [1]."])))
    qa.ingest([docs])
    ans = qa.ask("Who is Chen Li?")
    assert not ans.abstained
    assert ans.short_answer == "executive assistant to president of Neukio Biotherapeutics"
    assert "executive assistant" in ans.text and ans.citations


def test_an_echo_without_a_description_is_withheld_by_the_echo_veto(fake_settings, docs):
    qa = DocQA(settings_with(fake_settings, vetoes=["echo"], min_confidence=0.0), chat_model=GenericFakeChatModel(
        messages=iter(["Answer: the pilot\nDetails: The pilot covers eight cities [1]."])))
    qa.ingest([docs])
    ans = qa.ask("Which cities does the pilot cover?")
    assert ans.abstained and ans.abstain_step == "echo"
    assert ans.withheld is not None and ans.withheld.short_answer == "the pilot"


def test_describe_reads_the_copula_and_the_apposition():
    from rag.answer.checks.questions import describe

    assert describe("Ann Lee", ["Ann Lee is the chief engineer of the dam project."]) == \
        "the chief engineer of the dam project"
    assert describe("Bo Chen", ["The plan, said Bo Chen, director of the city museum, starts in May."]) == \
        "director of the city museum"
    assert describe("Bo Chen", ["Nothing about him here."]) == ""
