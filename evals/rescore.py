"""Rescore recorded `rag eval --out` files by the current metric definitions, without asking anything again.

    python evals/rescore.py evals/results/latest/squad-dev.json evals/results/gate-baseline/seed.json

Rows recorded before strict accuracy (exact match or token F1 >= 0.8), gold-document citations and the raw
reply's faithfulness are rescored by `rag.eval.gates.upgrade_row`: strict accuracy and citation precision
and recall come out as now defined; faithfulness of the raw reply needs the passages' text, which such rows
do not hold, so it is left out. Prints one column per file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rag.eval.gates import run_metrics, upgrade_row

KEYS = ("answer.accuracy", "answer.contains", "answer.contains_anywhere", "answer.short_em", "answer.short_f1",
        "citation.precision", "citation.recall", "citation.raw_precision", "citation.doc_precision",
        "abstention.unanswerable_abstained", "abstention.answerable_abstained", "faithfulness",
        "faithfulness_shown", "faithfulness_repair_check")


def main(paths: list[str]) -> None:
    columns = []
    for path in paths:
        rows = [upgrade_row(r) for r in json.loads(Path(path).read_text(encoding="utf-8"))["questions"]]
        measured = run_metrics(rows)
        if not any(r.get("sentences") for r in rows):
            measured.pop("faithfulness", None)  # not recomputable from an old row
        columns.append(measured)
    width = max(len(k) for k in KEYS)
    print(f"{'metric':<{width}}  " + "  ".join(f"{Path(p).stem[:14]:>14}" for p in paths))
    for key in KEYS:
        cells = [f"{c[key]:>14.4f}" if isinstance(c.get(key), float) else f"{'-':>14}" for c in columns]
        print(f"{key:<{width}}  " + "  ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
