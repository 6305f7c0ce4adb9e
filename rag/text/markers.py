"""Citation markers: `[1]`, `[2, 3]` in an answer's text (one definition, shared by answers and metrics)."""

from __future__ import annotations

import re

# `[1]`, `[2, 3]`: the citation markers of an answer (never part of what is scored)
MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")


def strip_markers(text: str) -> str:
    """The text without `[n]` markers (and without the space they leave before punctuation)."""
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", text)).strip()


def marker_numbers(text: str) -> list[int]:
    """Every number cited in `text`, in order (`"a [1] b [2, 3]"` -> [1, 2, 3])."""
    return [int(n) for group in MARKER.findall(text) for n in re.split(r"\s*[,;]\s*", group)]
