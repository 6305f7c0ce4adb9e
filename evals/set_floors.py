"""Set one section of evals/floors.json from a `rag eval --out` file: the measured value minus a few points.

    python evals/set_floors.py gate-squad-seen /tmp/gate40.json
    python evals/set_floors.py seed /tmp/seed.json s01,s10,s13,s15,u01,u03   # a subset of the run's questions

Floors (ceilings for `abstention.answerable_abstained`) for the metrics in `rag.eval.gates.GATED`, at
`rag.eval.gates.MARGIN` below the measured value (above, for a ceiling), rounded outward to 0.01. Before
writing, every floor is checked against the regression it guards (`rag.eval.gates.floor_misses`: a tenth of
the questions turned wrong on that metric must fail it); a floor that would not catch it is reported and
nothing is written. Copy the run into evals/results/gate-baseline/ so that tests/test_eval_gate.py checks the
same. Other sections of floors.json are kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rag.eval.gates import GATED, floor_misses, run_metrics, suggest_floors, upgrade_row

FLOORS = Path(__file__).resolve().parent / "floors.json"


def main(section: str, result: str, qids: str = "") -> int:
    data = json.loads(Path(result).read_text(encoding="utf-8"))
    rows = [upgrade_row(r) for r in data["questions"]]
    if qids:
        by_qid = {r["qid"]: r for r in rows}
        missing = [q for q in qids.split(",") if q not in by_qid]
        if missing:
            print(f"qids {missing[:5]} are not in {result}", file=sys.stderr)
            return 2
        rows = [by_qid[q] for q in qids.split(",")]
    floors = json.loads(FLOORS.read_text(encoding="utf-8"))
    measured = run_metrics(rows)
    keys = [k for k in measured if k.startswith("retrieval.") and k != "retrieval.questions"] \
        if all("abstained" not in r for r in rows) else [k for k in GATED if k != "faithfulness" or
                                                          any(r["sentences"] for r in rows)]
    new = suggest_floors(measured, keys=keys)
    misses = floor_misses(rows, new)
    if misses:
        print("not written: these floors would not catch the regression they guard:\n" + "\n".join(misses),
              file=sys.stderr)
        return 1
    floors[section] = new
    FLOORS.write_text(json.dumps(floors, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({section: new}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
