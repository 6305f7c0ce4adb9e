#!/usr/bin/env python3
"""Validate the `manuals` evaluation set and print its counts.

    .venv/bin/python evals/datasets/manuals/check.py            # documents from ~/.cache/rag-evals/manuals
    .venv/bin/python evals/datasets/manuals/check.py --dest DIR
    .venv/bin/python evals/datasets/manuals/check.py --no-text  # skip the checks that need the documents

Checks documents.json, questions.jsonl and split.json (fields and types, unique
ids, gold documents known, splits by document and consistent with each
question's "split", answerable questions with answers and gold documents,
unanswerable ones without answers) and, with the documents fetched by fetch.py,
each file's sha256 and that each answerable question's canonical (first) gold
answer occurs in the extracted text of its gold page(s) (PDF: pypdfium2, page by
page; HTML: the page text from BeautifulSoup), allowing for differences in
whitespace, hyphenation at line ends, dashes and quote marks, and in case
(except for short answers and codes such as '%I' or 'Q', where case matters). Aliases not
found are listed as notes, not errors. Exit status 1 on any error.

Needs pypdfium2 and beautifulsoup4 (the project's venv has both) for the text checks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DEST = Path.home() / ".cache" / "rag-evals" / "manuals"
KINDS = ("table", "steps", "definition", "heading", "fact")
SPLITS = ("dev", "test")
DOC_FIELDS = {"doc_id": str, "package": str, "version": str, "path_in_package": str, "sha256": str,
              "licence": str, "format": str, "title": str}
Q_FIELDS = {"qid": str, "question": str, "answers": list, "gold_doc_ids": list, "gold_pages": list,
            "answerable": bool, "kind": str, "split": str}
SELF_CORRECTION = re.compile(r"\b(no wait|i mean|scratch that|sorry,|or rather)\b", re.I)

errors: list[str] = []
notes: list[str] = []


def err(msg: str) -> None:
    errors.append(msg)


# ---------------------------------------------------------------- text matching

_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "‛": "'", "`": "'", "´": "'",
                         "“": '"', "”": '"', "„": '"', "″": '"',
                         "–": "-", "—": "-", "‐": "-", "‑": "-", "−": "-", "\xa0": " "})


def normalize(text: str, fold_case: bool = True) -> str:
    """Quotes, dashes and whitespace made plain (and case folded); a word broken at a line end joined again."""
    text = re.sub(r"[\ufffe\u00ad]\s*", "", text)  # pdfium marks a hyphenation point with U+FFFE
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = re.sub(r"\s+", " ", text).strip()
    return text.lower() if fold_case else text


def case_matters(answer: str) -> bool:
    """Codes and symbols ('%I' is not '%i', 'Q' is not 'q'): short answers or ones starting with %, a quote, - or \\."""
    a = answer.strip()
    return len(a) <= 4 or a[0] in "%'\"-\\"


def found(answer: str, text: dict[str, str]) -> bool:
    """Whether answer occurs in a page's text (see Texts.page), whitespace-insensitively."""
    key = "cased" if case_matters(answer) else "folded"
    a = normalize(answer, fold_case=key == "folded")
    if not a:
        return False
    return a in text[key] or re.sub(r"\s+", "", a) in text[key + "_tight"]


class Texts:
    """Extracted text of the fetched documents, page by page for PDFs, cached."""

    def __init__(self, dest: Path, docs: dict[str, dict]):
        self.dest, self.docs, self.cache = dest, docs, {}

    def path(self, doc_id: str) -> Path:
        return self.dest / "files" / f"{doc_id}.{self.docs[doc_id]['format']}"

    def page(self, doc_id: str, page: int | None) -> dict[str, str]:
        key = (doc_id, page)
        if key not in self.cache:
            if self.docs[doc_id]["format"] == "pdf":
                import pypdfium2 as pdfium

                pdf = self.cache.setdefault((doc_id, "pdf"), pdfium.PdfDocument(str(self.path(doc_id))))
                raw = pdf[page - 1].get_textpage().get_text_range()
            else:
                from bs4 import BeautifulSoup

                soup = BeautifulSoup(self.path(doc_id).read_text(encoding="utf-8"), "html.parser")
                main = soup.find("div", attrs={"role": "main"}) or soup.body or soup
                for tag in main(["script", "style"]):
                    tag.decompose()
                raw = main.get_text(" ")
            cased = normalize(raw, fold_case=False)
            self.cache[key] = {"cased": cased, "cased_tight": re.sub(r"\s+", "", cased),
                               "folded": cased.lower(), "folded_tight": re.sub(r"\s+", "", cased.lower())}
        return self.cache[key]


# ---------------------------------------------------------------- checks

def check_documents(docs_list) -> dict[str, dict]:
    docs: dict[str, dict] = {}
    if not isinstance(docs_list, list) or not docs_list:
        err("documents.json: expected a non-empty list of documents")
        return docs
    for i, d in enumerate(docs_list):
        where = f"documents.json[{i}]"
        if not isinstance(d, dict):
            err(f"{where}: not an object")
            continue
        for field, typ in DOC_FIELDS.items():
            if not isinstance(d.get(field), typ) or not d.get(field):
                err(f"{where}: field {field!r} missing or not a non-empty {typ.__name__}")
        if d.get("format") not in ("pdf", "html"):
            err(f"{where}: format must be 'pdf' or 'html'")
        if d.get("format") == "pdf" and not (isinstance(d.get("pages"), int) and d["pages"] > 0):
            err(f"{where}: a PDF needs 'pages' (a positive integer)")
        if not re.fullmatch(r"[0-9a-f]{64}", str(d.get("sha256", ""))):
            err(f"{where}: sha256 must be 64 lower-case hex digits")
        doc_id = d.get("doc_id")
        if doc_id in docs:
            err(f"{where}: doc_id {doc_id!r} repeats")
        elif isinstance(doc_id, str):
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", doc_id):
                err(f"{where}: doc_id {doc_id!r} should be lower-case letters, digits, '.', '_' or '-'")
            docs[doc_id] = d
    return docs


def check_split(split, docs, mixed_formats: bool = True) -> dict[str, str]:
    side_of: dict[str, str] = {}
    if not isinstance(split, dict) or not isinstance(split.get("note"), str):
        err("split.json: expected an object with 'note', 'dev' and 'test'")
        return side_of
    for side in SPLITS:
        ids = split.get(side)
        if not isinstance(ids, list) or not ids:
            err(f"split.json: {side!r} must be a non-empty list of doc_ids")
            continue
        for doc_id in ids:
            if doc_id not in docs:
                err(f"split.json: {side}: {doc_id!r} is not a doc_id of documents.json")
            elif doc_id in side_of:
                err(f"split.json: {doc_id!r} is in both splits (or twice)")
            else:
                side_of[doc_id] = side
        formats = {docs[x]["format"] for x in ids if x in docs}
        if mixed_formats and formats != {"pdf", "html"}:
            err(f"split.json: {side} should hold both PDF and HTML documents, has {sorted(formats)}")
    for doc_id in docs:
        if doc_id not in side_of:
            err(f"split.json: document {doc_id!r} is in neither split")
    return side_of


def check_questions(path: Path, docs, side_of, texts: Texts | None) -> list[dict]:
    questions, qids = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"questions.jsonl line {n}"
        try:
            q = json.loads(line)
        except json.JSONDecodeError as e:
            err(f"{where}: not JSON ({e})")
            continue
        if not isinstance(q, dict):
            err(f"{where}: not a JSON object")
            continue
        bad = [f for f, t in Q_FIELDS.items() if not isinstance(q.get(f), t)]
        if bad:
            err(f"{where}: fields missing or mistyped: {', '.join(bad)}")
            continue
        where = f"{where} ({q['qid']})"
        if q["qid"] in qids:
            err(f"{where}: qid repeats")
        qids.add(q["qid"])
        if not q["question"].strip().endswith("?"):
            err(f"{where}: question should end with '?'")
        if SELF_CORRECTION.search(q["question"]):
            err(f"{where}: question corrects itself mid-sentence")
        if q["kind"] not in KINDS:
            err(f"{where}: kind {q['kind']!r} not one of {KINDS}")
        if q["split"] not in SPLITS:
            err(f"{where}: split {q['split']!r} not one of {SPLITS}")
        if not all(isinstance(a, str) and a.strip() for a in q["answers"]):
            err(f"{where}: answers must be non-empty strings")
        if len(set(q["answers"])) != len(q["answers"]):
            err(f"{where}: an answer repeats")
        if any(len(a.split()) > 20 for a in q["answers"]):
            err(f"{where}: an answer has more than 20 words: keep gold answers short")
        unknown = [d for d in q["gold_doc_ids"] if d not in docs]
        if unknown:
            err(f"{where}: gold_doc_ids {unknown} are not doc_ids of documents.json")
            continue
        if len(set(q["gold_doc_ids"])) != len(q["gold_doc_ids"]):
            err(f"{where}: a gold_doc_id repeats")
        sides = {side_of.get(d) for d in q["gold_doc_ids"]}
        if len(sides) > 1:
            err(f"{where}: gold documents lie in different splits")
        elif q["gold_doc_ids"] and sides != {q["split"]}:
            err(f"{where}: split {q['split']!r} but its document is in {sides.pop()!r}")
        if not q["gold_doc_ids"]:
            err(f"{where}: every question needs a gold document (the near miss for an unanswerable one): "
                f"the split follows the document")
        pages = q["gold_pages"]
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in pages):
            err(f"{where}: gold_pages must be integers")
            continue
        near = q.get("near_miss_pages", [])
        if not isinstance(near, list) or not all(isinstance(p, int) for p in near):
            err(f"{where}: near_miss_pages must be a list of integers")
            near = []
        for p in pages + near:
            for d in q["gold_doc_ids"]:
                if docs[d]["format"] == "html":
                    err(f"{where}: page numbers given for the HTML document {d!r}")
                elif not 1 <= p <= docs[d]["pages"]:
                    err(f"{where}: page {p} outside 1..{docs[d]['pages']} of {d!r}")
        if q["answerable"]:
            if not q["answers"]:
                err(f"{where}: an answerable question needs answers")
            if not q["gold_doc_ids"]:
                err(f"{where}: an answerable question needs gold_doc_ids")
            pdf_gold = [d for d in q["gold_doc_ids"] if docs[d]["format"] == "pdf"]
            if pdf_gold and not pages:
                err(f"{where}: an answerable question on a PDF needs gold_pages")
            if pages and len(q["gold_doc_ids"]) != 1:
                err(f"{where}: gold_pages are only defined for a single gold document")
            if near:
                err(f"{where}: near_miss_pages are for unanswerable questions")
            if texts is not None and q["answers"] and not errors_for(where):
                check_answer_text(q, where, docs, texts)
        else:
            if q["answers"]:
                err(f"{where}: an unanswerable question must have no answers")
            if pages:
                err(f"{where}: an unanswerable question has no gold_pages (use near_miss_pages)")
        questions.append(q)
    return questions


def errors_for(where: str) -> bool:
    return any(e.startswith(where) for e in errors)


def check_answer_text(q, where, docs, texts: Texts) -> None:
    doc_id = q["gold_doc_ids"][0]
    units = q["gold_pages"] if docs[doc_id]["format"] == "pdf" else [None]
    hits = {a: [] for a in q["answers"]}
    for unit in units:
        text = texts.page(doc_id, unit)
        page_hits = [a for a in q["answers"] if found(a, text)]
        for a in page_hits:
            hits[a].append(unit)
        if not page_hits:
            err(f"{where}: none of the answers occurs on gold page {unit} of {doc_id!r}")
    canonical = q["answers"][0]
    if not hits[canonical]:
        err(f"{where}: canonical answer {canonical!r} not found on its gold page(s) {units} of {doc_id!r}")
    for a, at in hits.items():
        if not at and a != canonical:
            notes.append(f"{q['qid']}: alias {a!r} is not in the text (a paraphrase)")


def check_balance(questions, docs, side_of) -> None:
    total = len(questions)
    if total < 90:
        err(f"only {total} questions (at least 90 wanted)")
    table = sum(q["kind"] == "table" for q in questions)
    if table * 3 < total:
        err(f"only {table} table questions: at least a third of {total} wanted")
    unans = sum(not q["answerable"] for q in questions)
    if unans < 24:
        err(f"only {unans} unanswerable questions (at least 24 wanted)")
    for side in SPLITS:
        qs = [q for q in questions if q["split"] == side]
        share = len(qs) / total if total else 0
        if not 0.4 <= share <= 0.6:
            err(f"split {side} holds {len(qs)} of {total} questions ({share:.0%}): keep about half on each side")
        if not any(q["kind"] == "table" for q in qs) or not any(not q["answerable"] for q in qs):
            err(f"split {side} needs table and unanswerable questions")
        for fmt in ("pdf", "html"):
            if not any(docs[q["gold_doc_ids"][0]]["format"] == fmt for q in qs if q["gold_doc_ids"]):
                err(f"split {side} has no question on a {fmt.upper()} document")
    for doc_id in docs:
        if not any(doc_id in q["gold_doc_ids"] for q in questions):
            err(f"document {doc_id!r} has no question")


def check_files(docs, dest: Path) -> bool:
    ok = True
    for doc_id, d in docs.items():
        path = dest / "files" / f"{doc_id}.{d['format']}"
        if not path.is_file():
            err(f"{path} not found: run `python {HERE / 'fetch.py'}"
                f"{'' if dest == DEFAULT_DEST else ' --dest ' + str(dest)}` first (or pass --no-text)")
            ok = False
            continue
        h = hashlib.sha256(path.read_bytes()).hexdigest()
        if h != d["sha256"]:
            err(f"{path}: sha256 {h} differs from documents.json ({d['sha256']}): run fetch.py again")
            ok = False
    return ok


# ---------------------------------------------------------------- report

def print_counts(questions, docs) -> None:
    cols = [(s, a) for s in SPLITS for a in (True, False)]
    head = ["kind"] + [f"{s} {'ans' if a else 'unans'}" for s, a in cols] + ["dev", "test", "all"]
    rows = []
    for kind in KINDS + ("all",):
        qs = [q for q in questions if kind == "all" or q["kind"] == kind]
        c = Counter((q["split"], q["answerable"]) for q in qs)
        per = Counter(q["split"] for q in qs)
        rows.append([kind] + [str(c[col]) for col in cols] + [str(per["dev"]), str(per["test"]), str(len(qs))])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths))) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()
    print("| doc_id | format | split | questions | table | unanswerable |")
    print("|---|---|---|---:|---:|---:|")
    for doc_id, d in docs.items():
        qs = [q for q in questions if q["gold_doc_ids"] and q["gold_doc_ids"][0] == doc_id]
        side = qs[0]["split"] if qs else "-"
        print(f"| {doc_id} | {d['format']} | {side} | {len(qs)} | {sum(q['kind'] == 'table' for q in qs)} | "
              f"{sum(not q['answerable'] for q in qs)} |")


def main(argv=None, folder: Path = HERE, balance: bool = True) -> int:
    """Check the set in `folder` (this one, or another set of the same layout: `evals/datasets/postgres`); the
    balance this set promises (90 questions, a third on tables…) only where `balance`."""
    default_dest = DEFAULT_DEST.parent / folder.name
    ap = argparse.ArgumentParser(description=f"Validate the {folder.name} evaluation set and print its counts.")
    ap.add_argument("--dest", type=Path, default=default_dest, help=f"where fetch.py put the documents (default {default_dest})")
    ap.add_argument("--no-text", action="store_true", help="skip the checks that need the fetched documents")
    ap.add_argument("--notes", action="store_true", help="also list the aliases that are not in the text")
    args = ap.parse_args(argv)
    dest = args.dest.expanduser()

    docs = check_documents(json.loads((folder / "documents.json").read_text(encoding="utf-8")))
    side_of = check_split(json.loads((folder / "split.json").read_text(encoding="utf-8")), docs, mixed_formats=balance)
    texts = None
    if not args.no_text and check_files(docs, dest):
        texts = Texts(dest, docs)
    questions = check_questions(folder / "questions.jsonl", docs, side_of, texts)
    if balance:
        check_balance(questions, docs, side_of)

    print_counts(questions, docs)
    print()
    if texts is None:
        print("gold answers NOT checked against the documents (--no-text or files missing)")
    else:
        checked = sum(q["answerable"] for q in questions)
        print(f"gold answers checked against the document text: {checked} answerable questions; "
              f"{len(notes)} aliases are paraphrases not in the text" + ("" if args.notes else " (--notes lists them)"))
        if args.notes:
            for n in notes:
                print("  note:", n)
    if errors:
        print(f"\n{len(errors)} error(s):", file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
