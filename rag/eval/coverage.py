"""Risk and coverage: how right the answers are when only the most confident ones are given.

Each scored row may carry `confidence` (`Answer.confidence`: the calibrated probability that the answer is
right). Answering only the questions whose confidence is at least t, for every t, gives a curve: the share
of all questions answered (coverage) against the share of those answers that are right (precision; risk =
1 - precision). An answer is right when its question is answerable and it is strictly correct (`correct`);
an answered unanswerable question is wrong. An answer the answer path withheld (`withheld`, e.g. for doubt)
is put back first, as the threshold sweeps do; a question the path abstained on without an answer to
withhold is never answered. Formulas: evals/README.md, *Confidence*.

Example: confidences 0.9 (right), 0.8 (wrong), 0.6 (right), and one abstention without an answer, give the
points (coverage, precision) (0.25, 1.0), (0.5, 0.5), (0.75, 0.667) and `auc_rc` = 0.25 * 0 + 0.25 * 0.5 +
0.25 * 0.333 = 0.2083.
"""

from __future__ import annotations

COVERAGE = 0.8  # `confidence.precision_at_0.8`: precision when this share of the questions is answered
PRECISION = 0.8  # `confidence.coverage_at_precision_0.8`: the most coverage at this precision or better


def _right(row: dict) -> bool:
    return bool(row["answerable"] and not row["abstained"] and row.get("correct"))


def risk_coverage(rows: list[dict]) -> list[dict]:
    """The curve's points, most confident first: one per distinct confidence of an answered question.

    Each point: `confidence` (the threshold), `coverage` (answered / all questions), `precision` (right /
    answered). Answers without a confidence come last, as one point at confidence None.
    """
    rows = [r.get("withheld") or r for r in rows]
    total = len(rows)
    answered = [r for r in rows if not r["abstained"]]
    answered.sort(key=lambda r: (r.get("confidence") is None, -(r.get("confidence") or 0.0)))
    points: list[dict] = []
    right = 0
    for i, row in enumerate(answered):
        right += _right(row)
        nxt = answered[i + 1].get("confidence") if i + 1 < len(answered) else object()
        if i + 1 == len(answered) or nxt != row.get("confidence"):  # a tie enters together
            points.append({"confidence": row.get("confidence"), "coverage": round((i + 1) / total, 4),
                           "precision": round(right / (i + 1), 4)})
    return points


def confidence_metrics(rows: list[dict]) -> dict[str, float]:
    """`confidence.*`: the area under the risk–coverage curve, precision at 0.8 coverage, coverage at 0.8
    precision, the Brier score of the answered questions' confidence, and how many answers carried one."""
    points = risk_coverage(rows)
    scored = [r for r in (r.get("withheld") or r for r in rows) if not r["abstained"] and r.get("confidence") is not None]
    out: dict[str, float] = {"confidence.answers": len(scored)}
    area, previous = 0.0, 0.0
    for p in points:  # a step curve: the risk of each point over the coverage it adds
        area += (1 - p["precision"]) * (p["coverage"] - previous)
        previous = p["coverage"]
    out["confidence.auc_rc"] = round(area, 4)
    at = next((p for p in points if p["coverage"] >= COVERAGE), None)
    if at is not None:  # absent when fewer than 80% of the questions are answered at all
        out[f"confidence.precision_at_{COVERAGE}"] = at["precision"]
    out[f"confidence.coverage_at_precision_{PRECISION}"] = max(
        (p["coverage"] for p in points if p["precision"] >= PRECISION), default=0.0)
    if scored:
        out["confidence.brier"] = round(sum((r["confidence"] - _right(r)) ** 2 for r in scored) / len(scored), 4)
    return out
