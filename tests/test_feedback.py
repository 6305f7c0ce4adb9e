"""Feedback on answers, and its export as an evaluation dataset that `rag eval` runs on (fake models)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.core.config import load_settings
from rag.core.errors import ConfigError, ConversationError
from rag.core.types import Chunk
from rag.eval.datasets import load_dataset
from rag.eval.runner import run_eval
from rag.memory.feedback import parse_rating, rebuild_text
from rag.serve.api import DocQA
from tests.conftest import shared_cache

ZEBRA = "Zebras live in Kenya and are striped.\n\nThey eat grass on the savanna."
PENGUIN = "# Penguins\n\nPenguins live in Antarctica and cannot fly."
KENYA = "Answer: Kenya\nDetails: Zebras live in Kenya [1]."
DONT_KNOW = "Answer: I don't know based on the documents."


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "zebra.txt").write_text(ZEBRA, encoding="utf-8")
    (folder / "penguin.md").write_text(PENGUIN, encoding="utf-8")
    return folder


def make_qa(tmp_path, responses):
    settings = load_settings(environ={}, home=tmp_path / "home", cache=shared_cache(),
                             embedding={"provider": "fake", "model_name": "fake"},
                             llm={"provider": "fake", "fake_responses": responses},
                             answer={"min_relevance": -1.0}, retrieval={"mode": "bm25"})
    return DocQA(settings)


def test_ratings_are_stored_with_what_was_rated_and_replaced_on_a_second_rating(tmp_path, docs):
    qa = make_qa(tmp_path, [KENYA])
    qa.ingest([docs])
    answer = qa.ask("Where do zebras live?")
    fb = qa.feedback(answer, "up", comment="  right  ")
    assert fb.rating == 1 and fb.comment == "right" and fb.question == "Where do zebras live?"
    [stored] = qa.feedback_items()
    assert stored.answer.citations == answer.citations and stored.answer.passages == answer.passages
    qa.feedback(answer, "down", correction="Kenya, East Africa")  # the same answer again: replaces
    [stored] = qa.feedback_items()
    assert stored.rating == -1 and stored.correction == "Kenya, East Africa" and stored.comment == ""

    turn = qa.save_turn(qa.ask("Where do zebras live?"))
    follow = qa.save_turn(qa.ask("And what do they eat?"), turn.conversation_id)
    fb = qa.feedback(follow.turn_id, 1)
    assert fb.turn_id == follow.turn_id and fb.history == ("Where do zebras live?",)
    assert len(qa.feedback_items()) == 2
    qa.delete_conversation(turn.conversation_id)
    assert len(qa.feedback_items()) == 2  # feedback outlives its conversation
    with pytest.raises(ConversationError, match="no saved answer"):
        qa.feedback("nope", "up")
    with pytest.raises(ConversationError, match="use 'up' or 'down'"):
        qa.feedback(answer, "maybe")


@pytest.mark.parametrize("given, expected", [("up", 1), ("Down", -1), (1, 1), (-1, -1), (True, 1), (False, -1),
                                              ("👍", 1), ("👎", -1)])
def test_parse_rating(given, expected):
    assert parse_rating(given) == expected


def test_rebuild_text_merges_overlapping_chunks():
    doc = "one two three four five six"
    chunks = [Chunk("b", doc[8:23], "s", start=8, end=23), Chunk("a", doc[0:13], "s", start=0, end=13),
              Chunk("c", doc[19:], "s", start=19, end=len(doc))]
    assert rebuild_text(chunks) == doc
    assert rebuild_text([Chunk("a", "one", "s", start=0, end=3), Chunk("c", "six", "s", start=24, end=27)]) == "one\n\nsix"


def test_feedback_export_then_rag_eval_runs_on_it(tmp_path, docs, monkeypatch):
    # asked in this order, the fake model answers: zebras -> Kenya, penguins -> don't know,
    # penguin weight -> don't know, striped zebras -> Kenya (rated wrong)
    qa = make_qa(tmp_path, [KENYA, DONT_KNOW, DONT_KNOW, KENYA])
    qa.ingest([docs])
    zebras = qa.save_turn(qa.ask("Where do zebras live?"))
    penguins = qa.save_turn(qa.ask("Where do penguins live?"), zebras.conversation_id)
    assert penguins.answer.abstained
    peru = qa.ask("How much do penguins weigh?")
    speed = qa.ask("Where do striped zebras live?")
    assert peru.abstained and not speed.abstained

    qa.feedback(zebras.turn_id, "up")
    qa.feedback(penguins.turn_id, "down", comment="it is in the penguin file", correction="Antarctica")
    qa.feedback(peru, "up")                                   # a right abstention
    qa.feedback(speed, "down", comment="not what I asked")    # wrong, and no correction: to review

    out = tmp_path / "dataset"
    result = CliRunner().invoke(app, ["feedback", "export", "--out", str(out), "--home", str(qa.settings.home)],
                                env={"RAG_EMBEDDING__PROVIDER": "fake", "RAG_EMBEDDING__MODEL_NAME": "fake"})
    assert result.exit_code == 0, result.output
    assert "3 questions (2 answerable, 1 unanswerable), 2 documents, 1 to review" in result.output

    dataset = load_dataset(out)  # the evaluation's own checks pass
    rows = {r["question"]: r for r in dataset.questions}
    expected = {"question": "Where do zebras live?", "answers": ["Kenya"], "gold_doc_ids": ["zebra.txt"],
                "answerable": True, "history": []}
    zebra = rows["Where do zebras live?"]
    assert {k: zebra[k] for k in expected} == expected  # (load_dataset adds the optional fields' defaults)
    assert not zebra.get("list_items") and not zebra.get("answer_starts")
    penguin_row = rows["Where do penguins live?"]
    assert penguin_row["answers"] == ["Antarctica"] and penguin_row["gold_doc_ids"] == ["penguin.md"]
    assert penguin_row["history"] == ["Where do zebras live?"] and penguin_row["answerable"]
    assert rows["How much do penguins weigh?"]["answerable"] is False
    corpus = {d["doc_id"]: d for d in dataset.corpus}
    assert corpus["zebra.txt"]["text"] == ZEBRA  # the whole document, rebuilt from the collection
    review = [json.loads(line) for line in (out / "review.jsonl").read_text().splitlines()]
    assert [r["question"] for r in review] == ["Where do striped zebras live?"] and review[0]["comment"] == "not what I asked"

    # `rag eval` runs on it (here the fake model answers Kenya every time)
    monkeypatch.setenv("RAG_EMBEDDING__PROVIDER", "fake")
    monkeypatch.setenv("RAG_EMBEDDING__MODEL_NAME", "fake")
    monkeypatch.setenv("RAG_ANSWER__MIN_RELEVANCE", "-1")
    monkeypatch.setenv("RAG_LLM__FAKE_RESPONSES", json.dumps([KENYA]))
    report = tmp_path / "run.json"
    ran = CliRunner().invoke(app, ["eval", "--dataset", str(out), "--llm", "fake", "--mode", "bm25",
                                   "--home", str(tmp_path / "eval-home"), "--out", str(report)])
    assert ran.exit_code == 0, ran.output
    data = json.loads(report.read_text())
    assert data["metrics"]["answer.questions"] == 2 and data["metrics"]["abstention.unanswerable_questions"] == 1
    assert data["metrics"]["retrieval.questions"] == 2
    by_question = {r["question"]: r for r in data["questions"]}
    assert by_question["Where do zebras live?"]["category"] is None  # answered Kenya, citing zebra.txt

    # the same through the Python API, with the answers of the original conversation
    direct = run_eval(qa.settings, out, mode="bm25", llm="fake")
    assert direct.metrics["answer.questions"] == 2


def test_export_of_a_deleted_document_uses_the_stored_passages(tmp_path, docs):
    qa = make_qa(tmp_path, [KENYA])
    qa.ingest([docs])
    qa.feedback(qa.ask("Where do zebras live?"), "up")
    qa.delete("zebra.txt")
    summary = qa.export_feedback(tmp_path / "ds")
    corpus = {d["doc_id"]: d for d in load_dataset(tmp_path / "ds").corpus}
    assert summary.questions == 1 and "Zebras live in Kenya" in corpus["zebra.txt"]["text"]


def test_export_never_replaces_a_dataset_it_did_not_write(tmp_path, docs):
    qa = make_qa(tmp_path, [KENYA])
    qa.ingest([docs])
    qa.feedback(qa.ask("Where do zebras live?"), "up")
    handmade = tmp_path / "handmade"
    handmade.mkdir()
    (handmade / "questions.jsonl").write_text('{"qid": "q1"}\n')
    with pytest.raises(ConfigError, match="choose another --out"):
        qa.export_feedback(handmade)
    assert (handmade / "questions.jsonl").read_text() == '{"qid": "q1"}\n'
    first = qa.export_feedback(tmp_path / "mine")
    qa.feedback(qa.ask("Where do penguins live?"), "up")
    again = qa.export_feedback(tmp_path / "mine")  # its own earlier export: replaced
    assert (first.questions, again.questions) == (1, 2)
