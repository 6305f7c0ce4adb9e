"""The types every caller sees: `Chunk`, `Citation`, `Answer`, and ingest results.

A LangChain `Document` is made from a `Chunk` in exactly one place (`rag.serve.langchain`, for
LangChain users); the UI, the CLI, the evals and Python users only see these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _known(cls, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of `data` that are fields of `cls` (data written by a newer version may hold more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


SECTION_SEPARATOR = " › "  # joins the headings of a chunk's heading path (`Chunk.section`)


@dataclass(frozen=True)
class Chunk:
    """A stored passage of a document.

    `start`/`end` are character offsets into the document's extracted text, so
    `document_text[start:end] == text` (see below for tables). `page` is 1-based where the format has
    pages (PDF), else None. `score` is the retrieval score (higher is better).
    A chunk starting inside a table's rows also carries the table's header
    before `document_text[start:end]` (see `rag.ingest.chunking.table_header_prefix`).
    """

    chunk_id: str
    text: str
    source: str
    title: str = ""
    page: int | None = None
    start: int = 0
    end: int = 0
    score: float = 0.0
    url: str | None = None
    ocr: bool = False  # the text was read from a scan or image by OCR
    section: str = ""  # heading path where the chunk starts: "4 Networking › 4.2 Configuring the network"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Chunk":
        """The inverse of `to_dict`."""
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Citation:
    """One `[n]` marker in an answer, resolved to the chunk it points at.

    `quote` is the sentence (or span) of the chunk that best supports the
    claim; `support` is the measured support score in [0, 1] and `supported`
    whether it clears the configured threshold.
    """

    n: int
    chunk_id: str
    source: str
    title: str = ""
    page: int | None = None
    quote: str = ""
    score: float = 0.0
    support: float = 0.0
    supported: bool = True
    url: str | None = None
    text: str = ""
    quote_start: int = 0
    quote_end: int = 0
    ocr: bool = False  # the cited passage was read by OCR
    section: str = ""  # the heading path of the cited passage ("" when its document has no headings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Citation":
        """The inverse of `to_dict`."""
        return cls(**_known(cls, data))


@dataclass
class Answer:
    """The result of a question: text with `[n]` markers and their citations."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    short_answer: str = ""
    abstain_reason: str = ""
    # which step abstained: "relevance" (no passage relevant enough, the model was not asked), "model" (the
    # model said it does not know), "confidence" (the calibrated confidence was below `answer.min_confidence`),
    # a check listed in `answer.vetoes` ("answer_not_in_passages", "question_coverage", "off_topic",
    # "answer_type", "echo": the answer only repeats the question's words), "verification"
    abstain_step: str = ""
    draft: str = ""  # what the model said when a grounding check made us abstain
    raw_reply: str = ""  # the model's own reply, before any repair (scored as "raw" by the evals)
    prompt_chunk_ids: list[str] = field(default_factory=list)  # chunk of passage n at index n - 1, as shown
    verify_p_yes: float | None = None  # the verifier's P(the cited sentence states the answer); None: not asked
    decline_p: float | None = None  # the model's P(declining) at its first answer token; None: not measured
    first_token_p: float | None = None  # the probability of the likeliest first answer token (how sure it was); None: ditto
    confidence: float | None = None  # calibrated P(the answer is right) (rag.answer.confidence); None: no calibration
    signals: dict[str, float] = field(default_factory=dict)  # what the checks measured: the confidence's features
    prompt_texts: list[str] = field(default_factory=list)  # the text of passage n as the model read it, at n - 1
    withheld: Answer | None = None  # the answer the doubt or verification step withheld (what the user would have seen)
    question: str = ""
    standalone_question: str = ""
    passages: list[Chunk] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    dropped_citations: int = 0
    history: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "short_answer": self.short_answer,
            "abstained": self.abstained,
            "abstain_reason": self.abstain_reason,
            "abstain_step": self.abstain_step,
            "raw_reply": self.raw_reply,
            "prompt_chunk_ids": self.prompt_chunk_ids,
            "verify_p_yes": self.verify_p_yes,
            "decline_p": self.decline_p,
            "first_token_p": self.first_token_p,
            "confidence": self.confidence,
            "signals": self.signals,
            "withheld": self.withheld.to_dict() if self.withheld is not None else None,
            "question": self.question,
            "standalone_question": self.standalone_question,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [p.to_dict() for p in self.passages],
            "dropped_citations": self.dropped_citations,
            "timings": self.timings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Answer":
        """The inverse of `to_dict` (the conversation `history` only when the dict holds one)."""
        return cls(
            text=data.get("answer", ""),
            citations=[Citation.from_dict(c) for c in data.get("citations", [])],
            abstained=bool(data.get("abstained", False)),
            short_answer=data.get("short_answer", ""),
            abstain_reason=data.get("abstain_reason", ""),
            abstain_step=data.get("abstain_step", ""),
            confidence=data.get("confidence"),
            signals=dict(data.get("signals") or {}),
            question=data.get("question", ""),
            standalone_question=data.get("standalone_question", ""),
            passages=[Chunk.from_dict(p) for p in data.get("passages", [])],
            timings=dict(data.get("timings", {})),
            dropped_citations=int(data.get("dropped_citations", 0)),
            history=[(str(u), str(a)) for u, a in data.get("history", [])],
        )


@dataclass(frozen=True)
class Evidence:
    """What retrieval found, streamed before the model's first token.

    `quote` is the sentence most likely to hold the answer (the best match of the
    question's words), from chunk `chunk_id`: a best match, not yet an answer.
    """

    passages: list[Chunk]
    quote: str = ""
    chunk_id: str = ""
    query: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"quote": self.quote, "chunk_id": self.chunk_id, "query": self.query,
                "passages": [p.to_dict() for p in self.passages]}


@dataclass(frozen=True)
class Waiting:
    """Streamed while the question waits for the local model: `ahead` questions are before it."""

    ahead: int


@dataclass(frozen=True)
class SourceInfo:
    """One indexed document, as listed by `rag sources`."""

    source: str
    title: str
    chunks: int
    content_hash: str
    ingested_at: str
    url: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class FileResult:
    """What ingest did with one file: added, updated, unchanged, skipped, removed (or renamed, when watching)."""

    path: str
    status: str
    chunks: int = 0
    reason: str = ""


@dataclass
class IngestReport:
    """Summary of one ingest run."""

    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: str = ""  # why the ingest stopped early (e.g. "SIGTERM"); empty when it ran to the end

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def chunks_written(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("added", "updated"))

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("added", "updated", "unchanged", "skipped", "removed")]
        if self.count("renamed"):  # only a watched folder renames
            parts.append(f"{self.count('renamed')} renamed")
        if self.count("interrupted"):
            parts.append(f"{self.count('interrupted')} interrupted")
        return f"{', '.join(parts)}; {self.chunks_written} chunks written in {self.seconds:.1f}s"
