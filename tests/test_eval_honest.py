"""Honest measurement: passage-level citations, raw vs shown, strict vs lenient, abstention steps,
the dev/seen split, list answers and conversation turns, floors that catch their regressions, strict accuracy,
citations on gold documents only, faithfulness of the raw reply, risk and coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.core.types import Answer, Chunk, Citation
from rag.eval.datasets import gold_spans, load_dataset, load_split, split_dataset
from rag.eval.metrics import list_items
from rag.eval.scoring import (
    abstention_table,
    answer_metrics,
    score_answer,
    standard_errors,
)
from rag.eval.sweeps import (
    confidence_sweep,
    rescored,
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
    assert (row["repair_check_faithful_sentences"], row["repair_check_sentences"]) == (0, 2)
    assert (row["faithful_sentences"], row["sentences"]) == (0, 2)  # the headline: the reply's own sentences
    m = answer_metrics([row])
    assert m["citation.raw_precision"] == 0.0 and m["citation.precision"] == 1.0
    assert m["faithfulness_repair_check"] == 0.0 and m["faithfulness"] == 0.0 and m["faithfulness_shown"] == 1.0


def test_strict_accuracy_counts_only_the_short_answer():
    ans = Answer("The Seine flows through Paris [1].", [cite(1, SECOND)], short_answer="the river", passages=[SECOND])
    row = score_answer(Q, ans)
    assert not row["correct"] and not row["contains"] and row["contains_anywhere"]
    m = answer_metrics([row])
    assert m["answer.accuracy"] == 0.0 and m["answer.contains"] == 0.0 and m["answer.contains_anywhere"] == 1.0


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


def test_confidence_sweep_turns_unlikely_answers_into_abstentions_and_puts_withheld_ones_back():
    shown = Answer("Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND], confidence=0.3)
    withheld = Answer("I don't know.", abstained=True, abstain_step="confidence", confidence=0.3, withheld=shown)
    sure = Answer("Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND], confidence=0.9)
    rows = [score_answer(Q, withheld), score_answer(Q, sure)]
    assert answer_metrics(rows)["answer.accuracy"] == 0.5
    assert answer_metrics(rescored(rows))["answer.accuracy"] == 1.0  # 0: nothing abstains on confidence
    again = rescored(rows, min_confidence=0.5)
    assert [r["abstained"] for r in again] == [True, False] and again[0]["abstain_step"] == "confidence"
    sweep = {r["threshold"]: r["answer.accuracy"] for r in confidence_sweep(rows, (0.0, 0.5, 0.95))}
    assert sweep == {0.0: 1.0, 0.5: 0.5, 0.95: 0.0}


def test_an_answer_a_veto_withheld_stays_withheld_in_a_confidence_sweep():
    shown = Answer("Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND], confidence=0.9)
    vetoed = Answer("I don't know.", abstained=True, abstain_step="off_topic", confidence=0.9, withheld=shown)
    assert [r["abstained"] for r in rescored([score_answer(Q, vetoed)], min_confidence=0.0)] == [True]


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


def test_standard_errors_use_a_pseudo_count_for_rates_at_0_or_1():
    rows = [score_answer(U, Answer("I don't know.", abstained=True)) for _ in range(8)]
    rows += [score_answer(U, Answer("Paris", short_answer="Paris")) for _ in range(2)]
    se = standard_errors(rows)
    assert se["abstention.unanswerable_abstained"] == pytest.approx(((9 / 12) * (3 / 12) / 10) ** 0.5, abs=1e-4)


def test_squad_split_is_by_article_six_and_six():
    folder = REPO / "evals" / "datasets" / "squad-dev-mini"
    data = load_dataset(folder)
    dev, test = load_split(folder, "dev"), load_split(folder, "seen")  # "seen": the old test split, looked at
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


# --- issue 22: honest metrics -------------------------------------------------------------------
OTHER = Chunk(chunk_id="other-0", text="The Seine is a river in France.", source="other", start=0, end=31)


def test_citations_on_an_answered_unanswerable_question_count_as_wrong():
    right = score_answer(Q, Answer("The Seine [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND]),
                         gold_spans(Q, {"paris": TEXT}))
    raw = "Answer: the mayor\nDetails: The mayor lives by the river [1]."
    wrong = score_answer({**U, "gold_doc_ids": ["paris"]},  # a near miss: written against the gold document
                         Answer("The mayor lives by the river [1].", [cite(1, SECOND)], short_answer="the mayor",
                                passages=[SECOND], raw_reply=raw, prompt_chunk_ids=[SECOND.chunk_id]))
    assert [c["correct"] for c in wrong["citations"]] == [False] and not wrong["citations"][0]["doc_correct"]
    m = answer_metrics([right, wrong])
    assert m["citation.precision"] == 0.5 and m["citation.doc_precision"] == 0.5 and m["citation.raw_precision"] == 0.0
    assert m["citation.recall"] == 1.0  # recall stays over answered answerable questions
    assert standard_errors([right, wrong])["citation.precision"] == pytest.approx(0.5 / 2 ** 0.5, abs=1e-4)


def test_a_citation_outside_the_gold_documents_is_wrong_even_when_it_holds_the_answer():
    ans = Answer("The Seine [1].", [cite(1, OTHER)], short_answer="Seine", passages=[OTHER])
    row = score_answer(Q, ans, gold_spans(Q, {"paris": TEXT}))
    assert row["citations"][0] | {} and not row["citations"][0]["correct"] and not row["citations"][0]["doc_correct"]
    assert row["category"] == "citation error"
    assert answer_metrics([row])["citation.precision"] == 0.0


def test_with_gold_pages_a_citation_is_right_only_on_a_gold_page_of_a_gold_document():
    q = {"qid": "p", "question": "How fast is the widget?", "answers": ["42 km/h"], "gold_doc_ids": ["manual"],
         "gold_pages": [3], "answerable": True, "history": []}
    page2 = Chunk(chunk_id="m-2", text="The widget reaches 42 km/h.", source="manual", page=2)
    page3 = Chunk(chunk_id="m-3", text="Top speed table.", source="manual", page=3)
    html = Chunk(chunk_id="h-0", text="Its top speed is 42 km/h.", source="manual")  # no pages: its text decides
    elsewhere = Chunk(chunk_id="x-3", text="42 km/h", source="brochure", page=3)
    def cited(c: Chunk) -> Citation:
        return Citation(n=1, chunk_id=c.chunk_id, source=c.source, text=c.text, page=c.page)

    verdicts = [score_answer(q, Answer("42 km/h [1].", [cited(c)], short_answer="42 km/h", passages=[c]))
                ["citations"][0]["correct"] for c in (page2, page3, html, elsewhere)]
    assert verdicts == [False, True, True, False]


def test_strict_accuracy_is_exact_match_or_f1_of_at_least_0_8():
    cases = {"Seine": (1.0, 1.0), "the Seine river": (0.0, 0.6667), "Seine in the north": (0.0, 0.5)}
    rows, spans = [], gold_spans(Q, {"paris": TEXT})
    for short, (em, f1) in cases.items():
        row = score_answer(Q, Answer(f"{short} [1].", [cite(1, SECOND)], short_answer=short, passages=[SECOND]), spans)
        assert (row["short_em"], row["short_f1"]) == (em, f1)
        assert row["correct"] == (em == 1.0) and row["contains"]  # containment would call all three right
        rows.append(row)
    broncos = {**Q, "answers": ["Denver Broncos"]}
    rows.append(score_answer(broncos, Answer("Denver Broncos won [1].", short_answer="Denver Broncos won")))
    assert rows[-1]["short_f1"] == 0.8 and rows[-1]["correct"]  # P 2/3, R 1: F1 0.8, right
    rows.append(score_answer(Q, Answer("It flows through Paris: the Seine [1].", short_answer="a river")))
    m = answer_metrics(rows)
    assert m["answer.accuracy"] == 0.4 and m["answer.contains"] == 0.8 and m["answer.contains_anywhere"] == 1.0
    assert [r["category"] for r in rows[:3]] == [None, "model error", "model error"]


PASSAGE = Chunk(chunk_id="paris-9", text="Paris is a city. The river Seine flows through Paris. It is never dry.",
                source="paris", start=0, end=70)


def raw_answer(details: str) -> Answer:
    """An answer whose repaired text is fully supported, the model's own reply being `details`."""
    return Answer("The Seine flows through Paris [1].", [cite(1, PASSAGE)], short_answer="Seine", passages=[PASSAGE],
                  raw_reply=f"Answer: Seine\nDetails: {details}", prompt_chunk_ids=[PASSAGE.chunk_id])


def test_faithfulness_judges_the_models_own_sentences_against_what_they_cite():
    row = score_answer(Q, raw_answer(
        "The Seine flows through Paris [1]. "        # supported: every content word in the passage's second sentence
        "The Seine does not flow through Paris [1]. "  # negated where the passage is not
        "It is dry [1]. "                            # the passage says "never dry"
        "Paris has a famous old waterway [1]. "      # 1 of 4 content words
        "The Seine flows through Paris [5]. "        # cites no passage that exists
        "The Seine flows through Paris."))           # cites nothing
    assert [c["supported"] for c in row["claims"]] == [True, False, False, False, False, False]
    assert [c["support"] for c in row["claims"]] == [1.0, 0.6667, 1.0, 0.25, 0.0, 0.0]
    assert (row["faithful_sentences"], row["sentences"]) == (1, 6)
    m = answer_metrics([row])
    assert m["faithfulness"] == pytest.approx(1 / 6, abs=1e-4)
    assert m["faithfulness_shown"] == 1.0  # the repaired text, by the repair's own check: 1 by construction


def test_claim_support_is_content_words_of_the_best_sentence_with_negation_agreeing():
    from rag.eval.metrics import claim_support, content_words, negated

    assert content_words("The Seine isn't long [1].") == {"seine", "long"}
    assert negated("It isn't.") and negated("never") and not negated("Nothingham knows")
    assert claim_support("The river is long [1].", "Paris has a river. The river is long.") == (1.0, "The river is long.", True)
    assert claim_support("Rivers never dry.", "Rivers dry.")[2] is False
    assert claim_support("", "Anything.") == (0.0, "", True)


def test_risk_coverage_sorts_answers_by_confidence():
    from rag.eval.coverage import confidence_metrics, risk_coverage

    rows = [score_answer(Q, Answer("Seine [1].", short_answer="Seine", confidence=0.9)),
            score_answer(U, Answer("Paris [1].", short_answer="Paris", confidence=0.8)),  # answered unanswerable: wrong
            score_answer(Q, Answer("Seine [1].", short_answer="Seine", confidence=0.6)),
            score_answer(Q, Answer("I don't know.", abstained=True, abstain_step="relevance", confidence=0.1))]
    assert [(r["confidence"], r["abstained"], r["abstain_step"]) for r in rows][3] == (0.1, True, "relevance")
    assert risk_coverage(rows) == [{"confidence": 0.9, "coverage": 0.25, "precision": 1.0},
                                   {"confidence": 0.8, "coverage": 0.5, "precision": 0.5},
                                   {"confidence": 0.6, "coverage": 0.75, "precision": 0.6667}]
    m = answer_metrics(rows)
    assert m["confidence.auc_rc"] == pytest.approx(0.25 * 0.5 + 0.25 * 0.3333, abs=1e-4)
    assert "confidence.precision_at_0.8" not in m  # only 3 of 4 questions are ever answered
    assert m["confidence.coverage_at_precision_0.8"] == 0.25
    assert m["confidence.brier"] == pytest.approx((0.1 ** 2 + 0.8 ** 2 + 0.4 ** 2) / 3, abs=1e-4)
    assert m["confidence.answers"] == 3
    withheld = score_answer(Q, Answer("I don't know.", abstained=True, abstain_step="model_doubt", confidence=0.3,
                                      withheld=Answer("Seine [1].", short_answer="Seine", confidence=0.3)))
    more = confidence_metrics(rows + [withheld])  # a withheld answer is put back at its confidence
    assert more["confidence.precision_at_0.8"] == 0.75 and more["confidence.answers"] == 4
    assert "confidence.auc_rc" not in answer_metrics([score_answer(Q, Answer("Seine", short_answer="Seine"))])


def test_ties_in_confidence_enter_the_curve_together():
    from rag.eval.coverage import risk_coverage

    rows = [score_answer(Q, Answer("Seine", short_answer="Seine", confidence=0.5)),
            score_answer(Q, Answer("Loire", short_answer="Loire", confidence=0.5))]
    assert risk_coverage(rows) == [{"confidence": 0.5, "coverage": 1.0, "precision": 0.5}]


def test_the_report_draws_the_risk_coverage_curve_when_answers_carry_a_confidence(tmp_path):
    from rag.eval.report import write_report
    from rag.eval.runner import EvalResult

    rows = [score_answer(Q, Answer("Seine [1].", short_answer="Seine", confidence=0.9)),
            score_answer(U, Answer("Paris [1].", short_answer="Paris", confidence=0.8))]
    result = EvalResult("tiny", {"split": "dev"}, answer_metrics(rows), rows)
    md, _ = write_report(result, tmp_path / "r.md")
    text = md.read_text()
    assert "## Risk and coverage" in text and "![risk-coverage](r-risk-coverage.png)" in text
    assert "| 0.900 | 0.5000 | 1.0000 |" in text and "| 0.800 | 1.0000 | 0.5000 |" in text
    assert (tmp_path / "r-risk-coverage.png").read_bytes()[:4] == b"\x89PNG"
    assert result.to_json()["risk_coverage"][1] == {"confidence": 0.8, "coverage": 1.0, "precision": 0.5}
    assert [r["confidence"] for r in result.to_json()["questions"]] == [0.9, 0.8]
    plain = EvalResult("tiny", {}, answer_metrics([rows[0] | {"confidence": None}]), [rows[0] | {"confidence": None}])
    md, _ = write_report(plain, tmp_path / "p.md")
    assert "Risk and coverage" not in md.read_text() and not (tmp_path / "p-risk-coverage.png").exists()


def unanswerable_rows(abstained: int, total: int) -> list[dict]:
    return [score_answer({**U, "qid": f"u{i}"}, Answer("I don't know.", abstained=True) if i < abstained
                         else Answer("Paris", short_answer="Paris")) for i in range(total)]


def test_a_floor_must_fail_on_the_regression_it_guards():
    from rag.eval.gates import check_floors, floor_misses, inject_regression

    rows = unanswerable_rows(5, 16)  # the squad gate's sample: 5 of 16 unanswerable questions abstained
    worse = inject_regression(rows, "abstention.unanswerable_abstained")  # a tenth of 16, rounded up: 2 questions
    assert answer_metrics(worse)["abstention.unanswerable_abstained"] == 0.1875
    assert [r["category"] for r in worse][:3] == ["missed abstention", "missed abstention", None]
    assert floor_misses(rows, {"abstention.unanswerable_abstained": 0.07}) == [
        "abstention.unanswerable_abstained: 0.3125 -> 0.1875 after the regression, and 0.07 still passes"]
    assert floor_misses(rows, {"abstention.unanswerable_abstained": 0.28}) == []
    assert floor_misses(rows, {"abstention.unanswerable_abstained": 0.35}) == [
        "the recorded run already breaks it: abstention.unanswerable_abstained = 0.3125 is below its floor 0.35"]
    assert check_floors({"x": 0.1}, {"x": {"max": 0.05}}) == ["x = 0.1 is above its ceiling 0.05"]


def test_each_gated_metric_has_its_regression():
    from rag.eval.gates import GATED, inject_regression, run_metrics

    right = Answer("The Seine flows through Paris [1].", [cite(1, SECOND)], short_answer="Seine", passages=[SECOND],
                   raw_reply="Answer: Seine\nDetails: The river Seine flows through Paris [1].",
                   prompt_chunk_ids=[SECOND.chunk_id])
    spans = gold_spans(Q, {"paris": TEXT})
    rows = [score_answer({**Q, "qid": f"q{i}"}, right, spans) for i in range(10)] + unanswerable_rows(10, 10)
    before = run_metrics(rows)
    for key in GATED:
        after = run_metrics(inject_regression(rows, key))[key]
        expected = {"abstention.answerable_abstained": 0.1, "citation.precision": 0.9}.get(key, 0.9)
        assert after == expected, (key, before[key], after)
    retrieval = [{"qid": f"r{i}", "answerable": True, "retrieved": ["paris", "x"], "gold_docs": ["paris"]}
                 for i in range(20)]
    assert run_metrics(inject_regression(retrieval, "retrieval.recall@1"))["retrieval.recall@1"] == 0.9


def test_floors_are_the_measured_value_less_a_margin():
    from rag.eval.gates import suggest_floors
    
    floors = suggest_floors({"answer.accuracy": 0.5417, "abstention.answerable_abstained": 0.0833, "faithfulness": 0.02})
    assert floors == {"answer.accuracy": 0.51, "abstention.answerable_abstained": {"max": 0.12}, "faithfulness": 0.0}


def test_rows_recorded_before_the_change_are_rescored():
    from rag.eval.gates import upgrade_row

    old = {"qid": "q", "answerable": True, "abstained": False, "gold_docs": ["paris"], "passages": ["paris"],
           "short_em": 0.0, "short_f1": 0.5, "correct": True, "correct_lenient": True, "history": [],
           "citations": [{"n": 1, "source": "other", "correct": True, "supported": True}],
           "sentences": 1, "faithful_sentences": 1, "raw_sentences": 2, "raw_faithful_sentences": 1}
    row = upgrade_row(old)
    assert (row["correct"], row["contains"], row["contains_anywhere"]) == (False, True, True)
    assert row["citations"][0]["correct"] is False and row["category"] == "model error"
    assert (row["shown_sentences"], row["repair_check_sentences"], row["sentences"]) == (1, 2, 0)
    assert upgrade_row(row) is row  # already current
