"""The HTTP API: OpenAI-compatible chat completions with citations, search, and documents.

`rag serve` runs it alone; `rag ui` serves it beside the browser UI. Every route
parses the request, calls one `DocQA` method in a worker thread (answers and
ingest block; the local model runs one answer at a time behind its own lock), and
shapes the result as the OpenAI protocol does where there is one:

- `POST /v1/chat/completions`: `model` names the collection, `messages` the
  conversation (earlier user/assistant turns make it a follow-up). The answer
  text keeps its `[n]` markers; `citations`, `abstained` and `timings` come once,
  on the message (or, streaming, on the final chunk). Streaming, a question that
  waits for the local model gets chunks with `waiting: {"ahead": n}`.
- `GET /v1/models`: the collections.
- `POST /v1/search`: retrieval only.
- `GET|POST /v1/documents`, `DELETE /v1/documents/{source}`: list, upload (the UI's limits;
  a body over `api.max_request_mb` gets 413), delete (the stored upload too).

Example::

    import uvicorn
    from rag.serve.api import DocQA
    from rag.serve.http import create_app
    uvicorn.run(create_app(DocQA.open()), host="127.0.0.1", port=8800)
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from rag.core.config import APISettings, Settings
from rag.core.errors import (
    ConfigError,
    IngestLockedError,
    LLMUnavailableError,
    ModelNotInstalledError,
    NoDocumentsError,
    RagError,
    StoreUnavailableError,
    UnknownSourceError,
)
from rag.core.types import Answer, Citation, Waiting
from rag.serve.api import DocQA
from rag.serve.collections import Collections

log = logging.getLogger(__name__)

FIRST_EVENT_WAIT_S = 1.0  # how long a stream waits for its first event before the response starts
CITATION_FIELDS = ("n", "chunk_id", "source", "title", "page", "section", "quote", "url", "support", "supported")


# --- errors, shaped as OpenAI's -------------------------------------------------------------------
class APIError(Exception):
    """An error response: `{"error": {"message", "type", "param", "code"}}` with an HTTP status."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_rag_error(exc: RagError) -> APIError:
    """Our library errors as API errors: the message already says what to do."""
    match exc:
        case UnknownSourceError():
            return APIError(404, str(exc), param="sources", code="unknown_source")
        case NoDocumentsError():
            return APIError(409, str(exc), code="no_documents")
        case IngestLockedError():
            return APIError(409, str(exc), code="ingest_locked")
        case LLMUnavailableError() | StoreUnavailableError() | ModelNotInstalledError():
            return APIError(503, str(exc), type="server_error", code="unavailable")
        case _:
            return APIError(400, str(exc))


def _validation_error(exc: RequestValidationError) -> APIError:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ())]
    loc = loc[1:] if loc[:1] in (["body"], ["query"], ["path"], ["header"]) else loc
    param = ".".join(loc) or None
    if first.get("type") == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first.get("type") == "json_invalid":
        message = "The request body is not valid JSON."
    else:
        message = f"Invalid value for '{param}': {first.get('msg', 'invalid')}." if param else \
            f"Invalid request: {first.get('msg', 'invalid')}."
    return APIError(400, message, param=param)


# --- auth -------------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = host.strip("[]")
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_options(cert: Path | str | None, key: Path | str | None, *, names: tuple[str, str]) -> dict[str, str]:
    """uvicorn's `ssl_certfile` / `ssl_keyfile` from a certificate and key setting ({} when neither is set).

    Raises:
        ConfigError: only one of the two is set, or one is not a readable file (`names`: their env variables).
    """
    if bool(cert) != bool(key):
        raise ConfigError(f"TLS needs both {names[0]} and {names[1]} (PEM files), or neither")
    if not cert:
        return {}
    out = {}
    for var, field, path in ((names[0], "ssl_certfile", cert), (names[1], "ssl_keyfile", key)):
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise ConfigError(f"{var}={path} is not a readable file: give the PEM file's path")
        out[field] = str(resolved)
    return out


API_TLS = ("RAG_API__SSL_CERTFILE", "RAG_API__SSL_KEYFILE")


def check_bind(host: str, api: APISettings, what: str = "the API", *, tls: bool | None = None) -> None:
    """Binding anything but loopback needs tokens, and TLS for them (or `allow_plain_http`, with a warning).

    Args:
        tls: whether the server is served over TLS; default: whether `api` names a certificate.

    Raises:
        ConfigError: `host` is reachable from other machines and `RAG_API__TOKENS` is empty, or tokens
            would cross the network in clear.
    """
    if is_loopback(host):
        return
    if not api.token_values():
        raise ConfigError(
            f"serving {what} on {host} makes it reachable from other machines, so it needs a token: "
            "set RAG_API__TOKENS=<a long random string> (comma-separate several), or bind 127.0.0.1")
    tls = bool(tls_options(api.ssl_certfile, api.ssl_keyfile, names=API_TLS)) if tls is None else tls
    if tls:
        return
    if not api.allow_plain_http:
        raise ConfigError(
            f"serving {what} on {host} without TLS sends its bearer tokens and your documents in clear: set "
            "RAG_API__SSL_CERTFILE and RAG_API__SSL_KEYFILE (PEM files), or bind 127.0.0.1; behind a TLS proxy "
            "on a trusted network, RAG_API__ALLOW_PLAIN_HTTP=true serves plain http anyway")
    log.warning("serving %s on %s over plain http (RAG_API__ALLOW_PLAIN_HTTP): bearer tokens and documents "
                "cross the network unencrypted", what, host)


def token_checker(tokens: list[str] | dict[str, str]):
    """A check of one request's headers, returning the caller's role (`reader` or `editor`): bearer token
    when tokens are set, else same-machine origin only (role editor).

    Without tokens the server is bound to loopback; a web page the user visits could still reach it
    (a cross-site form post, or DNS rebinding), so requests naming another host or origin are refused.
    """
    roles = tokens if isinstance(tokens, dict) else {t: "editor" for t in tokens}
    expected = [(t.encode(), role) for t, role in roles.items()]

    def check(headers) -> str:
        if expected:
            scheme, _, given = (headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not given.strip():
                raise APIError(401, "Missing bearer token: send `Authorization: Bearer <token>` "
                                    "(one of RAG_API__TOKENS).", code="invalid_api_key",
                               headers={"WWW-Authenticate": "Bearer"})
            matched = [role for t, role in expected if hmac.compare_digest(given.strip().encode(), t)]
            if not matched:
                raise APIError(401, "Incorrect bearer token: use one of the tokens in RAG_API__TOKENS.",
                               code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
            return matched[0]
        host = urlsplit("//" + (headers.get("host") or "")).hostname or ""
        origin = headers.get("origin")
        origin_host = urlsplit(origin).hostname or "" if origin and origin != "null" else None
        if (host and not is_loopback(host)) or (origin_host is not None and not is_loopback(origin_host)):
            raise APIError(403, "Requests from other hosts or web origins need a token: set RAG_API__TOKENS "
                                "and send `Authorization: Bearer <token>`.", code="forbidden_origin")
        return "editor"

    return check


# --- collections ------------------------------------------------------------------------------------
class _Collections(Collections):
    """The server's collections; naming one that does not exist is a 404 unless it is to be created."""

    def get(self, name: str | None, *, must_exist: bool = True, param: str = "model") -> DocQA:
        name = (name or "").strip() or self.default
        if must_exist and name != self.default and name not in self.names():
            raise APIError(404, f"The model (collection) {name!r} does not exist: GET /v1/models lists them, "
                                f"or upload documents with ?collection={name} to create it.",
                           param=param, code="model_not_found")
        return super().get(name)


# --- request bodies -----------------------------------------------------------------------------------
class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") in ("text", "input_text"))
        return self.content or ""


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat-completions request we use; others (temperature, …) are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, description="The collection to answer from (GET /v1/models).")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    # extensions (the openai client sends them with extra_body=...)
    k: int | None = Field(None, ge=1, le=100, description="Passages to retrieve.")
    sources: list[str] | None = Field(None, description="Only use these documents.")
    draft: bool = Field(True, description="Streaming: send the model's draft as `reasoning_content` as it is written.")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    query: str = Field(min_length=1)
    k: int | None = Field(None, ge=1, le=100)
    sources: list[str] | None = None
    mode: Literal["hybrid", "dense", "bm25"] | None = None
    collection: str | None = None


def conversation(messages: list[ChatMessage]) -> tuple[str, list[tuple[str, str]]]:
    """(question, earlier (user, assistant) pairs) from OpenAI messages; system messages are ignored."""
    turns = [(m.role, m.text()) for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
        raise APIError(400, "The last message must be the question: a non-empty message with role 'user'.",
                       param="messages")
    pairs: list[tuple[str, str]] = []
    user: str | None = None
    for role, text in turns[:-1]:
        if role == "user":
            user = text
        elif user is not None:
            pairs.append((user, text))
            user = None
    return turns[-1][1].strip(), pairs


def citation_dict(c: Citation) -> dict[str, Any]:
    return {f: getattr(c, f) for f in CITATION_FIELDS}


def answer_fields(answer: Answer) -> dict[str, Any]:
    """What the API adds to OpenAI's message: citations, abstention, the calibrated confidence and timings."""
    return {"citations": [citation_dict(c) for c in answer.citations], "abstained": answer.abstained,
            "abstain_reason": answer.abstain_reason, "confidence": answer.confidence, "timings": answer.timings}


def _usage(answer: Answer | None) -> dict[str, int]:
    completion = int((answer.timings or {}).get("tokens", 0)) if answer else 0
    return {"prompt_tokens": 0, "completion_tokens": completion, "total_tokens": completion}


# --- answers in a worker thread -----------------------------------------------------------------------
_END = object()


class ThreadedStream:
    """`DocQA.stream` run in one worker thread, its events read from the event loop.

    `close()` (the client went away) makes the thread stop the generator at its next event.
    """

    def __init__(self, events: Iterable):
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._stop = threading.Event()
        self._events = events
        self._loop.run_in_executor(None, self._produce)

    def _put(self, item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening
            self._stop.set()

    def _produce(self) -> None:
        iterator = iter(self._events)
        try:
            for event in iterator:
                if self._stop.is_set():
                    break
                self._put((event, None))
        except BaseException as exc:  # noqa: BLE001 -- handed to the reader, which raises it
            self._put((None, exc))
            return
        finally:
            close = getattr(iterator, "close", None)
            if close:
                close()
        self._put((_END, None))

    async def next(self):
        event, exc = await self._queue.get()
        if exc is not None:
            raise exc
        return event

    def close(self) -> None:
        self._stop.set()


# --- the app ------------------------------------------------------------------------------------------
def create_app(qa: DocQA, *, tokens: list[str] | None = None) -> FastAPI:
    """The API as a FastAPI app around `qa` (its collection is the default one).

    Args:
        qa: the DocQA whose settings and models every collection shares.
        tokens: accepted bearer tokens; default `qa.settings.api.tokens` (empty: no token needed).
    """
    app = FastAPI(title="rag API", version="1", docs_url="/v1/docs", openapi_url="/v1/openapi.json", redoc_url=None)
    app.include_router(api_router(qa, tokens=tokens))
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=int(qa.settings.api.max_request_mb * 2**20))
    return app


def install_error_handlers(app: FastAPI) -> None:
    """OpenAI-style error bodies for our errors, validation errors and anything unexpected."""
    app.add_exception_handler(APIError, lambda request, exc: exc.response())
    app.add_exception_handler(RequestValidationError, lambda request, exc: _validation_error(exc).response())
    app.add_exception_handler(RagError, lambda request, exc: from_rag_error(exc).response())

    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return APIError(500, f"unexpected error: {exc}", type="server_error").response()

    app.add_exception_handler(Exception, unexpected)


def api_router(qa: DocQA, *, tokens: list[str] | None = None) -> APIRouter:
    """The `/v1` routes, for `create_app` or to include in another FastAPI app."""
    settings: Settings = qa.settings
    check = token_checker(settings.api.token_roles() if tokens is None else tokens)
    collections = _Collections(qa)

    def authorize(request: Request) -> None:
        request.state.role = check(request.headers)

    def editor(request: Request) -> None:
        if getattr(request.state, "role", "editor") != "editor":
            raise APIError(403, "This token may ask and search, not change documents: use an editor's token "
                                "(RAG_API__TOKENS entries without `:reader`).", code="insufficient_permissions")

    router = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])

    @router.get("/models")
    def list_models() -> dict:
        created = int(time.time())
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "rag"}
                                           for name in collections.names()]}

    @router.get("/models/{model}")
    def get_model(model: str) -> dict:
        collections.get(model)
        return {"id": model, "object": "model", "created": int(time.time()), "owned_by": "rag"}

    @router.post("/chat/completions")
    async def chat_completions(body: ChatRequest):
        question, pairs = conversation(body.messages)
        target = await run_in_threadpool(collections.get, body.model)
        call = dict(history=pairs or None, k=body.k, sources=body.sources or None)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not body.stream:
            answer = await run_in_threadpool(lambda: target.ask(question, **call))
            message = {"role": "assistant", "content": answer.text, **answer_fields(answer)}
            return {"id": cid, "object": "chat.completion", "created": created, "model": body.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": _usage(answer)}
        stream = ThreadedStream(target.stream(question, **call))
        # errors raised at once (no documents, an unknown source) stay HTTP errors; after a short wait
        # the stream starts anyway, so the client sees the response begin while the model reads the prompt
        first = asyncio.ensure_future(stream.next())
        try:
            await asyncio.wait({first}, timeout=FIRST_EVENT_WAIT_S)
            if first.done():
                first.result()
        except BaseException:
            first.cancel()
            stream.close()
            raise
        usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(_sse(stream, first, cid, created, body.model, draft=body.draft, usage=usage),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @router.post("/search")
    async def search(body: SearchRequest) -> dict:
        target = await run_in_threadpool(collections.get, body.collection, param="collection")
        chunks = await run_in_threadpool(lambda: target.retrieve(body.query, body.k, sources=body.sources or None,
                                                                 mode=body.mode))
        return {"object": "list", "collection": target.settings.collection, "query": body.query,
                "data": [{"rank": i, **c.to_dict()} for i, c in enumerate(chunks, start=1)]}

    @router.get("/documents")
    async def list_documents(collection: str | None = None) -> dict:
        target = await run_in_threadpool(collections.get, collection, param="collection")
        items = await run_in_threadpool(target.sources)
        return {"object": "list", "collection": target.settings.collection, "data": [vars(s) for s in items]}

    @router.post("/documents", dependencies=[Depends(editor)])
    async def upload_documents(request: Request, collection: str | None = None) -> dict:
        form = await request.form(max_files=1000)
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise APIError(400, "Send the files as multipart/form-data (curl -F files=@report.pdf).", param="files")
        target = await run_in_threadpool(collections.get, collection, must_exist=False, param="collection")
        try:
            results = await run_in_threadpool(store_and_ingest, collections, target.settings.collection, files)
        finally:
            await form.close()
        counts: dict[str, int] = {}
        for r in results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return {"object": "list", "collection": target.settings.collection, "data": results, "counts": counts}

    @router.delete("/documents/{source:path}", dependencies=[Depends(editor)])
    async def delete_document(source: str, collection: str | None = None) -> dict:
        target = await run_in_threadpool(collections.get, collection, param="collection")
        # the stored upload goes with its document (unless another collection holds it too)
        resolved, removed = await run_in_threadpool(collections.delete_document, target.settings.collection, source)
        return {"object": "document.deleted", "source": resolved, "deleted": True, "chunks": removed}

    return router


async def _sse(stream: ThreadedStream, first: asyncio.Future, cid: str, created: int, model: str, *, draft: bool,
               usage: bool) -> AsyncIterator[str]:
    """The chat-completion chunks: the draft as `reasoning_content` while the model writes, then the verified
    answer as `content` (the text the citations refer to), then the final chunk with citations."""

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    final: Answer | None = None
    try:
        yield chunk({"role": "assistant", "content": ""})
        event = await first
        while event is not _END:
            if isinstance(event, Answer):
                final = event
            elif isinstance(event, str) and draft:
                yield chunk({"reasoning_content": event})
            elif isinstance(event, Waiting):  # the local model answers one question at a time: our place in line
                yield chunk({}, waiting={"ahead": event.ahead})
            # anything else (e.g. a retrieval event) is not part of the chat protocol
            event = await stream.next()
        if final is None:
            raise RuntimeError("the answer stream ended without a final answer")
        yield chunk({"content": final.text})
        yield chunk({}, "stop", **answer_fields(final))
        if usage:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [], "usage": _usage(final)}
            yield f"data: {json.dumps(body)}\n\n"
    except RagError as exc:
        yield f"data: {json.dumps(from_rag_error(exc).body(), ensure_ascii=False)}\n\n"
    except Exception as exc:
        log.exception("streaming an answer failed")
        yield f"data: {json.dumps(APIError(500, f'unexpected error: {exc}', type='server_error').body())}\n\n"
    finally:
        first.cancel()
        stream.close()
    yield "data: [DONE]\n\n"


def store_and_ingest(collections: Collections, name: str, files: list[UploadFile]) -> list[dict]:
    """Write the request's files to a temp folder under their names, then take the UI's upload path
    (`Collections.add_uploads`: the same types, sizes, counts, disk total and parse-time limits)."""
    from rag.ingest.uploads import safe_filename

    with tempfile.TemporaryDirectory(prefix="rag-upload-") as tmp:
        paths = []
        for i, upload in enumerate(files):
            folder = Path(tmp) / str(i)  # one folder each: two uploads may share a name
            folder.mkdir()
            path = folder / (safe_filename(upload.filename or "") or "upload")
            upload.file.seek(0)
            with open(path, "wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)
            paths.append(path)
        results = collections.add_uploads(name, paths)
    return [vars(f) for f in results]


class BodyLimit:
    """ASGI middleware: request bodies under `prefix` larger than `max_bytes` get 413, whether announced
    (`Content-Length`) or streamed (counted as read, so a chunked upload cannot exceed it either)."""

    def __init__(self, app, *, max_bytes: int, prefix: str = "/v1"):
        self.app, self.max_bytes, self.prefix = app, max_bytes, prefix

    def _error(self) -> APIError:
        return APIError(413, f"The request body is over the limit of {self.max_bytes / 2**20:g} MB "
                             "(RAG_API__MAX_REQUEST_MB): send fewer or smaller files per request.",
                        code="request_too_large")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        try:
            announced = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            announced = 0
        if announced > self.max_bytes:
            return await self._error().response()(scope, receive, send)
        seen, started, exceeded = 0, False, False

        async def counted():
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise self._error()
            return message

        async def sending(message):
            nonlocal started
            if exceeded:  # whatever the app made of the interrupted body (a parse error, a 500): our 413 instead
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._error().response()(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except APIError:
            if started:
                raise
            await self._error().response()(scope, receive, send)


# --- running ------------------------------------------------------------------------------------------
def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the API (what `rag serve` does) and block.

    Raises:
        ConfigError: a non-loopback `host` without `RAG_API__TOKENS`, or with tokens but without TLS
            (`RAG_API__SSL_CERTFILE` / `RAG_API__SSL_KEYFILE`) unless `RAG_API__ALLOW_PLAIN_HTTP`; half a TLS
            setting or an unreadable PEM file.
    """
    import uvicorn

    host = host or settings.api.host
    port = port or settings.api.port
    tls = tls_options(settings.api.ssl_certfile, settings.api.ssl_keyfile, names=API_TLS)
    check_bind(host, settings.api, tls=bool(tls))
    qa = DocQA(settings)
    qa.warm(background=True)  # requests are served at once; the first answer does not pay for start-up
    print(f"HTTP API at {'https' if tls else 'http'}://{host}:{port}/v1 (docs/api.md)", flush=True)
    uvicorn.run(create_app(qa), host=host, port=port, log_level="info", **tls)
