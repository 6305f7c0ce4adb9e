"""The answer path, as a flat sequence of testable steps.

condense (follow-ups) -> retrieve -> relevance gate -> pack context -> focus on the
sentences that bear on the question -> generate (streamed) -> parse the reply ->
resolve and verify citations.

Citation support (documented in evals/README.md): for a sentence of the answer
and a passage it cites, support = |T(sentence) ∩ T(passage)| / |T(sentence)|,
where T() is the set of stemmed content words and numbers (stopwords removed,
number words mapped to digits, so "six" matches "6"). The quote shown is the
passage sentence with the largest overlap. A citation whose support is below
`answer.support_threshold` is kept but flagged `supported=False`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from rag.chunking import sentence_spans
from rag.guard import off_topic_answer
from rag.lexical import tokenize
from rag.types import Answer, Chunk, Citation

History = Sequence[tuple[str, str]]
_MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_ABSTAIN = re.compile(
    r"\b(i\s+(do\s+not|don'?t|cannot|can'?t)\s+know|not\s+(mentioned|stated|provided|specified|found|given)"
    r"|(do|does)\s+not\s+(contain|mention|say|provide|specify|state)|no\s+(information|mention)"
    r"|cannot\s+(be\s+)?(answer|determine)|unable\s+to\s+(answer|determine|find))",
    re.IGNORECASE,
)
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelv": "12", "twelve": "12", "twenti": "20",
    "thirti": "30", "forti": "40", "fifti": "50", "hundr": "100", "hundred": "100", "first": "1", "second": "2",
    "third": "3",
}


@lru_cache(maxsize=None)
def load_prompt(name: str) -> dict[str, str]:
    """A prompt data file from rag/prompts/ (YAML)."""
    import yaml

    return yaml.safe_load(resources.files("rag.prompts").joinpath(f"{name}.yaml").read_text(encoding="utf-8"))


# --- history and follow-ups ------------------------------------------------------------------
def history_pairs(history) -> list[tuple[str, str]]:
    """Accept a previous Answer or a list of (user, assistant) pairs."""
    if history is None:
        return []
    if isinstance(history, Answer):
        return list(history.history)
    return [(str(u), str(a)) for u, a in history]


def condense_question(question: str, history: History, chat_model, max_turns: int = 3) -> str:
    """Rewrite a follow-up into a standalone question (unchanged when there is no history)."""
    if not history:
        return question
    prompt = load_prompt("condense")
    # earlier answers come from the documents: fenced as data, like the passages
    convo = "\n".join(f"User: {defang(u)}\nAssistant: <answer>{defang(strip_markers(a))}</answer>"
                      for u, a in list(history)[-max_turns:])
    from langchain_core.messages import HumanMessage, SystemMessage

    reply = chat_model.invoke([SystemMessage(prompt["system"]),
                               HumanMessage(prompt["user"].format(history=convo, question=question))])
    text = str(reply.content).strip().splitlines()[0].strip().strip('"') if str(reply.content).strip() else ""
    text = re.sub(r"^(standalone question|question)\s*:\s*", "", text, flags=re.IGNORECASE).strip()
    # a rewrite that rambles, or answers instead of asking, is worse than the original
    if not text or len(text) > 4 * len(question) + 200 or (question.rstrip().endswith("?") and "?" not in text):
        return f"{history[-1][0]} {question}"
    from rag.guard import rewrite_drifted

    if rewrite_drifted(question, text):  # another question (one an earlier answer asked for?): keep the user's
        return question
    return text


# --- context ---------------------------------------------------------------------------------
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
    chosen sentences in document order, gaps marked "…". Passages left with no
    sentence are dropped and the rest renumbered. A small model reads a short,
    focused prompt faster and picks the answering sentence more reliably; the
    citations still point at whole chunks, and quotes come from the whole chunk.
    With budget 0, or a question with no content words, passages are unchanged.
    """
    import math

    wanted = content_tokens(question)
    if budget <= 0 or not wanted or not passages:
        return list(passages)
    sentences = []  # (passage index, start, end, tokens)
    for i, p in enumerate(passages):
        for span in sentence_spans(p.text):
            sentences.append((i, span.start, span.end, content_tokens(p.text[span.start:span.end])))
    df = {w: sum(1 for *_, toks in sentences if w in toks) for w in wanted}
    weight = {w: math.log(1 + len(sentences) / df[w]) for w in wanted if df[w]}
    scored = sorted(
        ((sum(weight.get(w, 0.0) for w in toks & wanted), -n, n) for n, (*_, toks) in enumerate(sentences)),
        reverse=True,
    )
    chosen: set[int] = set()
    left = budget
    for score, _, n in scored:
        if score <= 0:
            break
        i, a, b, _ = sentences[n]
        cost = count_tokens(passages[i].text[a:b]) + 2
        if cost > left and chosen:
            continue
        chosen.add(n)
        left -= cost
    if not chosen:
        return list(passages)
    out: list[Passage] = []
    for i, p in enumerate(passages):
        picks = [(a, b) for n, (j, a, b, _) in enumerate(sentences) if j == i and n in chosen]
        if not picks:
            continue
        parts, prev_end = [], None
        for a, b in picks:
            if prev_end is not None:
                parts.append(" " if not p.text[prev_end:a].strip() else " … ")
            parts.append(p.text[a:b])
            prev_end = b
        text = ("… " if p.text[:picks[0][0]].strip() else "") + "".join(parts)
        text += " …" if p.text[picks[-1][1]:].strip() else ""
        out.append(Passage(len(out) + 1, p.chunk, text, trimmed=text != p.text))
    return out


def prompt_passages(question: str, chunks: Sequence[Chunk], cfg, count_tokens: Callable[[str], int]) -> list[Passage]:
    """The passages exactly as the answer path shows them to the model: packed, then focused."""
    passages = pack_context(chunks, cfg.context_tokens, count_tokens)
    return focus_passages(question, passages, cfg.focus_tokens, count_tokens)


# `<passage`, `</PASSAGE >`, `< /passage`, full-width `＜／passage`: any tag of a fence of ours
_FENCE_TAGS = re.compile(r"[<\uFF1C\uFE64\u2039\u3008]\s*[/\uFF0F]?\s*(passage|answer)\b", re.IGNORECASE)


def defang(text: str) -> str:
    """Untrusted text that cannot open or close a `<passage>`/`<answer>` fence (the `<` becomes `&lt;`)."""
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
    out = []
    for p in passages:
        label = fence_label(p.chunk.title or p.chunk.source.rsplit("/", 1)[-1])
        body = p.text
        forged = next((m for m in _FENCE_TAGS.finditer(body) if m.group(1).lower() == "passage"), None)
        if forged:
            body = (body[:forged.start()].rstrip() + " […]").strip()
        out.append(f'<passage id="{p.n}" source="{label}">\n{defang(body)}\n</passage>')
    return "\n".join(out)


def build_messages(question: str, passages: Sequence[Passage]):
    """The exact chat messages sent to the model."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    prompt = load_prompt("answer")
    messages = [SystemMessage(prompt["system"])]
    for ex in prompt.get("examples", []):  # earlier turns: the small model imitates them
        messages += [HumanMessage(prompt["user"].format(passages=ex["passages"], question=ex["question"])),
                     AIMessage(ex["reply"])]
    return messages + [HumanMessage(prompt["user"].format(passages=format_passages(passages), question=question))]


# --- parsing and citations ------------------------------------------------------------------
def strip_markers(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", _MARKER.sub("", text)).strip()


def parse_reply(raw: str) -> tuple[str, str]:
    """Split 'Answer: … / Details: …' into (short answer, details); tolerant of format slips."""
    text = raw.strip().replace("**", "")  # bold labels are common: "**Answer:** six"
    label = re.compile(r"(?:^|\s)(?:details|explanation|evidence)\s*:\s*", re.IGNORECASE)
    m = re.match(r"^\s*(?:short\s+)?answer\s*:\s*(.*)$", text, re.IGNORECASE | re.DOTALL)
    if m:
        rest = m.group(1)
        # the details may follow on the same line ("Answer: X Details: …") or the next
        cut = label.search(rest)
        if cut:
            short, details = rest[:cut.start()], rest[cut.end():]
        else:
            first, _, after = rest.partition("\n")
            short, details = first, after
    elif label.search(text):  # "Germany\nDetails: …": the label of the first line was left out
        cut = label.search(text)
        short, details = text[:cut.start()], text[cut.end():]
    else:
        short, details = "", text
    short, details = strip_markers(short).strip(), details.strip()
    if not short:
        plain = strip_markers(details)
        first = sentence_spans(plain)
        short = plain[first[0].start:first[0].end] if first else ""
    return short.strip(), details


def is_abstention(short: str, details: str) -> bool:
    """The model said the passages do not answer (checked on the short answer, or a bare reply)."""
    if _ABSTAIN.search(short):
        return True
    return not short and bool(_ABSTAIN.search(details))


def content_tokens(text: str) -> set[str]:
    return {_NUMBER_WORDS.get(t, t) for t in tokenize(strip_markers(text).replace(",", ""))}


def best_quote(claim: str, chunk_text: str) -> tuple[float, int, int]:
    """(support of claim by the chunk, quote start, quote end) — see the module docstring."""
    claim_tokens = content_tokens(claim)
    spans = sentence_spans(chunk_text) or []
    if not claim_tokens or not spans:
        return 0.0, 0, min(len(chunk_text), 300)
    support = len(claim_tokens & content_tokens(chunk_text)) / len(claim_tokens)
    best = max(spans, key=lambda s: (len(claim_tokens & content_tokens(chunk_text[s.start:s.end])), -s.start))
    return support, best.start, best.end


def resolve_citations(text: str, passages: Sequence[Passage], threshold: float,
                      short_answer: str = "") -> tuple[str, list[Citation], int]:
    """Map [n] markers to passages: drop dangling ones, quote and check each, cite uncited sentences.

    Returns (text with normalised markers, citations in order of first use, markers removed:
    dangling ones, and unsupported ones beside a supported marker in the same sentence).
    """
    by_n = {p.n: p for p in passages}
    dropped = 0

    def normalise(m: re.Match) -> str:
        nonlocal dropped
        nums = [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
        valid = [n for n in dict.fromkeys(nums) if n in by_n]
        dropped += len(nums) - len(valid)
        return "".join(f"[{n}]" for n in valid)

    text = _MARKER.sub(normalise, text).strip()
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    found: dict[int, Citation] = {}
    pieces: list[str] = []
    cursor, claim, claim_supported = 0, short_answer, False
    for span in sentence_spans(text):
        sentence = text[span.start:span.end]
        # a segment of markers only ("… [1]. [2][3]") cites the sentence before it
        markers_only = not strip_markers(sentence)
        claim = strip_markers(sentence) or claim or short_answer
        if not markers_only:
            claim_supported = False
        nums = [int(n) for n in re.findall(r"\[(\d+)\]", sentence)]
        if not nums and passages and claim:
            # an uncited sentence gets the passage that supports it best, if any does
            scored = [(best_quote(claim, p.chunk.text)[0], p.n) for p in passages]
            support, n = max(scored, key=lambda t: (t[0], -t[1]))
            if support >= threshold:
                nums = [n]
                sentence = _append_marker(sentence, n)
        checked = {n: found.get(n) or _citation(n, by_n[n], claim, threshold) for n in dict.fromkeys(nums)}
        claim_supported = claim_supported or any(c.supported for c in checked.values())
        if claim_supported:
            # an unsupported marker beside a supported one adds nothing but doubt: remove it
            for n, c in checked.items():
                if not c.supported and n not in found:
                    sentence = re.sub(rf"\s*\[{n}\]", "", sentence)
                    dropped += 1
            checked = {n: c for n, c in checked.items() if c.supported or n in found}
        for n, c in checked.items():
            found.setdefault(n, c)
        pieces.append(text[cursor:span.start] + sentence)
        cursor = span.end
    pieces.append(text[cursor:])
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", "".join(pieces)).strip(), list(found.values()), dropped


def drop_unsupported_sentences(text: str, passages: Sequence[Passage], threshold: float) -> str:
    """Remove sentences no passage supports (a small model sometimes echoes its examples or invents)."""
    kept = []
    for span in sentence_spans(text):
        sentence = text[span.start:span.end]
        claim = strip_markers(sentence)
        if not claim or max((best_quote(claim, p.chunk.text)[0] for p in passages), default=0.0) >= threshold:
            kept.append(sentence)
    return " ".join(kept)


def _append_marker(sentence: str, n: int) -> str:
    m = re.search(r"([.!?…]+[\"'”’)]*)$", sentence)
    return f"{sentence[:m.start()]} [{n}]{m.group(1)}" if m else f"{sentence} [{n}]"


def _citation(n: int, passage: Passage, claim: str, threshold: float) -> Citation:
    c = passage.chunk
    support, qs, qe = best_quote(claim, c.text)
    return Citation(
        n=n, chunk_id=c.chunk_id, source=c.source, title=c.title, page=c.page, quote=c.text[qs:qe],
        score=c.score, support=round(support, 3), supported=support >= threshold, url=c.url, text=c.text,
        quote_start=qs, quote_end=qe,
    )


def is_relevant(question: str, chunks: Sequence[Chunk], best_similarity: float, min_similarity: float) -> bool:
    """Worth asking the model: a passage is semantically close, or holds most of the question's words.

    Dense similarity alone misses questions about names ("Who is Chen Li?"),
    whose embeddings are far from any passage; word coverage catches those.
    """
    if not chunks:
        return False
    if best_similarity >= min_similarity:
        return True
    wanted = content_tokens(question)
    if not wanted:
        return False
    return max(len(wanted & content_tokens(c.text)) / len(wanted) for c in chunks) >= 0.5


def coverage(wanted: set[str], text: str) -> float:
    return len(wanted & content_tokens(text)) / len(wanted) if wanted else 1.0


def grounding_problem(question: str, short: str, citations: Sequence[Citation], passages: Sequence[Passage],
                      min_question_coverage: float) -> str:
    """Why the model's answer cannot be trusted, or "" when it is grounded.

    Two checks, both on stemmed content words: the short answer must occur in the
    passages (catches invented figures), and the cited passages must hold at least
    `min_question_coverage` of the question's words (catches an answer to a
    different question, e.g. a person's role in another company).
    """
    evidence = " ".join(c.text for c in citations) or " ".join(p.chunk.text for p in passages)
    yes_no = short.strip(" .!").lower() in ("yes", "no")
    if not yes_no and coverage(content_tokens(short), " ".join(p.chunk.text for p in passages)) < 0.5:
        return "the model's answer does not occur in the passages"
    if coverage(content_tokens(question), evidence) < min_question_coverage:
        return "the cited passages do not mention what was asked"
    return ""


# --- the whole path ------------------------------------------------------------------------
@dataclass
class AnswerDeps:
    """What the answer path needs; built by DocQA."""

    retrieve: Callable  # (question, k, sources) -> rag.retrieve.Retrieval
    chat_model: object
    count_tokens: Callable[[str], int]
    settings: object  # Settings
    extra: dict = field(default_factory=dict)


def answer_stream(question: str, deps: AnswerDeps, *, history=None, k: int | None = None,
                  sources=None) -> Iterator[str | Answer]:
    """Yield tokens as the model writes them, then the final Answer (always last)."""
    started = time.perf_counter()
    cfg = deps.settings.answer
    pairs = history_pairs(history)
    timings: dict[str, float] = {}
    standalone = condense_question(question, pairs, deps.chat_model)
    timings["condense_ms"] = _ms(started) if pairs else 0.0
    t = time.perf_counter()
    retrieval = deps.retrieve(standalone, k or deps.settings.retrieval.k, sources)
    timings["retrieval_ms"] = _ms(t)
    chunks = retrieval.chunks
    answer = Answer(text="", question=question, standalone_question=standalone, passages=list(chunks))
    if not is_relevant(standalone, chunks, retrieval.best_similarity, cfg.min_relevance):
        yield from _abstain(answer, pairs, timings, started, reason="no passage is relevant enough")
        return
    passages = prompt_passages(standalone, chunks, cfg, deps.count_tokens)
    messages = build_messages(standalone, passages)
    raw, n_tokens, first = [], 0, None
    for piece in deps.chat_model.stream(messages):
        token = _content(piece)
        if not token:
            continue
        if first is None:
            first = time.perf_counter()
            timings["first_token_ms"] = _ms(started)
        n_tokens += 1
        raw.append(token)
        yield token
    done = time.perf_counter()
    timings["generation_ms"] = round((done - (first or done)) * 1000, 1)
    timings["tokens"] = float(n_tokens)
    timings["tokens_per_s"] = round(n_tokens / (done - first), 2) if first and done > first else 0.0
    short, details = parse_reply("".join(raw))
    if is_abstention(short, details):
        yield from _abstain(answer, pairs, timings, started, reason="the passages do not answer it")
        return
    details = drop_unsupported_sentences(details, passages, cfg.support_threshold)
    # details that are only markers ("Details: [1]"), or none left, still say where the short answer came
    # from; details that leave the short answer out (a small model sometimes quotes a neighbouring
    # sentence) get it put in front, so the text a user reads always holds the answer
    if not strip_markers(details):
        body = f"{short} {details}".strip()
    elif short and coverage(content_tokens(short), details) < 0.5:
        body = f"{short.rstrip(' .')}. {details}"
    else:
        body = details
    text, citations, dropped = resolve_citations(body, passages, cfg.support_threshold, short_answer=short)
    ungrounded = grounding_problem(standalone, short, citations, passages, cfg.min_question_coverage)
    ungrounded = ungrounded or off_topic_answer(standalone, short, [p.chunk.text for p in passages])  # rag/guard.py
    if ungrounded:
        answer.draft = text
        yield from _abstain(answer, pairs, timings, started, reason=ungrounded)
        return
    answer.text, answer.short_answer, answer.citations, answer.dropped_citations = text, short, citations, dropped
    timings["total_ms"] = _ms(started)
    answer.timings = timings
    answer.history = pairs + [(question, text)]
    yield answer


def _abstain(answer: Answer, pairs, timings, started, reason: str) -> Iterator[Answer]:
    answer.abstained = True
    answer.text = load_prompt("answer")["abstain_text"]
    answer.abstain_reason = reason
    timings["total_ms"] = _ms(started)
    answer.timings = timings
    answer.history = pairs + [(answer.question, answer.text)]
    yield answer


def _content(piece) -> str:
    content = getattr(piece, "content", piece)
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content or "")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
