"""The types every caller sees: `Chunk`, `Citation`, `Answer`, and ingest results.

LangChain's `Document` is converted to and from these in exactly one place
(`rag.store`); the UI, the CLI, the evals and Python users only see these.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Chunk:
    """A stored passage of a document.

    `start`/`end` are character offsets into the document's extracted text, so
    `document_text[start:end] == text`. `page` is 1-based where the format has
    pages (PDF), else None. `score` is the retrieval score (higher is better).
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """The result of a question: text with `[n]` markers and their citations."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    short_answer: str = ""
    abstain_reason: str = ""
    # which step abstained: "relevance" (no passage relevant enough, the model was not asked), "model" (the
    # model said it does not know), "answer_not_in_passages", "question_coverage", "verification"
    abstain_step: str = ""
    draft: str = ""  # what the model said when a grounding check made us abstain
    raw_reply: str = ""  # the model's own reply, before any repair (scored as "raw" by the evals)
    prompt_chunk_ids: list[str] = field(default_factory=list)  # chunk of passage n at index n - 1, as shown
    verify_p_yes: float | None = None  # the verifier's P(the cited sentence states the answer); None: not asked
    withheld: Answer | None = None  # the answer verification withheld (what the user would have seen without it)
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
            "withheld": self.withheld.to_dict() if self.withheld is not None else None,
            "question": self.question,
            "standalone_question": self.standalone_question,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [p.to_dict() for p in self.passages],
            "dropped_citations": self.dropped_citations,
            "timings": self.timings,
        }


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
    """What ingest did with one file: added, updated, unchanged, skipped or removed."""

    path: str
    status: str
    chunks: int = 0
    reason: str = ""


@dataclass
class IngestReport:
    """Summary of one ingest run."""

    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def chunks_written(self) -> int:
        return sum(f.chunks for f in self.files if f.status in ("added", "updated"))

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("added", "updated", "unchanged", "skipped", "removed")]
        return f"{', '.join(parts)}; {self.chunks_written} chunks written in {self.seconds:.1f}s"
