"""Rescore the published pre-issue-9 eval JSONs (commit 5b8c500) with the honest metrics, no LLM."""
import json, sys
from pathlib import Path
from rag.config import load_settings
from rag.evaluate import (load_dataset, open_dataset_index, score_answer, gold_spans, answer_metrics,
                          load_split, split_dataset, abstention_table)
from rag.types import Answer, Citation

REPO = Path("/work/wt/quality")
settings = load_settings(environ={}, home="/tmp/qev/home", cache="/root/.local/share/rag/cache")

def rescore(name, result_path, split=None):
    ds = load_dataset(REPO / "evals/datasets" / name)
    qa = open_dataset_index(settings, ds)
    texts = {d["doc_id"]: d["text"] for d in ds.corpus}
    qs = {q["qid"]: q for q in ds.questions}
    old = json.loads((REPO / result_path).read_text())["questions"]
    ids = sorted({c["chunk_id"] for r in old for c in r["citations"]})
    chunks = {c.chunk_id: c for c in qa.store.get(ids)}
    rows = {}
    for r in old:
        q = qs[r["qid"]]
        cites = [Citation(n=c["n"], chunk_id=c["chunk_id"], source=c["source"], text=chunks[c["chunk_id"]].text,
                          quote=c["quote"], support=c["support"], supported=c["supported"]) for c in r["citations"]]
        ans = Answer(r["answer"], cites, abstained=r["abstained"], short_answer=r["short_answer"],
                     passages=[chunks[c["chunk_id"]] for c in r["citations"]], timings=r["timings"],
                     dropped_citations=r["dropped_citations"])
        row = score_answer(q, ans, gold_spans(q, texts))
        row["passages"] = r["passages"]
        rows[r["qid"]] = row
    Path(f"/tmp/qev/rescore/{name}_old_rows.json").write_text(json.dumps({"questions": list(rows.values())}))
    out = {}
    if split:
        folder = REPO / "evals/datasets" / name
        for s in ("dev", "test"):
            keep = {q["qid"] for q in split_dataset(ds, load_split(folder, s)).questions}
            sel = [rows[k] for k in rows if k in keep]
            out[s] = answer_metrics(sel)
    else:
        out["all"] = answer_metrics(list(rows.values()))
    return out

res = {"seed": rescore("seed", "evals/results/seed.json"),
       "squad60": rescore("squad-dev-mini", "evals/results/squad-dev-mini.json", split=True)}
Path("/tmp/qev/rescore/old_rescored.json").write_text(json.dumps(res, indent=1))
keys = ["answer.questions", "answer.short_em", "answer.short_f1", "answer.accuracy", "answer.accuracy_lenient",
        "citation.precision", "citation.recall", "citation.doc_precision", "citation.doc_recall",
        "abstention.unanswerable_questions", "abstention.unanswerable_abstained", "abstention.answerable_abstained",
        "faithfulness"]
for name, parts in res.items():
    for part, m in parts.items():
        print(name, part, {k: m.get(k) for k in keys})
