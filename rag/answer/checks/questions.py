"""What a question asks, read without the model: self-corrections resolved, the kind of answer expected.

Spoken or hastily typed questions correct themselves: "How many ships did Spain I mean Portugal
send?", "When did she, no sorry, where did she study law?". A small model answers the abandoned
half (Spain's ships, a year), and every later check (retrieval, question coverage, the prompt
itself) reads the wrong words. `resolve_corrections` keeps what the user meant:

- a restart (the repair begins a new question) keeps the repair;
- a replacement ("Spain I mean Portugal send") splices the repair in where the abandoned words
  were, aligned on a word both share when there is one ("the capital of Peru or rather of Chile").

Only explicit correction cues count ("I mean", "or rather", "no sorry", "scratch that", fillers
before a restart …); a plain "no", "rather" or "instead" is left alone unless a filler or a new
question follows it, so ordinary questions ("Which team had no wins?", "Would he rather stay?")
are returned unchanged.

`answer_type_problem` checks a finished answer against the question (a grounding step of
rag.answer.flow): the short answer must be of the asked kind ("what year" → a year, "how many" → a
number, "who"/"where" → not just a number or a date). `echo_problem` catches a short answer
that only repeats words the question says in a row ("Who married the couple?" "the couple"):
it names what was asked about, not the asked fact. A question that offers a choice ("X or Y?",
"between X and Y", "other than X") is exempt: there the answer is one of its words; so is a question
that is its own subject ("Who is Chen Li?" "Chen Li", with the sentence about her as the text).

Example::

    resolve_corrections("Who founded the club in 1901 no uh 1910?")
    # 'Who founded the club in 1910?'
    answer_type_problem("In what year was the fort built?", "Charlesfort")
    # 'the question asks for a year; the answer gives none'
    echo_problem("What does CGT stand for?", "CGT")
    # 'the answer only repeats words of the question'
"""

from __future__ import annotations

import re

from rag.text.words import ARTICLES, NUMBER_WORDS, STOPWORDS, is_yes_no

_FILLER = r"(?:uh+|um+|umm+|er+|erm|ah+|ack|hmm+|oh|oh dear)"
_WH = r"(?:what|who|whom|whose|when|where|which|why|how|tell me)"
_SEP = r"\s*,?\s*"
# an interregnum: what a speaker says between the abandoned words and the repair. Every word whole;
# words that also occur in ordinary questions ("rather", "instead", "no", "sorry", "make that") count
# only in company ("or rather", "no sorry", "or make that") or before what cannot continue a question
_CORE = (
    r"I\s+mean(?:t)?(?:\s+to\s+(?:say|ask))?|I\s+wanted\s+to\s+(?:say|ask|as)|let\s+me\s+rephrase"
    r"|I\s+apologi[sz]e|pardon\s+me|my\s+(?:mistake|bad)|scratch\s+that|I\s+guess"
    r"|(?:or|no|sorry|,)\s*(?:rather|make\s+that|instead)"
    r"|no\s*,?\s*sorry|sorry\s*,?\s*no|no\s*,?\s*wait|or\s+wait|no\s*,?\s*no"
    r"|(?:or|no)\s*,?\s*" + _FILLER +
    r"|sorry(?=\s*,?\s*(?:the|a|an|I|" + _WH + r"|\d)\b)"
    r"|no(?=\s+the\b)|instead(?=\s+I\s+guess)"
)
_CUE = re.compile(
    r"(?<![\w'])(?:" + _FILLER + r"\b" + _SEP + r")*(?:(?:no|sorry|oops|wait|actually|oh)\b" + _SEP + r")*"
    r"(?:" + _CORE + r")\b"
    r"(?:" + _SEP + r"(?:" + _FILLER + r"|actually|sorry|no|rather|instead|I\s+mean(?:t)?|I\s+guess)\b)*" + _SEP,
    re.IGNORECASE,
)
# a filler, or a bare "no", right before a new question: "What type of, ack, what does …", "Which machine no what …"
_RESTART_ONLY = re.compile(r"(?:,\s*)?(?<![\w'])(?:(?:" + _FILLER + r"|no|sorry|wait|actually|rather)\b" + _SEP + r")+"
                           r"(?=(?:(?:in|on|of|at|to|for|by|from)\s+)?" + _WH + r"\b)", re.IGNORECASE)
_STRAY_FILLER = re.compile(r"(?:\s*,)?\s+(?<![\w'])(?:uh+|um+|umm+|er+|erm|ah+|ack)\b(?:\s*,)?(?=\s)", re.IGNORECASE)
_WH_START = re.compile(r"^(?:(?:in|on|of|at|to|for|by|from|during|after|before|under|with)\s+)?" + _WH + r"\b",
                       re.IGNORECASE)
_AUX_START = re.compile(r"^(?:is|are|was|were|did|does|do|has|have|had|can|could|will|would)\b", re.IGNORECASE)
_TRAILING_CUE = re.compile(r"(?:\s*,?\s*\b(?:rather|instead|I\s+mean|sorry|actually))+\s*(?=[?.!]*\s*$)",
                           re.IGNORECASE)
_WORD = re.compile(r"\S+")
_ANCHOR_WINDOW = 6  # a replacement's shared word is looked for among the last words before the cue


def resolve_corrections(question: str) -> str:
    """`question` as the user meant it, self-corrections resolved (module docstring); unchanged without any."""
    text = question.strip()
    for _ in range(4):  # a question may correct itself more than once
        resolved = _resolve_last(text)
        if resolved == text:
            break
        text = resolved
    cleaned = _STRAY_FILLER.sub("", text)  # "How much uh gold …": a filler that corrects nothing
    return cleaned if cleaned.strip() else text


def _resolve_last(text: str) -> str:
    cue = _last(_CUE, text) or _last(_RESTART_ONLY, text)
    if cue is None:
        return text
    left, right = text[:cue.start()].rstrip(" ,"), _TRAILING_CUE.sub("", text[cue.end():]).strip(" ,")
    if "," in cue.group() or text[:cue.start()].rstrip().endswith(","):
        # a correction set off by commas ends at the next one: "How many companies, I mean cities, does …"
        right = re.sub(r"^((?:\S+\s+){0,3}?\S+?),\s", r"\1 ", right, count=1)
    if not re.search(r"\w", left) or not re.search(r"\w", right):
        return text
    if _WH_START.match(right):
        return _capitalise(right)  # a restart: the repair is a question of its own
    if cue.re is _RESTART_ONLY:
        return text
    if _AUX_START.match(right):  # "Which model of car I mean is the fastest?": the cue was a pause
        return f"{left} {right}"
    end = re.search(r"\s*[?.!]*\s*$", right)
    return _capitalise(_splice(left, right[:end.start()]) + end.group())


def _last(pattern: re.Pattern, text: str):
    """The last match with words on both sides."""
    found = None
    for m in pattern.finditer(text):
        if m.start() > 0 and re.search(r"\w", text[m.end():]):
            found = m
    return found


def _norm(word: str) -> str:
    return word.lower().strip(",;:")




def _content(words) -> set[str]:
    return {w for w in words if len(w) > 2 and w.isalpha() and w not in STOPWORDS}


def _splice(left: str, right: str) -> str:
    """Put the repair where the abandoned words were (module docstring)."""
    lw, rw = _WORD.findall(left), _WORD.findall(right)
    ln, rn = [_norm(w) for w in lw], [_norm(w) for w in rw]
    # a phrase said again, changed ("the oldest mill / the largest working mill in the county"): the repair
    # takes the place of the phrase that starts with the same word and shares the most of its words
    best, at = 0, -1
    for i in range(1, len(ln)):
        if ln[i] == rn[0]:
            shared = len(_content(ln[i + 1:i + len(rn)]) & _content(rn[1:]))
            if shared > best or (shared == best and shared):
                best, at = shared, i
    if best:
        return " ".join(lw[:at] + rw + lw[at + len(rw):])
    # a word both share near the cue: "the capital of Peru / of Chile"; or the end of the abandoned words
    # said again inside the repair: "Spain 's / the UK 's largest port"
    for i in range(len(ln) - 1, max(0, len(ln) - 1 - _ANCHOR_WINDOW), -1):
        if ln[i] == rn[0]:
            return " ".join(lw[:i] + rw)
        tail = ln[i:]
        for j in range(1, min(4, len(rn))):
            if (len(tail) > 1 or not tail[0].isalpha()) and rn[j:j + len(tail)] == tail:
                return " ".join(lw[:max(i - 1, 1)] + rw)
    # a name for a name: "Who governed Lyon in the 9th century, I apologize, Arles?"
    if rw[0][:1].isupper():
        for i in range(len(lw) - 1, max(0, len(lw) - 1 - _ANCHOR_WINDOW), -1):
            if lw[i][:1].isupper():
                end = i + 1
                while end < len(lw) and lw[end][:1].isupper():
                    end += 1
                if end == len(lw) or len(rw) <= 3:
                    return " ".join(lw[:i] + rw + lw[end:])
                break
    # a word for a word of the same form: "Who painted the chapel actually I mean restored?"
    if len(rw) == 1 and rw[0].islower():
        for suffix in ("ed", "ing"):
            if rn[0].endswith(suffix):
                for i in range(len(ln) - 1, 0, -1):
                    if ln[i].endswith(suffix) and ln[i] != rn[0]:
                        return " ".join(lw[:i] + rw + lw[i + 1:])
    return " ".join(lw[:-1] + rw) if len(lw) > 1 else right


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- the kind of answer a question asks for -----------------------------------------------------
_ASKS_YEAR = re.compile(r"\b(?:what|which|in what|what's the)\s+year\b|\byear\s+(?:did|was|were|is)\b", re.I)
_ASKS_NUMBER = re.compile(r"\bhow\s+(many|much|long|old|far|big|large|tall|high|deep|wide|often)\b"
                          r"|\bwhat\s+(?:percentage|percent|number|amount|proportion|fraction)\b", re.I)
_ASKS_WHO = re.compile(r"^\W*(?:who|whom)\b", re.I)
_ASKS_WHERE = re.compile(r"^\W*where\b", re.I)
# Words that state an amount or a time without digits: the number words, then quantities and frequencies.
_NUMBER_WORDS = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + (
    r"|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|sixty|seventy|eighty|ninety"
    r"|hundreds|thousands?|millions?|billions?|trillions?|dozens?|half|quarter|several|few"
    r"|many|once|twice|thrice|single|double|triple|daily|weekly|monthly|annually|yearly|every|each"
    r"|none|no|all|most|some|decades?|centur(?:y|ies)|years?|months?|weeks?|days?"
    r"|hours?|minutes?|seconds?|rarely|seldom|never|often|occasionally|regularly|usually|frequently"
    r"|sometimes|always|briefly")
_HAS_NUMBER = re.compile(r"\d|\b(?:" + _NUMBER_WORDS + r")\b", re.I)
_HAS_YEAR = re.compile(r"\b\d{3,4}s?\b|\b\d{1,2}(?:st|nd|rd|th)\b|\b(?:BC|BCE|AD|CE)\b|centur|decade"
                       r"|\b(?:" + _NUMBER_WORDS + r")\b", re.I)
_ONLY_NUMBER_OR_DATE = re.compile(
    r"^\W*(?:(?:in|on|by|around|about|circa|c\.|since|from|until|the)\s+)*"
    r"(?:\d[\d,.]*(?:s|st|nd|rd|th)?|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?)"
    r"(?:[\s,–-]+(?:\d[\d,.]*(?:s|st|nd|rd|th)?|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
    r"|BC|BCE|AD|CE))*\W*$", re.I)


def answer_type_problem(question: str, short: str) -> str:
    """Why `short` cannot answer `question` by its kind alone, or "" (module docstring). Lenient by design:
    only a clear mismatch counts (a year asked, no year-like word given; a number asked, none given; a person
    or place asked, only a number or a date given)."""
    short = short.strip()
    if not short or is_yes_no(short):
        return ""
    if _ASKS_YEAR.search(question) and not _HAS_YEAR.search(short):
        return "the question asks for a year; the answer gives none"
    amount = _ASKS_NUMBER.search(question)
    if amount and not _HAS_NUMBER.search(short) and not (amount.group(1) and amount.group(1).lower() in short.lower()):
        return "the question asks for an amount; the answer gives none"  # "How tall?" "taller than X" passes
    if (_ASKS_WHO.search(question) or _ASKS_WHERE.search(question)) and _ONLY_NUMBER_OR_DATE.match(short):
        return "the question asks for a person or a place; the answer is only a number or a date"
    return ""


_CHOICE = re.compile(r"\b(?:or|between|either|whether|versus|vs|other\s+than|besides|except|apart\s+from|"
                     r"instead\s+of|rather\s+than|which\s+of)\b", re.I)
# "Who is X?", "What were the X?", "Tell me about X": the question is its subject, and so is a short answer
_DEFINITION = re.compile(r"^\W*(?:(?:who|what)\s+(?:is|are|was|were)|tell\s+me\s+about|describe)\s+(.+?)[\s?.!]*$", re.I)


def _plain_words(text: str) -> list[str]:
    """Lower-case words without punctuation, articles or Latin accents (SQuAD's normalisation, and "-" splits)."""
    from rag.text.tokens import fold_latin

    return [fold_latin(w) for w in re.findall(r"[^\W_]+", text.lower()) if w not in ARTICLES]


def echo_problem(question: str, short: str) -> str:
    """Why `short` is no answer to `question`, or "": it only repeats words the question says in a row
    (module docstring). `question` is the user's own words, not a follow-up's rewrite, which holds earlier
    answers; a self-correction's "or rather" is not a choice."""
    said = _plain_words(short)
    meant = resolve_corrections(question)  # "the Norman or wait no I mean the Irish": a correction, not a choice
    if not said or _CHOICE.search(meant):
        return ""
    subject = _DEFINITION.match(meant)
    if subject and _plain_words(subject.group(1)) == said:
        return ""  # "Who is Chen Li?" "Chen Li": the answer is the sentence about them, which the text shows
    n = len(said)
    for words in {tuple(_plain_words(question)), tuple(_plain_words(meant))}:  # abandoned words echo too
        if any(list(words[i:i + n]) == said for i in range(len(words) - n + 1)):
            return "the answer only repeats words of the question"
    return ""
