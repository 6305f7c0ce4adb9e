"""Saved conversations: each question with its full answer, per collection, in SQLite under the data dir.

One file, `<home>/conversations.sqlite3`, holds the conversations of every
collection (and the feedback, `rag.memory.feedback`). Each conversation has an
owner: the signed-in user who started it (`""` for use without a login). A store
opened for an owner lists, reads, renames, exports and deletes only that owner's
conversations; one opened with `owner=None` (the CLI and Python on the server)
sees all of them. Stores made before owners existed gain the column, their
conversations owned by `""`. Every operation opens its own
connection, in WAL mode with a busy timeout, so the UI's worker threads, the CLI
and a Python session can use it at once. Each turn stores `Answer.to_dict()` as
JSON, so a reopened conversation has the same citations and passages as when it
was answered.

Example::

    store = ConversationStore(settings.home / DB_NAME, "default")
    turn = store.add_turn("Who founded it?", answer)          # starts a conversation
    store.add_turn("And when?", follow_up, turn.conversation_id)
    [c.title for c in store.list()]                           # newest first
    store.get(turn.conversation_id).turns[1].answer.citations
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath

from rag.core.errors import ConversationError
from rag.core.types import Answer, Citation

DB_NAME = "conversations.sqlite3"
TITLE_CHARS = 80  # a conversation is titled by its first question, cut to this length
MAX_TITLE_CHARS = 200
OWNED_TABLES = ("conversations", "feedback")  # rows kept per user

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS conversations_by_collection ON conversations (collection, updated_at);
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (conversation_id, position)
);
"""


@dataclass(frozen=True)
class ConversationTurn:
    """One question of a saved conversation and its answer (citations and passages included)."""

    turn_id: str
    conversation_id: str
    position: int  # 1-based
    question: str
    answer: Answer
    created_at: str
    history: tuple[str, ...] = ()  # the earlier questions of the conversation, oldest first


@dataclass
class Conversation:
    """A saved conversation; `turns` is filled by `get`, empty in listings (see `turn_count`)."""

    conversation_id: str
    collection: str
    title: str
    created_at: str
    updated_at: str
    turn_count: int = 0
    turns: list[ConversationTurn] = field(default_factory=list)
    owner: str = ""  # the user who started it ("": no login)

    @property
    def last_answer(self) -> Answer | None:
        """The latest answer, whose `history` continues the conversation (`qa.ask(q, history=...)`)."""
        return self.turns[-1].answer if self.turns else None


def now() -> str:
    """UTC time, ISO 8601 with microseconds: sorts as text in time order."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_id() -> str:
    return secrets.token_hex(6)


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, foreign keys on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA busy_timeout = 30000")
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("PRAGMA synchronous = NORMAL")  # WAL: a power cut may lose the last save, never corrupts
    except sqlite3.DatabaseError as exc:
        raise ConversationError(
            f"cannot open the conversation store {path} ({exc}): move the file aside to start a new one") from exc
    return con


def add_owner_column(con: sqlite3.Connection, table: str) -> None:
    """Stores made before owners existed: add `owner` (their rows owned by "", the no-login user)."""
    columns = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
    if columns and "owner" not in columns:
        try:
            con.execute(f"ALTER TABLE {table} ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError as exc:  # another process added it meanwhile
            if "duplicate column" not in str(exc):
                raise


def migrate(con: sqlite3.Connection, schema: str) -> None:
    """Create the tables, and give tables of an older store the owner column."""
    con.executescript(schema)
    for table in OWNED_TABLES:
        add_owner_column(con, table)


@contextmanager
def transaction(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """One write transaction (taken at once, so two writers queue instead of deadlocking)."""
    con = connect(path)
    try:
        migrate(con, schema)
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise ConversationError(f"the conversation store {path} failed ({exc}): check the disk, "
                                "or move the file aside to start a new one") from exc
    finally:
        con.close()


@contextmanager
def reading(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    con = connect(path)
    try:
        migrate(con, schema)
        yield con
    except sqlite3.DatabaseError as exc:
        raise ConversationError(f"cannot read the conversation store {path} ({exc}): "
                                "move the file aside to start a new one") from exc
    finally:
        con.close()


def title_of(question: str) -> str:
    text = " ".join(question.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


class ConversationStore:
    """The saved conversations of one collection, of one owner (`owner=None`: everyone's)."""

    def __init__(self, path: Path, collection: str, owner: str | None = None):
        self.path = Path(path)
        self.collection = collection
        self.owner = owner

    def _mine(self, alias: str = "") -> tuple[str, tuple]:
        """The SQL condition (and its parameters) that keeps this owner's conversations."""
        if self.owner is None:
            return "", ()
        return f" AND {alias}owner = ?", (self.owner,)

    def _write(self):
        return transaction(self.path, _SCHEMA)

    def _read(self):
        return reading(self.path, _SCHEMA)

    # --- writing ---------------------------------------------------------------------------
    def add_turn(self, question: str, answer: Answer, conversation_id: str | None = None) -> ConversationTurn:
        """Append a question and its answer; without `conversation_id`, start a conversation titled by it."""
        question = question or answer.question
        stamp = now()
        payload = json.dumps(answer.to_dict(), ensure_ascii=False)
        with self._write() as con:
            if conversation_id is None:
                conversation_id = new_id()
                con.execute("INSERT INTO conversations (id, collection, title, created_at, updated_at, owner) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (conversation_id, self.collection, title_of(question) or "(untitled)", stamp, stamp,
                             self.owner or ""))
            else:
                conversation_id = self._resolve(con, conversation_id)
                con.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (stamp, conversation_id))
            earlier = [r[0] for r in con.execute(
                "SELECT question FROM turns WHERE conversation_id = ? ORDER BY position", (conversation_id,))]
            turn_id = new_id()
            con.execute("INSERT INTO turns (id, conversation_id, position, question, answer_json, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (turn_id, conversation_id, len(earlier) + 1, question, payload, stamp))
        return ConversationTurn(turn_id, conversation_id, len(earlier) + 1, question, answer, stamp, tuple(earlier))

    def rename(self, conversation_id: str, title: str) -> Conversation:
        title = " ".join((title or "").split())
        if not title:
            raise ConversationError("a conversation title cannot be empty: type a name")
        if len(title) > MAX_TITLE_CHARS:
            raise ConversationError(f"a conversation title can have at most {MAX_TITLE_CHARS} characters")
        with self._write() as con:
            conversation_id = self._resolve(con, conversation_id)
            con.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))
        return self.get(conversation_id)

    def delete(self, conversation_id: str) -> None:
        """Remove a conversation and its turns (feedback given on its answers is kept)."""
        with self._write() as con:
            conversation_id = self._resolve(con, conversation_id)
            con.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # --- reading ---------------------------------------------------------------------------
    def list(self) -> list[Conversation]:
        """This collection's conversations, the most recently active first (without their turns)."""
        mine, args = self._mine("c.")
        with self._read() as con:
            rows = con.execute(
                "SELECT c.*, (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) AS n "
                f"FROM conversations c WHERE c.collection = ?{mine} ORDER BY c.updated_at DESC, c.rowid DESC",
                (self.collection, *args)).fetchall()
        return [Conversation(r["id"], r["collection"], r["title"], r["created_at"], r["updated_at"], r["n"],
                             owner=r["owner"]) for r in rows]

    def get(self, conversation_id: str) -> Conversation:
        """A conversation with its turns; each answer's `history` is the conversation up to it."""
        with self._read() as con:
            conversation_id = self._resolve(con, conversation_id)
            head = con.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            rows = con.execute("SELECT * FROM turns WHERE conversation_id = ? ORDER BY position",
                               (conversation_id,)).fetchall()
        conv = Conversation(head["id"], head["collection"], head["title"], head["created_at"], head["updated_at"],
                            len(rows), owner=head["owner"])
        pairs: list[tuple[str, str]] = []
        for r in rows:
            answer = _answer(r["answer_json"], r["id"])
            earlier = tuple(q for q, _ in pairs)
            pairs.append((r["question"], answer.text))
            answer.history = list(pairs)
            conv.turns.append(ConversationTurn(r["id"], conversation_id, r["position"], r["question"], answer,
                                               r["created_at"], earlier))
        return conv

    def turn(self, turn_id: str) -> ConversationTurn:
        """One saved turn of this collection, by id."""
        mine, args = self._mine("c.")
        with self._read() as con:
            row = con.execute("SELECT t.conversation_id FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                              f"WHERE t.id = ? AND c.collection = ?{mine}", (turn_id, self.collection, *args)).fetchone()
        if row is None:
            raise ConversationError(f"no saved answer with id {turn_id!r} in collection {self.collection!r}")
        return next(t for t in self.get(row[0]).turns if t.turn_id == turn_id)

    def _resolve(self, con: sqlite3.Connection, conversation_id: str) -> str:
        """The full id of this collection's conversation `conversation_id` (a unique prefix will do).

        Another owner's conversation is reported as not found, as one that does not exist.
        """
        key = (conversation_id or "").strip()
        mine, args = self._mine()
        rows = [r[0] for r in con.execute(
            f"SELECT id FROM conversations WHERE collection = ? AND substr(id, 1, ?) = ?{mine}",
            (self.collection, len(key), key, *args))] if key else []
        if key in rows:
            return key
        if len(rows) == 1:
            return rows[0]
        hint = f"; {len(rows)} conversations start with it, give more of the id" if rows else ""
        raise ConversationError(f"no conversation {conversation_id!r} in collection {self.collection!r}{hint}: "
                                "list them with `rag conversations list`")

    # --- export ----------------------------------------------------------------------------
    def to_markdown(self, conversation_id: str) -> str:
        return conversation_markdown(self.get(conversation_id))


def _answer(payload: str, turn_id: str) -> Answer:
    try:
        return Answer.from_dict(json.loads(payload))
    except (ValueError, TypeError, KeyError) as exc:
        raise ConversationError(f"saved answer {turn_id} cannot be read ({exc}): delete its conversation") from exc


# --- Markdown ---------------------------------------------------------------------------------
def md_text(text: str) -> str:
    """Document and model text for Markdown: no raw HTML gets through to a Markdown renderer."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quoted(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.strip().splitlines()) or ">"


def passage_with_quote(c: Citation) -> str:
    """The cited passage, with the supporting quote in bold (the quote alone when the passage is missing)."""
    text, quote = c.text or "", (c.quote or "").strip()
    start, end = c.quote_start, c.quote_end
    if not (0 <= start < end <= len(text)) or (quote and text[start:end].strip() != quote):
        found = text.find(quote) if quote else -1
        start, end = (found, found + len(quote)) if found >= 0 else (0, 0)
    if start == end:
        return (f"**{md_text(quote)}**\n\n" if quote else "") + md_text(text)
    inner = text[start:end]
    lead = inner[: len(inner) - len(inner.lstrip())]
    tail = inner[len(inner.rstrip()):]
    return f"{md_text(text[:start])}{lead}**{md_text(inner.strip())}**{tail}{md_text(text[end:])}"


def _where(source: str, title: str, page: int | None) -> str:
    name = PurePath(source).name or source
    parts = [md_text(title)] if title and title != name else []
    parts.append(f"`{name}`")
    if page:
        parts.append(f"p. {int(page)}")
    return " · ".join(parts)


def _plain_url(url: str | None) -> bool:
    """An http(s) URL that can stand in a Markdown autolink as it is."""
    return bool(url) and url.startswith(("http://", "https://")) and not any(ch in url for ch in "<> \t\n\"'")


def conversation_markdown(conv: Conversation) -> str:
    """The conversation as Markdown: each question, its answer, and the cited passages with their quotes."""
    lines = [f"# {md_text(conv.title)}", "",
             f"Collection `{conv.collection}` · started {conv.created_at[:16].replace('T', ' ')} UTC · "
             f"{len(conv.turns)} question{'s' if len(conv.turns) != 1 else ''}", ""]
    for t in conv.turns:
        a = t.answer
        lines += [f"## {t.position}. {md_text(t.question)}", ""]
        if a.standalone_question and a.standalone_question.strip() != t.question.strip():
            lines += [f"*Searched for: {md_text(a.standalone_question)}*", ""]
        lines += [md_text(a.text), ""]
        if a.abstained:
            if a.passages:
                lines += ["Passages looked at:", ""]
                lines += [f"- {_where(p.source, p.title, p.page)}: {md_text(' '.join(p.text.split())[:200])}"
                          for p in a.passages]
                lines.append("")
            continue
        for c in a.citations:
            support = f"support {c.support:.2f}" + ("" if c.supported else " (weak)")
            lines += [f"**[{c.n}]** {_where(c.source, c.title, c.page)} · {support}"
                      + (f" · <{c.url}>" if _plain_url(c.url) else ""), ""]
            lines += [_quoted(passage_with_quote(c)), ""]
    return "\n".join(lines).rstrip() + "\n"
