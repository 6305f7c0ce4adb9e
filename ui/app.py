"""Serving the browser UI: launch options (bind, login, TLS, upload size), `serve` (what `rag ui` runs),
and `server_app` (the UI and the HTTP API in one FastAPI app). The page itself: `ui.layout.build_app`.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import gradio as gr

from rag.core.config import Settings
from rag.core.errors import ConfigError
from rag.serve.api import DocQA
from rag.serve.http import is_loopback, tls_options
from ui.access import LoginGuard, load_guard
from ui.handlers import upload_limit
from ui.layout import build_app

log = logging.getLogger(__name__)


def launch_options(settings: Settings, host: str | None = None, port: int | None = None) -> dict:
    """`launch()` arguments for `settings`: bind, login (with roles and rate limit), TLS, upload size.

    Raises:
        ConfigError: a non-loopback `host` without credentials, or half a TLS setting / an unreadable file.
    """
    host = host or settings.ui.host
    port = port or settings.ui.port
    guard = load_guard(settings.ui)
    if not is_loopback(host) and guard is None:
        raise ConfigError(
            f"serving the UI on {host} makes it reachable from other machines, so it needs a login: "
            "set RAG_UI__AUTH=user:password or RAG_UI__AUTH_FILE=/path/to/file (one user:password per line), "
            "or bind 127.0.0.1"
        )
    tls = tls_options(settings.ui.ssl_certfile, settings.ui.ssl_keyfile,
                      names=("RAG_UI__SSL_CERTFILE", "RAG_UI__SSL_KEYFILE"))
    if tls:  # ssl_verify=False only lets Gradio's own start-up request to itself accept a self-signed certificate
        tls["ssl_verify"] = False
    elif not is_loopback(host):
        log.warning("serving the UI on %s over plain http: passwords, questions and documents cross the network "
                    "unencrypted; set RAG_UI__SSL_CERTFILE and RAG_UI__SSL_KEYFILE (docs/ui.md#security)", host)
    extra = {}
    if guard is not None:  # failed logins are also counted per client address (Gradio's auth sees none)
        from starlette.middleware import Middleware

        from ui.access import LoginRateLimit

        extra["app_kwargs"] = {"middleware": [Middleware(LoginRateLimit, max_failures=2 * settings.ui.login_max_failures,
                                                         lockout_s=settings.ui.login_lockout_s)]}
    return dict(server_name=host, server_port=port, auth=guard, ssr_mode=False,
                max_file_size=upload_limit(settings), show_error=True, auth_message="Document Q&A: sign in",
                **tls, **extra)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Launch the UI and block. Binding anything but loopback requires credentials.

    Raises:
        ConfigError: a non-loopback `host` without `RAG_UI__AUTH` / `RAG_UI__AUTH_FILE`.
    """
    options = launch_options(settings, host, port)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import uvicorn

    host, port = options["server_name"], options["server_port"]
    settings = settings.model_copy(update={"ui": settings.ui.model_copy(update={"host": host})})  # for watch_refusal
    qa = DocQA(settings)
    qa.warm(background=True)  # the page is usable at once; the model restores its fixed prompt text meanwhile
    threading.Thread(target=_report_ready, args=(qa, time.perf_counter()), name="rag-ready", daemon=True).start()
    app = server_app(qa, host=host, port=port, guard=options["auth"],
                     middleware=options.get("app_kwargs", {}).get("middleware", []), tls="ssl_certfile" in options)
    scheme = "https" if "ssl_certfile" in options else "http"
    print(f"UI at {scheme}://{host}:{port}/" + (f", HTTP API at {scheme}://{host}:{port}/v1 (docs/api.md)"
                                                if any(r.path.startswith("/v1") for r in app.routes) else ""))
    tls = {k: options[k] for k in ("ssl_certfile", "ssl_keyfile") if k in options}
    uvicorn.run(app, host=host, port=port, log_level="warning", **tls)


def _report_ready(qa: DocQA, started: float) -> None:
    """Say on the console when the language model is ready (the page says it too)."""
    if qa.wait_ready():
        print(f"model ready ({time.perf_counter() - started:.1f}s after start)", flush=True)
    else:
        print(f"the language model could not load: {qa.warm_error}", flush=True)


def server_app(qa: DocQA, *, host: str = "127.0.0.1", port: int = 7860, guard: LoginGuard | None = None,
               middleware=(), tls: bool = False):
    """One FastAPI app: the UI at `/` and the HTTP API (`rag.serve.http`) at `/v1`.

    The API keeps its own rule (`rag.serve.http.check_bind`): on a non-loopback `host` it is only served
    when `RAG_API__TOKENS` is set (the UI's password does not cover it), and over TLS (`tls`: the UI's
    certificate) unless `RAG_API__ALLOW_PLAIN_HTTP`. `guard` is the UI's login (users and roles), `middleware`
    what `launch_options` asks for (the per-address login rate limit).
    """
    from fastapi import FastAPI

    from rag.serve.http import check_bind, create_app

    try:
        check_bind(host, qa.settings.api, "the HTTP API at /v1", tls=tls)
        app = create_app(qa)
    except ConfigError as exc:
        log.warning("not serving the HTTP API at /v1: %s", exc)
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    for m in middleware:
        app.add_middleware(m.cls, *m.args, **m.kwargs)
    return gr.mount_gradio_app(app, build_app(qa, guard), path="/", server_name=host, server_port=port, auth=guard,
                               auth_message="Document Q&A: sign in", max_file_size=upload_limit(qa.settings),
                               ssr_mode=False, show_error=True)
