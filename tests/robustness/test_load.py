"""A short run of the load test (`bench/load.py`): 32 people for 20 s against `rag serve` with the local model.

Searches, questions (streamed and not) and uploads at once must all succeed, and a streamed question that
waits for the model must be told its place in line. Latency is reported by the benchmark, not asserted here.
Marked `slow` (`make stress`): about two minutes on 2 cores, with the model's start.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_many_people_at_once_get_no_errors(capsys):
    spec = importlib.util.spec_from_file_location("bench_load", REPO / "bench" / "load.py")
    load = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = load
    spec.loader.exec_module(load)
    result = load.main(["--clients", "32", "--duration", "20", "--idle", "5", "--docs", "40", "--uploads", "2"])
    ops = result["ops"]
    assert sum(r["errors"] for r in ops.values()) == 0, result["errors"]
    assert ops["search"]["count"] >= 100 and ops["ask"]["count"] + ops["ask (stream)"]["count"] >= 2
    assert ops["upload"]["count"] >= 1
    assert result["queue_positions"]["reported"] >= 1  # someone waited, and was told so
