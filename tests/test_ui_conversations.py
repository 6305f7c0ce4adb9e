"""Saved conversations and feedback in the UI: the callbacks called directly, around fake models."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest

from rag.serve.api import DocQA
from tests.test_ui import DOC, REPLY, make_settings, run_chat
from ui.conversations import NO_SAVED, ConversationHandlers
from ui.handlers import Handlers
from ui.layout import build_app

QUESTION = "How many companies changed their business scope?"
QUOTE = "<mark>Six foreign-invested companies changed their business scope on 6 September.</mark>"


@pytest.fixture
def qa(tmp_path):
    q = DocQA(make_settings(tmp_path, [REPLY, REPLY]))
    path = tmp_path / "scope.txt"
    path.write_text(DOC, encoding="utf-8")
    q.ingest([path])
    return q


def asked(h: Handlers, ch: ConversationHandlers, question: str, turns, conversation_id: str):
    """One chat callback, then the save step chained after it, as the page runs them."""
    turns = run_chat(h, question, turns)[-1][3]
    return ch.save(turns, conversation_id, "default")


def test_answers_are_saved_listed_and_reopened_after_a_reload(qa):
    h = Handlers(qa)
    ch = ConversationHandlers(h)
    turns, conv_id, state, listing, target = asked(h, ch, QUESTION, [], "")
    assert conv_id and state == {"conversation": conv_id, "collection": "default"}
    assert listing["choices"][0][1] == conv_id and listing["choices"][0][0].startswith(QUESTION)
    assert listing["value"] == conv_id
    assert target["value"] == turns[0].turn_id and target["choices"][0][0] == f"1. {QUESTION}"

    turns, same_id, state, listing, target = asked(h, ch, "and when?", turns, conv_id)
    assert same_id == conv_id and len(listing["choices"]) == 1
    assert target["value"] == turns[1].turn_id and len(target["choices"]) == 2
    again = ch.save(turns, conv_id, "default")  # saving twice saves nothing twice
    assert len(qa.conversation(conv_id).turns) == 2 and again[1] == conv_id

    # a reload: a new page (and here even a new server) gets the id back from the browser
    fresh = ConversationHandlers(Handlers(qa))
    (switch, html, sources, restored, rid, rstate, rlisting, title, rtarget, *views) = fresh.restore(state, "default")
    assert rid == conv_id and rstate == state and title == QUESTION and switch == gr.update()
    assert [t.question for t in restored] == [QUESTION, "and when?"]
    assert restored[0].answer.citations == turns[0].answer.citations
    assert 'data-cite="cite-1-1"' in html and 'id="cite-2-1"' in html and QUOTE in html
    assert "Searched for: <q>How many companies changed their business scope? and when?</q>" in html
    assert "cited [1]" in sources and rtarget["value"] == turns[1].turn_id and views == [gr.update()] * 3
    # the reopened conversation continues with its history
    qa.chat_model.messages = iter([REPLY])
    more, _, _, _, _ = asked(fresh.h, fresh, "and where?", restored, rid)
    assert more[2].answer.history[0][0] == QUESTION and len(qa.conversation(conv_id).turns) == 3


def test_pick_rename_export_and_delete(qa):
    h = Handlers(qa)
    ch = ConversationHandlers(h)
    first = asked(h, ch, QUESTION, [], "")[1]
    h2 = ch.new("default")
    assert h2[0] == "" and h2[1] == {"conversation": "", "collection": "default"} and h2[2]["value"] is None
    qa.chat_model.messages = iter([REPLY])
    second = asked(h, ch, "Which companies changed their scope?", [], "")[1]
    assert [c[1] for c in ch.listing("default", None)["choices"]] == [second, first]  # newest first

    html, sources, turns, conv_id, state, title, target = ch.open(first, "default")
    assert conv_id == first and QUOTE in html and len(turns) == 1 and state["conversation"] == first

    listing, title = ch.rename(first, "Scope changes", "default")
    assert title == "Scope changes" and ("Scope changes" in listing["choices"][1][0])
    with pytest.raises(gr.Error, match="cannot be empty"):
        ch.rename(first, "  ", "default")

    download = ch.export(first, "default")
    md = Path(download["value"]).read_text(encoding="utf-8")
    assert download["visible"] and md.startswith("# Scope changes")
    assert "**Six foreign-invested companies changed their business scope on 6 September.**" in md

    out = ch.delete(first, "default")
    assert out[0].startswith('<div class="rag-chat"><div class="rag-empty">') and out[2] == [] and out[3] == ""
    assert [c[1] for c in out[5]["choices"]] == [second]
    # the browser still remembers the deleted one: the reload starts afresh
    restored = ch.restore({"conversation": first, "collection": "default"}, "default")
    assert restored[4] == "" and restored[5] == NO_SAVED


def test_feedback_buttons_record_ratings_with_comment_and_correction(qa):
    h = Handlers(qa)
    ch = ConversationHandlers(h)
    turns, conv_id, *_ , target = asked(h, ch, QUESTION, [], "")
    status = ch.rate_up(target["value"], "", "", "default")
    assert "marked helpful" in status
    status = ch.rate_down(target["value"], "wrong date", "six companies, on 14 November", "default")
    assert "marked wrong with your correction" in status
    [fb] = qa.feedback_items()
    assert fb.rating == -1 and fb.comment == "wrong date" and fb.correction == "six companies, on 14 November"
    assert fb.turn_id == turns[0].turn_id and fb.answer.citations == turns[0].answer.citations
    with pytest.warns(UserWarning, match="no answer to rate"):
        assert ch.rate_up(None, "", "", "default") == gr.update()  # nothing to rate yet: a warning, no record
    assert len(qa.feedback_items()) == 1


def test_the_app_keeps_the_conversation_id_in_the_browser(qa):
    demo = build_app(qa)
    states = [b for b in demo.blocks.values() if isinstance(b, gr.BrowserState)]
    assert len(states) == 1 and states[0].storage_key == "rag-conversation"
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"conversation-list", "feedback-up", "feedback-down", "conversation-export"} <= ids


def test_restore_switches_to_the_conversations_collection(qa, tmp_path):
    h = Handlers(qa)
    ch = ConversationHandlers(h)
    notes = h.qa_for("notes")
    path = tmp_path / "scope.txt"
    notes.ingest([path])
    notes.chat_model.messages = iter([REPLY])
    turns = list(h.chat(QUESTION, [], 5, [], "notes"))[-1][3]
    _, conv_id, state, _, _ = ch.save(turns, "", "notes")
    assert state == {"conversation": conv_id, "collection": "notes"}
    assert ch.listing("default", None)["choices"] == []  # listed under its own collection only

    out = ConversationHandlers(Handlers(qa)).restore(state, "default")
    (switch, html, _, restored, rid), views = out[:5], out[-3:]
    assert switch["value"] == "notes" and rid == conv_id and QUOTE in html and len(restored) == 1
    assert [c[0] for c in views[1]["choices"]] == ["scope.txt"]  # the documents of that collection


def test_user_text_stays_text_in_titles_and_the_status_line(qa):
    from tests.test_ui import XSS

    h = Handlers(qa)
    ch = ConversationHandlers(h)
    turns, conv_id, _, listing, target = asked(h, ch, f"Which companies? {XSS}", [], "")
    status = ch.rate_up(target["value"], "", "", "default")
    assert "<script" not in status and "<img" not in status and "&lt;script&gt;" in status
    listing, title = ch.rename(conv_id, f"**bold** {XSS}", "default")
    assert title == f"**bold** {XSS}"  # stored as typed; Gradio shows choice labels as text
    md = qa.export_conversation(conv_id)
    assert "<script" not in md and "<img" not in md
