"""Where the wait before the first token goes: tokens llama.cpp evaluated vs tokens that were necessary.

    python bench/conversation.py [--squad 10] [--focus-tokens N]

One process, the way the UI runs: one `DocQA`, the local model loaded once and
warmed in the background at start (its fixed prompt text read once). It plays a
5-turn conversation on the seed corpus (a question, two follow-ups that need the
conversation, a new topic, an off-corpus question) and `--squad N` independent
first questions on squad-dev-mini. For every turn it prints:

- evaluated: prompt tokens llama.cpp actually decoded (counted by the model wrapper);
- necessary: tokens of what the model had to read that it had not read before
  (the question, the evidence text shown, and a follow-up's conversation context),
  counted with the model's own tokenizer;
- first token: seconds from the call to the first answer token; evidence: seconds
  to the `Evidence` event (what the UI shows first);
- floor = necessary / prefill rate + one generated token, with the prefill rate
  and the generation rate measured in this same run on fresh text, read right after
  the answer prompt's fixed part as an answer's tokens are (the rate from an empty
  context, a little higher, is printed too);
- whether first token <= 1.25 x floor + 0.5 s (the target).

Then: the median of follow-up first tokens / first questions' (target <= 1.3) and
the median of necessary tokens (target <= 180).

    python bench/conversation.py --cold [--squad 0]

Cold mode: a fresh process per run, on a private cache (the models linked from the real one, no
saved prompt state yet) and a home with the seed corpus ingested by another process. Each child
process times the first question from its own start and from the moment it reports ready:

- api, first start: `DocQA.open()` then the 5 turns at once, before any prompt state was saved
  (the model reads its fixed prompt text once and saves it);
- api, restart: the same again (the prompt state is restored from disk), per turn;
- api, ask when ready: `DocQA.open()`, `qa.wait_ready()`, then the first question;
- ui, restart: `rag ui` started, the first question sent to its `/v1/chat/completions` (the UI
  process's own `DocQA`) as soon as the server answers, and again in a new `rag ui` the moment it
  prints `model ready`.

Then the warm figures of the same run (the default mode, in this process), and the ratios
cold / warm first question (target <= 1.3).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED_TURNS = [
    ("first", "How many foreign-invested biotech companies completed the change of business scope in Pudong, "
              "and on what date?"),
    ("follow-up", "Which of them are named?"),
    ("follow-up", "Where is the first one headquartered?"),
    ("new topic", "How many CAR-T products have been approved in Pudong?"),
    ("off-corpus", "What is the population of Paris?"),
]


def prefill_rates(model, text: str, n: int = 200, after: list[int] | None = None) -> tuple[float, float]:
    """(prompt tokens/s, generated tokens/s) of llama.cpp on `n` tokens of fresh text.

    From an empty context, or, with `after`, read right after those tokens (the answer prompt's fixed
    part, restored from its snapshot): where an answer's own tokens are read, attention spans the
    fixed part too, so reading them is a little slower than at position 0.
    """
    llama = model.llama
    tokens = llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)[:n]
    with model_lock(model):
        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        llama.n_tokens = 0
        if after:
            llama.prepare(list(after))  # the snapshot of the fixed part, restored in milliseconds
            if llama.n_tokens < len(after):
                llama.eval(list(after)[llama.n_tokens:])
        t = time.perf_counter()
        llama.eval(tokens)
        prefill = len(tokens) / (time.perf_counter() - t)
        t, steps = time.perf_counter(), 16
        for i in range(steps):  # one token at a time, as generation decodes
            llama.eval([tokens[i]])
        generate = steps / (time.perf_counter() - t)
        llama._ctx.kv_cache_seq_rm(-1, 0, -1)
        llama.n_tokens = 0
    return prefill, generate


def answer_prefix(model) -> list[int]:
    """The longest fixed prompt part warmed at start-up (the answer prompt's system text and examples)."""
    snapshots = getattr(model.llama, "_snapshots", [])
    return max((list(tokens) for tokens, _ in snapshots), key=len, default=[])


def model_lock(model):
    from rag.models.chat.queue import generation_queue

    return generation_queue(model).turn()


def play(qa, turns, rate_in: float, rate_out: float, label: str) -> list[dict]:
    rows, previous = [], None
    for kind, question in turns:
        started, evidence_s, first_s = time.perf_counter(), None, None
        from rag.core.types import Answer, Evidence

        answer = None
        for event in qa.stream(question, history=previous):
            now = time.perf_counter() - started
            if isinstance(event, Evidence) and evidence_s is None:
                evidence_s = now
            elif isinstance(event, str) and first_s is None:
                first_s = now
            elif isinstance(event, Answer):
                answer = event
        t = answer.timings
        necessary = t.get("necessary_tokens", 0.0)
        floor = necessary / rate_in + 1 / rate_out
        row = {"set": label, "kind": kind, "question": question, "evaluated": t.get("prompt_evaluated"),
               "prompt": t.get("prompt_tokens"), "necessary": necessary, "evidence_s": evidence_s,
               "first_token_s": first_s, "floor_s": floor, "abstained": answer.abstained,
               "answer": answer.short_answer or answer.text[:60]}
        row["ok"] = first_s is None or first_s <= 1.25 * floor + 0.5
        rows.append(row)
        print(f"{label:6} {kind:10} eval {row['evaluated'] or 0:5.0f}/{row['prompt'] or 0:5.0f}  necessary "
              f"{necessary:4.0f}  evidence {evidence_s or 0:5.2f}s  first token "
              f"{(first_s if first_s is not None else float('nan')):5.2f}s  floor {floor:5.2f}s  "
              f"{'ok ' if row['ok'] else 'SLOW'}  {question[:48]!r} -> {row['answer'][:40]!r}", flush=True)
        if kind != "off-corpus":
            previous = answer
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", type=int, default=10, help="independent squad-dev-mini questions (0: none)")
    ap.add_argument("--focus-tokens", type=int, default=None, help="override answer.focus_tokens")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--cold", action="store_true", help="first the cold runs (a fresh process each), then warm")
    ap.add_argument("--child", choices=["ingest", "api", "api-ready"], help=argparse.SUPPRESS)
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from rag.core.config import load_settings
    from rag.serve.api import DocQA

    overrides = {"answer": {"focus_tokens": args.focus_tokens}} if args.focus_tokens is not None else {}
    cold_rows: list[dict] = []
    with tempfile.TemporaryDirectory() as home:
        if args.cold:
            overrides["cache"] = private_cache(Path(home) / "cache", load_settings().cache_dir)
            cold_rows = cold_runs(Path(home) / "cold", overrides["cache"])
        settings = load_settings(home=Path(home), **overrides)
        qa = DocQA(settings)
        t = time.perf_counter()
        qa.ingest([REPO / "corpus"])
        warm = qa.warm(background=True)  # as `rag ui` does
        warm.join()
        print(f"start-up: ingest + model load + warm-up {time.perf_counter() - t:.1f}s "
              f"(warm-up evaluated {qa.chat_model.llama.evaluated} tokens)", flush=True)
        fresh = (REPO / "evals" / "datasets" / "squad-dev-mini" / "corpus.jsonl").read_text(encoding="utf-8")
        sample = json.loads(fresh.splitlines()[7])["text"] * 3
        rate_zero, _ = prefill_rates(qa.chat_model, sample)
        prefix = answer_prefix(qa.chat_model)
        rate_in, rate_out = prefill_rates(qa.chat_model, sample, after=prefix)
        print(f"llama.cpp here: prefill {rate_in:.1f} tokens/s after the answer prompt's fixed part "
              f"({len(prefix)} tokens; {rate_zero:.1f} tokens/s from an empty context), generation "
              f"{rate_out:.1f} tokens/s ({1000 / rate_in:.0f} ms per prompt token)", flush=True)
        rows = play(qa, SEED_TURNS, rate_in, rate_out, "seed")
        if args.squad:
            squad = DocQA(settings.model_copy(update={"collection": "squad"}),
                          embeddings=qa.embeddings, chat_model=qa.chat_model)
            folder = REPO / "evals" / "datasets" / "squad-dev-mini"
            squad.ingest_texts({"source": d["doc_id"], "text": d["text"], "title": d.get("title", "")}
                               for d in map(json.loads, (folder / "corpus.jsonl").read_text().splitlines()))
            questions = [json.loads(x) for x in (folder / "questions.jsonl").read_text().splitlines()]
            picked = random.Random(0).sample([q for q in questions if q.get("answerable", True)], args.squad)
            rows += play(squad, [("first", q["question"]) for q in picked], rate_in, rate_out, "squad")
        rate_in2, _ = prefill_rates(qa.chat_model, json.loads(fresh.splitlines()[9])["text"] * 3, after=prefix)
    firsts = [r["first_token_s"] for r in rows if r["kind"] in ("first", "new topic") and r["first_token_s"]]
    follows = [r["first_token_s"] for r in rows if r["kind"] == "follow-up" and r["first_token_s"]]
    necessary = [r["necessary"] for r in rows if r["first_token_s"]]
    print(f"\nprefill rate again at the end: {rate_in2:.1f} tokens/s (noise check)")
    print(f"turns within 1.25 x floor + 0.5 s: {sum(r['ok'] for r in rows)}/{len(rows)}")
    within_zero = sum(r["first_token_s"] is None or r["first_token_s"] <= 1.25 * (
        r["necessary"] / rate_zero + 1 / rate_out) + 0.5 for r in rows)
    print(f"  (with the floor from the empty-context prefill rate, {rate_zero:.1f} tokens/s: {within_zero}/{len(rows)})")
    print(f"evidence shown after: max {max(r['evidence_s'] for r in rows):.2f}s")
    if firsts and follows:
        print(f"follow-up / first question first token (medians): {statistics.median(follows):.2f}s / "
              f"{statistics.median(firsts):.2f}s = {statistics.median(follows) / statistics.median(firsts):.2f} "
              f"(target <= 1.3)")
    if necessary:
        print(f"necessary tokens per answer: median {statistics.median(necessary):.0f} (target <= 180); "
              f"first token median {statistics.median([r['first_token_s'] for r in rows if r['first_token_s']]):.2f}s")
    if cold_rows and firsts:
        print_cold(cold_rows, statistics.median(firsts))
    if args.json:
        args.json.write_text(json.dumps({"warm": rows, "cold": cold_rows}, indent=1))
    sys.exit(0)


# --- cold mode ---------------------------------------------------------------------------------------
def private_cache(cache: Path, shared: Path) -> Path:
    """A cache that uses the provisioned models but starts with no saved prompt state."""
    from rag.models.chat.factory import cache_without_prompt_state

    return cache_without_prompt_state(shared, cache)


def spawn(args: list[str], **kwargs):
    import subprocess

    return subprocess.Popen([sys.executable, *args], cwd=REPO, text=True, **kwargs)


def run_child(mode: str, home: Path, cache: Path) -> dict:
    import subprocess

    proc = spawn([str(Path(__file__).resolve()), "--child", mode, "--home", str(home), "--cache", str(cache),
                  "--spawned", str(time.time())], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"the {mode} child failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def child(args) -> None:
    """One fresh process: ingest the seed corpus, or open and ask (at once, or when ready); prints JSON."""
    from rag.core.types import Answer, Evidence
    from rag.serve.api import DocQA

    def since_start() -> float:
        return time.time() - args.spawned

    if args.child == "ingest":
        qa = DocQA.open(home=args.home, cache=args.cache, warm=False)
        qa.ingest([REPO / "corpus"])
        print(json.dumps({"ingested": qa.store.count()}))
        return
    qa = DocQA.open(home=args.home, cache=args.cache)  # the warm-up starts here, in the background
    opened = since_start()
    ready_at: list[float] = []
    import threading

    threading.Thread(target=lambda: qa.wait_ready() and ready_at.append(since_start()), daemon=True).start()
    if args.child == "api-ready":
        qa.wait_ready()
    asked = since_start()
    turns = SEED_TURNS if args.child == "api" else SEED_TURNS[:1]
    rows, previous = [], None
    for kind, question in turns:
        t, evidence_s, first_s, answer = time.perf_counter(), None, None, None
        was_ready = qa.ready
        for event in qa.stream(question, history=previous):
            if isinstance(event, Evidence) and evidence_s is None:
                evidence_s = time.perf_counter() - t
            elif isinstance(event, str) and first_s is None:
                first_s = time.perf_counter() - t
            elif isinstance(event, Answer):
                answer = event
        rows.append({"kind": kind, "evidence_s": evidence_s, "first_token_s": first_s, "ready_when_asked": was_ready,
                     "evaluated": answer.timings.get("prompt_evaluated"), "prompt": answer.timings.get("prompt_tokens"),
                     "answer": answer.short_answer or answer.text[:60]})
        if kind != "off-corpus":
            previous = answer
    llama = getattr(qa.chat_model, "llama", None)
    print(json.dumps({"open_s": opened, "asked_s": asked, "ready_s": ready_at[0] if ready_at else None,
                      "warm": qa.warm_timings, "warm_evaluated": getattr(llama, "evaluated", None), "turns": rows}))


def ui_run(home: Path, cache: Path, *, when_ready: bool) -> dict:
    """`rag ui` in a fresh process; the first question through its HTTP API, at once or when it says ready."""
    import os
    import socket
    import subprocess
    import threading
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAG_HOME": str(home), "RAG_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    spawned = time.time()
    proc = spawn(["-c", "from rag.cli import app; app()", "ui", "--port", str(port)], env=env,
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    marks: dict[str, float] = {}

    def read():
        for line in proc.stdout:
            if line.startswith("UI at"):
                marks["listening"] = time.time() - spawned
            elif line.startswith("model ready"):
                marks["ready"] = time.time() - spawned

    threading.Thread(target=read, daemon=True).start()
    try:
        while "ready" not in marks if when_ready else not _answers(port):
            if proc.poll() is not None:
                raise SystemExit("rag ui exited")
            time.sleep(0.05)
        asked = time.time() - spawned
        body = json.dumps({"model": "default", "stream": True,
                           "messages": [{"role": "user", "content": SEED_TURNS[0][1]}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        t, first_s = time.perf_counter(), None
        with urllib.request.urlopen(request, timeout=600) as response:
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data: {"):
                    continue
                delta = json.loads(line[6:])["choices"][0]["delta"] if json.loads(line[6:]).get("choices") else {}
                if first_s is None and (delta.get("reasoning_content") or delta.get("content")):
                    first_s = time.perf_counter() - t
        return {"listening_s": marks.get("listening"), "ready_s": marks.get("ready"), "asked_s": asked,
                "turns": [{"kind": "first", "first_token_s": first_s, "evidence_s": None,
                           "ready_when_asked": when_ready}]}
    finally:
        proc.terminate()
        proc.wait(30)


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1):
            return True
    except OSError:
        return False


def cold_runs(home: Path, cache: Path) -> list[dict]:
    """Each run in a fresh process; the first has no saved prompt state, the others restore it."""
    run_child("ingest", home, cache)
    plan = [("api, first start (no saved state), ask at once", lambda: run_child("api", home, cache)),
            ("api, restart, ask at once", lambda: run_child("api", home, cache)),
            ("api, restart, ask when ready", lambda: run_child("api-ready", home, cache)),
            ("ui, restart, ask once it serves", lambda: ui_run(home, cache, when_ready=False)),
            ("ui, restart, ask when it says ready", lambda: ui_run(home, cache, when_ready=True))]
    rows = []
    for label, run in plan:
        row = {"run": label, **run()}
        rows.append(row)
        first = row["turns"][0]
        print(f"cold: {label:44} ready {row['ready_s'] or float('nan'):5.1f}s after start, asked at "
              f"{row['asked_s']:5.1f}s, first token {first['first_token_s']:5.2f}s after asking "
              f"({row['asked_s'] + first['first_token_s']:5.1f}s after start)", flush=True)
    return rows


def print_cold(rows: list[dict], warm_first: float) -> None:
    print(f"\ncold vs warm (warm first question, median first token: {warm_first:.2f}s; target <= 1.3)")
    print(f"{'run':46} {'ready':>7} {'asked':>7} {'first token':>12} {'ratio':>6} {'from start':>11}")
    for row in rows:
        first = row["turns"][0]["first_token_s"]
        print(f"{row['run']:46} {row['ready_s'] or float('nan'):6.1f}s {row['asked_s']:6.1f}s {first:11.2f}s "
              f"{first / warm_first:6.2f} {row['asked_s'] + first:10.1f}s")
    for row in rows:
        if len(row["turns"]) > 1:
            print(f"per turn, {row['run']}: " + ", ".join(
                f"{t['kind']} {t['first_token_s']:.2f}s ({t['first_token_s'] / warm_first:.2f}x, "
                f"{t['evaluated'] or 0:.0f}/{t['prompt'] or 0:.0f} evaluated)"
                for t in row["turns"] if t["first_token_s"] is not None))


if __name__ == "__main__":
    main()
