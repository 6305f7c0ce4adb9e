"""Does the evidence shown first hold the answer? The focus's sentence ranking, measured without the model.

    python evals/best_match.py --dataset evals/datasets/squad-dev-mini --split dev --priors 0,1,2

For every answerable question, the passages the answer path would show (`rag.answer.context.prompt_passages`, from
the dataset's own index) and their best match (`rag.answer.context.best_match`), as `rag.answer.flow` computes them,
once per value of `rag.answer.context.RANK_PRIOR` (the bonus for a sentence of a higher-ranked passage). Printed per
value:

  best match     the gold answer is in the best-match sentence: what the UI and `qa.stream` show first
                 ("best match, not yet an answer") and the sentence the model reads first in its passage
  in prompt      the gold answer is somewhere in the focused passages the model is shown
  passages       passages left in the prompt after focusing (fewer: fewer distractors)

No model is called; the run takes seconds once the index exists (`rag eval` builds and caches it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rag.answer import context
from rag.core.config import load_settings
from rag.eval.datasets import dataset_files, default_files_dir, load_dataset, select_split
from rag.eval.metrics import contains_answer
from rag.eval.runner import open_dataset_index


def measure(qa, questions: list[dict], settings) -> dict[str, float]:
    best = shown = passages = 0
    for q in questions:
        chunks = qa.retriever.search(q["question"], settings.retrieval.k, sources=None).chunks
        # as rag.answer.flow does: the passages shown to the model, and the best match among them
        focused = context.prompt_passages(q["question"], chunks, settings.answer, qa.count_tokens)
        match = context.best_match(q["question"], focused)
        best += bool(match and contains_answer(match[1], q["answers"]))
        shown += contains_answer(" ".join(p.text for p in focused), q["answers"])
        passages += len(focused)
    n = len(questions) or 1
    return {"best match": best / n, "in prompt": shown / n, "passages": passages / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=Path("evals/datasets/squad-dev-mini"))
    ap.add_argument("--split", default=None, help="a split (squad-dev-mini: dev or seen; squad-fresh, manuals: dev); "
                                                 "default all questions")
    ap.add_argument("--priors", default="0,1,2", help="RANK_PRIOR values to compare (comma-separated)")
    args = ap.parse_args()
    settings = load_settings()
    dataset = load_dataset(args.dataset)
    if args.split:
        dataset = select_split(dataset, args.dataset, args.split)
    files = dataset_files(dataset, default_files_dir(dataset.name), args.dataset) if dataset.from_files else None
    qa = open_dataset_index(settings, dataset, files=files)
    questions = [q for q in dataset.questions if q["answerable"]]
    default = context.RANK_PRIOR
    print(f"{dataset.name} {args.split or 'all'}: {len(questions)} answerable questions, k {settings.retrieval.k}, "
          f"focus {settings.answer.focus_tokens} tokens")
    print("| RANK_PRIOR | best match holds the answer | answer in the prompt | passages shown |")
    print("|---:|---:|---:|---:|")
    try:
        for prior in (float(x) for x in args.priors.split(",") if x):
            context.RANK_PRIOR = prior
            m = measure(qa, questions, settings)
            mark = " (default)" if prior == default else ""
            print(f"| {prior:g}{mark} | {m['best match']:.3f} | {m['in prompt']:.3f} | {m['passages']:.2f} |")
    finally:
        context.RANK_PRIOR = default


if __name__ == "__main__":
    main()
