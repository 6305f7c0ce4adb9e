"""Set one section of evals/floors.json from a `rag eval --out` file: measured value - 2 standard errors.

    python evals/set_floors.py gate-squad-test /tmp/gate40.json
    python evals/set_floors.py squad-test-small /tmp/gate40.json q1,q2,...   # a subset of the run's questions

Floors (ceilings for `abstention.answerable_abstained`) for the metrics in `rag.eval.gates.GATED`; the
standard errors are the run's own (per-question or per-citation sd / sqrt(n), with a pseudo-count for
rates at 0 or 1). Other sections of floors.json are kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rag.eval.gates import suggest_floors
from rag.eval.scoring import answer_metrics, standard_errors

FLOORS = Path(__file__).resolve().parent / "floors.json"


def main(section: str, result: str, qids: str = "") -> None:
    data = json.loads(Path(result).read_text(encoding="utf-8"))
    rows = data["questions"]
    if qids:
        wanted = qids.split(",")
        rows = [r for r in rows if r["qid"] in wanted]
        assert len(rows) == len(wanted), "some qids are not in the run"
    floors = json.loads(FLOORS.read_text(encoding="utf-8"))
    floors[section] = suggest_floors(answer_metrics(rows), standard_errors(rows))
    FLOORS.write_text(json.dumps(floors, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({section: floors[section]}, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:4])
