"""`rag eval`: metric formulas, dataset checks, scoring, the report and the CLI (fake models only)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.core.errors import ConfigError
from rag.core.types import Answer, Chunk, Citation
from rag.eval import metrics
from rag.eval.datasets import load_dataset, select_questions
from rag.eval.report import compare, load_result, write_report
from rag.eval.runner import EvalResult, run_eval
from rag.eval.scoring import CATEGORIES, answer_metrics, categorize, score_answer

REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "evals" / "datasets" / "seed"


# --- metric formulas on hand examples -------------------------------------------------------
@pytest.mark.parametrize("prediction, golds, em, f1", [
    ("Denver Broncos", ["Denver Broncos"], 1.0, 1.0),
    ("the Denver Broncos!", ["Denver Broncos"], 1.0, 1.0),           # articles and punctuation dropped
    ("The Denver Broncos [1].", ["Denver Broncos"], 1.0, 1.0),        # citation markers never count
    ("Broncos", ["Denver Broncos"], 0.0, 2 / 3),                      # P=1, R=1/2
    ("Denver Broncos won", ["Denver Broncos"], 0.0, 0.8),            # P=2/3, R=1
    ("Carolina Panthers", ["Denver Broncos"], 0.0, 0.0),
    ("six", ["6", "six"], 1.0, 1.0),                                  # max over aliases
    ("Shanghai’s Free Trade Zone", ["Shanghai's Free Trade Zone"], 1.0, 1.0),  # Unicode apostrophe
    ("", ["anything"], 0.0, 0.0),
])
def test_exact_match_and_f1_follow_squad(prediction, golds, em, f1):
    assert metrics.exact_match(prediction, golds) == em
    assert metrics.token_f1(prediction, golds) == pytest.approx(f1)


def test_normalize_answer_is_squad_normalisation():
    assert metrics.normalize_answer("  The  Quick, brown FOX.  ") == "quick brown fox"
    assert metrics.normalize_answer("an apple a day") == "apple day"


def test_contains_answer_matches_whole_words():
    assert metrics.contains_answer("It took six months [2].", ["6 months", "six months"])
    assert metrics.contains_answer("Germany-headquartered Merck", ["Germany"])
    assert not metrics.contains_answer("about 16 companies", ["6"])
    assert not metrics.contains_answer("anything", [])


def test_strip_markers():
    assert metrics.strip_markers("Paris is big [1][2]. Yes [3, 4] .") == "Paris is big. Yes."


def test_retrieval_metrics_on_a_hand_example():
    docs = ["x", "g1", "y", "g2", "g1"]
    gold = {"g1", "g2"}
    assert metrics.first_hit_rank(docs, gold) == 2
    assert metrics.recall_at_k(docs, gold, 1) == 0.0
    assert metrics.recall_at_k(docs, gold, 2) == 0.5
    assert metrics.recall_at_k(docs, gold, 5) == 1.0
    assert metrics.reciprocal_rank(docs, gold) == 0.5
    assert metrics.reciprocal_rank(["x"], gold) == 0.0
    # gains at ranks 2 and 4 (the second g1 at rank 5 counts no more); ideal at ranks 1 and 2
    ideal = 1 + 1 / math.log2(3)
    assert metrics.ndcg_at_k(docs, gold, 10) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert metrics.ndcg_at_k(["g1"], {"g1"}, 10) == 1.0


def test_percentile_interpolates():
    assert metrics.percentile([], 50) == 0.0
    assert metrics.percentile([1, 2, 3, 4], 50) == 2.5
    assert metrics.percentile([10, 20], 95) == pytest.approx(19.5)


def test_cited_sentences_attach_trailing_markers():
    assert metrics.cited_sentences("Paris is big [1]. It has a river. [2][3] It rains.[4] Fin.") == [
        ("Paris is big [1].", [1]), ("It has a river [2][3].", [2, 3]), ("It rains [4].", [4]), ("Fin.", [])]
    assert metrics.faithful_sentences("A is b [1]. C is d [2]. E.", supported=[1]) == (1, 3)


# --- datasets --------------------------------------------------------------------------------
def write_dataset(folder: Path, corpus: list[dict], questions: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in questions))
    return folder


CORPUS = [
    {"doc_id": "paris", "title": "Paris", "text": "Paris is the capital of France. The Seine flows through Paris."},
    {"doc_id": "berlin", "title": "Berlin", "text": "Berlin is the capital of Germany. It has 3.7 million inhabitants."},
    {"doc_id": "rome", "title": "Rome", "text": "Rome is the capital of Italy. The Tiber is the river that flows through Rome."},
]


def q(qid, question, answers=(), gold=(), answerable=True, **extra):
    return {"qid": qid, "question": question, "answers": list(answers), "gold_doc_ids": list(gold),
            "answerable": answerable, **extra}


QUESTIONS = [
    q("q1", "What is the capital of France?", ["Paris"], ["paris"]),
    q("q2", "How many inhabitants does Berlin have?", ["3.7 million"], ["berlin"]),
    q("q3", "Which river flows through Rome?", ["Tiber", "the Tiber"], ["rome"]),
    q("q4", "Which river flows through Paris?", ["Seine"], ["paris"]),
    q("u1", "What is the GDP of France?", answerable=False),
    q("u2", "Who is the mayor of Rome?", answerable=False),
]
# one canned reply per question, in order (the fake LLM cycles through them)
REPLIES = [
    "Answer: Paris\nDetails: Paris is the capital of France [1].",             # right, cited
    "Answer: 5 million\nDetails: Berlin has 5 million inhabitants [1].",       # model error
    "Answer: I don't know based on the documents.",                           # wrong abstention
    # right, but cites the Rome passage, which supports the sentence as well as the Paris one (so the answer
    # path has no reason to re-point it): citation error
    "Answer: the Seine\nDetails: The Seine river flows through the capital city [2].",
    "Answer: I don't know based on the documents.",                           # right abstention
    # missed abstention (a wrong name that says something new: "Rome" alone would only echo the question,
    # which the answer path refuses, rag.answer.checks.questions.echo_problem)
    "Answer: the Tiber\nDetails: The Tiber is the river that flows through Rome [1].",
]


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "tiny", CORPUS, QUESTIONS)


@pytest.fixture
def settings(fake_settings):
    return fake_settings.model_copy(update={
        "llm": fake_settings.llm.model_copy(update={"fake_responses": REPLIES}),
        "answer": fake_settings.answer.model_copy(update={"min_relevance": -1.0}),  # fake vectors mean nothing
    })


def test_shipped_datasets_load():
    squad = load_dataset(REPO / "evals" / "datasets" / "squad-dev-mini")
    assert len(squad.questions) == 360 and sum(not x["answerable"] for x in squad.questions) == 60
    seed = load_dataset(SEED)
    assert len(seed.questions) >= 25
    assert sum(not x["answerable"] for x in seed.questions) >= 8
    assert any(x["history"] for x in seed.questions)
    [doc] = seed.corpus
    assert doc["doc_id"] == "seed" and doc["url"].startswith("https://") and "No Comments" not in doc["text"]


def test_every_seed_gold_answer_is_in_the_article():
    seed = load_dataset(SEED)
    text = seed.corpus[0]["text"]
    for question in seed.questions:
        if question["answerable"]:
            assert metrics.contains_answer(text, question["answers"]), question["qid"]


@pytest.mark.parametrize("corpus, questions, message", [
    (None, [], "corpus.jsonl not found"),
    ("{not json\n", [], "corpus.jsonl line 1: not valid JSON"),
    ('[1, 2]\n', [], "expected a JSON object"),
    ([{"doc_id": "a"}], [], "missing field 'text'"),
    ([{"doc_id": "a", "text": "x"}, {"doc_id": "a", "text": "y"}], [], "line 2: doc_id 'a' appears twice"),
    ([{"doc_id": "a", "text": "x"}], [{"qid": "1", "question": "?", "answers": ["x"], "gold_doc_ids": ["b"]}],
     "gold_doc_ids ['b'] are not doc_ids"),
    ([{"doc_id": "a", "text": "x"}], [{"qid": "1", "question": "?", "answers": []}], "needs at least one gold answer"),
    ([{"doc_id": "a", "text": "x"}], [{"qid": "1", "question": "?", "answers": "x"}], "'answers' must be a list"),
    ([{"doc_id": "a", "text": "x"}], [{"qid": "1", "question": "?", "answers": ["x"], "answerable": "yes"}],
     "'answerable' must be a bool"),
    ([{"doc_id": "a", "text": "x"}], [{"qid": "1", "question": "?", "answers": ["x"]}] * 2, "qid '1' appears twice"),
    ([{"doc_id": "a", "text": "x"}], [], "must each hold at least one row"),
])
def test_dataset_errors_say_what_to_fix(tmp_path, corpus, questions, message):
    folder = tmp_path / "ds"
    folder.mkdir()
    if corpus is not None:
        body = corpus if isinstance(corpus, str) else "".join(json.dumps(r) + "\n" for r in corpus)
        (folder / "corpus.jsonl").write_text(body)
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in questions))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        load_dataset(folder)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_dataset(tmp_path / "nope")


def test_select_questions_is_seeded():
    items = [{"qid": str(i)} for i in range(20)]
    assert select_questions(items, 5, None) == items[:5]
    assert select_questions(items, 5, 1) == select_questions(items, 5, 1) != items[:5]


# --- scoring and categories ------------------------------------------------------------------
def chunk(source: str, text: str) -> Chunk:
    return Chunk(chunk_id=f"{source}-0", text=text, source=source)


def citation(n: int, c: Chunk, supported: bool = True) -> Citation:
    return Citation(n=n, chunk_id=c.chunk_id, source=c.source, text=c.text, quote=c.text,
                    support=1.0 if supported else 0.1, supported=supported)


PARIS, ROME = chunk("paris", CORPUS[0]["text"]), chunk("rome", CORPUS[2]["text"])


@pytest.mark.parametrize("question, answer, category", [
    (QUESTIONS[0], Answer("Paris is the capital [1].", [citation(1, PARIS)], short_answer="Paris",
                          passages=[PARIS]), None),
    (QUESTIONS[0], Answer("It is Rome [1].", [citation(1, ROME)], short_answer="Rome", passages=[ROME]),
     "retrieval miss"),
    (QUESTIONS[0], Answer("It is Rome [1].", [citation(1, PARIS)], short_answer="Rome", passages=[PARIS]),
     "model error"),
    (QUESTIONS[0], Answer("Paris, of course [1].", [citation(1, ROME)], short_answer="Paris",
                          passages=[PARIS, ROME]), "citation error"),
    (QUESTIONS[0], Answer("I don't know.", abstained=True, passages=[PARIS]), "wrong abstention"),
    (QUESTIONS[4], Answer("Rome [1].", [citation(1, ROME)], passages=[ROME]), "missed abstention"),
    (QUESTIONS[4], Answer("I don't know.", abstained=True), None),
])
def test_failure_categories(question, answer, category):
    assert set(CATEGORIES) >= {category} - {None}
    row = score_answer({**question, "history": []}, answer)
    assert row["category"] == category == categorize(row)


def test_answer_metrics_formulas():
    rows = [
        score_answer({**QUESTIONS[0], "history": []},
                     Answer("Paris is the capital [1]. It is in France [2].",
                            [citation(1, PARIS), citation(2, ROME, supported=False)], short_answer="Paris",
                            passages=[PARIS, ROME], timings={"retrieval_ms": 10, "first_token_ms": 100,
                                                             "total_ms": 1000, "tokens_per_s": 20})),
        score_answer({**QUESTIONS[1], "history": []}, Answer("I don't know.", abstained=True,
                                                             timings={"retrieval_ms": 30, "total_ms": 50})),
        score_answer({**QUESTIONS[4], "history": []}, Answer("I don't know.", abstained=True)),
        score_answer({**QUESTIONS[5], "history": []}, Answer("Rome [1].", [citation(1, ROME)], passages=[ROME])),
    ]
    m = answer_metrics(rows)
    assert m["answer.questions"] == 2
    assert m["answer.short_em"] == 0.5 and m["answer.accuracy"] == 0.5
    assert m["answer.em"] == 0.0 and m["answer.f1"] == pytest.approx(round(0.5 * metrics.token_f1(
        "Paris is the capital. It is in France.", ["Paris"]), 4))
    # three citations in answered replies: PARIS (right), ROME (wrong passage), ROME on the answered unanswerable
    # question (wrong: nothing there is worth citing)
    assert m["citation.precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["citation.recall"] == 1.0          # the one answered answerable question has a right citation
    assert m["citation.unsupported_rate"] == pytest.approx(1 / 3, abs=1e-4)  # over all answered questions' citations
    assert m["abstention.unanswerable_abstained"] == 0.5
    assert m["abstention.answerable_abstained"] == 0.5
    # shown text: 3 sentences in answered replies, 2 cite a supported passage (the answer path's own check)
    assert m["faithfulness_shown"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["faithfulness"] == 0.0  # no raw reply recorded: no sentence of the model's own to judge
    assert m["latency.retrieval_ms_p50"] == 20 and m["latency.first_token_ms_p50"] == 100


# --- a whole run, the report and --compare ---------------------------------------------------
def test_run_eval_end_to_end_with_fakes(settings, dataset, tmp_path):
    result = run_eval(settings, dataset, mode="bm25", k=3)
    m = result.metrics
    assert m["retrieval.recall@1"] == 1.0 and m["retrieval.questions"] == 4
    assert m["answer.accuracy"] == 0.5
    assert m["abstention.unanswerable_abstained"] == 0.5 and m["abstention.answerable_abstained"] == 0.25
    by_qid = {r["qid"]: r["category"] for r in result.per_question}
    assert by_qid == {"q1": None, "q2": "model error", "q3": "wrong abstention", "q4": "citation error",
                      "u1": None, "u2": "missed abstention"}
    assert result.failure_counts() == {"retrieval miss": 0, "model error": 1, "citation error": 1,
                                       "wrong abstention": 1, "missed abstention": 1}
    for key in ("answer.f1", "answer.em", "citation.precision", "citation.recall", "citation.unsupported_rate",
                "faithfulness", "latency.total_ms_p50", "latency.first_token_ms_p95", "latency.retrieval_ms_p50"):
        assert key in m

    md, png = write_report(result, tmp_path / "out" / "report.md")
    assert png == tmp_path / "out" / "report.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md.read_text()
    assert "![metrics](report.png)" in text
    assert "| model error | 1 |" in text and "| missed abstention | 1 |" in text
    assert "## citation error (1)" in text and "Which river flows through Paris?" in text
    assert "Seine" in text  # the gold answer is shown with the failure


def test_follow_ups_replay_their_history(settings, tmp_path):
    folder = write_dataset(tmp_path / "conv", CORPUS, [
        q("f1", "Which river flows through Rome?", ["Tiber"], ["rome"]),
        q("f2", "And through Paris?", ["Seine"], ["paris"], history=["Which river flows through Rome?"]),
    ])
    replies = ["Answer: the Tiber\nDetails: The Tiber flows through Rome [1].",
               # the follow-up is searched with its history, so Rome's passage may come first: cite both
               "Answer: the Seine\nDetails: The Seine flows through Paris [1][2]."]
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"fake_responses": replies})})
    result = run_eval(settings, folder, mode="bm25", k=2)
    f2 = result.per_question[1]
    assert f2["standalone_question"] == "Which river flows through Rome? And through Paris?"  # searched with its history
    assert f2["short_answer"] == "the Seine" and f2["category"] is None


def test_gold_passages_answer_from_the_gold_documents_only(settings, tmp_path):
    # the question's words point at Paris, its gold document is Rome's: the open search finds Paris first,
    # the reader's ceiling (--gold-passages) may only read Rome's passages
    folder = write_dataset(tmp_path / "gold", CORPUS, [q("g1", "Which river flows through Paris?", ["Tiber"], ["rome"])])
    replies = ["Answer: the Tiber\nDetails: The Tiber flows through the city [1]."]
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"fake_responses": replies})})
    open_run = run_eval(settings, folder, mode="bm25", k=2)
    assert open_run.per_question[0]["passages"][0] == "paris"
    ceiling = run_eval(settings, folder, mode="bm25", k=2, gold_passages=True)
    row = ceiling.per_question[0]
    assert row["passages"] == ["rome"] and [c["source"] for c in row["citations"]] == ["rome"]
    assert ceiling.config["gold_passages"] is True and open_run.config["gold_passages"] is False
    # the retrieval metrics still measure the open search
    assert ceiling.metrics["retrieval.recall@1"] == open_run.metrics["retrieval.recall@1"] == 0.0


def test_gold_passages_need_gold_documents_for_answerable_questions(settings, tmp_path):
    folder = write_dataset(tmp_path / "nogold", CORPUS, [q("n1", "Which river flows through Paris?", ["Seine"], [])])
    with pytest.raises(ConfigError, match=r"gold_doc_ids.*\['n1'\]"):
        run_eval(settings, folder, mode="bm25", gold_passages=True)
    # an unanswerable question without a gold document is asked over the whole collection
    folder = write_dataset(tmp_path / "nogold-u", CORPUS, [q("u9", "Who is the mayor of Paris?", answerable=False)])
    result = run_eval(settings, folder, mode="bm25", k=2, gold_passages=True)
    assert result.per_question[0]["passages"][0] == "paris"


def test_retrieval_only_run_and_compare(settings, dataset, tmp_path):
    a = run_eval(settings, dataset, retrieval_only=True, mode="bm25")
    b = run_eval(settings, dataset, retrieval_only=True, mode="dense")
    assert "answer.f1" not in a.metrics and a.config["retrieval_only"] is True
    for name, r in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(r.to_json()))
    out = compare(load_result(tmp_path / "a.json"), load_result(tmp_path / "b.json"))
    line = next(x for x in out.splitlines() if x.startswith("retrieval.recall@1 "))
    delta = b.metrics["retrieval.recall@1"] - a.metrics["retrieval.recall@1"]
    assert line.split()[1:] == [f"{a.metrics['retrieval.recall@1']:.4f}", f"{b.metrics['retrieval.recall@1']:.4f}",
                                f"{delta:+.4f}"]


def test_eval_result_json_round_trip(settings, dataset):
    result = run_eval(settings, dataset, mode="bm25", limit=2, seed=0)
    again = EvalResult.from_json(json.loads(json.dumps(result.to_json())))
    assert again.metrics == result.metrics and again.config["limit"] == 2 and len(again.per_question) == 2


# --- the CLI ---------------------------------------------------------------------------------
@pytest.fixture
def fake_env(monkeypatch):
    monkeypatch.setenv("RAG_EMBEDDING__PROVIDER", "fake")
    monkeypatch.setenv("RAG_EMBEDDING__MODEL_NAME", "fake")
    monkeypatch.setenv("RAG_ANSWER__MIN_RELEVANCE", "-1")


def test_cli_eval_writes_json_report_and_chart(fake_env, dataset, tmp_path):
    out, report = tmp_path / "r" / "run.json", tmp_path / "r" / "run.md"
    result = CliRunner().invoke(app, ["eval", "--dataset", str(dataset), "--llm", "fake", "--mode", "bm25",
                                      "--k", "3", "--out", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "answer.f1" in result.output and "failures:" in result.output
    data = json.loads(out.read_text())
    assert data["config"]["llm"].startswith("fake") and data["config"]["k"] == 3
    assert set(data["metrics"]) >= {"retrieval.recall@5", "answer.em", "abstention.unanswerable_abstained"}
    assert report.is_file() and report.with_suffix(".png").is_file()

    second = tmp_path / "r" / "bm25.json"
    CliRunner().invoke(app, ["eval", "--dataset", str(dataset), "--retrieval-only", "--mode", "bm25",
                             "--out", str(second)])
    result = CliRunner().invoke(app, ["eval", "--compare", str(out), str(second)])
    assert result.exit_code == 0, result.output
    assert "B - A" in result.output and "retrieval.recall@1" in result.output


@pytest.mark.parametrize("args, message", [
    (["eval"], "--dataset"),
    (["eval", "--dataset", "no/such/folder"], "not found"),
    (["eval", "--dataset", "DATASET", "--mode", "fuzzy"], "unknown retrieval mode"),
    (["eval", "--compare", "a.json", "b.json"], "a.json not found"),
])
def test_cli_eval_errors_are_one_line(fake_env, dataset, args, message):
    result = CliRunner().invoke(app, [a.replace("DATASET", str(dataset)) for a in args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_check_floors_reports_floors_and_ceilings():
    from rag.eval.gates import check_floors

    scores = {"retrieval.recall@5": 0.9, "abstention.answerable_abstained": 0.3}
    assert check_floors(scores, {"retrieval.recall@5": 0.85, "abstention.answerable_abstained": {"max": 0.5}}) == []
    assert check_floors(scores, {"retrieval.recall@5": 0.95, "abstention.answerable_abstained": {"max": 0.2},
                                 "answer.f1": 0.1}) == [
        "retrieval.recall@5 = 0.9 is below its floor 0.95",
        "abstention.answerable_abstained = 0.3 is above its ceiling 0.2",
        "answer.f1: not measured"]


def test_ablation_ranks_like_the_retriever(settings, dataset):
    """evals/ablate.py's methods rank exactly as `DocQA.retrieve` does in each mode."""
    import importlib.util

    from rag.eval.runner import open_dataset_index

    spec = importlib.util.spec_from_file_location("ablate", REPO / "evals" / "ablate.py")
    ablate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablate)
    qa = open_dataset_index(settings, load_dataset(dataset))
    qa.retriever.ensure_lexical_current()
    for question in QUESTIONS:
        ranked = ablate.rankings(qa, question["question"], 50)
        for method, mode in (("dense", "dense"), ("bm25", "bm25"), ("hybrid (convex)", "hybrid")):
            assert [c.chunk_id for c in qa.retrieve(question["question"], k=10, mode=mode)] == ranked[method][:10]
    table = ablate.markdown([{"method": "a", "retrieval.mrr": 0.5}, {"method": "b", "retrieval.mrr": 0.75}],
                            ["method"], ("retrieval.mrr",))
    assert table.splitlines() == ["| method | mrr |", "|---|---:|", "| a | 0.5000 |", "| b | **0.7500** |"]


def test_best_match_measure_finds_the_gold_answer_in_the_evidence_shown_first(settings, dataset):
    """evals/best_match.py: the share of questions whose best-match sentence / focused prompt holds the gold answer."""
    import importlib.util

    from rag.eval.runner import open_dataset_index

    spec = importlib.util.spec_from_file_location("best_match", REPO / "evals" / "best_match.py")
    best_match = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(best_match)
    settings = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(update={"mode": "bm25"})})
    qa = open_dataset_index(settings, load_dataset(dataset))
    # q1 and q3: the answer is in the sentence with the question's words ("capital" + "France", "river" + "Rome");
    # q2 ("How many inhabitants does Berlin have?"): "Berlin is the capital of Germany." ties with "It has 3.7
    # million inhabitants." (one question word each) and comes first, so the best match misses the answer
    answerable = [q for q in QUESTIONS if q["qid"] in ("q1", "q2", "q3")]
    m = best_match.measure(qa, answerable, settings)
    assert m["best match"] == pytest.approx(2 / 3) and m["in prompt"] == 1.0 and m["passages"] >= 1
    wrong = [dict(q, answers=["Atlantis"]) for q in answerable]
    assert best_match.measure(qa, wrong, settings)["best match"] == 0.0


def test_the_dataset_index_is_rebuilt_for_a_new_embedding_graph(monkeypatch):
    """An eval index embedded by an older ONNX export is not reused (its vectors and the queries' would mix)."""
    import rag.models.embedders.onnx
    from rag.core.config import load_settings
    from rag.eval.runner import index_fingerprint

    onnx, torch = (load_settings(environ={}, embedding={"backend": b}) for b in ("onnx-int8", "torch"))
    before = index_fingerprint(onnx), index_fingerprint(torch)
    monkeypatch.setattr(rag.models.embedders.onnx, "EXPORT_VERSION", rag.models.embedders.onnx.EXPORT_VERSION + "-next")
    assert index_fingerprint(onnx) != before[0]
    assert index_fingerprint(torch) == before[1]
