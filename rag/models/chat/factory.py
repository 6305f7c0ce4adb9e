"""The chat model the settings describe, behind LangChain's `BaseChatModel`: local llama.cpp, OpenAI-compatible, fake.

`make_chat_model(settings)` is the only constructor the rest of the package uses.

Example::

    model = make_chat_model(load_settings(llm={"provider": "fake"}))
    for chunk in model.stream("hi"):
        print(chunk.content, end="")
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.language_models import BaseChatModel

from rag.core.errors import ConfigError, ModelNotInstalledError
from rag.models.chat.llama_cpp import LlamaCppChat

if TYPE_CHECKING:
    from rag.core.config import Settings

DEFAULT_FAKE_RESPONSE = "I don't know based on the documents."
PROMPT_STATE_DIR = "llama-state"  # under the cache: the fixed prompt prefixes, read once per model and prompt version


def cache_without_prompt_state(shared: Path, cache: Path) -> Path:
    """A new cache at `cache` that uses `shared`'s provisioned models (folders linked, files copied) but has no
    saved prompt state (`PROMPT_STATE_DIR`): a process on it reads its fixed prompt text at start (cold starts
    in bench/conversation.py and the browser tests)."""
    import shutil

    cache.mkdir(parents=True)
    for entry in Path(shared).iterdir():
        if entry.name == PROMPT_STATE_DIR:
            continue
        if entry.is_dir():
            (cache / entry.name).symlink_to(entry, target_is_directory=True)
        else:
            shutil.copy2(entry, cache / entry.name)
    return cache


def make_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model `settings.llm` describes.

    Raises:
        ModelNotInstalledError: the backend package (llama-cpp-python, langchain-openai) is missing.
        ConfigError: the settings are incomplete (no API key, a missing GGUF).
    """
    llm = settings.llm
    match llm.provider:
        case "local":
            if importlib.util.find_spec("llama_cpp") is None:
                raise ModelNotInstalledError("llama-cpp-python", "pip install llama-cpp-python")
            from rag.models.chat.gguf import llm_model_path

            return LlamaCppChat(
                model_path=str(llm_model_path(settings)),
                n_ctx=llm.n_ctx,
                n_threads=llm.n_threads,
                n_batch=llm.n_batch,
                repack=llm.repack_weights,
                temperature=llm.temperature,
                max_tokens=llm.max_tokens,
                state_dir=str(settings.cache_dir / PROMPT_STATE_DIR),
            )
        case "openai":
            try:
                from langchain_openai import ChatOpenAI
            except ImportError as exc:
                raise ModelNotInstalledError("langchain-openai", "pip install 'rag[openai]'") from exc
            if llm.api_key is not None and llm.api_key.get_secret_value():
                api_key = llm.api_key.get_secret_value()
            elif llm.base_url:
                api_key = "not-needed"  # local servers (Ollama, vLLM, llama-server) ignore it
            else:
                raise ConfigError(
                    "the openai provider needs an API key or a server: set OPENAI_API_KEY, "
                    "or RAG_LLM__BASE_URL for an OpenAI-compatible server (e.g. http://localhost:11434/v1)"
                )
            return _bounded_chat_model(ChatOpenAI)(
                base_url=llm.base_url,
                model=llm.model,
                api_key=api_key,
                temperature=llm.temperature,
                max_tokens=llm.max_tokens,
                streaming=True,
                timeout=llm.timeout_s,  # per request, and between streamed chunks: a stalled server is an error
                max_retries=llm.max_retries,
            )
        case "fake":
            from langchain_core.language_models.fake_chat_models import (
                GenericFakeChatModel,
            )

            responses = list(llm.fake_responses) or [DEFAULT_FAKE_RESPONSE]
            return _fake_chat_model(GenericFakeChatModel)(messages=itertools.cycle(responses))
        case other:
            raise ConfigError(f"unknown llm.provider {other!r}: use local, openai or fake")


def _bounded_chat_model(base):
    """`ChatOpenAI` whose timeouts and connection failures (after its bounded retries) raise
    `LLMUnavailableError` saying what to do, instead of the client library's own exception."""
    from contextlib import contextmanager

    import openai

    from rag.core.errors import LLMUnavailableError

    class BoundedChatOpenAI(base):
        @contextmanager
        def _unavailable(self):
            where = self.openai_api_base or "https://api.openai.com/v1"
            tries = f"{1 + self.max_retries} tries" if self.max_retries else "1 try"
            try:
                yield
            except openai.APITimeoutError as exc:
                raise LLMUnavailableError(
                    f"the language model server at {where} did not answer within {self.request_timeout} s "
                    f"({tries}): check that it is running and not overloaded, or raise RAG_LLM__TIMEOUT_S") from exc
            except openai.APIConnectionError as exc:
                raise LLMUnavailableError(
                    f"cannot reach the language model server at {where} ({tries}): start it, or fix "
                    "RAG_LLM__BASE_URL") from exc

        def _generate(self, *args, **kwargs):
            with self._unavailable():
                return super()._generate(*args, **kwargs)

        def _stream(self, *args, **kwargs):
            with self._unavailable():
                yield from super()._stream(*args, **kwargs)

    BoundedChatOpenAI.__name__ = base.__name__  # shown in describe_llm and logs as what it is
    return BoundedChatOpenAI


def _fake_chat_model(base):
    """The fake provider's model: canned replies, and a verifier that always says yes (rag.answer.checks.verify), so a
    verification step does not use up the canned replies meant for the questions."""

    class FakeChatModel(base):
        def yes_probability(self, messages) -> float:
            return 1.0

    return FakeChatModel


def describe_llm(settings: Settings) -> str:
    """One line naming the configured model, e.g. for `rag chat` and the UI header (no I/O)."""
    llm = settings.llm
    match llm.provider:
        case "local":
            from rag.models.chat.gguf import QWEN_GGUF_NAME

            name = Path(llm.model_path).name if llm.model_path else QWEN_GGUF_NAME
            threads = llm.n_threads or os.cpu_count() or 1
            return f"local: {name} (llama.cpp, {threads} thread{'s' if threads != 1 else ''})"
        case "openai":
            return f"openai: {llm.model} @ {llm.base_url or 'https://api.openai.com/v1'}"
        case "fake":
            n = len(llm.fake_responses) or 1
            return f"fake: {n} canned response{'s' if n != 1 else ''}"
        case other:
            return f"{other}: unknown provider"
