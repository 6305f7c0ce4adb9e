"""The real local model on the seed article, as a user tries it in the browser: a list follow-up lists the
items, "Who is X?" says who X is, and an answer carries its calibrated confidence."""

from __future__ import annotations

import pytest

from rag.core.config import load_settings
from rag.serve.api import DocQA

from .conftest import SEED_DIR, shared_cache

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    docs = tmp_path_factory.mktemp("docs")
    for f in SEED_DIR.iterdir():
        (docs / f.name).write_bytes(f.read_bytes())
    qa = DocQA(load_settings(environ={}, home=tmp_path_factory.mktemp("home"), cache=shared_cache()))
    qa.ingest([docs])
    return qa


def test_a_list_follow_up_names_the_items_and_its_quote_states_them(qa):
    first = qa.ask("Which ministry issued the notice in September?")
    follow = qa.ask("And which cities does the pilot cover?", history=first)
    assert follow.standalone_question != follow.question  # read as a follow-up: searched with the first question
    assert not follow.abstained, follow.abstain_reason
    short = follow.short_answer.lower()
    assert all(city in short for city in ("beijing", "shanghai", "hainan")), follow.short_answer
    assert follow.confidence is not None
    for c in follow.citations:  # full support only where the quoted sentence states the answer
        if c.support >= 1.0:
            assert all(city in c.quote.lower() for city in ("beijing", "shanghai", "hainan")), c.quote


def test_who_is_x_says_who_x_is(qa):
    ans = qa.ask("Who is Chen Li?")
    # the answer as built, whether the confidence shows it or withholds it (the 1.5B model is unsure here:
    # its first answer token ~45% likely, so it may be withheld, and then offered behind a click)
    built = ans.withheld if ans.abstained and ans.abstain_step == "confidence" else ans
    assert built is not None and not built.abstained, ans.abstain_reason
    short = built.short_answer.lower()
    assert "chen li" not in short and ("assistant" in short or "neukio" in short), built.short_answer
    assert ans.confidence is not None
