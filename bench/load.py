"""Many people at once against `rag serve` on loopback, with the local model: errors, latency, queue, memory.

    python bench/load.py [--clients 32] [--duration 60] [--docs 80] [--questions 4] [--out bench/load.json]

Builds a collection (the seed corpus and `--docs` passages of squad-dev-mini's corpus) in a temp home,
starts `rag serve` in its own process, lets the model warm up, then runs `--clients` simulated people
for `--idle` seconds of searches alone (the model idle: the baseline), then `--duration` seconds of
everything. Each one thinks about a second between requests and then:

- searches (`POST /v1/search`, hybrid): most requests;
- asks a question, half of them streamed (`"stream": true`, reading the `waiting` chunks that give the
  place in the local model's line) and half not: about one request in six, at most `--questions` in
  flight at once across all people (the model answers one at a time; a crowd of questions would only
  make the line longer, not the test more informative);
- uploads a small new document (`POST /v1/documents`): about one request in fifty, up to `--uploads`.

Requests started before the deadline are waited for (a question may finish well after it). Prints, per
operation, count, errors, p50/p95/max; search p95 while the model is generating next to search p95 while
it is idle (the ratio from this one run); the places in line the server reported; the server's peak RSS.
Targets: 0 errors; search p95 while generating <= 250 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_home(home: Path, docs: int) -> list[str]:
    """Ingest the seed corpus and `docs` passages; returns queries made from their text."""
    from rag.core.config import load_settings
    from rag.serve.api import DocQA

    settings = load_settings(environ={**os.environ, "RAG_HOME": str(home)})
    qa = DocQA(settings)
    qa.ingest([REPO / "corpus"])
    rows = [json.loads(line) for line in open(REPO / "evals/datasets/squad-dev-mini/corpus.jsonl")][:docs]
    qa.ingest_texts([{"source": f"squad/{r['doc_id']}.txt", "title": r.get("title") or "", "text": r["text"]}
                     for r in rows])
    queries = []
    for r in rows:
        for sentence in re.split(r"(?<=[.!?])\s+", r["text"])[:3]:
            words = sentence.split()
            if len(words) >= 8:
                queries.append(f"What about {' '.join(words[2:9]).strip('.,;:')}?")
    return queries


class Server:
    """`rag serve` in a child process, with its peak memory sampled."""

    def __init__(self, home: Path, port: int):
        env = {**os.environ, "RAG_HOME": str(home), "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-c", "from rag.cli import app; app()", "serve", "--port", str(port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{port}"
        self.peak_rss = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def rss(self) -> int:
        """Resident memory of the server and its children (upload parse checks), bytes."""
        total = 0
        pids = [self.proc.pid]
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):  # children of any thread
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def _sample(self) -> None:
        while not self._stop.is_set() and self.proc.poll() is None:
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.25)

    def wait_ready(self, timeout: float = 180) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rag serve exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("rag serve did not start")

    def stop(self) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Load:
    def __init__(self, url: str, queries: list[str], args):
        self.url, self.queries, self.args = url, queries, args
        self.records: list[dict] = []  # op, start, end, ok, error
        self.questions_in_flight = 0
        self.uploads_left = args.uploads
        self.places: list[int] = []  # `ahead` values the server reported

    async def person(self, client, rng: random.Random, deadline: float) -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(0.5, 1.5) * self.args.think)
            if time.monotonic() >= deadline:
                return
            r = rng.random()
            if r < 0.02 and self.uploads_left > 0:
                self.uploads_left -= 1
                await self.run("upload", self.upload(client, rng))
            elif r < 0.18 and self.questions_in_flight < self.args.questions \
                    and time.monotonic() >= self.questions_from:
                stream = rng.random() < 0.5
                self.questions_in_flight += 1
                try:
                    await self.run("ask (stream)" if stream else "ask", self.ask(client, rng, stream))
                finally:
                    self.questions_in_flight -= 1
            else:
                await self.run("search", self.search(client, rng))

    async def run(self, op: str, work) -> None:
        start = time.monotonic()
        error = ""
        try:
            await work
        except Exception as exc:  # noqa: BLE001 -- every failure is a counted error, with its text
            error = f"{type(exc).__name__}: {exc}"[:300]
        self.records.append({"op": op, "start": start, "end": time.monotonic(), "error": error})

    async def search(self, client, rng) -> None:
        r = await client.post(f"{self.url}/v1/search", json={"query": rng.choice(self.queries), "k": 5})
        r.raise_for_status()
        if not r.json()["data"]:
            raise RuntimeError("no results")

    async def ask(self, client, rng, stream: bool) -> None:
        body = {"model": "default", "messages": [{"role": "user", "content": rng.choice(self.queries)}],
                "stream": stream}
        if not stream:
            r = await client.post(f"{self.url}/v1/chat/completions", json=body)
            r.raise_for_status()
            if "content" not in r.json()["choices"][0]["message"]:
                raise RuntimeError("no answer")
            return
        done = False
        async with client.stream("POST", f"{self.url}/v1/chat/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    done = True
                    break
                event = json.loads(data)
                if "error" in event:
                    raise RuntimeError(event["error"]["message"])
                if "waiting" in event:
                    self.places.append(int(event["waiting"]["ahead"]))
        if not done:
            raise RuntimeError("the stream ended without [DONE]")

    async def upload(self, client, rng) -> None:
        n = rng.randrange(10**9)
        text = f"Load test note {n}. The visiting committee number {n} met on a Tuesday and approved the plan."
        r = await client.post(f"{self.url}/v1/documents", files={"files": (f"note-{n}.txt", text.encode())})
        r.raise_for_status()
        statuses = [d["status"] for d in r.json()["data"]]
        if statuses != ["added"]:
            raise RuntimeError(f"upload: {statuses}")

    async def main(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=self.args.clients * 2)
        async with httpx.AsyncClient(timeout=self.args.timeout, limits=limits) as client:
            self.started = time.monotonic()
            self.questions_from = self.started + self.args.idle  # searches alone first: the idle baseline
            deadline = self.started + self.args.idle + self.args.duration
            await asyncio.gather(*(self.person(client, random.Random(i), deadline) for i in range(self.args.clients)))
            self.ended = time.monotonic()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def busy(intervals: list[tuple[float, float]], start: float, end: float) -> bool:
    return any(s < end and start < e for s, e in intervals)


def summarize(load: Load, server: Server, args) -> dict:
    recs = load.records
    asks = [(r["start"], r["end"]) for r in recs if r["op"].startswith("ask")]
    rows = {}
    for op in ("search", "ask", "ask (stream)", "upload"):
        mine = [r for r in recs if r["op"] == op]
        ms = [1000 * (r["end"] - r["start"]) for r in mine if not r["error"]]
        rows[op] = {"count": len(mine), "errors": sum(bool(r["error"]) for r in mine),
                    "p50_ms": pct(ms, 0.5), "p95_ms": pct(ms, 0.95), "max_ms": max(ms, default=float("nan"))}
    searches = [r for r in recs if r["op"] == "search" and not r["error"]]
    during = [1000 * (r["end"] - r["start"]) for r in searches if busy(asks, r["start"], r["end"])]
    idle = [1000 * (r["end"] - r["start"]) for r in searches if not busy(asks, r["start"], r["end"])]
    return {"clients": args.clients, "duration_s": args.duration, "idle_s": args.idle,
            "wall_s": load.ended - load.started,
            "ops": rows, "errors": [r["error"] for r in recs if r["error"]][:20],
            "search_while_generating": {"count": len(during), "p50_ms": pct(during, 0.5), "p95_ms": pct(during, 0.95)},
            "search_while_idle": {"count": len(idle), "p50_ms": pct(idle, 0.5), "p95_ms": pct(idle, 0.95)},
            "queue_positions": {"reported": len(load.places), "max_ahead": max(load.places, default=0)},
            "peak_rss_mb": server.peak_rss / 2**20, "cpus": os.cpu_count()}


def report(result: dict) -> str:
    lines = [f"{result['clients']} clients for {result['idle_s']:g} s of searches alone, then {result['duration_s']:g} s "
             f"of everything (all requests done after "
             f"{result['wall_s']:.0f} s), {result['cpus']} CPUs", "",
             "| operation | requests | errors | p50 ms | p95 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
    for op, r in result["ops"].items():
        lines.append(f"| {op} | {r['count']} | {r['errors']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['max_ms']:.0f} |")
    g, i = result["search_while_generating"], result["search_while_idle"]
    ratio = g["p95_ms"] / i["p95_ms"] if i["count"] and g["count"] else float("nan")
    lines += ["", f"search p95 while the model generates: {g['p95_ms']:.0f} ms ({g['count']} searches); "
                  f"while idle: {i['p95_ms']:.0f} ms ({i['count']}); ratio {ratio:.2f} (target <= 250 ms)",
              f"queue positions reported: {result['queue_positions']['reported']} "
              f"(longest line: {result['queue_positions']['max_ahead']} ahead)",
              f"server peak RSS: {result['peak_rss_mb']:.0f} MB",
              f"errors: {sum(r['errors'] for r in result['ops'].values())} (target 0)"]
    lines += [f"  {e}" for e in result["errors"]]
    return "\n".join(lines)


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="rag-load-") as tmp:
        home = Path(tmp) / "home"
        queries = build_home(home, args.docs)
        server = Server(home, free_port())
        try:
            server.wait_ready()
            import httpx

            # the first answer loads the model; it is not part of the measurement
            httpx.post(f"{server.url}/v1/chat/completions", timeout=args.timeout,
                       json={"model": "default", "messages": [{"role": "user", "content": queries[0]}]})
            load = Load(server.url, queries, args)
            asyncio.run(load.main())
            return summarize(load, server, args)
        finally:
            server.stop()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--duration", type=float, default=60.0, help="seconds during which all kinds of requests start")
    p.add_argument("--idle", type=float, default=10.0,
                   help="seconds of searches and uploads alone first (no question: the model idle), for the baseline")
    p.add_argument("--docs", type=int, default=80, help="squad-dev-mini passages in the collection")
    p.add_argument("--questions", type=int, default=4, help="most questions in flight at once")
    p.add_argument("--uploads", type=int, default=4, help="most uploads in the run")
    p.add_argument("--think", type=float, default=1.0, help="mean seconds between one person's requests")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds a request may take")
    p.add_argument("--out", type=Path, help="also write the figures as JSON")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = run(args)
    print(report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
