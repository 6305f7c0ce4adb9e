"""Evaluation datasets: reading and checking a dataset folder, gold answer spans, splits and question samples.

A dataset is a folder with `corpus.jsonl` (`doc_id`, `title`, `text`, optional
`url`) and `questions.jsonl` (`qid`, `question`, `answers`, `gold_doc_ids`,
`answerable`, optional `history`: earlier questions of the same conversation).
A `split.json` names the article titles of each split ("dev" and "test"; squad-dev-mini: "dev" and "seen").

A file-backed dataset has `documents.json` instead of `corpus.jsonl`: one object a document
(`doc_id`, `format`, optional `title`, `sha256`, `pages`), read from `<files>/<doc_id>.<format>` through
the tool's own loaders (`dataset_files`), so the extraction measured is the one a user gets. Its
questions may carry `gold_pages` (1-based PDF pages), `kind` and `split`; its `split.json` lists doc_ids.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rag.core.errors import ConfigError


@dataclass
class Dataset:
    name: str
    corpus: list[dict]
    questions: list[dict]
    # corpus rows are documents.json entries (no `text`): ingested from files, see `dataset_files`
    from_files: bool = False


@dataclass(frozen=True)
class DocumentFile:
    """A file-backed dataset's document on disk."""

    doc_id: str
    path: Path
    sha256: str


def load_dataset(folder: Path) -> Dataset:
    """Read and check a dataset folder; every problem names the file and line to fix.

    Raises:
        ConfigError: a file is missing, a line is not a JSON object, a field is
            missing or mistyped, an id repeats, or a gold document is not in the corpus.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"dataset folder {folder} not found: give a folder with corpus.jsonl and questions.jsonl")
    from_files = not (folder / "corpus.jsonl").exists() and (folder / "documents.json").is_file()
    corpus = _documents(folder / "documents.json") if from_files else []
    doc_ids = {d["doc_id"] for d in corpus}
    for row, where in [] if from_files else _read_jsonl(folder / "corpus.jsonl"):
        doc = _corpus_row(row, where)
        if doc["doc_id"] in doc_ids:
            raise ConfigError(f"{where}: doc_id {doc['doc_id']!r} appears twice")
        doc_ids.add(doc["doc_id"])
        corpus.append(doc)
    questions, qids = [], set()
    for row, where in _read_jsonl(folder / "questions.jsonl"):
        q = _question_row(row, where)
        if q["qid"] in qids:
            raise ConfigError(f"{where}: qid {q['qid']!r} appears twice")
        unknown = [d for d in q["gold_doc_ids"] if d not in doc_ids]
        if unknown:
            raise ConfigError(f"{where}: gold_doc_ids {unknown} are not doc_ids in "
                              f"{'documents.json' if from_files else 'corpus.jsonl'}")
        qids.add(q["qid"])
        questions.append(q)
    if not corpus or not questions:
        raise ConfigError(f"{folder}: corpus.jsonl and questions.jsonl must each hold at least one row")
    return Dataset(folder.name, corpus, questions, from_files=from_files)


def _documents(path: Path) -> list[dict]:
    """The rows of a file-backed dataset's documents.json (checked; `format` is the file's extension)."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid JSON ({exc.msg})") from exc
    if not isinstance(rows, list) or not rows:
        raise ConfigError(f"{path.name}: expected a non-empty list of documents")
    docs, seen = [], set()
    for i, row in enumerate(rows):
        where = f"{path.name} [{i}]"
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        doc = {"doc_id": str(_field(row, "doc_id", (str, int), where)), "format": _field(row, "format", str, where),
               "title": _field(row, "title", str, where, ""), "sha256": _field(row, "sha256", str, where, ""),
               "pages": _field(row, "pages", int, where, None)}
        if doc["doc_id"] in seen:
            raise ConfigError(f"{where}: doc_id {doc['doc_id']!r} appears twice")
        seen.add(doc["doc_id"])
        docs.append(doc)
    return docs


def default_files_dir(name: str, home: Path | None = None) -> Path:
    """Where a dataset's fetch script puts its files: `~/.cache/rag-evals/<name>/files`."""
    return (home or Path.home()) / ".cache" / "rag-evals" / name / "files"


def dataset_files(dataset: Dataset, files: Path, folder: Path | None = None) -> list[DocumentFile]:
    """The files of a file-backed dataset's documents (`<files>/<doc_id>.<format>`), checked against documents.json.

    Raises:
        ConfigError: a file is missing (naming the fetch command) or its sha256 is not the one in documents.json.
    """
    files = Path(files).expanduser()
    out, missing = [], []
    for doc in dataset.corpus:
        path = files / f"{doc['doc_id']}.{doc['format']}"
        if not path.is_file():
            missing.append(path.name)
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if doc.get("sha256") and digest != doc["sha256"]:
            raise ConfigError(f"{path} is not the file documents.json describes (sha256 {digest[:12]}…, expected "
                              f"{doc['sha256'][:12]}…): {_fetch_hint(dataset, files, folder)} again")
        out.append(DocumentFile(doc["doc_id"], path, digest))
    if missing:
        raise ConfigError(f"{len(missing)} document file(s) of {dataset.name} missing from {files} "
                          f"({', '.join(missing[:5])}): {_fetch_hint(dataset, files, folder)}, or give --files DIR")
    return out


def _fetch_hint(dataset: Dataset, files: Path, folder: Path | None) -> str:
    script = folder / "fetch.py" if folder is not None else None
    if script is None or not script.is_file():
        return "put each document there as <doc_id>.<format>"
    dest = "" if files == default_files_dir(dataset.name) else f" --dest {files.parent}"
    return f"fetch them with `python {script}{dest}`"


def _read_jsonl(path: Path):
    if not path.is_file():
        raise ConfigError(f"{path} not found: a dataset folder needs corpus.jsonl and questions.jsonl (see evals/README.md)")
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path.name} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ConfigError(f"{where}: expected a JSON object")
            yield row, where


def _field(row: dict, name: str, kind: type, where: str, default: Any = ...) -> Any:
    if name not in row or row[name] is None:
        if default is ...:
            raise ConfigError(f"{where}: missing field {name!r}")
        return default
    value = row[name]
    if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{where}: {name!r} must be a list of strings")
    if kind is not list and not isinstance(value, kind):
        names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{where}: {name!r} must be a {names}")
    return value


def _corpus_row(row: dict, where: str) -> dict:
    out = {"doc_id": str(_field(row, "doc_id", (str, int), where)), "text": _field(row, "text", str, where),
           "title": _field(row, "title", str, where, ""), "url": _field(row, "url", str, where, None)}
    if not out["text"].strip():
        raise ConfigError(f"{where}: 'text' is empty")
    return out


def _question_row(row: dict, where: str) -> dict:
    q = {"qid": str(_field(row, "qid", (str, int), where)), "question": _field(row, "question", str, where),
         "answers": _field(row, "answers", list, where, []), "gold_doc_ids": _field(row, "gold_doc_ids", list, where, []),
         "answerable": _field(row, "answerable", bool, where, True), "history": _field(row, "history", list, where, []),
         "answer_starts": _starts(row, where), "evidence": _field(row, "evidence", list, where, []),
         "list_items": _field(row, "list_items", list, where, [])}
    # page-level gold and the question's own kind and split: only where given, so corpus sets' rows stay as they were
    for name in ("kind", "split"):
        if row.get(name) is not None:
            q[name] = _field(row, name, str, where)
    for name in ("gold_pages", "near_miss_pages"):
        if name in row:
            q[name] = _pages(row, name, where)
    if q["answerable"] and not q["answers"]:
        raise ConfigError(f"{where}: an answerable question needs at least one gold answer in 'answers'")
    return q


def _pages(row: dict, name: str, where: str) -> list[int]:
    value = row.get(name) or []
    if not (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ConfigError(f"{where}: {name!r} must be a list of 1-based page numbers")
    return value


def _starts(row: dict, where: str) -> list[int]:
    value = row.get("answer_starts") or []
    if not (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"{where}: 'answer_starts' must be a list of character offsets (integers)")
    return value


def gold_spans(q: dict, texts: dict[str, str]) -> list[tuple[str, int, int]]:
    """The gold answers' character spans (doc_id, start, end) in the gold documents.

    `answer_starts` are offsets into a gold document (SQuAD keeps one per annotator, not one per
    deduplicated answer), so each offset is paired with every answer that is written there.
    `evidence` (sentences copied from a gold document) places the answer where `answer_starts` are not
    given: the span of a gold answer inside the evidence, else the evidence itself.
    """
    spans = set()
    for doc in q["gold_doc_ids"]:
        text = _plain(texts.get(doc, ""))
        for start in q.get("answer_starts") or []:
            for gold in q["answers"]:
                if text[start:start + len(gold)] == _plain(gold):
                    spans.add((doc, start, start + len(gold)))
        for evidence in q.get("evidence") or []:
            at = text.find(_plain(evidence))
            if at < 0:
                continue
            golds = [*q["answers"], *(a for item in q.get("list_items", []) for a in item.split("|"))]
            inside = [(_plain(evidence).find(_plain(g)), len(g)) for g in golds]
            inside = [(i, n) for i, n in inside if i >= 0]
            spans.update((doc, at + i, at + i + n) for i, n in inside)
            if not inside:
                spans.add((doc, at, at + len(evidence)))
    return sorted(spans)


def _plain(text: str) -> str:
    """Lower case, no-break spaces and curly apostrophes made plain (same length, so offsets hold)."""
    return text.replace("\xa0", " ").replace("’", "'").lower()


def load_split(folder: Path, name: str) -> set[str]:
    """The document titles of split `name` ("dev", "test", "seen", …) from the dataset's `split.json`."""
    path = Path(folder) / "split.json"
    if not path.is_file():
        raise ConfigError(f"{path} not found: --split needs a split.json in the dataset folder (see evals/README.md)")
    splits = json.loads(path.read_text(encoding="utf-8"))
    if name not in splits or not isinstance(splits[name], list):
        raise ConfigError(f"{path} has no split {name!r}: use one of {', '.join(k for k in splits if k != 'note')}")
    return set(splits[name])


def split_dataset(dataset: Dataset, titles: set[str]) -> Dataset:
    """The questions whose gold documents belong to articles titled `titles` (the whole corpus stays)."""
    title_of = {d["doc_id"]: d["title"] for d in dataset.corpus}
    qs = [q for q in dataset.questions if q["gold_doc_ids"] and title_of[q["gold_doc_ids"][0]] in titles]
    return replace(dataset, questions=qs)


def select_split(dataset: Dataset, folder: Path, name: str) -> Dataset:
    """Split `name`: each question by its own `split` field where it has one, else by `split.json` (titles).

    A file-backed dataset keeps only that split's documents (their doc_ids or titles in `split.json`, or
    without one the gold documents of the split's questions), so the other split's files are never
    ingested; a corpus dataset keeps its whole corpus, as before.
    """
    has_file = (Path(folder) / "split.json").is_file()
    listed = load_split(folder, name) if has_file or not all("split" in q for q in dataset.questions) else None
    if listed is None and name not in {q["split"] for q in dataset.questions}:
        splits = sorted({q["split"] for q in dataset.questions})
        raise ConfigError(f"no question of {dataset.name} is in split {name!r}: use one of {', '.join(splits)}")
    title_of = {d["doc_id"]: d["title"] for d in dataset.corpus}

    def in_split(q: dict) -> bool:
        if "split" in q:
            return q["split"] == name
        gold = q["gold_doc_ids"][0] if q["gold_doc_ids"] else None
        return gold is not None and (title_of[gold] in listed or (dataset.from_files and gold in listed))

    qs = [q for q in dataset.questions if in_split(q)]
    if not dataset.from_files:
        return replace(dataset, questions=qs)
    if listed is not None:
        docs = [d for d in dataset.corpus if d["doc_id"] in listed or d["title"] in listed]
    else:
        gold = {g for q in qs for g in q["gold_doc_ids"]}
        docs = [d for d in dataset.corpus if d["doc_id"] in gold]
    return replace(dataset, corpus=docs, questions=qs)


def select_kind(dataset: Dataset, kind: str) -> Dataset:
    """The questions of one `kind` (table, steps, ...); the documents stay."""
    qs = [q for q in dataset.questions if q.get("kind") == kind]
    if not qs:
        kinds = sorted({q["kind"] for q in dataset.questions if "kind" in q})
        raise ConfigError(f"no question of {dataset.name} has kind {kind!r}"
                          + (f": use one of {', '.join(kinds)}" if kinds else " (its questions have no 'kind' field)"))
    return replace(dataset, questions=qs)


def read_qids(path: Path) -> list[str]:
    """A list of qids, one a line (blank lines and `#` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} not found: give a file of qids, one a line")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def select_questions(questions: list[dict], limit: int | None, seed: int | None) -> list[dict]:
    """Shuffle with `seed` (if given), then keep the first `limit`."""
    qs = list(questions)
    if seed is not None:
        random.Random(seed).shuffle(qs)
    return qs[:limit] if limit else qs
