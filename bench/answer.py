"""Time to first token of the full `ask` path vs llama.cpp's own prefill of the identical prompt.

    python bench/answer.py [--rounds 3]

For each seed question, alternately: (a) DocQA.stream(question) and (b) the very
same chat messages sent straight to llama.cpp (`create_chat_completion`, stream),
both from a cleared KV cache. Prints the median of (a) TTFT / (b) TTFT (target
<= 1.15), absolute prefill and generation figures, and the process RSS with the
model loaded (target <= 3 GB).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "How many foreign-invested companies changed their business scope, and when?",
    "Where is Merck Testing headquartered?",
    "How many CAR-T products have been approved in Pudong?",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()

    from rag.answer.context import prompt_passages
    from rag.answer.flow import build_messages
    from rag.core.config import load_settings
    from rag.core.types import Answer
    from rag.models.chat.llama_cpp import to_openai_messages
    from rag.serve.api import DocQA

    with tempfile.TemporaryDirectory() as tmp:
        qa = DocQA(load_settings(home=Path(tmp)))
        qa.ingest([REPO / "corpus"])
        llama = qa.chat_model.llama
        ratios, ours, raw, prompt_tokens, tps = [], [], [], [], []
        for _ in range(args.rounds):
            for q in QUESTIONS:
                llama.reset()  # both sides start from an empty KV cache
                final = None
                for event in qa.stream(q):
                    if isinstance(event, Answer):
                        final = event
                ttft_ours = final.timings["first_token_ms"]
                tps.append(final.timings["tokens_per_s"])

                passages = prompt_passages(final.standalone_question, final.passages, qa.settings.answer, qa.count_tokens)
                messages = to_openai_messages(build_messages(final.standalone_question, passages))
                llama.reset()
                t = time.perf_counter()
                for part in llama.create_chat_completion(messages=messages, stream=True, max_tokens=4, temperature=0):
                    if (part["choices"][0].get("delta") or {}).get("content"):
                        break
                ttft_raw = (time.perf_counter() - t) * 1000
                prompt_tokens.append(llama.n_tokens)
                ours.append(ttft_ours)
                raw.append(ttft_raw)
                ratios.append(ttft_ours / ttft_raw)
                print(f"{q[:60]:60}  ours {ttft_ours / 1000:6.2f} s  llama.cpp {ttft_raw / 1000:6.2f} s  "
                      f"ratio {ttft_ours / ttft_raw:5.2f}  prompt ~{llama.n_tokens} tokens")
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"median TTFT ours {statistics.median(ours) / 1000:.2f} s, llama.cpp prefill {statistics.median(raw) / 1000:.2f} s")
    print(f"median ratio ours / llama.cpp: {statistics.median(ratios):.3f}  (target <= 1.15)")
    print(f"prefill ~{statistics.median(prompt_tokens) / (statistics.median(raw) / 1000):.0f} tokens/s; "
          f"generation {statistics.median(tps):.1f} tokens/s")
    print(f"peak RSS with the model loaded: {rss_gb:.2f} GB  (target <= 3 GB)")


if __name__ == "__main__":
    main()
