"""One calibrated confidence for an answer: P(the answer is right), from signals the answer path measures.

The checks of `rag.answer.checks` and the model's own token probabilities each say a little about
whether an answer can be trusted; none is reliable alone. Instead of a stack of vetoes, each is a
feature of a logistic regression fitted on labelled dev questions of several datasets
(`evals/calibrate.py`, which writes `calibration.json` beside this module with the data and command it
was fitted on). The answer path abstains when the confidence is below `answer.min_confidence`
(default: the threshold stored with the fit, chosen on dev for the most right minus wrong answers).

Features (`FEATURES`), all in [0, 1]:
- `similarity`: the best passage's dense cosine similarity to the question;
- `passage_coverage`: the largest share of the question's content words one retrieved passage holds;
- `question_coverage`: share of the question's content words in the cited passages (and their titles);
- `answer_in_passages`: share of the short answer's content words found in the passages;
- `answer_context`: the largest share of the question's words that a passage sentence (or table row) holding
  the short answer states, with its headings and table header (`rag.answer.checks.grounding.answer_context`);
- `support`: the best citation's support (its quoted sentence states the claim and the answer);
- `decline_p`, `first_token_p`: the model's probability of declining at its first answer token, and of
  its likeliest first token (local model only; missing values count as the training mean);
- `off_topic`, `answer_type`, `echo`: 1 when that check of `rag.answer.checks` objects.

Recorded in `Answer.signals` but not a feature: `answer_p`, how likely the model found the short answer it
wrote (the geometric mean of its tokens' probabilities, `answer_sureness`). Fitted with it, the
leave-one-dataset-out net (right minus wrong answers) on the five dev sets was 53, without it 63
(evals/README.md, *Calibration*), so the fit leaves it out; it stays recorded for later fits.

A missing calibration file means no confidence (`None`) and no confidence gate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

FEATURES = ("similarity", "passage_coverage", "question_coverage", "answer_in_passages", "answer_context", "support",
            "decline_p", "first_token_p", "off_topic", "answer_type", "echo")
ANSWER_LABEL = "Answer:"  # the reply format's first line (rag/answer/prompts): `answer_sureness` reads the tokens after it
CALIBRATION_FILE = Path(__file__).with_name("calibration.json")


@dataclass
class Calibration:
    """A fitted logistic regression over standardised features, and the threshold chosen on dev."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    threshold: float
    fitted_on: dict = field(default_factory=dict)

    def confidence(self, signals: Mapping[str, float | None]) -> float:
        z = self.bias
        for name, mu, sd, w in zip(self.features, self.mean, self.scale, self.weights):
            value = signals.get(name)
            x = mu if value is None else float(value)
            z += w * (x - mu) / sd
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def save(self, path: Path = CALIBRATION_FILE) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")


def answer_sureness(token_probs: Sequence[tuple[str, float]]) -> float | None:
    """The geometric mean probability of the tokens of the reply's short answer (after "Answer:", to the end of
    that line), from (token text, probability) pairs in reply order; None when the reply has no such tokens."""
    text, starts = "", []
    for piece, _ in token_probs:
        starts.append(len(text))
        text += piece
    at = text.find(ANSWER_LABEL)
    begin = 0 if at < 0 else at + len(ANSWER_LABEL)
    end = text.find("\n", begin)
    end = len(text) if end < 0 else end
    logs = [math.log(max(p, 1e-9)) for (piece, p), start in zip(token_probs, starts)
            if begin <= start < end and piece.strip()]
    return math.exp(sum(logs) / len(logs)) if logs else None


@lru_cache(maxsize=4)
def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration | None:
    """The fitted calibration, or None when there is none (then answers carry no confidence)."""
    if not path.is_file():
        return None
    return Calibration(**json.loads(path.read_text(encoding="utf-8")))


def fit(rows: Sequence[Mapping[str, float | None]], labels: Sequence[int], features: Sequence[str] = FEATURES,
        l2: float = 1.0, iterations: int = 50) -> Calibration:
    """Logistic regression by Newton's method with an L2 penalty (not on the bias); no dependency beyond numpy."""
    import numpy as np

    raw = np.array([[np.nan if r.get(f) is None else float(r[f]) for f in features] for r in rows], dtype=float)
    mean = np.nanmean(raw, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    filled = np.where(np.isnan(raw), mean, raw)
    scale = filled.std(axis=0)
    scale = np.where(scale < 1e-6, 1.0, scale)
    x = np.hstack([np.ones((len(rows), 1)), (filled - mean) / scale])
    y = np.asarray(labels, dtype=float)
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -40, 40)))
        grad = x.T @ (p - y) + penalty * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Calibration(features=list(features), mean=[round(float(v), 6) for v in mean],
                       scale=[round(float(v), 6) for v in scale], weights=[round(float(v), 6) for v in w[1:]],
                       bias=round(float(w[0]), 6), threshold=0.5)


def threshold_for_precision(confidences: Sequence[float], correct: Sequence[bool], target: float = 0.90,
                            min_answered: int = 10) -> float:
    """The lowest confidence threshold at which the answered questions are right at least `target` of the time
    (answered: confidence >= threshold); the threshold of best precision when none reaches it."""
    pairs = sorted(zip(confidences, correct), key=lambda p: -p[0])
    best_t, best_p, right = 1.0, -1.0, 0
    chosen = None
    for i, (c, ok) in enumerate(pairs, start=1):
        right += bool(ok)
        if i < len(pairs) and pairs[i][0] == c:
            continue  # ties answer together
        precision = right / i
        if i >= min_answered and precision >= target:
            chosen = c
        if i >= min_answered and precision > best_p:
            best_p, best_t = precision, c
    return float(chosen if chosen is not None else best_t)
