"""The answer path, as a flat sequence of testable steps, read top to bottom in `answer_stream`.

condense (follow-ups) -> retrieve -> relevance gate (`rag.grounding`) -> pack and focus the
context (`rag.context`) -> generate (streamed) -> parse the reply (`rag.replies`) -> resolve
and verify citations (`rag.citations`) -> grounding checks (`rag.grounding`) -> verification
(`rag.verify`: does the cited sentence state the asked fact?).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources

from rag.citations import content_tokens, drop_unsupported_sentences, resolve_citations
from rag.context import Passage, format_passages, prompt_passages
from rag.grounding import STEPS as GROUNDING_STEPS
from rag.grounding import coverage, grounding_problem, is_relevant
from rag.lists import complete_list
from rag.markers import strip_markers
from rag.replies import is_abstention, parse_reply
from rag.types import Answer
from rag.verify import verify_answer

History = Sequence[tuple[str, str]]


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
    convo = "\n".join(f"User: {u}\nAssistant: {strip_markers(a)}" for u, a in list(history)[-max_turns:])
    from langchain_core.messages import HumanMessage, SystemMessage

    reply = chat_model.invoke([SystemMessage(prompt["system"]),
                               HumanMessage(prompt["user"].format(history=convo, question=question))])
    text = str(reply.content).strip().splitlines()[0].strip().strip('"') if str(reply.content).strip() else ""
    text = re.sub(r"^(standalone question|question)\s*:\s*", "", text, flags=re.IGNORECASE).strip()
    # a rewrite that rambles, or answers instead of asking, is worse than the original
    if not text or len(text) > 4 * len(question) + 200 or (question.rstrip().endswith("?") and "?" not in text):
        return f"{history[-1][0]} {question}"
    return text


def build_messages(question: str, passages: Sequence[Passage]):
    """The exact chat messages sent to the model."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    prompt = load_prompt("answer")
    messages = [SystemMessage(prompt["system"])]
    for ex in prompt.get("examples", []):  # earlier turns: the small model imitates them
        messages += [HumanMessage(prompt["user"].format(passages=ex["passages"], question=ex["question"])),
                     AIMessage(ex["reply"])]
    return messages + [HumanMessage(prompt["user"].format(passages=format_passages(passages), question=question))]


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
        yield from _abstain(answer, pairs, timings, started, reason="no passage is relevant enough", step="relevance")
        return
    passages = prompt_passages(standalone, chunks, cfg, deps.count_tokens)
    answer.prompt_chunk_ids = [p.chunk.chunk_id for p in passages]
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
    answer.raw_reply = "".join(raw)
    short, details = parse_reply(answer.raw_reply)
    if is_abstention(short, details):
        yield from _abstain(answer, pairs, timings, started, reason="the passages do not answer it", step="model")
        return
    short = complete_list(standalone, short, passages, asked=question)  # rag.lists: one item of a list asked for -> the whole list
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
    if ungrounded:
        answer.draft = text
        yield from _abstain(answer, pairs, timings, started, reason=ungrounded, step=GROUNDING_STEPS[ungrounded])
        return
    # verification (rag.verify): a short second prompt asks whether the cited sentence states the asked fact
    if cfg.verify:
        verdict = verify_answer(standalone, short, citations, deps.chat_model, cfg.verify_threshold)
        timings["verify_ms"], answer.verify_p_yes = verdict.ms, verdict.p_yes
        if not verdict.passed:
            answer.draft = text
            answer.withheld = replace(answer, text=text, short_answer=short, citations=citations,
                                      dropped_citations=dropped, timings=dict(timings))
            yield from _abstain(answer, pairs, timings, started, step="verification",
                                reason="the cited sentence does not state the asked fact")
            return
    answer.text, answer.short_answer, answer.citations, answer.dropped_citations = text, short, citations, dropped
    timings["total_ms"] = _ms(started)
    answer.timings = timings
    answer.history = pairs + [(question, text)]
    yield answer


def _abstain(answer: Answer, pairs, timings, started, reason: str, step: str) -> Iterator[Answer]:
    answer.abstained = True
    answer.abstain_step = step
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
