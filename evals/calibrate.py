"""Fit the answer confidence on dev runs, choose its threshold, and ablate every check and repair.

    RAG_ANSWER__MIN_RELEVANCE=-1 rag eval --dataset evals/datasets/squad-fresh --split dev --out fresh-dev.json
    ...  (one run per dev set: the model is asked every question, every check only records what it finds)
    python evals/calibrate.py fresh-dev.json squad-dev.json manuals-dev.json conversations.json [--write]

Only the generation is expensive; everything after it is deterministic. Each run's rows carry what the
model read (`replay`: the passages as shown) and its reply, so every check (`rag.answer.flow.CHECKS`)
and repair (`rag.answer.flow.REPAIRS`) is re-run here on the recorded replies, with the current code,
turned off one at a time, without asking the model again.

Prints (Markdown):
1. leave-one-dataset-out calibration: the confidence fitted on the other datasets, judged on each one
   (does it carry over to a domain it was not fitted on?);
2. the ablation: with the confidence gate at the chosen threshold, each veto added (does it pay on its own,
   on top of the confidence?) and each repair removed, per dataset: right answers, wrong answers, abstained
   unanswerable questions;
3. the fitted weights and the threshold (`--write` stores them in rag/answer/calibration.json).

With `--stored` nothing is fitted: the ablation judges the calibration that ships (its weights and threshold)
on the runs given, e.g. to see what a change to a check does to the answers users get.

Labels: an answer is right when the question is answerable and its short answer is an exact match or has
token F1 >= 0.8 with a gold answer (a list: every required item named); any answer to an unanswerable
question is wrong. A question the model declined is an abstention whatever the gate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rag.answer.confidence import (
    FEATURES,
    Calibration,
    fit,
    load_calibration,
    threshold_for_precision,
)
from rag.answer.context import Passage
from rag.answer.flow import CHECKS, REPAIRS, read_reply
from rag.core.config import load_settings
from rag.core.types import Chunk
from rag.eval import metrics

TARGET_PRECISION = 0.90


def load_rows(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [r for r in data["questions"] if "answerable" in r]


def replayed(row: dict, cfg, off: frozenset[str] = frozenset()):
    """The recorded reply read again with the current code (None: the model declined or was not asked)."""
    if "replay" not in row or not row.get("raw_reply"):
        return None
    rec = row["replay"]
    passages = [Passage(i + 1, Chunk.from_dict(c), t) for i, (c, t) in enumerate(zip(rec["passages"], rec["texts"]))]
    asked = row["question"]
    reading = read_reply(row["raw_reply"], row.get("standalone_question") or asked, asked, passages, cfg, off)
    return None if reading.declined else reading


def right(row: dict, short: str) -> bool:
    """Exact match or token F1 >= 0.8 (a list: every item named); never for an unanswerable question."""
    if not row["answerable"]:
        return False
    if row.get("list_items"):
        return all(metrics.contains_answer(short, item.split("|")) for item in row["list_items"])
    golds = row["gold"]
    return bool(metrics.exact_match(short, golds)) or metrics.token_f1(short, golds) >= 0.8


def examples(rows: list[dict], cfg, off: frozenset[str] = frozenset()) -> list[dict]:
    """One record per question: features, problems, label, short F1 (None features: declined/not asked)."""
    out = []
    for row in rows:
        reading = replayed(row, cfg, off)
        base = {"answerable": row["answerable"], "qid": row["qid"]}
        if reading is None:
            out.append(base | {"declined": True})
            continue
        signals = {k: row.get("signals", {}).get(k) for k in ("similarity", "passage_coverage", "decline_p",
                                                                 "first_token_p", "answer_p")} | reading.signals
        problems = set(reading.problems)
        if (signals["similarity"] or 0.0) < cfg.min_relevance and (signals["passage_coverage"] or 0.0) < 0.5:
            problems.add("relevance")  # the gate before the model (`answer.min_relevance`): no passage close enough
        out.append(base | {"declined": False, "signals": signals, "problems": problems,
                           "right": right(row, reading.short),
                           "f1": metrics.token_f1(reading.short, row["gold"]) if row["answerable"] else 0.0})
    return out


def outcome(exs: list[dict], calib: Calibration | None, threshold: float, vetoes: set[str]) -> dict:
    """Right/wrong answers and abstentions when answering with this gate."""
    n_ans = sum(e["answerable"] for e in exs)
    n_un = len(exs) - n_ans
    answered = [e for e in exs if not e["declined"] and not (vetoes & e["problems"])
                and (calib is None or calib.confidence(e["signals"]) >= threshold)]
    right = sum(e["right"] for e in answered)
    wrong = len(answered) - right
    un_answered = sum(not e["answerable"] for e in answered)
    f1 = [e["f1"] for e in answered if e["answerable"]]
    return {"right": right, "wrong": wrong, "precision": right / len(answered) if answered else 1.0,
            "coverage": sum(e["answerable"] for e in answered) / n_ans if n_ans else 0.0,
            "unans_abstained": 1 - un_answered / n_un if n_un else float("nan"),
            "f1_answered": sum(f1) / len(f1) if f1 else 0.0, "n": len(exs)}


def fit_on(sets: dict[str, list[dict]]) -> Calibration:
    pool = [e for exs in sets.values() for e in exs if not e["declined"]]
    return fit([e["signals"] for e in pool], [int(e["right"]) for e in pool])


def choose_threshold(calib: Calibration, sets: dict[str, list[dict]], vetoes: set[str],
                     objective: str = "net") -> float:
    """`net`: the threshold with the most right minus wrong answers on the pooled sets (a wrong answer costs
    what a right one gains; ties: the higher threshold); `precision`: the lowest with answered precision
    >= TARGET_PRECISION."""
    pool = [e for exs in sets.values() for e in exs if not e["declined"] and not (vetoes & e["problems"])]
    scores = [calib.confidence(e["signals"]) for e in pool]
    if objective == "precision":
        return threshold_for_precision(scores, [e["right"] for e in pool], TARGET_PRECISION)
    best_t, best = 0.0, None
    for t in sorted({round(x, 2) for x in scores} | {0.0}):
        answered = [e for e, c in zip(pool, scores) if c >= t]
        net = sum(1 if e["right"] else -1 for e in answered)
        if best is None or net >= best:
            best_t, best = t, net
    return best_t


def fmt(o: dict) -> str:
    un = "-" if o["unans_abstained"] != o["unans_abstained"] else f"{o['unans_abstained']:.2f}"
    return f"{o['right']}/{o['wrong']} p={o['precision']:.2f} cov={o['coverage']:.2f} ua={un} f1={o['f1_answered']:.2f}"


def _fit_and_judge(sets: dict[str, list[dict]], vetoes: set[str], args) -> tuple[Calibration, float]:
    """Print the leave-one-dataset-out table, then fit on all the sets: the calibration and its threshold."""
    print("## Leave one dataset out (fitted on the others, threshold chosen on the others)\n")
    print("| held out | answered right/wrong, precision, coverage, unanswerable abstained, F1 answered |")
    print("|---|---|")
    for name in sets:
        others = {k: v for k, v in sets.items() if k != name}
        if not others:
            break
        c = fit_on(others)
        t = choose_threshold(c, others, vetoes, args.objective)
        print(f"| {name} | {fmt(outcome(sets[name], c, t, vetoes))} (t={t:.2f}) |")

    calib = fit_on(sets)
    threshold = choose_threshold(calib, sets, vetoes, args.objective)
    calib.threshold = round(threshold, 4)
    calib.fitted_on = {"runs": [p.name for p in args.runs], "vetoes": sorted(vetoes),
                       "examples": sum(len(v) for v in sets.values()), "objective": args.objective,
                       "command": "python evals/calibrate.py " + " ".join(p.name for p in args.runs) + " --write"}
    return calib, threshold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="rag eval --out JSON files of dev runs")
    parser.add_argument("--vetoes", default="relevance,off_topic",
                        help="comma-separated checks kept as vetoes (relevance: the gate of `answer.min_relevance`)")
    parser.add_argument("--objective", choices=("net", "precision"), default="net",
                        help="how the threshold is chosen: most right minus wrong answers (default), or the "
                             "lowest with answered precision >= 0.90")
    parser.add_argument("--write", action="store_true", help="store the fit in rag/answer/calibration.json")
    parser.add_argument("--stored", action="store_true",
                        help="no fit: the ablation of the stored calibration (rag/answer/calibration.json) at its "
                             "threshold, i.e. of what ships, on these runs")
    args = parser.parse_args(argv)
    if args.stored and args.write:
        parser.error("--stored judges the stored calibration; it fits nothing to --write")
    cfg = load_settings().answer
    vetoes = {v for v in args.vetoes.split(",") if v}
    rows = {p.stem: load_rows(p) for p in args.runs}
    sets = {name: examples(r, cfg) for name, r in rows.items()}

    if args.stored:
        calib = load_calibration()
        if calib is None:
            parser.error("no stored calibration: fit one first (--write)")
        threshold, fitted = calib.threshold, "the stored calibration"
    else:
        calib, threshold = _fit_and_judge(sets, vetoes, args)
        fitted = "confidence fitted on all"

    names = list(sets)
    print(f"\n## Ablation ({fitted}, threshold {threshold:.3f}; cells: "
          "right/wrong answered, precision, coverage of answerable, unanswerable abstained, F1 answered)\n")
    print("| configuration | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))

    def line(label: str, outs: dict[str, dict]) -> None:
        print(f"| {label} | " + " | ".join(fmt(outs[n]) for n in names) + " |")

    base = {n: outcome(sets[n], calib, threshold, vetoes) for n in names}
    line(f"default: confidence + vetoes {sorted(vetoes)}", base)
    line("no gate at all (every reply the model gave)", {n: outcome(sets[n], None, 0, set()) for n in names})
    line("all five checks as vetoes, no confidence (the old stack)",
         {n: outcome(sets[n], None, 0, {"relevance", *CHECKS}) for n in names})
    line("confidence only, no veto", {n: outcome(sets[n], calib, threshold, set()) for n in names})
    for check in ("relevance", *CHECKS):
        flipped = vetoes ^ {check}
        outs = {n: outcome(sets[n], calib, threshold, flipped) for n in names}
        line(f"{'-' if check in vetoes else '+'} veto {check}", outs)
    for repair in REPAIRS:
        exs = {n: examples(rows[n], cfg, frozenset({repair})) for n in names}
        line(f"- repair {repair}", {n: outcome(exs[n], calib, threshold, vetoes) for n in names})

    print("\n## Weights (standardised features)\n")
    for name, w in sorted(zip(calib.features, calib.weights), key=lambda p: -abs(p[1])):
        print(f"- {name}: {w:+.3f}")
    print(f"- bias: {calib.bias:+.3f}; threshold {calib.threshold}")
    if args.write:
        calib.save()  # the vetoes go in `answer.vetoes` (relevance: `answer.min_relevance`), not in the file
        print("\nwrote rag/answer/calibration.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
