"""Threshold sweeps: one run's scored rows rescored as if the answer path's last steps had other thresholds."""

from __future__ import annotations

from rag.eval.scoring import answer_metrics, categorize


def without_verification(rows: list[dict], threshold: float = 0.0) -> list[dict]:
    """The rows as they would be with verification at `threshold` (0: no verification), from one run."""
    return rescored(rows, verify_threshold=threshold)


def rescored(rows: list[dict], *, verify_threshold: float = 0.0, max_decline_p: float = 1.0,
             min_first_token_p: float = 0.0) -> list[dict]:
    """The rows as they would be with other thresholds for the two last steps of the answer path, from one run.

    An answer those steps withheld is put back (its `withheld` row); then every answer the model was at least
    `max_decline_p` likely to decline (`decline_p`) or whose first token was less than `min_first_token_p` likely
    (`first_token_p`; both step "model_doubt"), or whose verifier's `verify_p_yes` is
    below `verify_threshold` (step "verification"), is turned into an abstention. An answer the doubt step
    withheld was never verified (no `verify_p_yes`), so a verification sweep is exact only in a run whose
    doubt step withheld nothing, and a doubt sweep in any run.
    """
    out = []
    for row in rows:
        row = row.get("withheld") or row
        step = ""
        if not row["abstained"]:
            doubt, top, p_yes = row.get("decline_p"), row.get("first_token_p"), row.get("verify_p_yes")
            if (doubt is not None and doubt >= max_decline_p) or (top is not None and top < min_first_token_p):
                step = "model_doubt"
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


def doubt_sweep(rows: list[dict], thresholds=(1.0, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05)) -> list[dict]:
    """Key metrics at each `answer.max_decline_p`, recomputed from one run's rows (`rescored`)."""
    return [{"threshold": t, **_pick(answer_metrics(rescored(rows, max_decline_p=t)))} for t in thresholds]


def sureness_sweep(rows: list[dict], thresholds=(0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)) -> list[dict]:
    """Key metrics at each `answer.min_first_token_p`, recomputed from one run's rows (`rescored`)."""
    return [{"threshold": t, **_pick(answer_metrics(rescored(rows, min_first_token_p=t)))} for t in thresholds]


def _pick(m: dict) -> dict:
    return {k: m[k] for k in SWEEP_KEYS}
