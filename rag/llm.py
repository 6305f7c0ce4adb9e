"""Chat models behind LangChain's `BaseChatModel`: local llama.cpp, OpenAI-compatible, fake.

`make_chat_model(settings)` is the only constructor the rest of the package uses.
The local model is our own small adapter around `llama_cpp.Llama` (no
langchain-community): the GGUF is loaded once per process, lazily, and shared by
every `LlamaCppChat` with the same (path, n_ctx, n_threads, n_batch).

Example::

    model = make_chat_model(load_settings(llm={"provider": "fake"}))
    for chunk in model.stream("hi"):
        print(chunk.content, end="")
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from rag.errors import ConfigError, LLMUnavailableError, ModelNotInstalledError

if TYPE_CHECKING:
    import llama_cpp

    from rag.config import Settings

DEFAULT_FAKE_RESPONSE = "I don't know based on the documents."

# --------------------------------------------------------------------------- #
# Process-wide llama.cpp instances
# --------------------------------------------------------------------------- #

_LlamaKey = tuple[str, int, int, int]
_llamas: dict[_LlamaKey, llama_cpp.Llama] = {}
_run_locks: dict[_LlamaKey, threading.Lock] = {}
_load_lock = threading.Lock()

# llama.cpp repacks most Q4_K weights into CPU-friendly copies at load time, so
# with mmap both the file pages and the copies stay resident: measured peak RSS
# 1.96 GB with mmap vs 1.36 GB without, same speed, faster load. Read it instead.
USE_MMAP = False


def _llama_key(model_path: str | Path, n_ctx: int, n_threads: int | None, n_batch: int) -> _LlamaKey:
    return (str(Path(model_path).resolve()), n_ctx, n_threads or os.cpu_count() or 1, n_batch)


def _get_llama(key: _LlamaKey) -> llama_cpp.Llama:
    """The shared `Llama` for `key`, loaded on first use."""
    llama = _llamas.get(key)
    if llama is not None:
        return llama
    with _load_lock:
        llama = _llamas.get(key)
        if llama is not None:
            return llama
        path, n_ctx, n_threads, n_batch = key
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelNotInstalledError("llama-cpp-python", "pip install llama-cpp-python") from exc
        if not Path(path).is_file():
            raise ConfigError(f"GGUF model {path} does not exist: run `rag provision` or fix RAG_LLM__MODEL_PATH")
        try:
            llama = Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_batch=n_batch,
                use_mmap=USE_MMAP,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMUnavailableError(
                f"llama.cpp could not load {path}: {exc}; delete the file and run `rag provision` to rebuild it"
            ) from exc
        _llamas[key] = llama
        _run_locks[key] = threading.Lock()
        return llama


def unload_models() -> None:
    """Drop every cached `Llama` (frees its memory once no model refers to it)."""
    with _load_lock:
        _llamas.clear()
        _run_locks.clear()


# --------------------------------------------------------------------------- #
# Message conversion
# --------------------------------------------------------------------------- #


def _text(content: str | list[Any]) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as OpenAI-style `{"role", "content"}` dicts."""
    out = []
    for message in messages:
        if isinstance(message, SystemMessage):
            role = "system"
        elif isinstance(message, HumanMessage):
            role = "user"
        elif isinstance(message, AIMessage):
            role = "assistant"
        elif isinstance(message, ToolMessage):
            role = "tool"
        elif isinstance(message, ChatMessage):
            role = message.role
        else:
            raise ValueError(f"unsupported message type {type(message).__name__}")
        out.append({"role": role, "content": _text(message.content)})
    return out


# --------------------------------------------------------------------------- #
# LlamaCppChat
# --------------------------------------------------------------------------- #


class LlamaCppChat(BaseChatModel):
    """A chat model running a GGUF file in-process with llama.cpp.

    The `Llama` instance is shared per process (see `llama`), and generations on
    one instance are serialised by a lock: llama.cpp contexts are not re-entrant.
    """

    model_path: str
    n_ctx: int = 4096
    n_threads: int | None = None
    n_batch: int = 512
    temperature: float = 0.0
    max_tokens: int = 320
    stop: list[str] | None = None
    top_p: float = 0.95
    repeat_penalty: float = 1.0
    seed: int | None = Field(None, description="Sampling seed; None leaves llama.cpp's default.")

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "n_ctx": self.n_ctx,
            "n_threads": self.threads,
            "n_batch": self.n_batch,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    @property
    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    @property
    def _key(self) -> _LlamaKey:
        return _llama_key(self.model_path, self.n_ctx, self.n_threads, self.n_batch)

    @property
    def llama(self) -> llama_cpp.Llama:
        """The process-wide `llama_cpp.Llama` (loaded on first access), e.g. to count tokens."""
        return _get_llama(self._key)

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` under the model's own tokenizer."""
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        stops = [*(self.stop or []), *(stop or [])]
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "repeat_penalty": self.repeat_penalty,
            "stop": stops or None,
        }
        if self.seed is not None:
            params["seed"] = self.seed
        params.update({k: v for k, v in kwargs.items() if k in _PASS_THROUGH})
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        llama = self.llama
        with _run_locks[self._key]:
            response = llama.create_chat_completion(
                messages=to_openai_messages(messages), stream=False, **self._params(stop, kwargs)
            )
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        message = AIMessage(
            content=choice["message"].get("content") or "",
            usage_metadata=_usage(usage.get("prompt_tokens"), usage.get("completion_tokens")),
            response_metadata={"finish_reason": choice.get("finish_reason"), "model_name": Path(self.model_path).name},
        )
        return ChatResult(
            generations=[
                ChatGeneration(message=message, generation_info={"finish_reason": choice.get("finish_reason")})
            ],
            llm_output={"token_usage": usage, "model_name": Path(self.model_path).name},
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        llama = self.llama
        oai_messages = to_openai_messages(messages)
        with _run_locks[self._key]:
            started = time.perf_counter()
            first_token_s: float | None = None
            n_chunks = 0
            finish_reason = None
            for part in llama.create_chat_completion(messages=oai_messages, stream=True, **self._params(stop, kwargs)):
                choice = part["choices"][0]
                finish_reason = choice.get("finish_reason") or finish_reason
                token = (choice.get("delta") or {}).get("content")
                if not token:
                    continue
                if first_token_s is None:
                    first_token_s = time.perf_counter() - started
                n_chunks += 1
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
                if run_manager:
                    run_manager.on_llm_new_token(token, chunk=chunk)
                yield chunk
            # llama.cpp reports no usage when streaming; its context now holds
            # prompt + completion (the last sampled token is not evaluated).
            total = llama.n_tokens
            completion = n_chunks if finish_reason == "stop" else max(n_chunks, 1)
            prompt = max(total - completion + (1 if finish_reason == "length" else 0), 0)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=_usage(prompt, completion),
                response_metadata={"finish_reason": finish_reason, "model_name": Path(self.model_path).name},
                chunk_position="last",
            ),
            generation_info={
                "finish_reason": finish_reason,
                "time_to_first_token_s": first_token_s,
                "generation_s": time.perf_counter() - started,
            },
        )

    def yes_probability(self, messages: list[BaseMessage]) -> float:
        """P("Yes") / (P("Yes") + P("No")) for the model's first reply token to `messages` (rag.verify).

        One prompt evaluation and no sampling loop: a one-token completion (which reuses llama.cpp's
        cached prompt prefix), then the last position's logits, read from the context (the `Llama`
        needs no `logits_all`). Case and a leading space are folded ("Yes", "yes", " Yes").
        """
        import numpy as np

        llama = self.llama
        with _run_locks[self._key]:
            llama.create_chat_completion(messages=to_openai_messages(messages), max_tokens=1, temperature=0.0)
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)
        ids = {word: _first_tokens(llama, word) for word in ("yes", "no")}
        top = logits.max()
        mass = {w: float(np.exp(logits[sorted(t)] - top).sum()) for w, t in ids.items()}
        total = mass["yes"] + mass["no"]
        return mass["yes"] / total if total > 0 else 0.0


def _first_tokens(llama, word: str) -> set[int]:
    """The first token of each spelling of `word` a reply may start with."""
    spellings = {word, word.capitalize(), word.upper(), f" {word}", f" {word.capitalize()}"}
    return {toks[0] for s in spellings if (toks := llama.tokenize(s.encode("utf-8"), add_bos=False, special=False))}


_PASS_THROUGH = frozenset({"temperature", "max_tokens", "top_p", "top_k", "repeat_penalty", "seed", "grammar", "min_p"})


def _usage(prompt: int | None, completion: int | None) -> dict[str, int] | None:
    if prompt is None or completion is None:
        return None
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}


# --------------------------------------------------------------------------- #
# Factory
# --------------------------------------------------------------------------- #


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
            from rag import provision

            return LlamaCppChat(
                model_path=str(provision.llm_model_path(settings)),
                n_ctx=llm.n_ctx,
                n_threads=llm.n_threads,
                n_batch=llm.n_batch,
                temperature=llm.temperature,
                max_tokens=llm.max_tokens,
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
            return ChatOpenAI(
                base_url=llm.base_url,
                model=llm.model,
                api_key=api_key,
                temperature=llm.temperature,
                max_tokens=llm.max_tokens,
                streaming=True,
            )
        case "fake":
            from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

            responses = list(llm.fake_responses) or [DEFAULT_FAKE_RESPONSE]
            return _fake_chat_model(GenericFakeChatModel)(messages=itertools.cycle(responses))
        case other:
            raise ConfigError(f"unknown llm.provider {other!r}: use local, openai or fake")


def _fake_chat_model(base):
    """The fake provider's model: canned replies, and a verifier that always says yes (rag.verify), so a
    verification step does not use up the canned replies meant for the questions."""

    class FakeChatModel(base):
        def yes_probability(self, messages) -> float:
            return 1.0

    return FakeChatModel


def describe_llm(settings: Settings) -> str:
    """One line naming the configured model, e.g. for `rag info` and the UI footer (no I/O)."""
    llm = settings.llm
    match llm.provider:
        case "local":
            from rag.provision import QWEN_GGUF_NAME

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
