"""Reading the model's reply: the short answer, the details, and whether it declined to answer."""

from __future__ import annotations

import re

from rag.text.markers import strip_markers
from rag.text.sentences import sentence_spans

_ABSTAIN = re.compile(
    r"\b(i\s+(do\s+not|don'?t|cannot|can'?t)\s+know|not\s+(mentioned|stated|provided|specified|found|given)"
    r"|(do|does)\s+not\s+(contain|mention|say|provide|specify|state)|no\s+(information|mention)"
    r"|cannot\s+(be\s+)?(answer|determine)|unable\s+to\s+(answer|determine|find))",
    re.IGNORECASE,
)


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
