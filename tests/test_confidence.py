"""The calibrated confidence (rag.answer.confidence), and the checks it replaced as vetoes, in the answer path."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.answer.checks.grounding import answer_context
from rag.answer.citations import best_quote, resolve_citations
from rag.answer.context import Passage
from rag.answer.confidence import Calibration, answer_sureness, fit, threshold_for_precision
from rag.answer.flow import needs_context
from rag.core.types import Answer
from rag.serve.api import DocQA
from tests.test_answer import DOC, passages


def test_fit_learns_which_signal_predicts_a_right_answer():
    rng = random.Random(0)
    rows, labels = [], []
    for _ in range(400):
        right = rng.random() < 0.5
        rows.append({"support": rng.gauss(0.8 if right else 0.4, 0.15), "noise": rng.random()})
        labels.append(int(right))
    calib = fit(rows, labels, features=("support", "noise"))
    weights = dict(zip(calib.features, calib.weights))
    assert weights["support"] > 1.0 and abs(weights["noise"]) < 0.3
    assert calib.confidence({"support": 0.95, "noise": 0.5}) > 0.9 > 0.1 > calib.confidence({"support": 0.2, "noise": 0.5})
    # a missing signal counts as the training mean: the answer is judged on the others
    assert calib.confidence({"support": 0.95}) == pytest.approx(calib.confidence({"support": 0.95, "noise": calib.mean[1]}))


def test_the_threshold_is_the_lowest_that_keeps_answered_precision():
    conf = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    right = [True, True, True, True, True, True, True, True, True, False, False, False]
    assert threshold_for_precision(conf, right, 0.90, min_answered=3) == 0.2  # 9 of 10 answered are right
    assert threshold_for_precision(conf, right, 1.0, min_answered=3) == 0.3


def test_answer_sureness_is_the_geometric_mean_over_the_short_answer_s_tokens_only():
    reply = [("Answer", 0.99), (":", 0.99), (" an", 0.5), (" iso", 0.8), ("line", 0.8), ("\n", 0.9),
             ("Details", 0.99), (":", 0.99), (" guess", 0.01)]
    # " an", " iso", "line": the label before and the details after do not count
    assert answer_sureness(reply) == pytest.approx((0.5 * 0.8 * 0.8) ** (1 / 3))
    # a long answer copied word for word is as sure as a one-token one; one unlikely token pulls it down
    long = [("Answer", 1.0), (":", 1.0)] + [(f" w{i}", 0.95) for i in range(12)]
    assert answer_sureness(long) == pytest.approx(0.95)
    assert answer_sureness(long[:-1] + [(" odd", 0.001)]) < 0.6
    assert answer_sureness([("Answer", 1.0), (":", 1.0), ("\n", 1.0)]) is None  # nothing after the label
    assert answer_sureness([]) is None


def test_the_local_model_records_each_generated_token_s_probability():
    import numpy as np

    from rag.models.chat.llama_cpp import _Sureness

    sure = _Sureness(n_prompt=3)
    logits = np.log(np.array([0.7, 0.2, 0.1]))
    assert sure([5, 6, 7], logits.copy()) is not None  # the first token's distribution; nothing chosen yet
    sure([5, 6, 7, 0], np.log(np.array([0.1, 0.1, 0.8])))  # token 0 was chosen from the first: p 0.7
    sure([5, 6, 7, 0, 2], logits.copy())  # token 2 from the second: p 0.8
    assert [t for t, _ in sure.chosen] == [0, 2]
    assert [p for _, p in sure.chosen] == pytest.approx([0.7, 0.8])


def test_support_is_the_quoted_sentence_s_and_says_no_apart():
    chunk = "The plan was approved in May. The budget was not approved in June."
    support, start, end = best_quote("The budget was approved in June.", chunk)
    assert chunk[start:end] == "The budget was not approved in June."
    assert support == pytest.approx(0.5)  # the words agree, the claim does not
    assert best_quote("The plan was approved in May.", chunk)[0] == 1.0
    # the support of a chunk is its best sentence's, not the words scattered over the chunk
    assert best_quote("The plan budget was approved in June.", chunk)[0] < 1.0


def test_a_quote_that_does_not_state_the_answer_never_shows_full_support():
    ps = passages("The pilot covers eight cities, including Beijing, Shanghai and Hainan province. "
                  "Shanghai hosts the first companies.")
    _, cites, _ = resolve_citations("Shanghai hosts the first companies [1].", ps, 0.35,
                                    short_answer="Beijing, Shanghai and Hainan province")
    assert cites and cites[0].support < 1.0
    _, cites, _ = resolve_citations("The pilot covers Beijing, Shanghai and Hainan province [1].", ps, 0.35,
                                    short_answer="Beijing, Shanghai and Hainan province")
    assert cites[0].support == 1.0 and "eight cities" in cites[0].quote


@pytest.mark.parametrize("question, follows", [
    ("And when did it open?", True),
    ("Who founded it?", True),
    ("What about Paris?", True),
    ("Which of them is the oldest?", True),
    ("Why was that?", True),
    ("Where?", True),
    ("What did the treaty of 1902 say about trade and fishing?", False),  # "and" inside: not a follow-up
    ("Which company made that first engine?", False),  # "that" before a noun inside the question
    ("How is this year's budget split?", False),
])
def test_follow_ups_are_read_from_the_question_s_form(question, follows):
    assert needs_context(question) is follows


@pytest.fixture
def qa_with(fake_settings, tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "news.txt").write_text(DOC)

    def make(reply: str, calibration: Calibration | None, **answer):
        import rag.answer.flow as flow

        monkeypatch.setattr(flow, "load_calibration", lambda: calibration)
        settings = fake_settings.model_copy(update={"answer": fake_settings.answer.model_copy(
            update={"min_relevance": -1.0, **answer})})
        qa = DocQA(settings, chat_model=GenericFakeChatModel(messages=iter([reply])))
        qa.ingest([tmp_path / "docs"])
        return qa

    return make


def _calibration(bias: float, threshold: float = 0.5) -> Calibration:
    return Calibration(features=["support"], mean=[0.5], scale=[0.2], weights=[2.0], bias=bias, threshold=threshold)


def test_a_confident_answer_is_shown_with_its_confidence(qa_with):
    qa = qa_with("Answer: eight cities\nDetails: The pilot covers eight cities [1].", _calibration(2.0))
    ans = qa.ask("How many cities does the pilot cover?")
    assert not ans.abstained and ans.short_answer == "eight cities"
    assert ans.confidence is not None and ans.confidence > 0.9
    assert ans.signals["support"] == 1.0 and ans.signals["off_topic"] == 0.0
    # the sentence holding "eight cities" says what was asked: pilot, cover and cities of pilot, cover, cities, many
    assert ans.signals["answer_context"] == 0.75
    assert ans.to_dict()["confidence"] == ans.confidence


def test_an_unlikely_answer_is_withheld_by_the_confidence(qa_with):
    qa = qa_with("Answer: eight cities\nDetails: The pilot covers eight cities [1].", _calibration(-8.0),
                 min_confidence=None)  # the threshold fitted with the calibration
    ans = qa.ask("How many cities does the pilot cover?")
    assert ans.abstained and ans.abstain_step == "confidence"
    assert "confidence" in ans.abstain_reason
    assert ans.withheld is not None and ans.withheld.short_answer == "eight cities"
    # the setting overrides the fitted threshold: 0 never withholds on confidence
    qa = qa_with("Answer: eight cities\nDetails: The pilot covers eight cities [1].", _calibration(-8.0),
                 min_confidence=0.0)
    assert not qa.ask("How many cities does the pilot cover?").abstained


def test_a_check_withholds_only_when_it_is_a_veto(qa_with):
    reply = "Answer: 1999\nDetails: The notice was issued in September by the Ministry of Commerce [1]."
    asked = "In what year was the notice issued?"
    ans = qa_with(reply, None, vetoes=["answer_not_in_passages"]).ask(asked)
    assert ans.abstained and ans.abstain_step == "answer_not_in_passages"
    ans = qa_with(reply, None, vetoes=[]).ask(asked)  # no veto, no calibration: shown, with what the checks found
    assert not ans.abstained and ans.signals["answer_in_passages"] == 0.0 and ans.confidence is None


def test_the_ui_shows_the_confidence_and_a_withheld_answer_says_why():
    from ui.render import render_answer

    shown = render_answer(0, Answer("Six [1].", short_answer="Six", confidence=0.83))
    assert "Confidence 83%" in shown
    withheld = render_answer(0, Answer("I don't know based on the documents.", abstained=True,
                                       abstain_step="confidence", confidence=0.2,
                                       abstain_reason="the answer is unlikely to be right (confidence 20% < 45%)"))
    assert "withheld: confidence 20%" in withheld
    draft = Answer("Six <b>x</b> [1].", short_answer="Six", confidence=0.2)
    shown_anyway = render_answer(0, Answer("I don't know based on the documents.", abstained=True,
                                           abstain_step="confidence", confidence=0.2, withheld=draft))
    assert "Show it anyway" in shown_anyway and "Six &lt;b&gt;x&lt;/b&gt;" in shown_anyway  # escaped, behind a click
    assert "Confidence" not in render_answer(0, Answer("Six [1].", short_answer="Six"))  # no calibration: nothing


def test_the_http_api_returns_the_confidence():
    from rag.serve.http import answer_fields

    assert answer_fields(Answer("Six [1].", short_answer="Six", confidence=0.83))["confidence"] == 0.83


def test_not_only_but_also_is_no_negation():
    from rag.text.tokens import negated

    assert negated("The plan was not approved.") and negated("It wasn't approved.")
    assert not negated("The plan not only cut costs but also saved time.")


def test_an_answer_from_a_sentence_that_does_not_say_what_was_asked_has_little_context():
    ps = passages("The bridge opened in 1932. The tunnel under the river opened in 1950.")
    assert answer_context("When did the tunnel open?", "1950", ps) == 1.0
    # a near miss answered from the neighbouring sentence: it holds a year, not the tunnel
    assert answer_context("When did the tunnel open?", "1932", ps) == 0.5
    assert answer_context("When did the tunnel open?", "1871", ps) == 0.0  # no sentence holds the answer
    # an answer written as a whole sentence scores as its bare value does
    asked = "In which year did the tunnel open?"
    assert answer_context(asked, "The tunnel opened in 1950.", ps) == answer_context(asked, "1950", ps) > 0


def test_a_table_row_is_read_with_its_header_and_a_passage_with_its_headings():
    table = "| Port | Service |\n| --- | --- |\n| 22 | SSH |\n| 80 | HTTP |"
    ps = passages(table)
    asked = answer_context("Which port does HTTP use?", "80", ps)
    near_miss = answer_context("Which port does HTTPS use?", "80", ps)  # the table has no HTTPS row
    assert asked > near_miss
    under = [Passage(1, replace(ps[0].chunk, section="Networking › Firewall rules"), table)]
    question = "Which port do the firewall rules give SSH?"
    assert answer_context(question, "22", under) > answer_context(question, "22", ps)


def test_a_yes_no_answer_is_read_against_the_best_sentence():
    ps = passages("The museum is closed on Mondays. Tickets are sold at the gate.")
    assert answer_context("Is the museum closed on Mondays?", "Yes", ps) == 1.0
