"""What the model is shown: the retrieved chunks packed into a token budget, focused on the
sentences that bear on the question, and fenced as untrusted data."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.core.types import SECTION_SEPARATOR, Chunk
from rag.text.sentences import item_leads, lead_of, sentence_spans
from rag.text.tables import markdown_tables, reading_units, table_of
from rag.text.tokens import code_words, content_tokens

LABEL_WORDS = 5  # words of a document's title shown in each passage's fence
SECTION_LEVELS = 2  # the last levels of a passage's heading path shown in its fence


@dataclass(frozen=True)
class Passage:
    """A chunk as shown to the model: numbered, possibly trimmed at a sentence end."""

    n: int
    chunk: Chunk
    text: str
    trimmed: bool = False


def pack_context(chunks: Sequence[Chunk], budget: int, count_tokens: Callable[[str], int]) -> list[Passage]:
    """Fit the best chunks into `budget` tokens, in rank order.

    A chunk that does not fit whole is cut at its last sentence end that fits
    and marked "[…]"; one that cannot keep even a sentence is left out.
    """
    passages: list[Passage] = []
    left = budget
    for chunk in chunks:
        cost = count_tokens(chunk.text) + 12  # the <passage> fence
        if cost <= left:
            passages.append(Passage(len(passages) + 1, chunk, chunk.text))
            left -= cost
            continue
        kept = ""
        for span in sentence_spans(chunk.text):
            candidate = chunk.text[: span.end]
            if count_tokens(candidate) + 16 > left:
                break
            kept = candidate
        if kept:
            passages.append(Passage(len(passages) + 1, chunk, kept + " […]", trimmed=True))
            left -= count_tokens(kept) + 16
    return passages


def focus_passages(question: str, passages: Sequence[Passage], budget: int,
                   count_tokens: Callable[[str], int]) -> list[Passage]:
    """Show the model only the sentences that bear on the question, within `budget` tokens.

    Every sentence of the packed passages is scored by the question words it
    holds, each weighted by how rare it is among these sentences (a local IDF),
    so "CAR-T" counts more than "Pudong" in an article about Pudong. Sentences
    are taken best first until the budget is spent; each passage then shows its
    chosen sentences in document order, gaps marked "…". A table row is a unit
    of its own, scored with its table's header words and shown below that header
    (rows stay one to a line); so is a later sentence of a term's item in a list of options or
    settings, with the item's lead ("- work_mem (integer): … The default value is four megabytes (4MB).":
    `item_leads`); every sentence also holds the words of the headings
    its passage stands under (`section_label`), so of two tables with the same
    header the one under "Timefmt" answers a question about reading times;
    the symbols a question names (`%j`, `C-k`, `'P'`)
    count as question words, its bare lower-case letters (variables: "after d, p, q or r") do not; a
    sentence two overlapping chunks both hold is
    shown once. Passages left with no
    sentence are dropped and the rest renumbered. A small model reads a short,
    focused prompt faster and picks the answering sentence more reliably; the
    citations still point at whole chunks, and quotes come from the whole chunk.
    With budget 0, or a question with no content words, passages are unchanged.
    """
    if budget <= 0 or not passages:
        return list(passages)
    tables = [markdown_tables(p.text) for p in passages]
    leads = [item_leads(p.text) for p in passages]
    sentences, scored = _rank_sentences(question, passages, tables, leads)
    if not scored:
        return list(passages)
    chosen: set[int] = set()
    # (passage, start, end) of the header of a table a chosen row is in, and of the lead of a term's item a
    # chosen sentence is in: "- work_mem (integer): … The default value is four megabytes (4MB)."
    headers: set[tuple[int, int, int]] = set()
    seen: set[str] = set()  # overlapping chunks hold the same sentence: it is shown once
    left = budget
    for score, _, n in scored:
        if score <= 0:
            break
        i, a, b, _ = sentences[n]
        said = " ".join(passages[i].text[a:b].split())
        if said in seen:
            continue
        seen.add(said)
        table = table_of(tables[i], a)
        lead = None if table else lead_of(leads[i], a)
        header = (i, table.start, table.header_end) if table else (i, lead.start, lead.lead_end) if lead else None
        cost = count_tokens(passages[i].text[a:b]) + 2
        if header and header not in headers:
            cost += count_tokens(passages[i].text[header[1]:header[2]]) + 2
        if cost > left and chosen:
            continue
        chosen.add(n)
        if header:
            headers.add(header)
        left -= cost
    if not chosen:
        return list(passages)
    out: list[Passage] = []
    for i, p in enumerate(passages):
        picks = [(a, b) for n, (j, a, b, _) in enumerate(sentences) if j == i and n in chosen]
        heads = [(a, b) for j, a, b in headers if j == i and not any(x <= a < y for x, y in picks)]
        picks = sorted(picks + heads)
        if not picks:
            continue
        parts, prev_end = [], None
        for a, b in picks:
            if prev_end is not None:  # line breaks kept: table rows and list items stay one to a line
                gap = p.text[prev_end:a]
                parts.append(("\n" if "\n" in gap else " ") if not gap.strip() else
                             ("\n…\n" if p.text[a - 1] == "\n" else " … "))
            parts.append(p.text[a:b])
            prev_end = b
        first, last = picks[0][0], picks[-1][1]
        before = p.text[:first].strip() and ("…\n" if p.text[first - 1] == "\n" else "… ")
        after = p.text[last:].strip() and ("\n…" if p.text[last:last + 1] == "\n" else " …")
        text = (before or "") + "".join(parts) + (after or "")
        out.append(Passage(len(out) + 1, p.chunk, text, trimmed=text != p.text))
    return out


# a sentence that holds question words also gains RANK_PRIOR / (its passage's rank): of two sentences with
# nearly the same words, the one in the passage retrieval ranked higher (which also weighed meaning) wins.
# Chosen on the squad dev split by `python evals/best_match.py` (no model needed; evals/README.md)
RANK_PRIOR = 2.0


_LONE_LETTER = re.compile(r"(?<![\w'‘`\"%-])[A-Za-z](?![\w'’`\"-])")  # a letter standing alone, unquoted


def _rank_sentences(question: str, passages: Sequence[Passage], tables: Sequence[list] | None = None,
                    leads: Sequence[list] | None = None):
    """Every sentence of `passages` as (passage index, start, end, tokens), and (score, -n, n) best first.

    A sentence scores the IDF-weighted question words it, its table's header, the lead of the term's item it
    is in (`item_leads`) and its passage's innermost headings hold; the IDF is local,
    over these sentences. One that holds any also gains a prior for its passage's
    retrieval rank, `RANK_PRIOR` / rank: 2 in the first passage, 1 in the second (a
    word found in one sentence of twenty weighs about 3). Empty ranking when the
    question has no content words.
    """
    codes = code_words(question)  # `%j`, `C-k`, `'q'`: what a manual's questions name, and `tokenize` drops
    # a bare lower-case letter ("the part after d, p, q or r") is a variable: it matches any variable of the
    # passages, and its rarity there would weigh it most; a capital one is a name ("R", "C"); a quoted one is
    # in `codes`
    letters = _LONE_LETTER.findall(question)
    variables = {c for c in letters if c.islower()} - {c.lower() for c in letters if c.isupper()}
    wanted = (content_tokens(question) - variables) | codes
    sentences = []  # (passage index, start, end, tokens)
    heading = [content_tokens(section_label(p.chunk)) for p in passages]

    def words(text: str) -> set[str]:  # its content words, and the symbols of the question it holds
        return content_tokens(text) | (code_words(text, quoted_only=False) & codes if codes else set())

    for i, p in enumerate(passages):
        terms = item_leads(p.text) if leads is None else leads[i]
        for span, table in reading_units(p.text, None if tables is None else tables[i]):
            tokens = words(p.text[span.start:span.end])
            if table:  # a row is read with its table's header: the header says what its cells mean
                tokens |= content_tokens(table.header)
            elif lead := lead_of(terms, span.start):  # a sentence of a term's item, with the term it describes
                tokens |= words(p.text[lead.start:lead.lead_end])
            tokens |= heading[i]  # and every sentence with the headings it stands under
            sentences.append((i, span.start, span.end, tokens))
    if not wanted:
        return sentences, []
    df = {w: sum(1 for *_, toks in sentences if w in toks) for w in wanted}
    weight = {w: math.log(1 + len(sentences) / df[w]) for w in wanted if df[w]}

    def score(i: int, toks: set[str]) -> float:
        words = sum(weight.get(w, 0.0) for w in toks & wanted)
        return words + RANK_PRIOR / (1 + i) if words > 0 else words

    scored = sorted(((score(i, toks), -n, n) for n, (i, _, _, toks) in enumerate(sentences)), reverse=True)
    return sentences, scored


def best_match(question: str, passages: Sequence[Passage]) -> tuple[Passage, str] | None:
    """The passage sentence most likely to hold the answer (most question words, rarest first, with the
    prior for its passage's rank: `_rank_sentences`), or None."""
    sentences, scored = _rank_sentences(question, passages)
    if not scored or scored[0][0] <= 0:
        return None
    i, a, b, _ = sentences[scored[0][2]]
    return passages[i], passages[i].text[a:b]


def close_to_the_top(chunks: Sequence[Chunk], share: float) -> list[Chunk]:
    """The chunks whose retrieval score is at least `share` of the first's (all when scores are missing)."""
    if not chunks or share <= 0 or chunks[0].score is None or chunks[0].score <= 0:
        return list(chunks)
    floor = share * chunks[0].score
    return [c for c in chunks if c.score is None or c.score >= floor]


def prompt_passages(question: str, chunks: Sequence[Chunk], cfg, count_tokens: Callable[[str], int], *,
                    follow_up: bool = False) -> list[Passage]:
    """The passages exactly as the answer path shows them to the model: those close to the top passage's
    score (`answer.min_passage_score`; all k for a follow-up, which is searched with the previous question,
    so the passage about the new part may rank below one about the old), packed, then focused."""
    shown = chunks if follow_up else close_to_the_top(chunks, cfg.min_passage_score)
    passages = pack_context(shown, cfg.context_tokens, count_tokens)
    return focus_passages(question, passages, cfg.focus_tokens, count_tokens)


# `<passage`, `</PASSAGE >`, `< /passage`, full-width `＜／passage`: any tag of a fence of ours
_FENCE_TAGS = re.compile(r"[<\uFF1C\uFE64\u2039\u3008]\s*[/\uFF0F]?\s*(passage|answer|history)\b", re.IGNORECASE)


def defang(text: str) -> str:
    """Untrusted text that cannot open or close a `<passage>`/`<answer>`/`<history>` fence (`<` becomes `&lt;`)."""
    return _FENCE_TAGS.sub(lambda m: "&lt;" + m.group(0)[1:], text)


def fence_label(text: str, limit: int = 120) -> str:
    """A document title or file name made safe for a fence attribute: one line, no quotes or markup."""
    import html

    one_line = " ".join(str(text).split())[:limit]
    return html.escape(one_line, quote=True)


def format_passages(passages: Sequence[Passage]) -> str:
    """The passages as fenced, numbered data; nothing in a document can close or forge a fence.

    A document that writes a `<passage>` tag of its own (any case, spacing or
    full-width variant) is trying to put text outside the fence: the model is
    shown only what comes before the tag, then "[…]" (the stored chunk, and
    its citations and quotes, are unchanged).
    """
    out, named, placed = [], set(), None
    for p in passages:
        # a document is named on its first passage only: every prompt token costs time on a CPU
        label = "" if p.chunk.source in named else f' source="{fence_label(source_label(p.chunk))}"'
        named.add(p.chunk.source)
        # where in its document the passage stands (a table's rows rarely repeat what the table is about),
        # said again only when it changes
        section = section_label(p.chunk)
        if section and (p.chunk.source, section) != placed:
            label += f' section="{fence_label(section)}"'
        placed = (p.chunk.source, section)
        body = p.text
        forged = next((m for m in _FENCE_TAGS.finditer(body) if m.group(1).lower() == "passage"), None)
        if forged:
            body = (body[:forged.start()].rstrip() + " […]").strip()
        out.append(f'<passage id="{p.n}"{label}>\n{defang(body)}\n</passage>')
    return "\n".join(out)


def section_label(chunk: Chunk, levels: int = SECTION_LEVELS) -> str:
    """The innermost `levels` headings of the chunk's heading path ("Format › Time/date specifiers"): the
    outer ones ("Part III Commands") cost prompt tokens and rarely tell two passages apart."""
    return SECTION_SEPARATOR.join(chunk.section.split(SECTION_SEPARATOR)[-levels:])


def source_label(chunk: Chunk, words: int = LABEL_WORDS) -> str:
    """The document's name as the model sees it: the title's first few words (every prompt token costs
    ~27 ms on a laptop CPU, and a long headline repeated per passage adds seconds, not meaning)."""
    name = chunk.title or chunk.source.rsplit("/", 1)[-1]
    parts = name.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")
