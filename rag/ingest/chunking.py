"""Token-aware text splitting into character spans.

Pure and stdlib-only: token counting is injected as callables, so tests use
simple counters and production passes tiktoken (the soft size) and the
embedding model's word-piece tokenizer (the hard limit it must never exceed).

The text is cut into *units* (sentences within lines within paragraphs; a
sentence too large for the limits is cut at clauses, then words, then
characters). Each unit is counted once, and chunks are packed greedily from
units using summed counts; each finished chunk is verified once with the exact
counters because token counts are only nearly additive.

Example::

    spans = split_text(text, count_tokens=lambda s: len(s.split()), chunk_tokens=100)
    chunks = [text[s.start:s.end] for s in spans]
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace

from rag.text.sentences import (
    BLANK_LINE,
    Span,
    segments,
    sentence_cuts,
    sentence_spans,
    separated,
    trimmed,
)
from rag.text.tables import Table, markdown_tables

__all__ = ["Span", "split_text", "sentence_spans", "split_text_with_table_headers", "table_header_prefix"]

Counter = Callable[[str], int]

# Boundary strengths, strongest first; a unit records the strength of the
# boundary that follows it so packing can prefer ending chunks at strong ones.
_PARAGRAPH, _LINE, _SENTENCE, _CLAUSE, _WORD, _CHAR = 5, 4, 3, 2, 1, 0

# A chunk may end at a stronger boundary than the greedy one only if that keeps
# at least this share of the new content the greedy cut would have taken, so
# boundary preference never makes chunks pathologically small.
_MIN_FILL = 0.5

_NEWLINE = re.compile(r"\n")
_WHITESPACE = re.compile(r"\s+")
# Clause punctuation ends a clause only when followed by whitespace (so "1,000"
# and "12:30" stay whole); CJK clause marks are not followed by spaces.
_CLAUSE_END = re.compile(r"[;:,](?=\s)|[；：，、]")


@dataclass(frozen=True)
class _Unit:
    """An indivisible piece of a chunk, counted once."""

    start: int
    end: int
    soft: int
    hard: int
    after: int  # strength of the boundary that follows this unit


# -------------------------------------------------------------------- units


class _Measure:
    """Counts spans with both counters and knows whether they fit the limits."""

    def __init__(
        self,
        text: str,
        count_tokens: Counter,
        chunk_tokens: int,
        hard_count: Counter | None,
        hard_limit: int | None,
    ) -> None:
        self.text = text
        self.count_tokens = count_tokens
        self.chunk_tokens = chunk_tokens
        # Without a hard limit the hard counter is never called: it may be slow.
        self.hard_count = hard_count if hard_limit is not None else None
        self.hard_limit = hard_limit if hard_limit is not None else 0
        self._gap_costs: dict[str, tuple[int, int]] = {}

    def counts(self, start: int, end: int) -> tuple[int, int]:
        """(soft, hard) token counts of text[start:end]."""
        piece = self.text[start:end]
        soft = self.count_tokens(piece)
        if self.hard_count is None:
            return soft, 0
        hard = soft if self.hard_count is self.count_tokens else self.hard_count(piece)
        return soft, hard

    def fits(self, soft: int, hard: int) -> bool:
        """Whether counts are within both limits."""
        return soft <= self.chunk_tokens and (self.hard_count is None or hard <= self.hard_limit)

    def span_fits(self, start: int, end: int) -> bool:
        """Whether text[start:end], counted exactly, is within both limits."""
        return self.fits(*self.counts(start, end))

    def gap_cost(self, gap: str) -> tuple[int, int]:
        """Tokens a whitespace gap adds when joined before a word, memoised per gap string."""
        # Counting the gap alone would overcount for BPE counters, which merge a
        # space into the next token (" The" is one token); the marginal cost of
        # gap+"a" over "a" is right for BPE, word, word-piece and char counters.
        cost = self._gap_costs.get(gap)
        if cost is None:
            soft = max(0, self.count_tokens(gap + "a") - self.count_tokens("a"))
            hard = 0
            if self.hard_count is not None:
                hard = max(0, self.hard_count(gap + "a") - self.hard_count("a"))
            cost = self._gap_costs[gap] = (soft, hard)
        return cost


def _pieces(text: str, span: Span, level: int) -> list[Span]:
    """The trimmed pieces of `span` split at boundaries of `level`."""
    start, end = span.start, span.end
    if level == _PARAGRAPH:
        cuts = separated(text, start, end, BLANK_LINE)
    elif level == _LINE:
        cuts = separated(text, start, end, _NEWLINE)
    elif level == _SENTENCE:
        cuts = sentence_cuts(text, start, end)
    elif level == _CLAUSE:
        cuts = [m.end() for m in _CLAUSE_END.finditer(text, start, end)]
    else:
        cuts = separated(text, start, end, _WHITESPACE)
    return segments(text, start, end, cuts)


def _char_units(measure: _Measure, span: Span, after: int) -> list[_Unit]:
    """Cut a span with no usable boundary into the longest pieces that fit."""
    units = []
    start, guess = span.start, 64
    while start < span.end:
        stop, soft, hard = _longest_fitting(measure, start, span.end, guess)
        units.append(_Unit(start, stop, soft, hard, _CHAR))
        guess = max(1, stop - start)  # pieces of one blob are usually alike in size
        start = stop
    units[-1] = replace(units[-1], after=after)
    return units


def _longest_fitting(measure: _Measure, start: int, end: int, guess: int) -> tuple[int, int, int]:
    """(stop, soft, hard) for the longest fitting text[start:stop]; one char at least."""
    # Gallop from the guess then bisect, so a huge blob costs O(log piece)
    # counts of piece-sized strings per piece, never counts of the whole blob.
    best = (start + 1, *measure.counts(start, start + 1))  # forced if even one char is too big
    low, high = start + 1, None
    probe = min(end, start + guess)
    while high is None:
        counts = measure.counts(start, probe)
        if measure.fits(*counts):
            best, low = (probe, *counts), probe
            if probe == end:
                return best
            probe = min(end, start + 2 * (probe - start))
        else:
            high = probe
    while high - low > 1:
        middle = (low + high) // 2
        counts = measure.counts(start, middle)
        if measure.fits(*counts):
            best, low = (middle, *counts), middle
        else:
            high = middle
    return best


def _units(measure: _Measure, span: Span, level: int, after: int, out: list[_Unit]) -> None:
    """Append the units of `span` (split at `level` and finer) to `out`."""
    pieces = _pieces(measure.text, span, level)
    for i, piece in enumerate(pieces):
        piece_after = level if i < len(pieces) - 1 else after
        if level > _SENTENCE:
            # Sentences are the packing unit even when a whole paragraph fits,
            # so chunks fill up and overlap is made of whole sentences.
            _units(measure, piece, level - 1, piece_after, out)
            continue
        if len(pieces) > 1 or level == _SENTENCE:
            soft, hard = measure.counts(piece.start, piece.end)
            if measure.fits(soft, hard):
                out.append(_Unit(piece.start, piece.end, soft, hard, piece_after))
                continue
        # Too big (or unchanged from a parent already known to be too big).
        if level == _WORD:
            out.extend(_char_units(measure, piece, piece_after))
        else:
            _units(measure, piece, level - 1, piece_after, out)


# ------------------------------------------------------------------ packing


class _Packer:
    """Greedy packing of units into chunks using prefix sums of unit counts."""

    def __init__(self, measure: _Measure, units: list[_Unit], overlap_tokens: int, tail_tokens: int = 0) -> None:
        self.measure = measure
        self.units = units
        self.overlap_tokens = overlap_tokens
        self.tail_tokens = tail_tokens
        text = measure.text
        # gaps[i]: estimated cost of the whitespace before unit i, which is only
        # part of a chunk when unit i is not the chunk's first unit.
        self.gaps = [(0, 0)] + [
            measure.gap_cost(text[left.end : right.start]) for left, right in zip(units, units[1:])
        ]
        self.soft_sums = [0]
        self.hard_sums = [0]
        for unit, (gap_soft, gap_hard) in zip(units, self.gaps):
            self.soft_sums.append(self.soft_sums[-1] + unit.soft + gap_soft)
            self.hard_sums.append(self.hard_sums[-1] + unit.hard + gap_hard)

    def estimate(self, first: int, stop: int) -> tuple[int, int]:
        """Estimated (soft, hard) counts of the chunk of units[first:stop]."""
        gap_soft, gap_hard = self.gaps[first]
        return (
            self.soft_sums[stop] - self.soft_sums[first] - gap_soft,
            self.hard_sums[stop] - self.hard_sums[first] - gap_hard,
        )

    def greedy_stop(self, first: int) -> int:
        """The largest stop whose estimated counts fit; first + 1 at least."""
        gap_soft, gap_hard = self.gaps[first]
        measure = self.measure
        stop = bisect_right(self.soft_sums, self.soft_sums[first] + gap_soft + measure.chunk_tokens) - 1
        if measure.hard_count is not None:
            hard_target = self.hard_sums[first] + gap_hard + measure.hard_limit
            stop = min(stop, bisect_right(self.hard_sums, hard_target) - 1)
        return max(stop, first + 1)

    def preferred_stop(self, covered: int, lowest: int, greedy: int) -> int:
        """Within [lowest, greedy], the stop at the strongest boundary that keeps chunks full enough."""
        if greedy == len(self.units):
            return greedy  # the rest of the text fits: take it all
        units = self.units
        full = self.estimate(covered, greedy)[0]
        best = greedy
        for stop in range(greedy - 1, lowest - 1, -1):
            if self.estimate(covered, stop)[0] < _MIN_FILL * full:
                break
            if units[stop - 1].after > units[best - 1].after:
                best = stop
        return best

    def exact_stop(self, first: int, lowest: int, stop: int) -> int | None:
        """The largest stop in [lowest, stop] whose chunk fits when counted exactly."""
        if self.fits(first, stop):
            return stop
        # Counts are nearly additive, so this is rare; bisect rather than drop
        # one unit at a time so a badly non-additive counter stays O(log n).
        found, low, high = None, lowest, stop - 1
        while low <= high:
            middle = (low + high) // 2
            if self.fits(first, middle):
                found, low = middle, middle + 1
            else:
                high = middle - 1
        return found

    def fits(self, first: int, stop: int) -> bool:
        """Whether units[first:stop] as one chunk fit when counted exactly."""
        if stop - first == 1:
            return True  # a single unit was counted exactly when it was made
        return self.measure.span_fits(self.units[first].start, self.units[stop - 1].end)

    def tail_stop(self, first: int, stop: int) -> int:
        """The end of the text instead of `stop` when what would follow is a small tail that can join this chunk.

        The text's last chunk would bring at most `tail_tokens` new tokens and repeat the overlap: a chunk
        that is mostly a copy of its neighbour. It joins this one instead, when the joined chunk is within
        `chunk_tokens + tail_tokens`, counted exactly, and within the hard limit, which is never stretched.
        """
        end = len(self.units)
        if self.tail_tokens <= 0 or stop >= end or self.estimate(stop, end)[0] > self.tail_tokens:
            return stop
        measure = self.measure
        soft, hard = self.estimate(first, end)
        if soft > measure.chunk_tokens + self.tail_tokens or (measure.hard_count is not None and hard > measure.hard_limit):
            return stop
        soft, hard = measure.counts(self.units[first].start, self.units[end - 1].end)
        if soft > measure.chunk_tokens + self.tail_tokens or (measure.hard_count is not None and hard > measure.hard_limit):
            return stop
        return end

    def overlap_start(self, first: int, stop: int) -> int:
        """First unit of the next chunk: trailing whole units of this one within the overlap budget."""
        start = stop
        while start - 1 > first and self.estimate(start - 1, stop)[0] <= self.overlap_tokens:
            start -= 1
        return start

    def pack(self) -> list[tuple[int, int]]:
        """(first, stop) unit ranges of the chunks, in order."""
        chunks: list[tuple[int, int]] = []
        first = covered = 0  # covered: units before it are in some chunk already
        while covered < len(self.units):
            lowest = covered + 1  # every chunk must bring at least one new unit
            greedy = self.greedy_stop(first)
            stop = None
            if greedy >= lowest:
                stop = self.exact_stop(first, lowest, self.preferred_stop(covered, lowest, greedy))
            if stop is None:
                if first == covered:  # unreachable: a lone unit always fits
                    raise AssertionError("chunker made no progress")
                first = covered  # the overlap leaves no room for new content: drop it
                continue
            stop = self.tail_stop(first, stop)
            chunks.append((first, stop))
            covered = stop
            first = self.overlap_start(first, stop) if self.overlap_tokens else stop
        return chunks


def split_text(
    text: str,
    *,
    count_tokens: Counter,
    chunk_tokens: int,
    overlap_tokens: int = 0,
    hard_count: Counter | None = None,
    hard_limit: int | None = None,
    tail_tokens: int = 0,
) -> list[Span]:
    """Split text into trimmed chunk spans within `chunk_tokens` (soft) and `hard_limit` (hard).

    `tail_tokens` > 0: when the text's last chunk would bring at most that many new tokens (the rest
    being overlap), it joins the chunk before it instead; that one chunk may then hold up to
    `chunk_tokens + tail_tokens` soft tokens. The hard limit holds for every chunk.
    """
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
    if not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError(f"overlap_tokens must be in [0, chunk_tokens), got {overlap_tokens}")
    if hard_limit is not None and hard_limit < 1:
        raise ValueError(f"hard_limit must be at least 1, got {hard_limit}")
    if tail_tokens < 0:
        raise ValueError(f"tail_tokens must not be negative, got {tail_tokens}")
    whole = trimmed(text, 0, len(text))
    if whole is None:
        return []
    measure = _Measure(text, count_tokens, chunk_tokens, hard_count or count_tokens, hard_limit)
    units: list[_Unit] = []
    _units(measure, whole, _PARAGRAPH, _PARAGRAPH, units)
    packer = _Packer(measure, units, overlap_tokens, tail_tokens)
    return [Span(units[first].start, units[stop - 1].end) for first, stop in packer.pack()]


# ------------------------------------------------------------- table headers

def table_header_prefix(text: str, start: int, tables: list[Table] | None = None) -> str:
    """The header (and separator) to put before a chunk starting at `start` inside a table's rows, else ''.

    Example: a chunk starting at "| Oslo | 709,000 |" in a table headed
    "| City | Population |" gets "| City | Population |\\n| --- | --- |\\n".
    """
    for table in markdown_tables(text) if tables is None else tables:
        if table.body_start <= start < table.end:
            return table.header + "\n"
        if table.header_end < start < table.body_start:  # starts at the separator line
            return table.header.split("\n")[0] + "\n"
    return ""


def split_text_with_table_headers(
    text: str,
    *,
    count_tokens: Counter,
    chunk_tokens: int,
    overlap_tokens: int = 0,
    hard_count: Counter | None = None,
    hard_limit: int | None = None,
    tail_tokens: int = 0,
) -> list[tuple[Span, str]]:
    """Like `split_text`, also returning for each span the table header to repeat before it ('' mostly).

    A chunk that starts inside the rows of a Markdown table is stored as
    header + separator + its own text, so a row read alone still says what its
    cells mean. To keep such chunks within the limits, a text with tables is
    split with the limits lowered by its largest header's cost; headers that
    would take more than a third of a chunk are not repeated.
    """
    tables = markdown_tables(text)
    soft_cost = hard_cost = 0
    if tables:
        hard_counter = hard_count or count_tokens
        kept = []
        for table in tables:
            soft = count_tokens(table.header + "\n")
            hard = hard_counter(table.header + "\n") if hard_limit is not None else 0
            if soft * 3 <= chunk_tokens and (hard_limit is None or hard * 3 <= hard_limit):
                kept.append(table)
                soft_cost, hard_cost = max(soft_cost, soft), max(hard_cost, hard)
        tables = kept
    if not tables:
        spans = split_text(text, count_tokens=count_tokens, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens,
                           hard_count=hard_count, hard_limit=hard_limit, tail_tokens=tail_tokens)
        return [(span, "") for span in spans]
    reduced = chunk_tokens - soft_cost
    spans = split_text(
        text, count_tokens=count_tokens, chunk_tokens=reduced, overlap_tokens=min(overlap_tokens, reduced - 1),
        hard_count=hard_count, hard_limit=None if hard_limit is None else hard_limit - hard_cost,
        tail_tokens=tail_tokens,
    )
    return [(span, table_header_prefix(text, span.start, tables)) for span in spans]
