"""Tests for rag.models.chat: the provider factory, message mapping and the local llama.cpp adapter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ChatMessage, HumanMessage, SystemMessage

from rag.core.config import default_home, load_settings
from rag.core.errors import ConfigError, ModelNotInstalledError
from rag.models.chat import factory as chat_factory
from rag.models.chat import llama_cpp as llama_mod
from rag.models.chat.factory import DEFAULT_FAKE_RESPONSE, describe_llm, make_chat_model
from rag.models.chat.llama_cpp import LlamaCppChat, to_openai_messages


def _settings(tmp_path, **llm):
    return load_settings(environ={}, home=tmp_path, llm=llm)


class _Tokens(BaseCallbackHandler):
    def __init__(self):
        self.tokens: list[str] = []

    def on_llm_new_token(self, token, **kwargs):
        self.tokens.append(token)


# --------------------------------------------------------------------------- fake


def test_fake_default_response_streams_token_by_token(tmp_path):
    model = make_chat_model(_settings(tmp_path, provider="fake"))
    handler = _Tokens()
    chunks = [c.content for c in model.stream("anything", config={"callbacks": [handler]})]
    assert "".join(chunks) == DEFAULT_FAKE_RESPONSE
    assert len([c for c in chunks if c.strip()]) == len(DEFAULT_FAKE_RESPONSE.split())
    assert "".join(handler.tokens) == DEFAULT_FAKE_RESPONSE


def test_fake_cycles_through_responses(tmp_path):
    model = make_chat_model(_settings(tmp_path, provider="fake", fake_responses=["one [1]", "two [2]"]))
    assert [model.invoke("q").content for _ in range(3)] == ["one [1]", "two [2]", "one [1]"]
    assert "".join(c.content for c in model.stream("q")) == "two [2]"


# --------------------------------------------------------------------------- openai


def test_openai_with_base_url_needs_no_key(tmp_path):
    from langchain_openai import ChatOpenAI

    model = make_chat_model(
        _settings(tmp_path, provider="openai", base_url="http://localhost:11434/v1", model="qwen2.5:1.5b")
    )
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_base == "http://localhost:11434/v1"
    assert model.model_name == "qwen2.5:1.5b"
    assert model.openai_api_key.get_secret_value() == "not-needed"
    assert model.streaming is True
    assert model.temperature == 0.0
    assert model.max_tokens == 320


def test_openai_key_from_settings_or_environment(tmp_path):
    model = make_chat_model(_settings(tmp_path, provider="openai", api_key="sk-test"))
    assert model.openai_api_key.get_secret_value() == "sk-test"
    env = {"OPENAI_API_KEY": "sk-env", "RAG_LLM__PROVIDER": "openai", "RAG_HOME": str(tmp_path)}
    assert make_chat_model(load_settings(environ=env)).openai_api_key.get_secret_value() == "sk-env"


def test_openai_without_key_or_base_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="OPENAI_API_KEY.*RAG_LLM__BASE_URL"):
        make_chat_model(_settings(tmp_path, provider="openai"))


def test_openai_package_missing(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "langchain_openai", None)
    with pytest.raises(ModelNotInstalledError, match=r"pip install 'rag\[openai\]'"):
        make_chat_model(_settings(tmp_path, provider="openai", api_key="k"))


# --------------------------------------------------------------------------- local (no model loaded)


def test_local_llama_cpp_missing(tmp_path, monkeypatch):
    real = chat_factory.importlib.util.find_spec
    monkeypatch.setattr(
        chat_factory.importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a)
    )
    with pytest.raises(ModelNotInstalledError, match="pip install llama-cpp-python"):
        make_chat_model(_settings(tmp_path, provider="local"))


def test_local_with_model_path_is_lazy(tmp_path):
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    model = make_chat_model(_settings(tmp_path, provider="local", model_path=gguf, n_threads=3, n_ctx=2048))
    assert isinstance(model, LlamaCppChat)
    assert model.model_path == str(gguf)
    assert (model.n_ctx, model.n_threads, model.n_batch, model.threads) == (2048, 3, 512, 3)
    assert model._key not in llama_mod._llamas  # nothing loaded until first use


def test_local_missing_model_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="RAG_LLM__MODEL_PATH"):
        make_chat_model(_settings(tmp_path, provider="local", model_path=tmp_path / "nope.gguf"))


def test_message_mapping():
    messages = [
        SystemMessage("sys"),
        HumanMessage("hi"),
        AIMessage("hello"),
        HumanMessage(content=[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
        ChatMessage(role="user", content="x"),
    ]
    assert to_openai_messages(messages) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "ab"},
        {"role": "user", "content": "x"},
    ]


def test_describe_llm(tmp_path):
    assert describe_llm(_settings(tmp_path, provider="local", n_threads=2)) == (
        "local: qwen2.5-coder-1.5b-instruct-q4_k_m.gguf (llama.cpp, 2 threads)"
    )
    openai = _settings(tmp_path, provider="openai", base_url="http://h:1/v1", model="m")
    assert describe_llm(openai) == "openai: m @ http://h:1/v1"
    assert describe_llm(_settings(tmp_path, provider="fake")) == "fake: 1 canned response"


# --------------------------------------------------------------------------- local (real model)


@pytest.fixture(scope="module")
def local_model():
    """The packaged Qwen model, assembled once into the user cache (or $RAG_TEST_CACHE_DIR)."""
    from rag.models.chat import gguf

    cache = Path(os.environ.get("RAG_TEST_CACHE_DIR") or default_home() / "cache")
    path = gguf.ensure_gguf(cache)
    return LlamaCppChat(model_path=str(path), max_tokens=16)


@pytest.mark.integration
def test_local_model_answers_and_streams(local_model):
    answer = local_model.invoke([HumanMessage("Reply with the single word: yes")])
    assert "yes" in answer.content.lower()
    assert answer.usage_metadata["input_tokens"] > 5
    assert answer.usage_metadata["output_tokens"] >= 1

    handler = _Tokens()
    chunks = list(local_model.stream("Count from 1 to 5, separated by spaces.", config={"callbacks": [handler]}))
    texts = [c.content for c in chunks if c.content]
    assert len(texts) > 1
    assert "1" in "".join(texts) and "5" in "".join(texts)
    assert "".join(handler.tokens) == "".join(texts)
    final = chunks[-1]
    assert final.usage_metadata and final.usage_metadata["output_tokens"] >= len(texts)

    # One Llama per process, shared by models with the same parameters.
    twin = LlamaCppChat(model_path=local_model.model_path, max_tokens=4)
    assert twin.llama is local_model.llama
    assert local_model.count_tokens("hello world") == 2


@pytest.mark.integration
def test_prompt_kinds_keep_their_cached_prefix_and_answers_do_not_change(local_model):
    """Alternating two kinds of prompt: each kind's fixed part is read once (at warm-up), never again,
    and an answer computed on a restored prefix is the answer computed from scratch."""
    fixed_a = "You answer in one word. " * 12  # long fixed parts, as the real prompts have
    fixed_b = "You repeat the user's last word. " * 12

    def a(q):
        return [SystemMessage(fixed_a), HumanMessage(q)]

    def b(q):
        return [SystemMessage(fixed_b), HumanMessage(q)]

    llama = local_model.llama
    llama._ctx.kv_cache_seq_rm(-1, 0, -1)
    llama.n_tokens = 0
    cold = local_model.invoke(a("What colour is the sky on a clear day?"))
    evaluated = local_model.warm([[a("x"), a("y z")], [b("x"), b("y z")]])
    assert evaluated >= len(local_model.prompt_tokens(a("x"))) - 10  # both fixed parts were read

    for _ in range(2):
        other = local_model.invoke(b("the last word is apple"))
        assert other.response_metadata["prompt_evaluated"] < 25
        warm = local_model.invoke(a("What colour is the sky on a clear day?"))
        # only the new part of the prompt was evaluated: not the fixed part evicted by the other kind
        assert warm.response_metadata["prompt_evaluated"] < 25 < warm.response_metadata["prompt_tokens"]
        assert warm.content == cold.content


_RESTARTED = """
import json, sys
from langchain_core.messages import HumanMessage, SystemMessage
from rag.models.chat.llama_cpp import LlamaCppChat
model = LlamaCppChat(model_path=sys.argv[1], max_tokens=16, state_dir=sys.argv[2])
fixed = sys.argv[3]
def a(q):
    return [SystemMessage(fixed), HumanMessage(q)]
evaluated = model.warm([[a("x"), a("y z")]])
reply = model.invoke(a("What colour is the sky on a clear day?"))
print(json.dumps({"evaluated": evaluated, "restored": model.llama.restored, "content": reply.content,
                  "prompt_evaluated": reply.response_metadata["prompt_evaluated"]}))
"""


@pytest.mark.integration
def test_fixed_prefix_state_is_saved_once_and_a_restarted_process_restores_it(local_model, tmp_path):
    """The fixed prompt text is read once per model and prompt version: a new process restores its state
    from disk (no token evaluated), answers exactly as from scratch, and a changed prompt is read anew."""
    import json
    import subprocess
    import sys

    fixed = "You answer in one word, the colour asked for. " * 10
    state = tmp_path / "state"

    def restarted(prompt: str) -> dict:
        out = subprocess.run([sys.executable, "-c", _RESTARTED, local_model.model_path, str(state), prompt],
                             capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    first = restarted(fixed)
    assert first["evaluated"] > 100 and first["restored"] == 0  # read once, and saved
    files = sorted(state.glob("*.kv"))
    assert len(files) == 1 and files[0].stat().st_size > 100_000
    again = restarted(fixed)
    assert again["evaluated"] == 0 and again["restored"] >= 1  # restored from disk, not read
    assert again["prompt_evaluated"] < 25 and again["content"] == first["content"]
    changed = restarted(fixed.replace("one word", "a single word"))  # a new prompt version: its own state
    assert changed["evaluated"] > 100 and len(list(state.glob("*.kv"))) == 2

    # a damaged file is not trusted: the prefix is read again, and the file rewritten
    files[0].write_bytes(files[0].read_bytes()[:50])
    damaged = restarted(fixed)
    assert damaged["evaluated"] > 100 and damaged["content"] == first["content"]
    assert restarted(fixed)["evaluated"] == 0


@pytest.mark.integration
def test_continuation_probabilities_read_how_likely_the_model_was_to_decline(local_model):
    """After "Answer:", the real model is far likelier to go on with "I" (don't know) when the passage
    lacks the answer, and reading it right after a reply evaluates only what the context lacks."""
    from rag.answer.context import Passage
    from rag.answer.flow import build_messages
    from rag.core.types import Chunk

    def ask(text, question):
        return build_messages(question, [Passage(1, Chunk(chunk_id="c", text=text, source="t.txt"), text)])

    held = ask("The Vetra glassworks employs 85 glassblowers in Murano.", "How many glassblowers does Vetra employ?")
    lacking = ask("The Vetra glassworks was founded in Murano in 1921.", "How many glassblowers does Vetra employ?")
    local_model.invoke(held)
    before = local_model.llama.evaluated
    p_held, top_held = local_model.continuation_probabilities(held, "Answer:", "I")
    assert local_model.llama.evaluated - before <= 3  # the prompt and "Answer:" were still in the context
    p_lacking, _ = local_model.continuation_probabilities(lacking, "Answer:", "I")
    assert 0.0 <= p_held < 0.2 and p_lacking > 2 * p_held
    assert p_held <= top_held <= 1.0 and top_held > 0.5  # sure of its first answer token when the passage holds it


@pytest.mark.integration
def test_yes_probability_reads_the_verifier_reply_from_the_real_model(local_model):
    """The verification prompt's Yes/No, read from the first reply token's probabilities (rag.answer.checks.verify)."""
    from rag.answer.checks.verify import verify_messages

    stated = local_model.yes_probability(verify_messages(
        "How many glassblowers does Vetra employ?", "85", "The Vetra glassworks employs 85 glassblowers."))
    unstated = local_model.yes_probability(verify_messages(
        "How many glassblowers does Vetra employ?", "1921", "The Vetra glassworks was founded in 1921."))
    assert 0.0 <= unstated < stated <= 1.0 and stated > 0.5


def test_weights_load_unrepacked_by_default_and_the_swap_is_undone(tmp_path):
    """`llm.repack_weights` (off by default) reaches llama.cpp's model parameters, only while the model loads."""
    low_level = pytest.importorskip("llama_cpp.llama").llama_cpp
    default = low_level.llama_model_default_params
    assert load_settings(environ={}, home=tmp_path).llm.repack_weights is False
    with llama_mod._weights_repacked(False):
        assert low_level.llama_model_default_params().use_extra_bufts is False
    with llama_mod._weights_repacked(True):
        assert low_level.llama_model_default_params is default
    assert low_level.llama_model_default_params is default
    with pytest.raises(RuntimeError), llama_mod._weights_repacked(False):
        raise RuntimeError("a load that fails")
    assert low_level.llama_model_default_params is default

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    plain = LlamaCppChat(model_path=str(model), state_dir=str(tmp_path))
    repacked = LlamaCppChat(model_path=str(model), state_dir=str(tmp_path), repack=True)
    assert plain.in_process_key != repacked.in_process_key  # two Llamas, never one shared by both
    assert plain.state_path([1, 2, 3]) != repacked.state_path([1, 2, 3])  # neither restores the other's state


@pytest.mark.integration
def test_repacked_and_plain_weights_both_answer(local_model):
    """The default (plain, mapped) load and the repacked one are both a working model."""
    assert local_model.repack is False
    assert local_model.llama.model_params.use_extra_bufts is False
    repacked = LlamaCppChat(model_path=local_model.model_path, max_tokens=4, repack=True)
    try:
        assert repacked.llama is not local_model.llama
        assert repacked.llama.model_params.use_extra_bufts is True
        for model in (local_model, repacked):
            assert "yes" in model.invoke([HumanMessage("Reply with the single word: yes")]).content.lower()
    finally:  # give its memory back for the tests after this one
        llama = llama_mod._llamas.pop(repacked.in_process_key, None)
        if llama is not None:
            llama.close()


@pytest.mark.integration
def test_a_model_loading_in_the_background_does_not_silence_the_program(local_model, capfd):
    """llama-cpp-python points stdout and stderr at /dev/null while it loads; with the load in a background
    thread (`DocQA.open`) what the program prints meanwhile must still come out, and llama.cpp stays quiet."""
    import threading
    import time

    other = LlamaCppChat(model_path=local_model.model_path, n_ctx=256)  # another context: a fresh load
    loading = threading.Thread(target=lambda: other.llama)
    loading.start()
    printed = 0
    try:
        while loading.is_alive():
            print(f"still here {printed}", flush=True)
            printed += 1
            time.sleep(0.05)
    finally:
        loading.join()
        llama_mod._llamas.pop(other._key, None)
    out, err = capfd.readouterr()
    assert printed > 3 and all(f"still here {i}\n" in out for i in range(printed))
    assert "llama" not in err.lower()


def _silent_server():
    """A TCP server that accepts connections and never answers (a stalled model server)."""
    import socket
    import threading

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])  # read nothing, write nothing
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    return sock, held, stop


def test_openai_server_that_never_answers_is_a_clear_error_after_bounded_retries(tmp_path):
    import time

    from rag.core.errors import LLMUnavailableError
    from rag.serve.api import DocQA

    sock, held, stop = _silent_server()
    try:
        port = sock.getsockname()[1]
        settings = load_settings(environ={}, home=tmp_path, embedding={"provider": "fake", "model_name": "fake"},
                                 llm={"provider": "openai", "base_url": f"http://127.0.0.1:{port}/v1",
                                      "timeout_s": 1.0, "max_retries": 1},
                                 answer={"min_relevance": -1.0, "verify": False})
        qa = DocQA(settings)
        qa.ingest_texts([{"source": "a.txt", "text": "The lighthouse was built in 1874 by Thomas Arkwright."}])
        started = time.monotonic()
        with pytest.raises(LLMUnavailableError, match=r"did not answer within 1\.0 s \(2 tries\).*RAG_LLM__TIMEOUT_S"):
            qa.ask("Who built the lighthouse?")
        elapsed = time.monotonic() - started
        assert elapsed < 15, elapsed  # bounded: two tries of about a second (plus the client's backoff)
        assert len(held) == 2  # the first try and exactly one retry
    finally:
        stop.set()
        sock.close()
        for conn in held:
            conn.close()


class _ToyVocab:
    """A tokenizer over a fixed word list (token i is WORDS[i]), what `_CopyAnswer` reads from a `Llama`."""

    WORDS = ["Answer:", " Merck", " Testing", " Frontera", " Germany", " France", "\n", "<eos>", " I", " don't",
             " know", " and", " Paris"]

    def detokenize(self, tokens):
        return "".join(self.WORDS[t] for t in tokens).encode()

    def token_eos(self):
        return self.WORDS.index("<eos>")


def _best_after(processor, written: list[str], prefer: list[str]) -> str:
    """The token greedy decoding picks after `written` when the model's own order is `prefer` (best first)."""
    import numpy as np

    vocab = _ToyVocab.WORDS
    scores = np.full(len(vocab), -10.0)
    for rank, word in enumerate(prefer):
        scores[vocab.index(word)] = 10.0 - rank
    ids = [0] * processor.n_prompt + [vocab.index(w) for w in written]
    return vocab[int(np.argmax(processor(np.array(ids), scores)))]


def test_copied_answer_keeps_to_the_passages_but_may_decline_and_end():
    source = "Germany-headquartered Merck Testing said the updated scope allows the company to grow."
    decline = "I don't know based on the documents."
    copy = llama_mod._CopyAnswer(_ToyVocab(), n_prompt=3, source=source, label="Answer:", decline=decline,
                                 top=len(_ToyVocab.WORDS))
    # the model's favourite is not in the passages: the next best that is wins
    assert _best_after(copy, ["Answer:"], [" France", " Germany"]) == " Germany"
    assert _best_after(copy, ["Answer:", " Merck"], [" Frontera", " Testing"]) == " Testing"
    # the line may end once something is written, and the decline is always open
    assert _best_after(copy, ["Answer:", " Merck", " Testing"], [" and", "\n"]) == "\n"
    assert _best_after(copy, ["Answer:"], [" I", " Germany"]) == " I"
    assert _best_after(copy, ["Answer:", " I", " don't"], [" know", " Germany"]) == " know"
    # before the label, after the line, and when nothing allowed is among the likeliest, the model is free
    assert _best_after(copy, [], [" Paris"]) == " Paris"
    assert _best_after(copy, ["Answer:", " Germany", "\n"], [" Paris"]) == " Paris"
    narrow = llama_mod._CopyAnswer(_ToyVocab(), n_prompt=3, source=source, label="Answer:", decline=decline, top=1)
    assert _best_after(narrow, ["Answer:"], [" France", " Germany"]) == " France"


def test_only_a_model_that_copies_is_asked_to(tmp_path):
    """`answer.copy_answer` reaches the local model as `copy_from`; other models are never sent the argument."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    from rag.serve.api import DocQA

    seen = []

    class Copying(GenericFakeChatModel):
        copies_answers: bool = True

        def _stream(self, messages, stop=None, run_manager=None, **kwargs):
            seen.append(kwargs.get("copy_from"))
            yield from super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)

    settings = load_settings(environ={}, home=tmp_path, embedding={"provider": "fake", "model_name": "fake"},
                             llm={"provider": "fake"}, answer={"min_relevance": -1.0, "copy_answer": True})
    model = Copying(messages=iter(["Answer: 1874\nDetails: Built in 1874 [1]."] * 2))
    qa = DocQA(settings, chat_model=model)
    qa.ingest_texts([{"source": "a.txt", "text": "The lighthouse was built in 1874 by Thomas Arkwright."}])
    qa.ask("When was the lighthouse built?")
    assert seen and "built in 1874" in seen[-1]
    qa.settings = settings.model_copy(update={"answer": settings.answer.model_copy(update={"copy_answer": False})})
    qa.ask("When was the lighthouse built?")
    assert seen[-1] is None
