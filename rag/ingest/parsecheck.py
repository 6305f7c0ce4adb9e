"""Parse uploads in a child process with a time limit per file, before ingest touches them.

A hostile or pathological file (an HTML page that makes the extractor crawl,
a PDF with a parser loop) must not hold a request, or the server, forever.
The child only parses (`rag.ingest.loaders.load_document`); a file whose parse takes
longer than the limit is killed with the child and reported as skipped, and
the remaining files go on in a fresh child. Files that parse (or fail quickly
with an ordinary error) are left for ingest, which reports them as usual.

Example::

    slow = files_over_time_limit([Path("a.pdf"), Path("b.html")], timeout_s=30)
    # {Path("b.html"): "parsing took longer than 30 s (RAG_UI__PARSE_TIMEOUT_S): …"}
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

STARTUP_S = 120.0  # importing the parsers in a fresh interpreter, on a busy machine


def files_over_time_limit(paths: list[Path], *, timeout_s: float, max_bytes: int = 64 * 2**20) -> dict[Path, str]:
    """The files whose parsing did not finish within `timeout_s` seconds each, with a reason."""
    slow: dict[Path, str] = {}
    todo = list(paths)
    while todo and timeout_s > 0:
        done, stuck = _run_child(todo, timeout_s, max_bytes)
        if stuck is None:
            break
        slow[stuck] = (f"parsing took longer than {timeout_s:g} s (RAG_UI__PARSE_TIMEOUT_S): "
                       "the file was not ingested")
        todo = todo[done + 1:]
    return slow


def _run_child(paths: list[Path], timeout_s: float, max_bytes: int) -> tuple[int, Path | None]:
    """Parse `paths` in order in one child; returns (files finished, the file that ran out of time or None)."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-m", "rag.ingest.parsecheck"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        proc.stdin.write(json.dumps({"paths": [str(p) for p in paths], "max_bytes": max_bytes}).encode() + b"\n")
        proc.stdin.close()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        buffer, done = b"", 0
        deadline = time.monotonic() + STARTUP_S + timeout_s  # the first file also waits for the imports
        while done < len(paths):
            line_end = buffer.find(b"\n")
            if line_end >= 0:
                line, buffer = buffer[:line_end], buffer[line_end + 1:]
                if line.strip() == b"ready":
                    deadline = time.monotonic() + timeout_s
                    continue
                done += 1
                deadline = time.monotonic() + timeout_s
                continue
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(timeout=left):
                return done, paths[done]
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:  # the child died (e.g. out of memory): not a timeout, let ingest report the file
                return done, None
            buffer += chunk
        return done, None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _child() -> None:
    """In the child: parse each file and print one line per file."""
    from rag.ingest.loaders import load_document

    job = json.loads(sys.stdin.readline())
    print("ready", flush=True)
    for path in job["paths"]:
        try:
            load_document(Path(path), max_bytes=job["max_bytes"])
            print(json.dumps({"ok": True}), flush=True)
        except Exception as exc:  # reported by ingest itself; here only the time counts
            print(json.dumps({"ok": False, "error": type(exc).__name__}), flush=True)


if __name__ == "__main__":
    _child()
