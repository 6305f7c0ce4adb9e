"""The answer gates: which metrics they hold, floors suggested from a run, the check against committed floors,
and the proof that each floor catches the regression it is there for.

A floor is only worth its place if it fails when the behaviour it guards breaks. `floor_misses` takes a
recorded run's rows, injects the regression each floor guards (`inject_regression`: a share of the
questions go from right to wrong on that metric) and reports every floor the degraded run still passes.
`tests/test_eval_gate.py` runs it on the recorded runs of evals/results/gate-baseline/; `evals/set_floors.py`
runs it before writing new floors.
"""

from __future__ import annotations

import math
from typing import Any

from rag.eval.metrics import strictly_correct
from rag.eval.scoring import answer_metrics, categorize, retrieval_metrics

# the metrics the answer gates hold, and which are ceilings (lower is better)
GATED = ("answer.short_em", "answer.short_f1", "answer.accuracy", "citation.precision", "citation.recall",
         "abstention.unanswerable_abstained", "abstention.answerable_abstained", "faithfulness")
CEILINGS = frozenset({"abstention.answerable_abstained"})
MARGIN = 0.03  # a floor sits this far below the measured value (a ceiling above), rounded outward to 0.01
REGRESSION_SHARE = 0.1  # the regression a floor must catch: this share of its questions (at least one) turned wrong


def suggest_floors(metrics_: dict[str, float], margin: float = MARGIN, keys=GATED) -> dict[str, Any]:
    """Floors at the measured value minus `margin` (ceilings: plus), rounded outward to 0.01.

    A few points, not two standard errors: the runs are deterministic (temperature 0), so a floor guards
    against a code change, and at value - 2 SE a 16-question rate could lose a third of its questions unseen.
    """
    out: dict[str, Any] = {}
    for key in keys:
        if key not in metrics_:
            continue
        value = float(metrics_[key])
        if key in CEILINGS:
            out[key] = {"max": min(1.0, math.ceil(round((value + margin) * 100, 6)) / 100)}
        else:
            out[key] = max(0.0, math.floor(round((value - margin) * 100, 6)) / 100)
    return out


def check_floors(scores: dict[str, float], floors: dict[str, Any]) -> list[str]:
    """The metrics that break their committed bound (evals/floors.json), as readable lines.

    A number is a floor (the metric must be at least that); `{"max": x}` is a
    ceiling, for metrics where lower is better.
    """
    problems = []
    for key, bound in floors.items():
        if key not in scores:
            problems.append(f"{key}: not measured")
            continue
        value = scores[key]
        if isinstance(bound, dict):
            if value > bound["max"]:
                problems.append(f"{key} = {value} is above its ceiling {bound['max']}")
        elif value < bound:
            problems.append(f"{key} = {value} is below its floor {bound}")
    return problems


# --- the regressions the floors guard ------------------------------------------------------------
def run_metrics(rows: list[dict]) -> dict[str, float]:
    """The metrics of scored rows: answer rows (`score_answer`) or retrieval-only rows (`evaluate_retrieval`)."""
    if rows and all("abstained" not in r for r in rows):
        return retrieval_metrics([r["retrieved"] for r in rows], [set(r["gold_docs"]) for r in rows])
    return answer_metrics(rows)


def _wrong_answer(row: dict) -> dict:
    row = {**row, "em": 0.0, "f1": 0.0, "short_em": 0.0, "short_f1": 0.0, "correct": False, "contains": False,
           "contains_anywhere": False}
    if "list_recall" in row:
        row |= {"list_recall": 0.0, "list_recall_lenient": 0.0, "list_precision": 0.0}
    return row


def _citations_wrong(row: dict) -> dict:
    return {**row, "citations": [{**c, "correct": False} for c in row["citations"]]}


def _abstain(row: dict) -> dict:
    return {**_wrong_answer(row), "abstained": True, "abstain_step": "injected", "citations": [], "raw_citations": [],
            "claims": [], "sentences": 0, "faithful_sentences": 0}


def _hit(row: dict) -> bool:
    return bool(set(row["retrieved"]) & set(row["gold_docs"]))


# metric -> (the questions it is measured on, the ones it counts as good, how the regression turns one bad)
_REGRESSIONS = {
    "answer.short_em": (lambda r: r["answerable"], lambda r: r["short_em"] == 1.0, _wrong_answer),
    "answer.short_f1": (lambda r: r["answerable"], lambda r: r["short_f1"] > 0, _wrong_answer),
    "answer.accuracy": (lambda r: r["answerable"], lambda r: r["correct"], _wrong_answer),
    "answer.contains": (lambda r: r["answerable"], lambda r: r.get("contains"), _wrong_answer),
    "citation.precision": (lambda r: not r["abstained"], lambda r: any(c["correct"] for c in r["citations"]),
                           _citations_wrong),
    "citation.recall": (lambda r: r["answerable"] and not r["abstained"],
                        lambda r: any(c["correct"] for c in r["citations"]), _citations_wrong),
    "abstention.unanswerable_abstained": (lambda r: not r["answerable"], lambda r: r["abstained"],
                                          lambda r: {**r, "abstained": False, "abstain_step": ""}),
    "abstention.answerable_abstained": (lambda r: r["answerable"], lambda r: not r["abstained"], _abstain),
    "faithfulness": (lambda r: r["sentences"] > 0, lambda r: r["faithful_sentences"] > 0,
                     lambda r: {**r, "faithful_sentences": 0}),
}
_RETRIEVAL = (lambda r: True, _hit,
              lambda r: {**r, "retrieved": [d for d in r["retrieved"] if d not in r["gold_docs"]]})


def inject_regression(rows: list[dict], key: str, share: float = REGRESSION_SHARE) -> list[dict]:
    """`rows` as they would be after the regression `key`'s floor guards: of the questions the metric is
    measured on, `share` (rounded up, at least one) that it counts as good turn bad, first ones first.

    Answers turn wrong (`answer.*`), citations wrong (`citation.*`), unanswerable questions answered,
    answerable ones abstained, faithful replies unfaithful, gold documents drop out of retrieval (`retrieval.*`).
    """
    if key.startswith("retrieval."):
        scope, good, worsen = _RETRIEVAL
    elif key in _REGRESSIONS:
        scope, good, worsen = _REGRESSIONS[key]
    else:
        raise KeyError(f"no regression is defined for {key!r}: add one to rag.eval.gates._REGRESSIONS")
    budget = max(1, math.ceil(share * sum(1 for r in rows if scope(r))))
    out = []
    for row in rows:
        if budget and scope(row) and good(row):
            row = worsen(row)
            if "abstained" in row:
                row["category"] = categorize(row)
            budget -= 1
        out.append(row)
    return out


def floor_misses(rows: list[dict], floors: dict[str, Any], share: float = REGRESSION_SHARE) -> list[str]:
    """The floors of `floors` that do not do their job on this run, as readable lines: one the run itself
    breaks, or one that still passes after the regression it guards (`inject_regression`)."""
    measured = run_metrics(rows)
    problems = [f"the recorded run already breaks it: {p}" for p in check_floors(measured, floors)]
    for key, bound in floors.items():
        if key not in measured:
            continue
        worse = run_metrics(inject_regression(rows, key, share))
        if not check_floors(worse, {key: bound}):
            problems.append(f"{key}: {measured[key]} -> {worse[key]} after the regression, and {bound} still passes")
    return problems


def upgrade_row(row: dict) -> dict:
    """A per-question row recorded before strict accuracy, gold-document citations and raw faithfulness
    (evals/README.md, *Metrics*), rescored by the current definitions where the row holds what they need.

    Strict `correct` comes from `short_em` / `short_f1`; the old containment flags become `contains` /
    `contains_anywhere`; a citation outside the gold documents, or on an unanswerable question, is wrong.
    The old run's faithfulness (of the shown text) becomes `shown_*`; the raw reply's cannot be recomputed
    without the passages' text, so `sentences` is 0 (faithfulness unmeasured).
    """
    if "contains" in row or "shown_sentences" in row or "abstained" not in row:  # current, or retrieval-only
        return row
    row = dict(row)
    gold = set(row.get("gold_docs") or [])
    for name in ("citations", "raw_citations"):
        row[name] = [{**c, "correct": bool(c["correct"] and row["answerable"] and c.get("source") in gold),
                      "doc_correct": bool(row["answerable"] and c.get("source") in gold)} for c in row.get(name, [])]
    row["shown_faithful_sentences"], row["shown_sentences"] = row.get("faithful_sentences", 0), row.get("sentences", 0)
    row["repair_check_faithful_sentences"] = row.pop("raw_faithful_sentences", 0)
    row["repair_check_sentences"] = row.pop("raw_sentences", 0)
    row["faithful_sentences"], row["sentences"], row["claims"] = 0, 0, []
    row.setdefault("confidence", None)
    if row["answerable"]:
        row["contains"] = row["correct"]
        row["contains_anywhere"] = row.pop("correct_lenient", row["correct"])
        if "list_recall" not in row:
            row["correct"] = not row["abstained"] and strictly_correct(row["short_em"], row["short_f1"])
    row["category"] = categorize(row)
    return row
