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
    args = ap.parse_args()

    from rag.core.config import load_settings
    from rag.serve.api import DocQA

    overrides = {"answer": {"focus_tokens": args.focus_tokens}} if args.focus_tokens is not None else {}
    with tempfile.TemporaryDirectory() as home:
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
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    sys.exit(0)


if __name__ == "__main__":
    main()
