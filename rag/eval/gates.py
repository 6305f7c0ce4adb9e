"""The answer gates: which metrics they hold, floors suggested from a run, and the check against committed floors."""

from __future__ import annotations

from typing import Any

# the metrics the answer gates hold, and which are ceilings (lower is better)
GATED = ("answer.short_em", "answer.short_f1", "answer.accuracy", "citation.precision", "citation.recall",
         "abstention.unanswerable_abstained", "abstention.answerable_abstained")
CEILINGS = frozenset({"abstention.answerable_abstained"})


def suggest_floors(metrics_: dict[str, float], errors: dict[str, float], keys=GATED) -> dict[str, Any]:
    """Floors at the measured value minus two standard errors (ceilings: plus two), rounded outward to 0.01.

    `errors` from `standard_errors` of the same run (the `standard_errors` of an `--out` JSON file).
    """
    import math

    out: dict[str, Any] = {}
    for key in keys:
        if key not in metrics_ or key not in errors:
            continue
        value, se = float(metrics_[key]), float(errors[key])
        if key in CEILINGS:
            out[key] = {"max": min(1.0, math.ceil((value + 2 * se) * 100) / 100)}
        else:
            out[key] = max(0.0, math.floor((value - 2 * se) * 100) / 100)
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
