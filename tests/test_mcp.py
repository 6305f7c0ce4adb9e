"""`rag mcp` as a real subprocess, driven over stdio by the MCP SDK's own client (fake models)."""

from __future__ import annotations

import json
import os
import sys

import anyio
import pytest

pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402

from rag.serve.api import DocQA  # noqa: E402
from tests.conftest import REPO, shared_cache  # noqa: E402

DOC = ("Six foreign-invested biotech companies completed changes to their business scope on Nov 14. "
       "The pilot covers eight cities, including Beijing, Shanghai and Hainan province.")
ANSWER = "Answer: six\nDetails: Six foreign-invested biotech companies changed their business scope on Nov 14 [1]."


def server_env(home) -> dict[str, str]:
    return {
        "RAG_HOME": str(home), "RAG_CACHE": str(shared_cache()),
        "RAG_LLM__PROVIDER": "fake", "RAG_LLM__FAKE_RESPONSES": json.dumps([ANSWER]),
        "RAG_EMBEDDING__PROVIDER": "fake", "RAG_EMBEDDING__MODEL_NAME": "fake",
        "RAG_ANSWER__MIN_RELEVANCE": "-1",
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
        "PYTHONPATH": str(REPO),
    }


@pytest.fixture
def home(tmp_path):
    env = server_env(tmp_path / "home")
    qa = DocQA.open(environ=env)
    (tmp_path / "news.txt").write_text(DOC)
    qa.ingest([tmp_path / "news.txt"])
    return tmp_path / "home"


async def _session_run(home, body):
    params = StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "mcp"], env=server_env(home),
                                   cwd=str(REPO))
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await body(session)


def test_tools_over_stdio(home):
    async def body(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        found = await session.call_tool("search", {"query": "business scope", "k": 2})
        answered = await session.call_tool("ask", {"question": "How many companies changed their business scope?"})
        listed = await session.call_tool("list_sources", {})
        missing = await session.call_tool("search", {"query": "x", "sources": ["nope.txt"]})
        return tools, found, answered, listed, missing

    tools, found, answered, listed, missing = anyio.run(_session_run, home, body)
    assert set(tools) == {"search", "ask", "list_sources"}
    assert set(tools["search"].input_schema["properties"]) == {"query", "k", "sources"}

    passages = found.structured_content["passages"]
    assert not found.is_error and 1 <= len(passages) <= 2 and passages[0]["source"].endswith("news.txt")
    assert {"chunk_id", "score", "text", "page", "start", "end"} <= set(passages[0])

    result = answered.structured_content
    assert not answered.is_error and result["abstained"] is False and "[1]" in result["answer"]
    assert result["citations"][0]["source"].endswith("news.txt") and result["citations"][0]["quote"]
    assert json.loads(answered.content[0].text)["answer"] == result["answer"]  # text content for plain clients

    docs = listed.structured_content["documents"]
    assert [d["source"].rsplit("/", 1)[-1] for d in docs] == ["news.txt"] and docs[0]["chunks"] >= 1

    assert missing.is_error and "nope.txt" in missing.content[0].text and "rag sources" in missing.content[0].text


def test_streamable_http_needs_the_token(home):
    """`rag mcp --http` serves the same tools behind the HTTP API's bearer-token check."""
    import httpx
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    from rag.serve.mcp import BearerAuth, build_server
    from tests.test_server import live_server

    qa = DocQA.open(environ=server_env(home))
    app = BearerAuth(build_server(qa).streamable_http_app(host="127.0.0.1"), ["tok"])

    async def tools(url):
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer tok"}) as http:
            async with streamable_http_client(f"{url}/mcp", http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    listed = await session.call_tool("list_sources", {})
                    return listed.structured_content["documents"]

    with live_server(app) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = httpx.post(f"{url}/mcp", headers=headers, json={})
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        docs = anyio.run(tools, url)
    assert [d["source"].rsplit("/", 1)[-1] for d in docs] == ["news.txt"]
