"""llama.cpp with and without CPU weight repacking: load time, prompt reading, generation, memory.

    python bench/llama_load.py [--rounds 2] [--prompt-tokens 500] [--generate 40]

Each run is a fresh process that loads the configured GGUF the way `LlamaCppChat` does
(`llm.repack_weights` on: weights read and repacked; off: the file mapped as it is), reads
one prompt of seed-article text from an empty context, then generates greedily. The
rounds alternate the two so machine noise hits both alike; the script prints medians and
the off/on ratios. `RAG_LLM__REPACK_WEIGHTS` picks the default; this is how to choose it
on another machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def child(repack: bool, prompt_tokens: int, generate: int) -> dict:
    import resource

    from rag.core.config import load_settings
    from rag.models.chat.factory import make_chat_model

    model = make_chat_model(load_settings(llm={"provider": "local", "repack_weights": repack}))
    model.import_runtime()
    t = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - t
    llama = model.llama
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((REPO / "corpus").glob("*")) if p.is_file())
    tokens = llama.tokenize(text.encode("utf-8"))[:prompt_tokens]
    t = time.perf_counter()
    llama.eval(tokens)
    prefill_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(generate):
        llama.eval([llama.sample(temp=0.0)])
    generate_s = time.perf_counter() - t
    return {"load_s": load_s, "prefill_tps": len(tokens) / prefill_s, "generate_tps": generate / generate_s,
            "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=500)
    ap.add_argument("--generate", type=int, default=40)
    ap.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "on", args.prompt_tokens, args.generate)))
        return
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for r in range(args.rounds):
        for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--prompt-tokens", str(args.prompt_tokens),
                                  "--generate", str(args.generate)], capture_output=True, text=True, cwd=REPO)
            if out.returncode != 0:
                sys.exit(f"the {mode} run failed:\n{out.stderr[-2000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            runs[mode].append(row)
            print(f"round {r + 1} repack {mode:3}: load {row['load_s']:.2f}s  prefill {row['prefill_tps']:.1f} tokens/s  "
                  f"generation {row['generate_tps']:.1f} tokens/s  peak RSS {row['rss_gb']:.2f} GB", flush=True)
    med = {m: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for m, rows in runs.items()}
    print(f"\n{'':12}{'load':>8}{'prefill':>14}{'generation':>14}{'peak RSS':>10}")
    for mode in ("on", "off"):
        m = med[mode]
        print(f"repack {mode:5}{m['load_s']:7.2f}s{m['prefill_tps']:10.1f} t/s{m['generate_tps']:10.1f} t/s"
              f"{m['rss_gb']:8.2f} GB")
    off, on = med["off"], med["on"]
    print(f"off / on:   load {off['load_s'] / on['load_s']:.2f}x, prefill {off['prefill_tps'] / on['prefill_tps']:.2f}x, "
          f"generation {off['generate_tps'] / on['generate_tps']:.2f}x, peak RSS {off['rss_gb'] / on['rss_gb']:.2f}x")


if __name__ == "__main__":
    main()
