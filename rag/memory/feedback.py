"""Feedback on answers (thumbs up/down, a comment, a correction), and its export as an evaluation dataset.

Each record keeps a full copy of what was rated: the question, the earlier
questions of its conversation, and the answer's JSON with its citations and
retrieved passages, so it outlives the conversation it came from. Stored in the
same SQLite file as the conversations (`rag.memory.conversations`); one record per
rated answer (rating again replaces it).

`export_dataset` writes the folder `rag eval --dataset` reads (evals/README.md):

- `questions.jsonl`: a thumbs-up answer becomes a question whose gold answer is
  its short answer and whose gold documents are the cited ones; a correction
  becomes the gold answer (the gold documents: the retrieved passages holding it);
  a thumbs-up abstention becomes an unanswerable question; an abstention marked
  wrong, with a correction, an answerable one (so `rag eval` counts it as a
  "wrong abstention" until the tool answers it).
- `corpus.jsonl`: every document any of those answers retrieved, its text rebuilt
  from the collection (or, if it was deleted since, from the stored passages).
- `review.jsonl`: answers marked wrong without a correction: they need a gold
  answer from a person before they can be questions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from rag.core.errors import ConfigError, ConversationError
from rag.core.types import Answer, Chunk
from rag.memory.conversations import new_id, now, reading, transaction
from rag.text.markers import strip_markers
from rag.text.normalize import contains_answer, normalize_answer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    rated TEXT NOT NULL,
    turn_id TEXT,
    conversation_id TEXT,
    rating INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    correction TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    history_json TEXT NOT NULL,
    answer_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    UNIQUE (collection, rated)
);
"""

_UP = {"up", "+1", "1", "good", "yes", "true", "helpful", "👍", "thumbs up"}
_DOWN = {"down", "-1", "bad", "no", "false", "wrong", "unhelpful", "👎", "thumbs down"}


@dataclass(frozen=True)
class Feedback:
    """A rating (+1 / -1) of one answer, with what was asked and answered."""

    feedback_id: str
    collection: str
    rating: int
    question: str
    answer: Answer
    history: tuple[str, ...] = ()  # earlier questions of the conversation, oldest first
    comment: str = ""
    correction: str = ""
    turn_id: str | None = None
    conversation_id: str | None = None
    created_at: str = ""
    owner: str = ""  # the user who rated ("": no login)

    @property
    def thumbs(self) -> str:
        return "up" if self.rating > 0 else "down"


def parse_rating(rating) -> int:
    """+1 or -1 from `1`/`-1`, `True`/`False`, "up"/"down", "good"/"bad", 👍/👎."""
    if isinstance(rating, bool):
        return 1 if rating else -1
    if isinstance(rating, (int, float)) and rating in (1, -1):
        return int(rating)
    key = str(rating).strip().lower()
    if key in _UP:
        return 1
    if key in _DOWN:
        return -1
    raise ConversationError(f"unknown rating {rating!r}: use 'up' or 'down' (or 1 / -1)")


def answer_key(answer: Answer, history: Iterable[str] = ()) -> str:
    """What identifies an answer rated without a saved turn: the same answer rated twice is one record."""
    data = json.dumps([list(history), answer.question, answer.text,
                       [c.chunk_id for c in answer.citations]], ensure_ascii=False)
    return "answer:" + hashlib.sha256(data.encode()).hexdigest()[:20]


class FeedbackStore:
    """The feedback of one collection, given by one owner (`owner=None`: everyone's; see
    `rag.memory.conversations`)."""

    def __init__(self, path: Path, collection: str, owner: str | None = None):
        self.path = Path(path)
        self.collection = collection
        self.owner = owner

    def record(self, answer: Answer, rating, *, comment: str | None = None, correction: str | None = None,
               question: str | None = None, history: Iterable[str] = (), turn_id: str | None = None,
               conversation_id: str | None = None) -> Feedback:
        """Store (or replace) the rating of one answer."""
        rating = parse_rating(rating)
        history = tuple(str(q) for q in history)
        question = (question or answer.question or "").strip()
        if not question:
            raise ConversationError("feedback needs the question that was asked: the answer has none")
        owner = self.owner or ""
        fb = Feedback(new_id(), self.collection, rating, question, answer, history,
                      (comment or "").strip(), (correction or "").strip(), turn_id, conversation_id, now(), owner)
        rated = f"turn:{turn_id}" if turn_id else answer_key(answer, history)
        if owner and not turn_id:  # two users rating the same answer: one record each
            rated = f"user:{owner}:{rated}"
        with transaction(self.path, _SCHEMA) as con:
            con.execute("DELETE FROM feedback WHERE collection = ? AND rated = ?", (self.collection, rated))
            con.execute(
                "INSERT INTO feedback (id, collection, rated, turn_id, conversation_id, rating, comment, correction, "
                "question, history_json, answer_json, created_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (fb.feedback_id, self.collection, rated, turn_id, conversation_id, rating, fb.comment, fb.correction,
                 question, json.dumps(list(history), ensure_ascii=False),
                 json.dumps(answer.to_dict(), ensure_ascii=False), fb.created_at, owner))
        return fb

    def list(self) -> list[Feedback]:
        """This collection's feedback (this owner's, unless `owner` is None), newest first."""
        mine, args = ("", ()) if self.owner is None else (" AND owner = ?", (self.owner,))
        with reading(self.path, _SCHEMA) as con:
            rows = con.execute(f"SELECT * FROM feedback WHERE collection = ?{mine} ORDER BY created_at DESC, rowid DESC",
                               (self.collection, *args)).fetchall()
        out = []
        for r in rows:
            try:
                answer = Answer.from_dict(json.loads(r["answer_json"]))
                history = tuple(json.loads(r["history_json"]))
            except (ValueError, TypeError, KeyError) as exc:
                raise ConversationError(f"feedback record {r['id']} cannot be read ({exc})") from exc
            out.append(Feedback(r["id"], r["collection"], r["rating"], r["question"], answer, history,
                                r["comment"], r["correction"], r["turn_id"], r["conversation_id"], r["created_at"],
                                r["owner"]))
        return out


# --- export as an evaluation dataset -----------------------------------------------------------
MARKER = ".rag-feedback-export"  # in a folder an export wrote: a later export may replace its files
DocumentLookup = Callable[[str], "tuple[str, str, str | None] | None"]  # source -> (text, title, url) or None


@dataclass
class FeedbackExport:
    """What `export_dataset` wrote."""

    folder: Path
    questions: int = 0
    answerable: int = 0
    unanswerable: int = 0
    documents: int = 0
    needs_review: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.questions} questions ({self.answerable} answerable, {self.unanswerable} unanswerable), "
                f"{self.documents} documents, {self.needs_review} to review; wrote {self.folder}")


def question_row(fb: Feedback) -> dict | None:
    """The `questions.jsonl` row a feedback record becomes, or None when it needs a person's gold answer."""
    a = fb.answer
    row = {"qid": f"fb-{fb.feedback_id}", "question": fb.question, "history": list(fb.history)}
    if fb.correction:
        golds = [fb.correction]
        holding = [p.source for p in a.passages if contains_answer(p.text, golds)]
        return row | {"answers": golds, "gold_doc_ids": list(dict.fromkeys(holding)), "answerable": True}
    if fb.rating < 0:
        return None
    if a.abstained:
        return row | {"answers": [], "gold_doc_ids": [], "answerable": False}
    gold = (a.short_answer or "").strip() or strip_markers(a.text)
    cited = [c.source for c in a.citations]
    return row | {"answers": [gold], "gold_doc_ids": list(dict.fromkeys(cited)), "answerable": True}


def rebuild_text(chunks: Iterable[Chunk]) -> str:
    """A document's text from its chunks (`text == document[start:end]`; overlaps merged, gaps as blank lines)."""
    out: list[str] = []
    pos = None  # the document offset where `out` ends
    for c in sorted(chunks, key=lambda c: (c.start, c.end)):
        if pos is not None and c.start <= pos and len(c.text) == c.end - c.start:
            if c.end > pos:
                out.append(c.text[pos - c.start:])
                pos = c.end
        else:
            out += ["\n\n", c.text] if out else [c.text]
            pos = c.end
    return "".join(out)


def export_dataset(items: list[Feedback], folder: Path, documents: DocumentLookup) -> FeedbackExport:
    """Write `questions.jsonl`, `corpus.jsonl` and `review.jsonl` (see the module docstring) into `folder`.

    Args:
        items: feedback records, newest first; of several on the same question
            (and conversation so far) only the newest is used.
        folder: the dataset folder, created if needed; its three files are replaced when an
            earlier export wrote them, else (a hand-made dataset) it is an error.
        documents: the full text, title and url of a source still in the collection, else None.
    """
    folder = Path(folder)
    mine = (folder / MARKER).is_file()
    theirs = [n for n in ("questions.jsonl", "corpus.jsonl", "review.jsonl") if (folder / n).exists()]
    if theirs and not mine:
        raise ConfigError(f"{folder} already holds {', '.join(theirs)} not written by a feedback export: "
                          "choose another --out folder (an export never replaces a dataset it did not write)")
    result = FeedbackExport(folder)
    rows: list[dict] = []
    review: list[dict] = []
    used: list[Feedback] = []
    seen: set[tuple] = set()
    for fb in items:
        key = (normalize_answer(fb.question), tuple(normalize_answer(q) for q in fb.history))
        if key in seen:
            result.skipped.append(f"{fb.feedback_id}: an older rating of the same question")
            continue
        seen.add(key)
        row = question_row(fb)
        if row is None:
            review.append({"feedback_id": fb.feedback_id, "question": fb.question, "history": list(fb.history),
                           "answer": fb.answer.text, "abstained": fb.answer.abstained, "comment": fb.comment,
                           "passages": [p.source for p in fb.answer.passages]})
            continue
        rows.append(row)
        used.append(fb)
    doc_ids, corpus = _corpus(used, documents)
    for row in rows:
        row["gold_doc_ids"] = [doc_ids[s] for s in row["gold_doc_ids"] if s in doc_ids]
    result.questions = len(rows)
    result.answerable = sum(r["answerable"] for r in rows)
    result.unanswerable = result.questions - result.answerable
    result.documents = len(corpus)
    result.needs_review = len(review)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("written by `rag feedback export`; it may replace this folder's dataset files\n",
                                 encoding="utf-8")
    _write_jsonl(folder / "questions.jsonl", rows)
    _write_jsonl(folder / "corpus.jsonl", corpus)
    _write_jsonl(folder / "review.jsonl", review)
    return result


def _corpus(used: list[Feedback], documents: DocumentLookup) -> tuple[dict[str, str], list[dict]]:
    """The documents behind the answers: source -> doc_id, and the corpus rows."""
    passages: dict[str, list[Chunk]] = {}
    for fb in used:
        for p in [*fb.answer.passages]:
            passages.setdefault(p.source, []).append(p)
        for c in fb.answer.citations:  # a cited chunk is always among the passages; this covers old records
            passages.setdefault(c.source, []).append(Chunk(c.chunk_id, c.text, c.source, c.title, c.page))
    doc_ids: dict[str, str] = {}
    taken: set[str] = set()
    corpus = []
    for source, chunks in passages.items():
        found = documents(source)
        if found:
            text, title, url = found
        else:  # deleted since: what the answers saw of it
            unique = {c.chunk_id: c for c in chunks if c.text}.values()
            text, title, url = rebuild_text(unique), chunks[0].title, chunks[0].url
        if not text.strip():
            continue
        name = PurePath(source).name or source
        doc_id, n = name, 1
        while doc_id in taken:
            n += 1
            doc_id = f"{name}-{n}"
        taken.add(doc_id)
        doc_ids[source] = doc_id
        corpus.append({"doc_id": doc_id, "title": title or "", "text": text, "url": url, "source": source})
    return doc_ids, corpus


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
