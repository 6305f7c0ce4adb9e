"""Threshold sweeps: one run's scored rows rescored as if the answer path's last steps had other thresholds."""

from __future__ import annotations

from rag.eval.scoring import answer_metrics, categorize


def without_verification(rows: list[dict], threshold: float = 0.0) -> list[dict]:
    """The rows as they would be with verification at `threshold` (0: no verification), from one run."""
    return rescored(rows, verify_threshold=threshold)


def rescored(rows: list[dict], *, verify_threshold: float = 0.0, min_confidence: float = 0.0) -> list[dict]:
    """The rows as they would be with other thresholds for the two last steps of the answer path, from one run.

    An answer those steps withheld (abstain step "confidence" or "verification") is put back (its `withheld`
    row); then every answer whose calibrated `confidence` is below `min_confidence` (step "confidence"), or
    whose verifier's `verify_p_yes` is below `verify_threshold` (step "verification"), is turned into an
    abstention. An answer the confidence withheld was never verified (no `verify_p_yes`), so a verification
    sweep is exact only in a run whose confidence gate withheld nothing, and a confidence sweep in any run.
    """
    out = []
    for row in rows:
        if row.get("abstain_step") in ("confidence", "verification") and row.get("withheld"):
            row = row["withheld"]
        step = ""
        if not row["abstained"]:
            confidence, p_yes = row.get("confidence"), row.get("verify_p_yes")
            if confidence is not None and confidence < min_confidence:
                step = "confidence"
            elif verify_threshold > 0 and p_yes is not None and p_yes < verify_threshold:
                step = "verification"
        if step:
            row = {**row, "abstained": True, "abstain_step": step, "citations": [], "raw_citations": [], "claims": [],
                   "sentences": 0, "faithful_sentences": 0, "shown_sentences": 0, "shown_faithful_sentences": 0,
                   "repair_check_sentences": 0, "repair_check_faithful_sentences": 0}
            if row["answerable"]:
                row |= {"em": 0.0, "f1": 0.0, "short_em": 0.0, "short_f1": 0.0, "correct": False, "contains": False,
                        "contains_anywhere": False}
            row["category"] = categorize(row)
        out.append(row)
    return out


SWEEP_KEYS = ("answer.short_em", "answer.short_f1", "answer.accuracy", "citation.precision", "citation.recall",
              "abstention.unanswerable_abstained", "abstention.answerable_abstained")


def verification_sweep(rows: list[dict], thresholds=(0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)) -> list[dict]:
    """Key metrics at each verification threshold, recomputed from one run's rows (`rescored`)."""
    return [{"threshold": t, **_pick(answer_metrics(rescored(rows, verify_threshold=t)))} for t in thresholds]


def confidence_sweep(rows: list[dict], thresholds=(0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)) -> list[dict]:
    """Key metrics at each `answer.min_confidence`, recomputed from one run's rows (`rescored`)."""
    return [{"threshold": t, **_pick(answer_metrics(rescored(rows, min_confidence=t)))} for t in thresholds]


def _pick(m: dict) -> dict:
    return {k: m[k] for k in SWEEP_KEYS}
