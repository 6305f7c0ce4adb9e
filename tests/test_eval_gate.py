"""The eval gates: regression evals with the real models, held to evals/floors.json, and proof that each floor
fails on the regression it guards.

`make test` (default suite, about 4 minutes on 2 cores):
- retrieval on all 300 answerable squad-dev-mini questions (the corpus is ingested once per module);
- answers on six seed questions (`seed`).

`make gate` (marked `gate` and `slow`, run by CI after `make test`; about 25 minutes on 2 cores): answers on
all 45 seed questions (`gate-seed`) and on the fixed 40-question sample of the squad SEEN split
(`evals/datasets/squad-dev-mini/gate-seen-40.txt`, 24 answerable and 16 unanswerable; `gate-squad-seen`). The
seen split was the "test" split; its figures have been looked at, so it is a regression gate, not an unseen measure.

Floors sit a few points (`rag.eval.gates.MARGIN`) below the recorded runs in evals/results/gate-baseline/
(`python evals/set_floors.py`). Every floor must fail when the regression it guards is injected into its
recorded run (`rag.eval.gates.floor_misses`: a tenth of the questions, at least one, turned wrong on that
metric); those checks need no model and run in `make test-fast`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.core.config import load_settings
from rag.eval.datasets import Dataset, load_dataset, read_qids
from rag.eval.gates import GATED, check_floors, floor_misses, inject_regression, run_metrics, upgrade_row
from rag.eval.runner import run_eval
from tests.conftest import shared_cache

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO / "evals" / "datasets"
SQUAD = DATASETS / "squad-dev-mini"
BASELINE = REPO / "evals" / "results" / "gate-baseline"
FLOORS = json.loads((REPO / "evals" / "floors.json").read_text())
GATE_SAMPLE = read_qids(SQUAD / "gate-seen-40.txt")

# The seed questions of the default suite: four plain facts (a number, a place, a name, a year) and two the
# article cannot answer.
SEED_GATE = ("s01", "s10", "s13", "s15", "u01", "u03")


def recorded(name: str, qids=None) -> list[dict]:
    """The per-question rows of a recorded run in gate-baseline/ (older rows rescored: `upgrade_row`)."""
    rows = [upgrade_row(r) for r in json.loads((BASELINE / name).read_text(encoding="utf-8"))["questions"]]
    if qids is None:
        return rows
    by_qid = {r["qid"]: r for r in rows}
    return [by_qid[q] for q in qids]


# each floors.json section: the recorded run its floors were set from (the same questions the gate asks)
BASELINES = {
    "squad-dev-mini": lambda: recorded("retrieval-dev-after.json") + recorded("retrieval-test-after.json"),
    "seed": lambda: recorded("seed.json", SEED_GATE),
    "gate-seed": lambda: recorded("seed.json"),
    "gate-squad-seen": lambda: recorded("squad-test.json", GATE_SAMPLE),  # the seen split, recorded as "test"
}


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
    assert set(FLOORS) == set(BASELINES) == {"squad-dev-mini", "seed", "gate-seed", "gate-squad-seen"}
    assert all(k.startswith("retrieval.") for k in FLOORS["squad-dev-mini"])
    for name in ("gate-seed", "gate-squad-seen"):
        assert {"abstention.unanswerable_abstained", "abstention.answerable_abstained", "answer.accuracy",
                "citation.precision"} <= set(FLOORS[name])
    for name, section in FLOORS.items():  # every gated metric has a regression to inject
        rows = BASELINES[name]()
        for key in section:
            assert inject_regression(rows, key) != rows, f"{name}: injecting {key} changed nothing"


def test_gate_sample_is_fixed_and_from_the_seen_split():
    from rag.eval.datasets import load_split, split_dataset

    seen = {q["qid"]: q for q in split_dataset(load_dataset(SQUAD), load_split(SQUAD, "seen")).questions}
    assert len(GATE_SAMPLE) == 40 and len(set(GATE_SAMPLE)) == 40 and set(GATE_SAMPLE) <= set(seen)
    assert sum(not seen[x]["answerable"] for x in GATE_SAMPLE) == 16


@pytest.mark.parametrize("section", sorted(BASELINES))
def test_each_floor_holds_on_its_recorded_run_and_fails_on_the_regression_it_guards(section):
    rows = BASELINES[section]()
    assert rows
    problems = floor_misses(rows, FLOORS[section])
    assert not problems, "\n".join(problems)


def test_a_current_run_is_not_rescored_as_an_old_one():
    """The floors are checked on recomputed metrics: for a run recorded by the current code they must equal the
    metrics the run itself printed (an unanswerable row once lost its faithfulness as if it were an old row, and
    the floors were set above what the gate then measured)."""
    for name in ("seed.json", "squad-test.json"):
        data = json.loads((BASELINE / name).read_text(encoding="utf-8"))
        rows = [upgrade_row(r) for r in data["questions"]]
        assert rows == data["questions"]
        recomputed = run_metrics(rows)
        for key in GATED:
            assert recomputed[key] == pytest.approx(data["metrics"][key], abs=1e-4), (name, key)


def test_floors_catch_the_squad_abstention_drop():
    """Unanswerable squad questions abstained fell from 5/11 to 3/11 once, unnoticed; the gate must fail on it."""
    bound = FLOORS["gate-squad-seen"]["abstention.unanswerable_abstained"]
    dropped = round(3 / 11 * 16) / 16
    assert check_floors({"abstention.unanswerable_abstained": dropped}, {"abstention.unanswerable_abstained": bound})


@pytest.mark.integration
def test_retrieval_on_squad_dev_mini_holds_its_floors(gate_settings):
    result = run_eval(gate_settings, SQUAD, retrieval_only=True)
    assert result.metrics["retrieval.questions"] == 300
    _gate(result, FLOORS["squad-dev-mini"])


@pytest.mark.integration
def test_seed_answers_with_the_local_llm_hold_their_floors(gate_settings):
    subset = _subset(DATASETS / "seed", SEED_GATE)
    _gate(run_eval(gate_settings, subset, llm="local"), FLOORS["seed"])


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.gate
def test_full_gate_seed(gate_settings):
    _gate(run_eval(gate_settings, DATASETS / "seed", llm="local"), FLOORS["gate-seed"])


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.gate
def test_full_gate_squad_seen_sample(gate_settings):
    result = run_eval(gate_settings, SQUAD, llm="local", qids=GATE_SAMPLE)
    assert result.metrics["abstention.unanswerable_questions"] == 16
    _gate(result, FLOORS["gate-squad-seen"])
