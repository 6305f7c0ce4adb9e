"""The eval gate of `make test`: fast regression evals with the real models, held to evals/floors.json.

Retrieval is measured on all 300 answerable squad-dev-mini questions (the
corpus is ingested into a temp data dir: about 2 minutes); answers with the
local LLM on a small fixed subset of the seed set (about a minute). A metric
below its floor (or above its ceiling) fails the test; raise the floors when a
change measurably improves things (see evals/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.evaluate import Dataset, check_floors, load_dataset, run_eval

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "evals" / "datasets"
FLOORS = json.loads((REPO / "evals" / "floors.json").read_text())

# The seed questions the gate asks: four plain facts (a number, a place, a name, a year) and two the article
# cannot answer. The whole seed set is `make eval`.
SEED_GATE = ("s01", "s10", "s13", "s15", "u01", "u03")

pytestmark = pytest.mark.integration


def _gate(result, floors: dict) -> None:
    problems = check_floors(result.metrics, floors)
    assert not problems, f"{result.dataset} regressed:\n" + "\n".join(problems) + "\n" + result.table()


def test_floors_file_names_known_metrics():
    assert set(FLOORS) == {"squad-dev-mini", "seed"}
    assert all(k.startswith("retrieval.") for k in FLOORS["squad-dev-mini"])


def test_retrieval_on_squad_dev_mini_holds_its_floors(real_settings):
    result = run_eval(real_settings, DATASETS / "squad-dev-mini", retrieval_only=True)
    assert result.metrics["retrieval.questions"] == 300
    _gate(result, FLOORS["squad-dev-mini"])


def test_seed_answers_with_the_local_llm_hold_their_floors(real_settings):
    full = load_dataset(DATASETS / "seed")
    subset = Dataset(full.name, full.corpus, [q for q in full.questions if q["qid"] in SEED_GATE])
    assert len(subset.questions) == len(SEED_GATE)
    result = run_eval(real_settings, subset, llm="local")
    _gate(result, FLOORS["seed"])
