"""Several users at once, through the served UI and `gradio_client`.

A model that computes in this process (the local llama.cpp model) answers one
question at a time, in arrival order, and the others are told their place in
line; a server model (OpenAI-compatible) answers them concurrently. No request fails.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.models.chat.queue import GenerationQueue
from rag.serve.api import DocQA
from tests.conftest import serving
from tests.test_ui import REPLY, make_settings

CLIENTS = 4


class _Tracker:
    def __init__(self):
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


TRACK = _Tracker()


class SlowServerModel(GenericFakeChatModel):
    """A fake chat model whose tokens take time, like a model server's (concurrent)."""

    def _stream(self, *args, **kwargs):
        with TRACK:
            for chunk in super()._stream(*args, **kwargs):
                time.sleep(0.03)
                yield chunk


class SlowLocalModel(SlowServerModel):
    """The same, computing in this process like llama.cpp: it shares one generation queue."""

    @property
    def in_process_key(self):
        return ("test-local-model",)


@pytest.fixture(autouse=True)
def _fresh_tracker():
    TRACK.now = TRACK.most = 0


def _serve_and_ask(tmp_path, model_cls):
    from gradio_client import Client

    qa = DocQA(make_settings(tmp_path, [REPLY]), chat_model=model_cls(messages=itertools.cycle([REPLY])))
    doc = tmp_path / "scope.txt"
    doc.write_text("Six foreign-invested companies changed their business scope on 6 September.", encoding="utf-8")
    qa.ingest([doc])
    questions = [f"How many companies changed their business scope? ({i})" for i in range(CLIENTS)]
    with serving(qa) as url:
        def ask_streaming(question):
            client = Client(url, verbose=False)
            job = client.submit(question, 5, [], "default", api_name="/chat")
            job.result(timeout=120)
            return [out[1] for out in job.outputs()]  # every conversation render the client received

        with ThreadPoolExecutor(CLIENTS) as pool:
            return list(pool.map(ask_streaming, questions))


def test_local_model_answers_one_at_a_time_and_says_who_waits(tmp_path):
    renders = _serve_and_ask(tmp_path, SlowLocalModel)
    assert TRACK.most == 1  # never two generations at once on the in-process model
    finals = [r[-1] for r in renders]
    assert all('class="cite-ref"' in html and "rag-error" not in html for html in finals)  # nobody failed
    waited = [r for r in renders if any("ahead of yours" in html for html in r)]
    assert waited, "a client that had to wait was not told its place in line"
    # and every client saw what was found before its answer: the best match, marked as not yet an answer
    assert all(any("Best match, not yet an answer" in html for html in r) for r in renders)


def test_server_model_answers_concurrently(tmp_path):
    renders = _serve_and_ask(tmp_path, SlowServerModel)
    assert TRACK.most >= 2  # answers overlapped
    assert all('class="cite-ref"' in r[-1] for r in renders)
    assert not any("ahead of yours" in html for r in renders for html in r)


def test_queue_is_first_come_first_served_and_skips_those_who_left():
    q = GenerationQueue()
    a, b, c = q.join(), q.join(), q.join()
    assert (q.ahead(a), q.ahead(b), q.ahead(c)) == (0, 1, 2)
    assert q.wait(a, 0) and not q.wait(b, 0.01)
    q.leave(b)  # b gives up before its turn
    assert q.ahead(c) == 1
    q.leave(a)
    assert q.wait(c, 0.01) and q.ahead(c) == 0
    q.leave(c)
    d = q.join()
    assert q.wait(d, 0)
