"""Honest measurement: passage-level citations, raw vs shown, strict vs lenient, abstention steps,
the dev/test split, list answers and conversation turns, floors from standard errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.core.types import Answer, Chunk, Citation
from rag.eval.datasets import gold_spans, load_dataset, load_split, split_dataset
from rag.eval.gates import suggest_floors
from rag.eval.metrics import list_items
from rag.eval.scoring import (
    abstention_table,
    answer_metrics,
    score_answer,
    standard_errors,
)
from rag.eval.sweeps import (
    doubt_sweep,
    rescored,
    sureness_sweep,
    verification_sweep,
    without_verification,
)

REPO = Path(__file__).resolve().parent.parent
TEXT = "Intro sentence about the city. The river Seine flows through Paris. The mayor lives by the river."


def chunk(n: int, start: int, end: int, doc: str = "paris") -> Chunk:
    return Chunk(chunk_id=f"{doc}-{n}", text=TEXT[start:end], source=doc, start=start, end=end)


FIRST, SECOND = chunk(0, 0, 31), chunk(1, 31, len(TEXT))  # the answer "Seine" is in the second chunk


def cite(n: int, c: Chunk, supported: bool = True) -> Citation:
    return Citation(n=n, chunk_id=c.chunk_id, source=c.source, text=c.text, supported=supported)


Q = {"qid": "q", "question": "Which river flows through Paris?", "answers": ["Seine"], "gold_doc_ids": ["paris"],
     "answerable": True, "history": [], "answer_starts": [TEXT.index("Seine")]}
U = {"qid": "u", "question": "Who is the mayor?", "answers": [], "gold_doc_ids": [], "answerable": False, "history": []}


def test_gold_spans_pair_offsets_with_answers_and_place_evidence():
    assert gold_spans(Q, {"paris": TEXT}) == [("paris", TEXT.index("Seine"), TEXT.index("Seine") + 5)]
    with_evidence = {**Q, "answer_starts": [], "evidence": ["The river Seine flows through Paris."]}
    assert gold_spans(with_evidence, {"paris": TEXT}) == [("paris", TEXT.index("Seine"), TEXT.index("Seine") + 5)]


def test_citation_is_judged_by_passage_not_by_document():
    spans = gold_spans(Q, {"paris": TEXT})
    row = score_answer(Q, Answer("The Seine [1].", [cite(1, FIRST)], short_answer="Seine", passages=[FIRST, SECOND]), spans)
    assert row["citations"][0]["doc_correct"] and not row["citations"][0]["correct"]  # right document, wrong passage
    row = score_answer(Q, Answer("The Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[FIRST, SECOND]), spans)
    assert row["citations"][0]["correct"]
    m = answer_metrics([row])
    assert m["citation.precision"] == 1.0 and m["citation.doc_precision"] == 1.0


def test_a_chunk_overlapping_the_gold_span_is_correct_even_without_the_words():
    cut = chunk(2, 31, 43)  # "The river Se": holds part of the span, not the answer's words
    row = score_answer(Q, Answer("x [1].", [cite(1, cut)], short_answer="Seine", passages=[cut]), gold_spans(Q, {"paris": TEXT}))
    assert row["citations"][0]["correct"]


def test_raw_citations_and_faithfulness_score_the_models_own_reply():
    raw = "Answer: Seine\nDetails: The Seine flows through Paris [1]. It is long [7]."
    ans = Answer("The Seine flows through Paris [1].", [cite(1, SECOND)], short_answer="Seine", passages=[FIRST, SECOND],
                 raw_reply=raw, prompt_chunk_ids=[FIRST.chunk_id, SECOND.chunk_id])
    row = score_answer(Q, ans, gold_spans(Q, {"paris": TEXT}))
    # the model cited passage 1 (FIRST: wrong passage) and a passage 7 that does not exist; the repaired answer cites SECOND
    assert [(c["n"], c["correct"]) for c in row["raw_citations"]] == [(1, False), (7, False)]
    assert (row["raw_faithful_sentences"], row["raw_sentences"]) == (0, 2)
    m = answer_metrics([row])
    assert m["citation.raw_precision"] == 0.0 and m["citation.precision"] == 1.0
    assert m["faithfulness_raw"] == 0.0 and m["faithfulness"] == 1.0


def test_strict_accuracy_counts_only_the_short_answer():
    ans = Answer("The Seine flows through Paris [1].", [cite(1, SECOND)], short_answer="the river", passages=[SECOND])
    row = score_answer(Q, ans)
    assert not row["correct"] and row["correct_lenient"]
    m = answer_metrics([row])
    assert m["answer.accuracy"] == 0.0 and m["answer.accuracy_lenient"] == 1.0


def test_abstentions_are_tabled_by_step():
    rows = [score_answer(Q, Answer("I don't know.", abstained=True, abstain_step="model")),
            score_answer(U, Answer("I don't know.", abstained=True, abstain_step="verification")),
            score_answer(U, Answer("I don't know.", abstained=True, abstain_step="relevance"))]
    assert rows[0]["abstain_step"] == "model"
    assert abstention_table(rows) == {"relevance": {"answerable": 0, "unanswerable": 1},
                                      "model": {"answerable": 1, "unanswerable": 0},
                                      "verification": {"answerable": 0, "unanswerable": 1}}


def test_withheld_answers_give_the_figures_without_verification():
    shown = Answer("Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND], verify_p_yes=0.3)
    ans = Answer("I don't know.", abstained=True, abstain_step="verification", verify_p_yes=0.3, withheld=shown)
    rows = [score_answer(Q, ans)]
    assert answer_metrics(rows)["answer.accuracy"] == 0.0
    assert answer_metrics(without_verification(rows))["answer.accuracy"] == 1.0
    sweep = {r["threshold"]: r["answer.accuracy"] for r in verification_sweep(rows, (0.0, 0.2, 0.5))}
    assert sweep == {0.0: 1.0, 0.2: 1.0, 0.5: 0.0}


def test_doubt_sweep_turns_doubtful_answers_into_abstentions_and_puts_withheld_ones_back():
    shown = Answer("Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND], decline_p=0.3)
    withheld = Answer("I don't know.", abstained=True, abstain_step="model_doubt", decline_p=0.3, withheld=shown)
    sure = Answer("Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND], decline_p=0.02)
    rows = [score_answer(Q, withheld), score_answer(Q, sure)]
    assert answer_metrics(rows)["answer.accuracy"] == 0.5
    assert answer_metrics(rescored(rows))["answer.accuracy"] == 1.0  # 1.0: nothing abstains for doubt
    again = rescored(rows, max_decline_p=0.25)
    assert [r["abstained"] for r in again] == [True, False] and again[0]["abstain_step"] == "model_doubt"
    sweep = {r["threshold"]: r["answer.accuracy"] for r in doubt_sweep(rows, (1.0, 0.25, 0.01))}
    assert sweep == {1.0: 1.0, 0.25: 0.5, 0.01: 0.0}


def test_sureness_sweep_turns_answers_the_model_was_unsure_of_into_abstentions():
    unsure = Answer("Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND], first_token_p=0.3)
    sure = Answer("Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND], first_token_p=0.9)
    rows = [score_answer(Q, unsure), score_answer(Q, sure)]
    assert [r["abstained"] for r in rescored(rows, min_first_token_p=0.5)] == [True, False]
    sweep = {r["threshold"]: r["answer.accuracy"] for r in sureness_sweep(rows, (0.0, 0.5, 0.95))}
    assert sweep == {0.0: 1.0, 0.5: 0.5, 0.95: 0.0}


def test_list_answers_score_item_recall_and_precision():
    assert list_items("Merck Testing and Frontera Therapeutics [1].") == ["Merck Testing", "Frontera Therapeutics"]
    assert list_items("Beijing, Shanghai, and Hainan") == ["Beijing", "Shanghai", "Hainan"]
    q = {**Q, "answers": ["Merck Testing and Frontera Therapeutics"], "list_items": ["Merck Testing", "Frontera Therapeutics|Frontera"]}
    one = score_answer(q, Answer("Merck Testing [1].", short_answer="Merck Testing"))
    assert one["list_recall"] == 0.5 and one["list_precision"] == 1.0 and not one["correct"]
    both = score_answer(q, Answer("x", short_answer="Merck Testing, Frontera and Bayer"))
    assert both["list_recall"] == 1.0 and both["list_precision"] == pytest.approx(2 / 3, abs=1e-3) and both["correct"]
    m = answer_metrics([one, both])
    assert m["list.item_recall"] == 0.75 and m["list.complete"] == 0.5


def test_conversation_turns_count_right_answers_and_right_abstentions():
    first = score_answer(Q, Answer("Seine [1].", short_answer="Seine"))
    follow = score_answer({**U, "history": ["Which river flows through Paris?"]}, Answer("I don't know.", abstained=True))
    wrong = score_answer({**Q, "history": ["x"]}, Answer("Loire", short_answer="Loire"))
    m = answer_metrics([first, follow, wrong])
    assert m["conversation.turns"] == 3 and m["conversation.turns_correct"] == pytest.approx(2 / 3, abs=1e-3)
    assert m["conversation.follow_ups_correct"] == 0.5


def test_floors_are_two_standard_errors_below():
    rows = [score_answer(U, Answer("I don't know.", abstained=True)) for _ in range(8)]
    rows += [score_answer(U, Answer("Paris", short_answer="Paris")) for _ in range(2)]
    se = standard_errors(rows)
    assert se["abstention.unanswerable_abstained"] == pytest.approx(((9 / 12) * (3 / 12) / 10) ** 0.5, abs=1e-4)
    floors = suggest_floors(answer_metrics(rows), se)
    assert floors["abstention.unanswerable_abstained"] == pytest.approx(0.8 - 2 * se["abstention.unanswerable_abstained"], abs=0.01)
    assert floors["abstention.unanswerable_abstained"] <= 0.8 - 2 * se["abstention.unanswerable_abstained"]


def test_squad_split_is_by_article_six_and_six():
    folder = REPO / "evals" / "datasets" / "squad-dev-mini"
    data = load_dataset(folder)
    dev, test = load_split(folder, "dev"), load_split(folder, "test")
    assert len(dev) == len(test) == 6 and not dev & test
    assert dev | test == {d["title"] for d in data.corpus}
    n_dev, n_test = len(split_dataset(data, dev).questions), len(split_dataset(data, test).questions)
    assert n_dev + n_test == len(data.questions)


def test_seed_and_conversation_sets_place_every_gold_answer():
    for name in ("seed", "conversations"):
        data = load_dataset(REPO / "evals" / "datasets" / name)
        texts = {d["doc_id"]: d["text"] for d in data.corpus}
        for q in data.questions:
            if q["answerable"]:
                assert gold_spans(q, texts), f"{name} {q['qid']}: no gold span"


def test_conversation_set_size():
    data = load_dataset(REPO / "evals" / "datasets" / "conversations")
    conversations = {q["qid"].split("t")[0] for q in data.questions}
    assert len(conversations) >= 40
    assert sum(not q["answerable"] for q in data.questions) >= 5 and sum(bool(q["list_items"]) for q in data.questions) >= 20
    assert all(1 <= len(q["history"]) <= 2 for q in data.questions if q["qid"].endswith(("t2", "t3")))
