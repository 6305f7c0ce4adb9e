"""The eval gates: regression evals with the real models, held to evals/floors.json.

`make test` (default suite, about 4 minutes on 2 cores):
- retrieval on all 300 answerable squad-dev-mini questions (the corpus is ingested once per module);
- answers on six seed questions (`seed`).
A small squad answer gate was tried and left out: on 8 questions (4 + 4) of the test sample, the floors at
value - 2 SE of the measured run are all 0 (1 of 4 answerable right, 2 of 4 unanswerable abstained), so it
could not fail.

`make gate` (marked `gate` and `slow`, run by CI after `make test`; about 25 minutes on 2 cores): answers on
all 45 seed questions (`gate-seed`) and on the fixed 40-question sample of the squad TEST split
(`evals/datasets/squad-dev-mini/gate-test-40.txt`, 24 answerable and 16 unanswerable; `gate-squad-test`).

The `gate-squad-test` floors (its 40 questions) and the `gate-seed` floors come from
`evals/results/gate-baseline/{squad-test,seed}.json`, the runs at commit 3e6693b. Floors are the measured value minus two
standard errors (`python evals/set_floors.py`); ceilings, for
`abstention.answerable_abstained`, plus two. A metric below its floor (above its ceiling) fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.core.config import load_settings
from rag.eval.datasets import Dataset, load_dataset, read_qids
from rag.eval.gates import check_floors
from rag.eval.runner import run_eval
from tests.conftest import shared_cache

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "evals" / "datasets"
SQUAD = DATASETS / "squad-dev-mini"
FLOORS = json.loads((REPO / "evals" / "floors.json").read_text())
GATE_SAMPLE = read_qids(SQUAD / "gate-test-40.txt")

# The seed questions of the default suite: four plain facts (a number, a place, a name, a year) and two the
# article cannot answer.
SEED_GATE = ("s01", "s10", "s13", "s15", "u01", "u03")


@pytest.fixture(scope="module")
def gate_settings(tmp_path_factory):
    """Real models, one data dir for the module: squad-dev-mini is ingested once for all its gates."""
    return load_settings(environ={}, home=tmp_path_factory.mktemp("gate") / "home", cache=shared_cache())


def _gate(result, floors: dict) -> None:
    problems = check_floors(result.metrics, floors)
    assert not problems, f"{result.dataset} regressed:\n" + "\n".join(problems) + "\n" + result.table()


def _subset(folder: Path, qids) -> Dataset:
    full = load_dataset(folder)
    by_qid = {q["qid"]: q for q in full.questions}
    return Dataset(full.name, full.corpus, [by_qid[x] for x in qids])


def test_floors_file_names_known_metrics():
    assert set(FLOORS) == {"squad-dev-mini", "seed", "gate-seed", "gate-squad-test"}
    assert all(k.startswith("retrieval.") for k in FLOORS["squad-dev-mini"])
    for name in ("gate-seed", "gate-squad-test"):
        assert {"abstention.unanswerable_abstained", "abstention.answerable_abstained"} <= set(FLOORS[name])


def test_gate_sample_is_fixed_and_from_the_test_split():
    from rag.eval.datasets import load_split, split_dataset

    test = {q["qid"]: q for q in split_dataset(load_dataset(SQUAD), load_split(SQUAD, "test")).questions}
    assert len(GATE_SAMPLE) == 40 and len(set(GATE_SAMPLE)) == 40 and set(GATE_SAMPLE) <= set(test)
    assert sum(not test[x]["answerable"] for x in GATE_SAMPLE) == 16


@pytest.mark.xfail(strict=True, reason=(
    "the tool abstains on only 5 of the 16 unanswerable test-sample questions (0.31, measured at commit 066a164 "
    "and again in evals/results/gate-baseline), "
    "which is already the level of the drop; the floor at value - 2 SE is 0.07. Remove this marker when "
    "abstention improves and the floors are reset (then a drop to 3/11 must fail the gate)"))
def test_floors_catch_the_squad_abstention_drop():
    """Unanswerable squad questions abstained fell from 5/11 to 3/11 once, unnoticed; the gate must fail on it."""
    bound = FLOORS["gate-squad-test"]["abstention.unanswerable_abstained"]
    dropped = round(3 / 11 * 16) / 16
    assert check_floors({"abstention.unanswerable_abstained": dropped}, {"abstention.unanswerable_abstained": bound})


pytestmark = pytest.mark.integration


def test_retrieval_on_squad_dev_mini_holds_its_floors(gate_settings):
    result = run_eval(gate_settings, SQUAD, retrieval_only=True)
    assert result.metrics["retrieval.questions"] == 300
    _gate(result, FLOORS["squad-dev-mini"])


def test_seed_answers_with_the_local_llm_hold_their_floors(gate_settings):
    subset = _subset(DATASETS / "seed", SEED_GATE)
    _gate(run_eval(gate_settings, subset, llm="local"), FLOORS["seed"])


@pytest.mark.slow
@pytest.mark.gate
def test_full_gate_seed(gate_settings):
    _gate(run_eval(gate_settings, DATASETS / "seed", llm="local"), FLOORS["gate-seed"])


@pytest.mark.slow
@pytest.mark.gate
def test_full_gate_squad_test_sample(gate_settings):
    result = run_eval(gate_settings, SQUAD, llm="local", qids=GATE_SAMPLE)
    assert result.metrics["abstention.unanswerable_questions"] == 16
    _gate(result, FLOORS["gate-squad-test"])
