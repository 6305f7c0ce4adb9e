"""The local chat model: our own small adapter around `llama_cpp.Llama`, behind LangChain's `BaseChatModel`.

No langchain-community: the GGUF is loaded once per process, lazily, and shared by
every `LlamaCppChat` with the same (path, n_ctx, n_threads, n_batch, repack). Prompts are
formatted with the GGUF's own chat template; the fixed prefixes of the prompts can be
snapshotted (`LlamaCppChat.warm`) and restored in milliseconds. With a `state_dir` the
snapshots are also kept on disk, keyed by the model file, the llama.cpp version and the
prefix's own tokens (so a changed prompt is a new file), and a restarted process restores
them instead of reading the fixed prompt text again.

Example::

    model = LlamaCppChat(model_path=str(ensure_gguf(cache_dir)), max_tokens=16)
    for chunk in model.stream("hi"):
        print(chunk.content, end="")
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
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

from rag.core.errors import ConfigError, LLMUnavailableError, ModelNotInstalledError

if TYPE_CHECKING:
    import llama_cpp

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- #
# Process-wide llama.cpp instances
# --------------------------------------------------------------------------- #

_LlamaKey = tuple[str, int, int, int, bool]
_llamas: dict[_LlamaKey, llama_cpp.Llama] = {}
_run_locks: dict[_LlamaKey, threading.Lock] = {}
_load_lock = threading.Lock()

# A fixed prompt prefix is read (once per model and prompt version) in batches of this many tokens, pausing
# between them while a search runs, so a question's evidence does not wait behind the read.
PREFIX_STEP = 48


def _llama_key(model_path: str | Path, n_ctx: int, n_threads: int | None, n_batch: int,
               repack: bool = False) -> _LlamaKey:
    return (str(Path(model_path).resolve()), n_ctx, n_threads or os.cpu_count() or 1, n_batch, bool(repack))


def _get_llama(key: _LlamaKey) -> llama_cpp.Llama:
    """The shared `Llama` for `key`, loaded on first use."""
    llama = _llamas.get(key)
    if llama is not None:
        return llama
    with _load_lock:
        llama = _llamas.get(key)
        if llama is not None:
            return llama
        path, n_ctx, n_threads, n_batch, repack = key
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelNotInstalledError("llama-cpp-python", "pip install llama-cpp-python") from exc
        if not Path(path).is_file():
            raise ConfigError(f"GGUF model {path} does not exist: run `rag provision` or fix RAG_LLM__MODEL_PATH")
        _keep_other_threads_output()
        try:
            with _weights_repacked(repack):
                llama = _counting_llama_class(Llama)(
                    model_path=path,
                    n_ctx=n_ctx,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    n_batch=n_batch,
                    # repacked weights are copies, so the file's pages would stay resident beside them: read it
                    # then (peak RSS 2.0 GB mapped vs 1.4 GB read); unpacked, the mapped file is the weights
                    use_mmap=not repack,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMUnavailableError(
                f"llama.cpp could not load {path}: {exc}; delete the file and run `rag provision` to rebuild it"
            ) from exc
        _llamas[key] = llama
        _run_locks[key] = threading.Lock()
        return llama


@contextlib.contextmanager
def _weights_repacked(repack: bool):
    """Load with llama.cpp's CPU weight repacking on or off (`use_extra_bufts`, the CLI's `--no-repack`).

    `Llama()` takes no such argument, so its model parameters' defaults are swapped while it loads
    (callers hold `_load_lock`, and nothing else in the process builds a `Llama`).
    """
    import llama_cpp.llama as llama_module

    low_level = llama_module.llama_cpp
    default = low_level.llama_model_default_params
    if repack or not hasattr(default(), "use_extra_bufts"):
        yield
        return

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    low_level.llama_model_default_params = params
    try:
        yield
    finally:
        low_level.llama_model_default_params = default


class _NoRedirect:
    def __init__(self, disable: bool = True):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _keep_other_threads_output() -> None:
    """Stop llama-cpp-python from pointing the process's stdout and stderr at /dev/null while it loads.

    With `verbose=False` it silences the load by redirecting file descriptors 1 and 2, process-wide: with
    the model loading in the background (`DocQA.open`), whatever the program itself prints meanwhile (a
    script's output, `rag ui`'s address) would vanish. llama.cpp's own messages go through its log
    callback, which `verbose=False` already keeps quiet.
    """
    import ctypes

    import llama_cpp
    from llama_cpp import _internals, llama

    for module in (_internals, llama):
        if getattr(module, "suppress_stdout_stderr", None) is not _NoRedirect:
            module.suppress_stdout_stderr = _NoRedirect
    global _log_callback
    if _log_callback is None:  # llama.cpp's messages to our log (debug; errors as errors), never to the terminal

        @llama_cpp.llama_log_callback
        def _log_callback(level, text, user_data):
            message = text.decode("utf-8", "replace").rstrip()
            if message:
                log.log(logging.ERROR if level == 4 else logging.DEBUG, "llama.cpp: %s", message)  # ggml: 4 = error

        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


_log_callback = None  # kept referenced: llama.cpp calls it from C


def _counting_llama_class(base):
    """`Llama` that counts the tokens it evaluates and keeps snapshots of fixed prompt prefixes.

    llama.cpp reuses only the prefix a prompt shares with the previous one, so
    prompts of different kinds (answer, follow-up, verification) would evict each
    other's fixed part (system text, examples). A snapshot of each fixed prefix's
    KV cells (sequence 0 only: megabytes, not the logits buffer that
    `save_state` copies) is restored in a few milliseconds whenever it covers more
    of the next prompt than what the context holds.
    """

    class CountingLlama(base):
        evaluated = 0  # prompt and generated tokens decoded, as llama.cpp was asked to
        restored = 0  # snapshot restores

        def eval(self, tokens):
            self.evaluated += len(tokens)
            return super().eval(tokens)

        def snapshot_prefix(self, tokens: list[int]) -> bytes:
            """Evaluate `tokens` (reusing what the context shares with them), keep a snapshot and return it."""
            from rag.models.chat.queue import searches

            shared = _common_prefix(self.input_ids[: self.n_tokens], tokens)
            self._ctx.kv_cache_seq_rm(-1, shared, -1)
            self.n_tokens = shared
            for start in range(shared, len(tokens), PREFIX_STEP):  # short batches: a search may pass in between
                searches.wait_idle(timeout=5.0)
                self.eval(tokens[start:start + PREFIX_STEP])
            self._requires_eval = True
            data = self._seq_state()
            self._keep_snapshot(tokens, data)
            return data

        def restore_prefix(self, tokens: list[int], data: bytes) -> bool:
            """Put a saved snapshot of `tokens` (e.g. read from disk) in the context and keep it; False if
            llama.cpp refuses it (another model or build), and the context is left empty."""
            if not self._set_seq_state(list(tokens), data):
                return False
            self._keep_snapshot(tokens, data)
            self.restored += 1
            return True

        def _keep_snapshot(self, tokens, data: bytes) -> None:
            snaps = [s for s in getattr(self, "_snapshots", []) if s[0] != list(tokens)]
            self._snapshots = [*snaps, (list(tokens), data)]

        def _seq_state(self) -> bytes:
            import ctypes

            import llama_cpp

            size = llama_cpp.llama_state_seq_get_size(self._ctx.ctx, 0)
            buf = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_seq_get_data(self._ctx.ctx, buf, size, 0)
            return bytes(buf)[:written]

        def _set_seq_state(self, tokens: list[int], data: bytes) -> bool:
            import ctypes

            import llama_cpp

            self._ctx.kv_cache_seq_rm(-1, 0, -1)
            buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
            if not data or llama_cpp.llama_state_seq_set_data(self._ctx.ctx, buf, len(data), 0) != len(data):
                self._ctx.kv_cache_seq_rm(-1, 0, -1)  # failed: start clean, llama.cpp evaluates all
                self.n_tokens = 0
                return False
            self.input_ids[: len(tokens)] = tokens
            self.n_tokens = len(tokens)
            self._requires_eval = True
            return True

        def prepare(self, tokens: list[int]) -> None:
            """Restore the snapshot that covers most of `tokens`, if it beats the context's own prefix."""
            have = _common_prefix(self.input_ids[: self.n_tokens], tokens)
            best, best_len = None, have
            for snap in getattr(self, "_snapshots", []):
                n = _common_prefix(snap[0], tokens)
                if n > best_len:
                    best, best_len = snap, n
            if best is None:
                return
            if self._set_seq_state(*best):
                self.restored += 1

    return CountingLlama


_STATE_MAGIC = b"rag-kv-1\n"


def _pack_tokens(tokens: Sequence[int]) -> bytes:
    import array

    packed = array.array("I", tokens)
    if packed.itemsize != 4:  # pragma: no cover - every platform llama.cpp runs on has 4-byte unsigned ints
        packed = array.array("L", tokens)
    return len(tokens).to_bytes(4, "little") + packed.tobytes()


def _read_state(path: Path, prefix: Sequence[int]) -> bytes | None:
    """The saved state of `prefix` at `path`, or None (missing, truncated, or saved for other tokens)."""
    head = _STATE_MAGIC + _pack_tokens(prefix)
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if not raw.startswith(head) or len(raw) == len(head):
        return None
    return raw[len(head):]


def _write_state(path: Path, prefix: Sequence[int], data: bytes) -> None:
    """Save a prefix's state atomically (a reader sees the whole file or none); a cache, so a failure is logged only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(_STATE_MAGIC + _pack_tokens(prefix) + data)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not save the prompt prefix state to %s (%s); it is read again at the next start", path, exc)


def _common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
    repack: bool = Field(False, description="Let llama.cpp repack the weights for its CPU kernels at load (see "
                                            "`LLMSettings.repack_weights`).")
    temperature: float = 0.0
    max_tokens: int = 320
    stop: list[str] | None = None
    top_p: float = 0.95
    repeat_penalty: float = 1.0
    seed: int | None = Field(None, description="Sampling seed; None leaves llama.cpp's default.")
    state_dir: str | None = Field(None, description="Where the fixed prompt prefixes' llama.cpp state is kept "
                                                    "across processes (`warm`); None: in memory only.")

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
            "repack": self.repack,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    @property
    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    @property
    def _key(self) -> _LlamaKey:
        return _llama_key(self.model_path, self.n_ctx, self.n_threads, self.n_batch, self.repack)

    @property
    def in_process_key(self) -> _LlamaKey:
        """Models with the same key share one llama.cpp context, so they answer one at a time."""
        return self._key

    @property
    def llama(self) -> llama_cpp.Llama:
        """The process-wide `llama_cpp.Llama` (loaded on first access), e.g. to count tokens."""
        return _get_llama(self._key)

    @staticmethod
    def import_runtime() -> None:
        """Import llama-cpp-python (and numpy with it), e.g. before `load` runs in another thread."""
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise ModelNotInstalledError("llama-cpp-python", "pip install llama-cpp-python") from exc

    @property
    def copies_answers(self) -> bool:
        """`stream(messages, copy_from=text, copy_label=..., copy_decline=...)` keeps the reply's line after
        `copy_label` to stretches of `text` or to `copy_decline` (`_CopyAnswer`)."""
        return True

    def load(self) -> None:
        """Load the weights now (the first access to `llama` would), without reading any prompt."""
        _get_llama(self._key)

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

    def prompt_tokens(self, messages: Sequence[BaseMessage]) -> list[int]:
        """The exact tokens llama.cpp evaluates for `messages` (the GGUF's own chat template)."""
        llama = self.llama
        formatter = _formatter(llama)
        result = formatter(messages=to_openai_messages(messages))
        return llama.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)

    def warm(self, prompt_kinds: Sequence[Sequence[Sequence[BaseMessage]]]) -> int:
        """Have the fixed part of each kind of prompt ready to restore; returns the prompt tokens evaluated.

        Each kind is given as two (or more) example message lists that differ only
        in their variable parts; what their tokens share is the fixed prefix. A
        prefix saved in `state_dir` by an earlier process (same model file,
        llama.cpp build and tokens) is read from disk instead of evaluated: 0
        tokens evaluated when every kind was saved.
        """
        llama = self.llama
        before = llama.evaluated
        with _run_locks[self._key]:
            for examples in prompt_kinds:
                token_lists = [self.prompt_tokens(m) for m in examples]
                n = min(_common_prefix(token_lists[0], t) for t in token_lists[1:]) if len(token_lists) > 1 else 0
                if n == 0:
                    continue
                prefix = token_lists[0][:n]
                if any(snap[0] == prefix for snap in getattr(llama, "_snapshots", [])):
                    continue  # warmed already in this process
                path = self.state_path(prefix)
                saved = _read_state(path, prefix) if path is not None else None
                if saved is not None and llama.restore_prefix(prefix, saved):
                    continue
                data = llama.snapshot_prefix(prefix)
                if path is not None:
                    _write_state(path, prefix, data)
        return llama.evaluated - before

    def state_path(self, prefix: Sequence[int]) -> Path | None:
        """The file that keeps `prefix`'s llama.cpp state for this model (None without a `state_dir`).

        The name hashes everything the state depends on: the model file (name, size, modification
        time), the llama.cpp build, the context size, the weight repacking, and the prefix's tokens, so a new prompt
        version or model gets a new file and an old one is never restored into it.
        """
        if not self.state_dir:
            return None
        import llama_cpp

        model = Path(self.model_path)
        try:
            stat = model.stat()
        except OSError:
            return None
        digest = hashlib.sha256()
        # repacked weights compute (very slightly) different numbers, so their states are kept apart
        digest.update(f"{model.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0{llama_cpp.__version__}\0{self.n_ctx}\0"
                      f"repack={self.repack}".encode())
        digest.update(_pack_tokens(prefix))
        return Path(self.state_dir) / f"{model.stem}-{digest.hexdigest()[:32]}.kv"

    def _completion_stream(self, messages, stop, kwargs) -> Iterator[tuple[str, dict]]:
        """(text piece, info) pairs; the last info holds the counts: prompt tokens, evaluated, generated."""
        llama = self.llama
        tokens = self.prompt_tokens(messages)
        params = self._params(stop, kwargs)
        params["stop"] = [*(params["stop"] or []), *_CHAT_STOPS]
        with _run_locks[self._key]:
            llama.prepare(tokens)
            started = time.perf_counter()
            evaluated_before = llama.evaluated
            info: dict[str, Any] = {"prompt_tokens": len(tokens)}
            finish_reason = None
            sureness = _Sureness(len(tokens))
            from llama_cpp import LogitsProcessorList

            processors = [sureness, *(params.get("logits_processor") or [])]
            if kwargs.get("copy_from"):
                processors.append(_CopyAnswer(llama, len(tokens), kwargs["copy_from"], kwargs["copy_label"],
                                              kwargs["copy_decline"]))
            params["logits_processor"] = LogitsProcessorList(processors)
            for part in llama.create_completion(tokens, stream=True, **params):
                choice = part["choices"][0]
                finish_reason = choice.get("finish_reason") or finish_reason
                text = choice.get("text") or ""
                if "time_to_first_token_s" not in info:
                    # the first sample needs the whole prompt evaluated, and nothing more yet
                    info["time_to_first_token_s"] = time.perf_counter() - started
                    info["prompt_evaluated"] = llama.evaluated - evaluated_before
                if text:
                    yield text, info
            info["finish_reason"] = finish_reason
            info["token_probs"] = [(llama.detokenize([t]).decode("utf-8", "replace"), round(p, 4))
                                   for t, p in sureness.chosen]
            info["completion_tokens"] = max(llama.n_tokens - len(tokens) + 1, 0)  # the last sampled token is not evaluated
            info["generation_s"] = time.perf_counter() - started
        yield "", info

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        pieces, info = [], {}
        for text, info in self._completion_stream(messages, stop, kwargs):
            pieces.append(text)
        message = AIMessage(
            content="".join(pieces).strip(),
            usage_metadata=_usage(info.get("prompt_tokens"), info.get("completion_tokens")),
            response_metadata=self._metadata(info),
        )
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=dict(info))],
                          llm_output={"model_name": Path(self.model_path).name})

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        info: dict[str, Any] = {}
        for text, info in self._completion_stream(messages, stop, kwargs):
            if not text:
                continue
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
            if run_manager:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=_usage(info.get("prompt_tokens"), info.get("completion_tokens")),
                response_metadata=self._metadata(info),
                chunk_position="last",
            ),
            generation_info=dict(info),
        )

    def _metadata(self, info: dict[str, Any]) -> dict[str, Any]:
        keep = ("finish_reason", "prompt_tokens", "prompt_evaluated", "completion_tokens", "time_to_first_token_s",
                "token_probs")
        return {"model_name": Path(self.model_path).name, **{k: info[k] for k in keep if k in info}}

    def yes_probability(self, messages: list[BaseMessage]) -> float:
        """P("Yes") / (P("Yes") + P("No")) for the model's first reply token to `messages` (rag.answer.checks.verify).

        Case and a leading space are folded ("Yes", "yes", " Yes"); see `_next_token_weights`.
        """
        llama = self.llama
        weights = self._next_token_weights(self.prompt_tokens(messages))
        mass = {w: float(weights[sorted(_first_tokens(llama, w))].sum()) for w in ("yes", "no")}
        total = mass["yes"] + mass["no"]
        return mass["yes"] / total if total > 0 else 0.0

    def continuation_probabilities(self, messages: list[BaseMessage], reply_prefix: str, word: str) -> tuple[float, float]:
        """How the reply to `messages`, having begun with `reply_prefix`, goes on: (P(`word`), P(the likeliest token)).

        P(`word`) is the softmax mass of `word`'s first tokens (case and a leading space folded) at the
        position after `reply_prefix`. Right after an answer was generated llama.cpp's context still holds
        the prompt and the reply's first tokens, so this evaluates one token: milliseconds (rag.answer.flow: how
        likely the model was to decline, `Answer.decline_p`, and how sure it was of its first answer token).
        """
        llama = self.llama
        prefix = llama.tokenize(reply_prefix.encode("utf-8"), add_bos=False, special=False)
        weights = self._next_token_weights(self.prompt_tokens(messages) + prefix)
        total = weights.sum()
        return float(weights[sorted(_first_tokens(llama, word))].sum() / total), float(weights.max() / total)

    def _next_token_weights(self, tokens: list[int]):
        """exp(logit - max logit) of every token that may follow `tokens`: softmax weights, not yet normalised.

        One prompt evaluation and no sampling loop: a one-token completion (which reuses llama.cpp's
        cached prefix, or a warmed snapshot of it), then the last position's logits, read from the context
        (the `Llama` needs no `logits_all`).
        """
        import numpy as np

        llama = self.llama
        with _run_locks[self._key]:
            llama.prepare(tokens)
            llama.create_completion(tokens, max_tokens=1, temperature=0.0)
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),)).astype(np.float64)
        return np.exp(logits - logits.max())


class _Sureness:
    """A logits processor that records how likely each generated token was: (token, probability) in `chosen`.

    llama.cpp calls it with the tokens so far and the next token's logits; the token chosen from the previous
    call's distribution is the last of the tokens it is given next, so its probability is read then (the final
    token, an end of turn or a stop, is not recorded). Costs one softmax over the vocabulary per token.
    """

    def __init__(self, n_prompt: int) -> None:
        self.n_prompt = n_prompt
        self.chosen: list[tuple[int, float]] = []
        self._last = None

    def __call__(self, input_ids, scores):
        import numpy as np

        if self._last is not None and len(input_ids) > self.n_prompt:
            token = int(input_ids[-1])
            self.chosen.append((token, float(self._last[token])))
        weights = np.exp(scores - scores.max())
        self._last = weights / weights.sum()
        return scores


class _CopyAnswer:
    """A logits processor that keeps a reply's short-answer line a stretch of `source` (or the decline).

    While the model writes the line that starts with `label`, of its `top` likeliest next tokens only those
    pass that keep what it has written a substring of `source` (both compared by `plain_text`, case aside),
    that start `decline`, or that end the line once something is written; the rest are masked. When none of
    the `top` passes the model is left free (it may be spelling a number the passages write as a word).
    Before the label nothing is constrained, and once the line is over nothing is read again.
    """

    def __init__(self, llama, n_prompt: int, source: str, label: str, decline: str, top: int = 40) -> None:
        from rag.text.normalize import plain_text

        self.llama, self.n_prompt, self.top, self.label = llama, n_prompt, top, label
        self.plain = lambda text: plain_text(text).lower()
        self.source, self.decline = self.plain(source), self.plain(decline)
        self.eos = llama.token_eos()
        self.done = False

    def __call__(self, input_ids, scores):
        import numpy as np

        if self.done:
            return scores
        written = self.llama.detokenize([int(t) for t in input_ids[self.n_prompt:]]).decode("utf-8", "ignore")
        head, label, answer = written.partition(self.label)
        if not label:
            return scores
        if "\n" in answer or head.strip():
            self.done = True
            return scores
        so_far = answer.lstrip()
        candidates = np.argpartition(scores, -self.top)[-self.top:]
        allowed = []
        for token in candidates:
            token = int(token)
            if token == self.eos:
                ok = bool(so_far.strip())
            else:
                piece = self.llama.detokenize([token]).decode("utf-8", "ignore")
                if "\n" in piece:
                    ok = bool(so_far.strip())
                else:
                    said = self.plain(so_far + piece)
                    ok = not said or said in self.source or self.decline.startswith(said)
            if ok:
                allowed.append(token)
        if not allowed:
            return scores
        kept = np.full_like(scores, -np.inf)
        kept[allowed] = scores[allowed]
        return kept


# Qwen-style chat templates end a turn with <|im_end|>; llama.cpp stops at the model's EOS token by itself.
_CHAT_STOPS = ("<|im_end|>", "<|endoftext|>")


def _formatter(llama):
    """The GGUF's chat template as a formatter (cached on the instance)."""
    formatter = getattr(llama, "_rag_formatter", None)
    if formatter is None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise LLMUnavailableError("the GGUF has no chat template: use a chat (instruct) model")
        eos = llama._model.token_get_text(llama.token_eos())
        bos = llama._model.token_get_text(llama.token_bos()) if llama.token_bos() >= 0 else ""
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        llama._rag_formatter = formatter
    return formatter


def _first_tokens(llama, word: str) -> set[int]:
    """The first token of each spelling of `word` a reply may start with."""
    spellings = {word, word.capitalize(), word.upper(), f" {word}", f" {word.capitalize()}"}
    return {toks[0] for s in spellings if (toks := llama.tokenize(s.encode("utf-8"), add_bos=False, special=False))}


_PASS_THROUGH = frozenset({"temperature", "max_tokens", "top_p", "top_k", "repeat_penalty", "seed", "grammar", "min_p"})


def _usage(prompt: int | None, completion: int | None) -> dict[str, int] | None:
    if prompt is None or completion is None:
        return None
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}
