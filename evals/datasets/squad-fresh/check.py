"""Check squad-fresh: answer spans, ids, fields, and (for reading) where each near miss's key words occur.

Usage: python evals/datasets/squad-fresh/check.py [--quiet]

Validates every question (unique qid; gold doc in the corpus; each answer is the substring of the
gold paragraph at its answer_starts offset; list_items found in the gold paragraph; unanswerable rows
have no answers and an `edit`; near_miss_of names an answerable question of the same split), then, for
each near miss, prints the corpus paragraphs that hold most of the question's key content words and the
paragraphs that mention its changed entity/attribute (CHANGED below), so a reader can confirm that none
of the 620 paragraphs answers it. Exit status 1 on any validation error.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
STOP = set("""a an the of in on at to for from by with and or but is are was were be been being do does did
what which who whom whose when where why how many much long old year years it its this that these those
as into than then there their they he she his her him them after before during about over under up down
per any all some each every not no can could would should will has have had s one two three first""".split())

# the changed entity or attribute of each near miss (a regex, case-insensitive): every paragraph
# mentioning it is printed, so a reader can confirm none answers the question
CHANGED = {
    "fresh-dev-006": r"co-MVP|Randy White|Super Bowl XII\b",
    "fresh-dev-008": r"XLIX|Katy Perry",
    "fresh-dev-012": r"merge ?sort",
    "fresh-dev-016": r"Ladner",
    "fresh-dev-018": r"Turing Award|Hartmanis|Stearns",
    "fresh-dev-020": r"Long Beach",
    "fresh-dev-022": r"Los Angeles Times|the Times\b",
    "fresh-dev-024": r"Northridge",
    "fresh-dev-026": r"container|third.busiest",
    "fresh-dev-031": r"Setanta",
    "fresh-dev-033": r"broadband",
    "fresh-dev-035": r"Sky Q Silver|£|price",
    "fresh-dev-037": r"highlights",
    "fresh-dev-041": r"Monash",
    "fresh-dev-043": r"Buckland|\briots?\b",
    "fresh-dev-045": r"Holden",
    "fresh-dev-047": r"beef",
    "fresh-dev-052": r"Rochelle",
    "fresh-dev-054": r"Historical and Critical|Bayle",
    "fresh-dev-056": r"Denmark|Danish",
    "fresh-test-003": r"Szpilman",
    "fresh-test-006": r"Home Army|Uprising",
    "fresh-test-008": r"stock exchange",
    "fresh-test-014": r"Tabula|al-Idrisi",
    "fresh-test-016": r"\bEmma\b|Ethelred",
    "fresh-test-018": r"Templar",
    "fresh-test-021": r"Bayeux|tapestry",
    "fresh-test-023": r"Milka",
    "fresh-test-025": r"Budapest|Telegraph Office",
    "fresh-test-027": r"laboratory fire|\bfire of\b",
    "fresh-test-029": r"death mask|sculpt",
    "fresh-test-036": r"occupational stress",
    "fresh-test-038": r"\bWelsh\b",
    "fresh-test-040": r"median salar",
    "fresh-test-043": r"\bsisters?\b",
    "fresh-test-045": r"Katharina|von Bora|buried",
    "fresh-test-047": r"commemorat|Calendar of Saints",
    "fresh-test-054": r"Trevithick|miles per hour|\bmph\b|km/h",
    "fresh-test-057": r"Energiprojekt|low-pressure engine",
    "fresh-test-059": r"indicator",
}


def keywords(question: str) -> list[str]:
    words = re.findall(r"[\w'’.,-]+", question)
    out = []
    for w in words:
        w = w.strip(".,'’?-")
        if len(w) > 1 and w.lower() not in STOP and w.lower() not in out:
            out.append(w.lower())
    return out


def main() -> int:
    quiet = "--quiet" in sys.argv
    corpus = {}
    for line in open(HERE / "corpus.jsonl", encoding="utf-8"):
        d = json.loads(line)
        corpus[d["doc_id"]] = d
    qs = [json.loads(l) for l in open(HERE / "questions.jsonl", encoding="utf-8") if l.strip()]
    errors = []
    qids = Counter(q["qid"] for q in qs)
    errors += [f"{k}: qid appears {n} times" for k, n in qids.items() if n > 1]
    by_id = {q["qid"]: q for q in qs}
    splits = json.loads((HERE / "split.json").read_text(encoding="utf-8"))
    for q in qs:
        qid = q["qid"]
        for field in ("qid", "question", "answers", "answer_starts", "gold_doc_ids", "answerable", "split"):
            if field not in q:
                errors.append(f"{qid}: missing {field}")
        if len(q["gold_doc_ids"]) != 1 or q["gold_doc_ids"][0] not in corpus:
            errors.append(f"{qid}: gold_doc_ids must name one corpus paragraph")
            continue
        doc = corpus[q["gold_doc_ids"][0]]
        if doc["title"] not in splits.get(q["split"], []):
            errors.append(f"{qid}: article {doc['title']} is not in split {q['split']}")
        text = doc["text"]
        if len(q["answers"]) != len(q["answer_starts"]):
            errors.append(f"{qid}: answers and answer_starts differ in length")
        for a, s in zip(q["answers"], q["answer_starts"]):
            if text[s:s + len(a)] != a:
                errors.append(f"{qid}: answer {a!r} is not at offset {s} of {doc['doc_id']}")
        for item in q.get("list_items", []):
            if not any(alias.lower() in text.lower() for alias in item.split("|")):
                errors.append(f"{qid}: list item {item!r} not in the gold paragraph")
        if q["answerable"]:
            if not 1 <= len(q["answers"]) <= 3:
                errors.append(f"{qid}: an answerable question needs 1-3 answers")
            if "near_miss_of" in q or "edit" in q:
                errors.append(f"{qid}: near_miss_of/edit on an answerable question")
        else:
            if q["answers"] or q["answer_starts"]:
                errors.append(f"{qid}: an unanswerable question must have no answers")
            if not q.get("edit"):
                errors.append(f"{qid}: near miss without an 'edit'")
            twin = q.get("near_miss_of")
            if twin is not None and (twin not in by_id or not by_id[twin]["answerable"]
                                     or by_id[twin]["split"] != q["split"]):
                errors.append(f"{qid}: near_miss_of {twin!r} is not an answerable question of its split")
            if re.search(r"\bI mean\b|\bor rather\b|\bsorry\b|\bno wait\b", q["question"], re.I):
                errors.append(f"{qid}: reads like a self-correction")

    counts = Counter((q["split"], "answerable" if q["answerable"] else "near miss") for q in qs)
    print("counts:", dict(sorted(counts.items())))
    print("gold paragraphs used:", len({q['gold_doc_ids'][0] for q in qs}),
          "| articles:", dict(Counter(corpus[q['gold_doc_ids'][0]]['title'] for q in qs)))

    for q in qs:
        if q["answerable"]:
            continue
        kws = keywords(q["question"])
        need = max(2, round(0.6 * len(kws)))
        scored = []
        for d in corpus.values():
            low = d["text"].lower()
            hit = [k for k in kws if k in low]
            if len(hit) >= need:
                scored.append((len(hit), d["doc_id"], hit))
        scored.sort(reverse=True)
        changed = CHANGED.get(q["qid"])
        changed_hits = [d["doc_id"] for d in corpus.values() if changed and re.search(changed, d["text"], re.I)]
        print(f"\n[{q['qid']}] {q['question']}\n  edit: {q['edit']}; near_miss_of: {q.get('near_miss_of', '-')};"
              f" gold: {q['gold_doc_ids'][0]}")
        print(f"  key words {kws}: {len(scored)} paragraph(s) with >= {need}:",
              ", ".join(f"{doc}({n})" for n, doc, _ in scored[:8]) or "none")
        if changed:
            print(f"  changed /{changed}/: {len(changed_hits)} paragraph(s):", ", ".join(changed_hits) or "none")
        if not quiet:
            for doc in dict.fromkeys([doc for _, doc, _ in scored[:3]] + changed_hits[:4]):
                text = corpus[doc]["text"]
                m = re.search(changed, text, re.I) if changed else None
                at = m.start() if m else 0
                print(f"    {doc}: …{text[max(0, at - 150):at + 250]}…")
    if errors:
        print("\nERRORS:\n  " + "\n  ".join(errors))
        return 1
    print(f"\nOK: {len(qs)} questions valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
