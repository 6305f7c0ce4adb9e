"""The warm-up at start: `DocQA.open` loads the models in the background, search first, and a question asked
meanwhile gets its evidence at once and its answer after the language model is ready (never reading the
fixed prompt text itself)."""

from __future__ import annotations

import threading
import time
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.core.types import Answer, Evidence
from rag.models.embedders.fake import FakeEmbeddings
from rag.serve.api import DocQA

REPLY = "Answer: six\nDetails: Six foreign-invested biotech companies changed scope on Nov 14 [1]."
QUESTION = "How many companies changed their business scope?"


class SlowLoadingChat(GenericFakeChatModel):
    """A local-style model (one answer at a time, `in_process_key`) whose warm-up lasts until `loaded` is set."""

    loaded: threading.Event
    events: Any  # the test's own list (a `list` field would be copied)

    @property
    def in_process_key(self):
        if not self.events:  # finding the model's file takes a moment the first time: a question may overtake
            time.sleep(0.3)
            self.events.append(("resolved", time.perf_counter()))
        return ("slow-loading", id(self))

    def warm(self, prompt_kinds) -> int:
        self.events.append(("warm started", time.perf_counter()))
        assert self.loaded.wait(10), "the test never let the model load"
        self.events.append(("warm done", time.perf_counter()))
        return 0

    def _stream(self, *args, **kwargs):
        self.events.append(("generation", time.perf_counter()))
        yield from super()._stream(*args, **kwargs)


class SlowSearchLoad(FakeEmbeddings):
    """Fake embeddings whose first query (the warm-up's) takes a while, as loading a real embedder does."""

    def embed_query(self, text):
        if text == "warm up":
            time.sleep(0.3)
        return super().embed_query(text)


def _qa(fake_settings, tmp_path, **kwargs):
    settings = fake_settings.model_copy(update={"answer": fake_settings.answer.model_copy(update={"min_relevance": -1.0})})
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "news.txt").write_text("Business scope\n\nSix foreign-invested biotech companies changed their business "
                                   "scope on Nov 14.\n\nOther news from Pudong.", encoding="utf-8")
    DocQA(settings, **kwargs).ingest([docs])
    return DocQA(settings, **kwargs)


def test_evidence_comes_at_once_and_the_answer_after_the_model_is_ready(fake_settings, tmp_path):
    events: list = []
    loaded = threading.Event()
    model = SlowLoadingChat(messages=iter([REPLY]), loaded=loaded, events=events)
    qa = _qa(fake_settings, tmp_path, chat_model=model, embeddings=SlowSearchLoad())

    thread = qa.warm(background=True)
    assert qa.status() == "loading" and not qa.ready
    # asked at once, while search is still loading: its place in line is behind the warm-up
    stream = qa.stream(QUESTION)
    first = next(stream)
    assert isinstance(first, Evidence) and "business scope" in first.quote
    assert not qa.ready and qa.status() == "loading"  # evidence did not wait for the language model
    loaded.set()
    rest = list(stream)
    thread.join(5)
    assert isinstance(rest[-1], Answer) and rest[-1].short_answer == "six"
    kinds = [kind for kind, _ in events if kind != "resolved"]
    # the fixed prompt text was in place before the question's prompt was read, never after it
    assert kinds == ["warm started", "warm done", "generation"], kinds
    assert qa.ready and qa.status() == "ready" and qa.warm_error is None
    assert set(qa.warm_timings) == {"search_s", "model_s"}


def test_a_warm_up_under_way_is_not_started_twice(fake_settings, tmp_path):
    events: list = []
    loaded = threading.Event()
    qa = _qa(fake_settings, tmp_path, chat_model=SlowLoadingChat(messages=iter([REPLY]), loaded=loaded, events=events))
    first = qa.warm(background=True)
    assert qa.warm(background=True) is first
    loaded.set()
    qa.warm()  # waits for it; the model's own warm() skips what it holds already
    assert qa.wait_ready(5)


def test_open_warms_in_the_background_unless_told_not_to(tmp_path):
    env = {"RAG_EMBEDDING__PROVIDER": "fake", "RAG_EMBEDDING__MODEL_NAME": "fake", "RAG_LLM__PROVIDER": "fake"}
    quiet = DocQA.open(home=tmp_path / "a", environ=env, warm=False)
    assert quiet.status() == "idle" and not quiet.wait_ready(0)
    qa = DocQA.open(home=tmp_path / "b", environ=env)
    assert qa.status() in ("loading", "ready")
    assert qa.wait_ready(30) and qa.status() == "ready"
    assert "embeddings" in qa.__dict__ and "store" in qa.__dict__  # search was opened by the warm-up


def test_a_failed_warm_up_is_kept_and_raised_where_the_model_is_needed(tmp_path):
    env = {"RAG_EMBEDDING__PROVIDER": "fake", "RAG_EMBEDDING__MODEL_NAME": "fake", "RAG_LLM__PROVIDER": "local",
           "RAG_LLM__MODEL_PATH": str(tmp_path / "missing.gguf")}
    qa = DocQA.open(home=tmp_path / "home", environ=env)
    assert not qa.wait_ready(60)
    assert qa.status() == "failed" and "missing.gguf" in str(qa.warm_error)
    try:
        qa.warm()
    except Exception as exc:  # noqa: BLE001 -- the user's error, named
        assert "missing.gguf" in str(exc)
    else:
        raise AssertionError("warm() did not raise the load error")


def test_the_page_says_the_model_is_loading_then_ready(fake_settings, tmp_path):
    from ui.handlers import Handlers

    loaded = threading.Event()
    qa = _qa(fake_settings, tmp_path, chat_model=SlowLoadingChat(messages=iter([REPLY]), loaded=loaded, events=[]))
    h = Handlers(qa)
    line, timer = h.model_status()
    assert line == "" and timer.active is False  # never warmed: nothing to wait for, no polling
    qa.warm(background=True)
    line, timer = h.model_status()
    assert 'data-status="loading"' in line and "the sources are shown at once" in line and timer.active is True
    loaded.set()
    assert qa.wait_ready(5)
    line, timer = h.model_status()
    assert 'data-status="ready"' in line and timer.active is False  # settled: the page stops asking


class LoadingChat(SlowLoadingChat):
    """A local-style model whose weights take a while to load (`load`), as a GGUF's do."""

    def load(self) -> None:
        self.events.append(("load started", time.perf_counter()))
        time.sleep(0.3)
        self.events.append(("load done", time.perf_counter()))


class RecordingSearchLoad(SlowSearchLoad):
    events: Any = None

    def embed_query(self, text):
        vector = super().embed_query(text)
        if text == "warm up" and self.events is not None:
            self.events.append(("search loaded", time.perf_counter()))
        return vector


def test_the_model_loads_beside_search_not_after_it(fake_settings, tmp_path):
    events: list = []
    loaded = threading.Event()
    loaded.set()
    embeddings = RecordingSearchLoad()
    qa = _qa(fake_settings, tmp_path, chat_model=LoadingChat(messages=iter([REPLY]), loaded=loaded, events=events),
             embeddings=embeddings)
    embeddings.events = events
    assert qa.warm(background=True).join(10) is None and qa.ready
    at = {name: t for name, t in events}
    assert at["load started"] < at["search loaded"]  # side by side, not one after the other
    assert at["load done"] <= at["warm started"]  # the prompt text is restored into loaded weights
    assert "load_s" in qa.warm_timings


def test_open_imports_what_its_threads_share_before_they_start(tmp_path):
    """Two threads importing numpy at once can meet it half initialised (a caller opening the store while the
    warm-up imports llama.cpp failed so, about one run in two): `DocQA.open` imports it before the warm-up's
    threads start. A fresh process, since this one imported numpy long ago."""
    import json
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from rag.serve.api import DocQA\n"
        "before = 'numpy' in sys.modules\n"
        "qa = DocQA.open(home=sys.argv[1], embedding={'provider': 'fake', 'model_name': 'fake'},\n"
        "                llm={'provider': 'fake'})\n"
        "after = 'numpy' in sys.modules\n"
        "print(json.dumps({'before': before, 'after': after, 'sources': len(qa.sources()),\n"
        "                  'ready': qa.wait_ready(30)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "home")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"before": False, "after": True, "sources": 0, "ready": True}
