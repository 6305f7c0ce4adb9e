"""Verification after generation (rag.answer.checks.verify) and the abstention steps, with fake chat models."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.answer.checks.verify import evidence_sentence, verify_answer, yes_probability
from rag.core.types import Citation
from rag.serve.api import DocQA

DOC = ("Six foreign-invested biotech companies, including Merck Testing and Frontera Therapeutics, completed changes "
       "to their business scope on Nov 14. The notice was issued in September by the Ministry of Commerce.\n\n"
       "Germany-headquartered Merck Testing plans to introduce testing technologies within six months.")
REPLY = "Answer: six\nDetails: Six foreign-invested biotech companies completed changes to their business scope [1]."


def cite(text: str) -> Citation:
    return Citation(n=1, chunk_id="c1", source="doc.txt", text=text, quote=text[:40], quote_start=0, quote_end=40)


def test_evidence_sentence_is_the_cited_sentence_holding_the_answer():
    c = cite(DOC)
    assert evidence_sentence("Germany", [c]).startswith("Germany-headquartered Merck Testing")
    assert evidence_sentence("six", [c]).startswith("Six foreign-invested")


@pytest.mark.parametrize("reply, p", [("Yes", 1.0), ("yes, it does.", 1.0), ("No.", 0.0), ("Maybe", 0.0)])
def test_one_word_reply_is_read_when_the_model_gives_no_probabilities(reply, p):
    assert yes_probability(GenericFakeChatModel(messages=iter([reply])), []) == p


def test_verify_answer_asks_the_model_and_times_it():
    model = GenericFakeChatModel(messages=iter(["No"]))
    verdict = verify_answer("How many employees does Frontera have?", "six", [cite(DOC)], model, 0.5)
    assert not verdict.passed and verdict.p_yes == 0.0 and verdict.sentence.startswith("Six") and verdict.ms >= 0


def test_yes_no_answers_and_uncited_answers_pass_unchecked():
    model = GenericFakeChatModel(messages=iter([]))  # any call would raise
    assert verify_answer("Is Merck Testing German?", "Yes", [cite(DOC)], model, 0.5).passed
    assert verify_answer("How many?", "six", [], model, 0.5).passed


def test_prompt_is_a_constant_prefix_then_the_variable_part():
    from rag.answer.checks.verify import verify_messages

    a = verify_messages("Q one?", "x", "Sentence one.")
    b = verify_messages("Q two?", "y", "Sentence two.")
    assert a[0].content == b[0].content  # the system text never changes: llama.cpp keeps it cached
    assert "Sentence: Sentence one." in a[1].content and "Question: Q one?" in a[1].content


@pytest.fixture
def qa_with(fake_settings, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "news.txt").write_text(DOC)

    def make(responses, **answer):
        cfg = fake_settings.answer.model_copy(update={"min_relevance": -1.0, "verify": True, **answer})
        qa = DocQA(fake_settings.model_copy(update={"answer": cfg}), chat_model=GenericFakeChatModel(messages=iter(responses)))
        qa.ingest([tmp_path / "docs"])
        return qa

    return make


def test_verification_no_withholds_the_answer_and_says_which_step(qa_with):
    ans = qa_with([REPLY, "No"]).ask("How many foreign-invested biotech companies changed their business scope?")
    assert ans.abstained and ans.abstain_step == "verification" and ans.verify_p_yes == 0.0
    assert ans.withheld is not None and ans.withheld.short_answer == "six" and ans.withheld.citations
    assert ans.raw_reply == REPLY and "verify_ms" in ans.timings
    assert ans.prompt_chunk_ids and set(ans.prompt_chunk_ids) <= {p.chunk_id for p in ans.passages}


def test_verification_yes_keeps_the_answer(qa_with):
    ans = qa_with([REPLY, "Yes"]).ask("How many foreign-invested biotech companies changed their business scope?")
    assert not ans.abstained and ans.short_answer == "six" and ans.verify_p_yes == 1.0 and ans.withheld is None


def test_every_abstention_names_its_step(qa_with):
    assert qa_with(["Answer: I don't know based on the documents."]).ask("What is the GDP of France?").abstain_step == "model"
    invented = qa_with(["Answer: 100 million yuan\nDetails: Merck invested 100 million yuan [1]."],
                       vetoes=["answer_not_in_passages"])
    assert invented.ask("How much did Merck Testing invest?").abstain_step == "answer_not_in_passages"
    assert qa_with([], min_relevance=2.0).ask("Who won the 1966 World Cup?").abstain_step == "relevance"


class DoubtfulChat(GenericFakeChatModel):
    """The fake chat model, with a fixed probability of having declined (as `LlamaCppChat` measures it)."""

    decline: float = 0.0
    top: float = 0.9
    asked: list = []

    def continuation_probabilities(self, messages, reply_prefix, word):
        self.asked.append((reply_prefix, word))
        return self.decline, self.top


@pytest.mark.parametrize("decline, withheld", [(0.45, True), (0.05, False)])
def test_the_model_s_doubt_feeds_the_confidence(fake_settings, tmp_path, monkeypatch, decline, withheld):
    import rag.answer.flow as flow
    from rag.answer.confidence import Calibration

    # a calibration that trusts an answer the less the model was likely to decline
    monkeypatch.setattr(flow, "load_calibration", lambda: Calibration(
        features=["decline_p"], mean=[0.1], scale=[0.1], weights=[-3.0], bias=1.0, threshold=0.5))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "news.txt").write_text(DOC)
    cfg = fake_settings.answer.model_copy(update={"min_relevance": -1.0, "min_confidence": None})
    model = DoubtfulChat(messages=iter([REPLY]), decline=decline, top=0.7)
    model.asked = []
    qa = DocQA(fake_settings.model_copy(update={"answer": cfg}), chat_model=model)
    qa.ingest([tmp_path / "docs"])
    ans = qa.ask("How many foreign-invested biotech companies changed their business scope?")
    # the probability read is that of the abstention's first word, right after the reply's label
    assert model.asked == [("Answer:", "I")] and ans.decline_p == decline and "decline_ms" in ans.timings
    assert ans.signals["decline_p"] == decline and ans.signals["first_token_p"] == 0.7
    assert ans.abstained is withheld
    if withheld:
        assert ans.abstain_step == "confidence" and ans.confidence < 0.5
        assert ans.withheld is not None and ans.withheld.short_answer == "six"
    else:
        assert ans.short_answer == "six" and ans.withheld is None and ans.confidence > 0.5


def test_without_a_calibration_the_model_s_doubt_is_recorded_and_withholds_nothing(fake_settings, tmp_path,
                                                                                   monkeypatch):
    import rag.answer.flow as flow

    monkeypatch.setattr(flow, "load_calibration", lambda: None)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "news.txt").write_text(DOC)
    model = DoubtfulChat(messages=iter([REPLY]), decline=0.9, top=0.01)
    model.asked = []
    cfg = fake_settings.answer.model_copy(update={"min_relevance": -1.0})
    qa = DocQA(fake_settings.model_copy(update={"answer": cfg}), chat_model=model)
    qa.ingest([tmp_path / "docs"])
    ans = qa.ask("How many foreign-invested biotech companies changed their business scope?")
    assert not ans.abstained and ans.confidence is None
    assert ans.decline_p == 0.9 and ans.signals["first_token_p"] == 0.01
