"""The answer path, as a flat sequence of testable steps, read top to bottom in `answer_stream`.

condense (follow-ups) -> retrieve -> relevance gate (`rag.answer.checks.grounding`) -> pack and focus the context
(`rag.answer.context`) -> generate (streamed) -> parse the reply (`rag.answer.replies`; the model may decline) ->
repairs and citations (`rag.answer.citations`) -> the checks (`rag.answer.checks`), each recorded as a signal ->
the model's token probabilities -> one calibrated confidence (`rag.answer.confidence`): the answer is withheld
when it is below `answer.min_confidence` or when a check listed in `answer.vetoes` objects -> verification
(`rag.answer.checks.verify`, off by default).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from rag.answer.checks.grounding import (
    coverage,
    grounding_problems,
    grounding_signals,
    is_relevant,
    passage_coverage,
)
from rag.answer.checks.guard import off_topic_answer
from rag.answer.checks.lists import complete_list
from rag.answer.checks.questions import answer_type_problem, definition_subject, describe, echo_problem
from rag.answer.checks.quoting import quote_exactly
from rag.answer.checks.verify import verify_answer
from rag.answer.citations import (
    better_evidence,
    drop_unsupported_sentences,
    resolve_citations,
)
from rag.answer.context import (
    Passage,
    best_match,
    defang,
    format_passages,
    prompt_passages,
)
from rag.answer.confidence import ANSWER_LABEL, answer_sureness, load_calibration
from rag.answer.prompts import load_prompt
from rag.answer.replies import is_abstention, parse_reply
from rag.core.types import Answer, Evidence, Waiting
from rag.text.markers import strip_markers
from rag.text.sentences import sentence_spans
from rag.text.tokens import content_tokens

History = Sequence[tuple[str, str]]


# --- history and follow-ups ------------------------------------------------------------------
def history_pairs(history) -> list[tuple[str, str]]:
    """Accept a previous Answer or a list of (user, assistant) pairs."""
    if history is None:
        return []
    if isinstance(history, Answer):
        return list(history.history)
    return [(str(u), str(a)) for u, a in history]


# A follow-up by its form: a personal pronoun ("Who founded it?"), a demonstrative standing for a noun
# ("Why was that?"), or an opening that continues the previous question ("And when?", "What about Paris?");
# or too few words of its own ("Where?"). Common words inside a standalone question do not count.
_PRONOUN = re.compile(r"\b(it|its|they|them|their|theirs|he|him|his|she|her|hers|former|latter)\b", re.IGNORECASE)
_DEMONSTRATIVE = re.compile(r"\b(this|that|these|those)(?=\s*(?:one|ones)?\s*[?.!,]*\s*$)"
                            r"|^\W*(this|that|these|those|there|then)\b", re.IGNORECASE)
_CONTINUES = re.compile(r"^\W*(and|but|also|so|then|what\s+about|how\s+about|which\s+of|the\s+same)\b",
                        re.IGNORECASE)


def needs_context(question: str) -> bool:
    """A follow-up that leans on the conversation, read from the question's form (see above)."""
    return bool(_PRONOUN.search(question) or _DEMONSTRATIVE.search(question) or _CONTINUES.search(question)
                or re.search(r"\bwhich\s+of\b", question, re.IGNORECASE)) or len(content_tokens(question)) < 2


def follow_up(question: str, history, pairs: History) -> tuple[str, str]:
    """(retrieval query, conversation context for the prompt) for `question`, without a model call.

    A question that stands alone is searched as it is, with no context. One that
    refers back is searched together with the previous question (what it refers to
    is there), and the prompt shows the previous question and the gist of its
    answer, fenced as data, so the model can resolve "they" or "the first one".
    """
    if not pairs or not needs_context(question):
        return question, ""
    previous_q = history.standalone_question if isinstance(history, Answer) and history.standalone_question \
        else pairs[-1][0]
    previous_a = strip_markers(pairs[-1][1])
    spans = sentence_spans(previous_a)
    gist = _fence_safe(previous_a[: spans[0].end] if spans else previous_a)[:400]
    # the previous short answer where it is known: a sentence on the "Answer:" line is imitated, and the next short
    # answer comes back as a sentence too
    short = _fence_safe(history.short_answer)[:200] if isinstance(history, Answer) and history.short_answer else ""
    template = load_prompt("answer")["history"]
    return f"{previous_q} {question}", template.format(question=_fence_safe(previous_q), answer=short or gist)


def _fence_safe(text: str) -> str:
    return defang(" ".join(text.split()))


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
    from rag.answer.checks.guard import rewrite_drifted

    if rewrite_drifted(question, text):  # another question (one an earlier answer asked for?): keep the user's
        return question
    return text


def build_messages(question: str, passages: Sequence[Passage], context: str = ""):
    """The exact chat messages sent to the model (`context`: the conversation, for a follow-up)."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    prompt = load_prompt("answer")
    messages = [SystemMessage(prompt["system"])]
    for ex in prompt.get("examples", []):  # earlier turns: the small model imitates them
        messages += [HumanMessage(prompt["user"].format(passages=ex["passages"], question=ex["question"])),
                     AIMessage(ex["reply"])]
    if context:
        user = prompt["user_follow_up"].format(passages=format_passages(passages), history=context, question=question)
    else:
        user = prompt["user"].format(passages=format_passages(passages), question=question)
    return messages + [HumanMessage(user)]


def warm_prompts(settings=None) -> list[list]:
    """Example prompts of each kind the answer path sends, for the model to cache their fixed prefix."""
    from rag.core.types import Chunk

    def passages(text):
        return [Passage(1, Chunk(chunk_id="w", text=text, source="warm.txt"), text)]

    kinds = [[build_messages("What is the tallest tree?", passages("Redwoods grow tall.")),
              build_messages("Who wrote it?", passages("A book was written."))]]
    condense = load_prompt("condense")
    from langchain_core.messages import HumanMessage, SystemMessage

    kinds.append([[SystemMessage(condense["system"]), HumanMessage(condense["user"].format(history=h, question=q))]
                  for h, q in (("User: a\nAssistant: b", "c?"), ("User: x y\nAssistant: z", "w?"))])
    if settings is not None and settings.answer.verify:
        from rag.answer.checks.verify import verify_messages

        kinds.append([verify_messages("Who wrote it?", "Ann", "Ann wrote it."),
                      verify_messages("When was the bridge built?", "1932", "The bridge opened in 1932.")])
    return kinds


# --- reading the reply -----------------------------------------------------------------------
# The repairs `read_reply` applies, by name (`Reading` replays with some `off`: evals/calibrate.py's ablation)
REPAIRS = ("complete_list", "quote_exactly", "describe", "drop_unsupported", "better_evidence")
# The checks that may withhold an answer on their own (`answer.vetoes`); every one is also a confidence feature
CHECKS = ("answer_not_in_passages", "question_coverage", "off_topic", "answer_type", "echo")


@dataclass
class Reading:
    """The model's reply as the user would see it, what each check found (`problems`: check -> reason) and the
    signals the confidence is computed from. `declined`: the model itself said the passages do not answer."""

    short: str = ""
    text: str = ""
    citations: list = field(default_factory=list)
    dropped: int = 0
    declined: bool = False
    problems: dict = field(default_factory=dict)
    signals: dict = field(default_factory=dict)


def read_reply(raw: str, standalone: str, asked: str, passages: Sequence[Passage], cfg,
               off: frozenset[str] = frozenset()) -> Reading:
    """Parse the reply, complete a list, put the short answer in the passage's own words, ground its text
    in cited passage sentences, then run every check that needs no model call (`CHECKS`), recording what
    each found: the grounding checks (`rag.answer.checks.grounding`), an off-topic answer
    (`rag.answer.checks.guard`), the answer's kind and an answer that only echoes the question
    (`rag.answer.checks.questions`). `off`: repairs (`REPAIRS`) to skip, for ablations."""
    short, details = parse_reply(raw)
    if is_abstention(short, details):
        return Reading(short=short, declined=True)
    if "complete_list" not in off:  # one item of a list asked for -> the whole list (rag.answer.checks.lists)
        short = complete_list(standalone, short, passages, asked=asked)
    if "quote_exactly" not in off:  # "7 months old" -> "seven months old" (rag.answer.checks.quoting)
        short = quote_exactly(short, [p.text for p in passages])
    subject = definition_subject(asked)
    if "describe" not in off and subject and echo_problem(asked, short):  # "Who is X?" "X": say who X is
        short = describe(subject, [p.chunk.text[s.start:s.end] for p in passages for s in sentence_spans(p.chunk.text)]) \
            or short
    if "drop_unsupported" not in off:
        details = drop_unsupported_sentences(details, passages, cfg.support_threshold)
    # the text a user reads always states the short answer, in a cited passage sentence: the model's details
    # when one of them does, else the passage sentence that does (a small model sometimes quotes a neighbouring
    # sentence, or gives none); else the short answer is put in front of whatever details are left
    better = better_evidence(standalone, short, details, passages) if "better_evidence" not in off else ""
    if better:  # no details, or details quoting a sentence that does not state the answer: show the one that does
        body = f"{short.rstrip(' .')}. {better}" if coverage(content_tokens(short), better) < 0.5 else better
    elif not strip_markers(details):
        body = f"{short} {details}".strip()
    elif short and coverage(content_tokens(short), details) < 0.5:
        body = f"{short.rstrip(' .')}. {details}"
    else:
        body = details
    text, citations, dropped = resolve_citations(body, passages, cfg.support_threshold, short_answer=short)
    reading = Reading(short=short, text=text, citations=citations, dropped=dropped)
    grounding = grounding_signals(standalone, short, citations, passages, asked=asked)
    problems = {
        **grounding_problems(grounding, cfg.min_question_coverage),
        "off_topic": off_topic_answer(standalone, short, [p.chunk.text for p in passages]),  # rag/answer/checks/guard.py
        "answer_type": answer_type_problem(asked, short),  # a year asked, a name given
        "echo": echo_problem(asked, short),  # the model named the subject, not the fact
    }
    reading.problems = {k: v for k, v in problems.items() if v}
    reading.signals = {**grounding, "support": max((c.support for c in citations), default=0.0),
                       **{k: float(bool(problems[k])) for k in ("off_topic", "answer_type", "echo")}}
    return reading


# --- the whole path ------------------------------------------------------------------------
@dataclass
class AnswerDeps:
    """What the answer path needs; built by DocQA."""

    retrieve: Callable  # (question, k, sources) -> rag.index.retrieve.Retrieval
    chat_model: object
    count_tokens: Callable[[str], int]
    settings: object  # Settings
    queue: object = None  # rag.models.chat.queue.GenerationQueue of a local model (one answer at a time), else None
    extra: dict = field(default_factory=dict)


def answer_stream(question: str, deps: AnswerDeps, *, history=None, k: int | None = None,
                  sources=None) -> Iterator[str | Evidence | Waiting | Answer]:
    """Yield what retrieval found (`Evidence`), queue positions (`Waiting`), the model's tokens, then the
    final `Answer` (always last)."""
    queue = deps.queue
    ticket = queue.join() if queue is not None else None
    try:  # the local model's turn is held from the first model call to the last (generation, verification)
        yield from _answer(question, deps, history, k, sources, queue, ticket)
    finally:
        if queue is not None:
            queue.leave(ticket)


def _answer(question, deps, history, k, sources, queue, ticket):
    started = time.perf_counter()
    cfg = deps.settings.answer
    pairs = history_pairs(history)
    timings: dict[str, float] = {}
    if cfg.follow_ups == "rewrite" and pairs:
        yield from _wait_turn(queue, ticket, timings, started)
        standalone, context = condense_question(question, pairs, deps.chat_model), ""
        timings["condense_ms"] = _ms(started)
    else:
        standalone, context = follow_up(question, history, pairs)
    t = time.perf_counter()
    retrieval = deps.retrieve(standalone, k or deps.settings.retrieval.k, sources)
    timings["retrieval_ms"] = _ms(t)
    chunks = retrieval.chunks
    answer = Answer(text="", question=question, standalone_question=standalone, passages=list(chunks))
    answer.signals |= {"similarity": round(float(retrieval.best_similarity), 4),
                       "passage_coverage": round(passage_coverage(standalone, chunks), 4)}
    if not is_relevant(standalone, chunks, retrieval.best_similarity, cfg.min_relevance):
        yield Evidence(list(chunks), query=standalone)
        yield from _abstain(answer, pairs, timings, started, reason="no passage is relevant enough", step="relevance")
        return
    passages = prompt_passages(standalone, chunks, cfg, deps.count_tokens, follow_up=bool(context))
    answer.prompt_chunk_ids = [p.chunk.chunk_id for p in passages]
    answer.prompt_texts = [p.text for p in passages]
    match = best_match(standalone, passages)
    yield Evidence(list(chunks), quote=match[1] if match else "", chunk_id=match[0].chunk.chunk_id if match else "",
                   query=standalone)
    timings["evidence_ms"] = _ms(started)
    messages = build_messages(question if context else standalone, passages, context)
    shown = " ".join([question, context, *(p.text for p in passages)])
    timings["necessary_tokens"] = float(getattr(deps.chat_model, "count_tokens", deps.count_tokens)(shown))
    yield from _wait_turn(queue, ticket, timings, started)
    raw, n_tokens, first, meta = [], 0, None, {}
    # `answer.copy_answer`: the local model keeps its short answer to text the passages hold (rag.models.chat.llama_cpp)
    copy = {"copy_from": "\n".join(p.text for p in passages), "copy_label": ANSWER_LABEL,
            "copy_decline": load_prompt("answer")["abstain_text"]} \
        if cfg.copy_answer and getattr(deps.chat_model, "copies_answers", False) else {}
    for piece in deps.chat_model.stream(messages, **copy):
        meta = getattr(piece, "response_metadata", None) or meta
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
    for key in ("prompt_tokens", "prompt_evaluated"):
        if key in meta:
            timings[key] = float(meta[key])
    timings["generation_ms"] = round((done - (first or done)) * 1000, 1)
    timings["tokens"] = float(n_tokens)
    timings["tokens_per_s"] = round(n_tokens / (done - first), 2) if first and done > first else 0.0
    answer.raw_reply = "".join(raw)
    reading = read_reply(answer.raw_reply, standalone, question, passages, cfg)
    text, short, citations, dropped = reading.text, reading.short, reading.citations, reading.dropped
    if reading.declined:
        yield from _abstain(answer, pairs, timings, started, reason="the passages do not answer it", step="model")
        return
    answer.signals.update(reading.signals)
    sureness = answer_sureness(meta.get("token_probs") or [])  # a local model reports its tokens' probabilities
    if sureness is not None:
        answer.signals["answer_p"] = round(sureness, 4)
    # the model's own doubt: how likely it was to decline ("Answer: I don't know …") instead of answering, and
    # how sure it was of its first answer token (one token evaluated; a local model only): confidence features
    doubt = getattr(deps.chat_model, "continuation_probabilities", None)
    if doubt is not None:
        t = time.perf_counter()
        decline, top = doubt(messages, ANSWER_LABEL, load_prompt("answer")["abstain_text"].split()[0])
        answer.decline_p, answer.first_token_p = round(decline, 4), round(top, 4)
        answer.signals |= {"decline_p": answer.decline_p, "first_token_p": answer.first_token_p}
        timings["decline_ms"] = _ms(t)
    calibration = load_calibration()
    if calibration is not None:
        answer.confidence = round(calibration.confidence(answer.signals), 4)
    vetoed = [step for step in cfg.vetoes if step in reading.problems]
    threshold = cfg.min_confidence if cfg.min_confidence is not None else (calibration.threshold if calibration else 0)
    if vetoed or (answer.confidence is not None and answer.confidence < threshold):
        _withhold(answer, text, short, citations, dropped, timings)
        step = vetoed[0] if vetoed else "confidence"
        reason = reading.problems[step] if vetoed else \
            f"the answer is unlikely to be right (confidence {answer.confidence:.0%} < {threshold:.0%})"
        yield from _abstain(answer, pairs, timings, started, reason=reason, step=step)
        return
    # verification (rag.answer.checks.verify): a short second prompt asks whether the cited sentence states the asked fact
    if cfg.verify:
        verdict = verify_answer(standalone, short, citations, deps.chat_model, cfg.verify_threshold)
        timings["verify_ms"], answer.verify_p_yes = verdict.ms, verdict.p_yes
        if not verdict.passed:
            _withhold(answer, text, short, citations, dropped, timings)
            yield from _abstain(answer, pairs, timings, started, step="verification",
                                reason="the cited sentence does not state the asked fact")
            return
    answer.text, answer.short_answer, answer.citations, answer.dropped_citations = text, short, citations, dropped
    timings["total_ms"] = _ms(started)
    answer.timings = timings
    answer.history = pairs + [(question, text)]
    yield answer


def _wait_turn(queue, ticket, timings, started, poll_s: float = 0.25) -> Iterator[Waiting]:
    """Wait for the local model's turn, reporting how many questions are ahead whenever that changes."""
    if queue is None or "queue_ms" in timings:
        return
    t, last = time.perf_counter(), None
    while not queue.wait(ticket, poll_s):
        ahead = queue.ahead(ticket)
        if ahead != last:
            last = ahead
            yield Waiting(ahead)
    timings["queue_ms"] = _ms(t)


def _withhold(answer: Answer, text: str, short: str, citations, dropped: int, timings) -> None:
    """Keep the finished answer a last check (doubt, verification) withholds: what the user would have seen."""
    answer.draft = text
    answer.withheld = replace(answer, text=text, short_answer=short, citations=citations,
                              dropped_citations=dropped, timings=dict(timings))


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
