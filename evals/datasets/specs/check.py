#!/usr/bin/env python3
"""Validate the `specs` evaluation set and print its counts: the manuals set's checks (`../manuals/check.py`:
fields, splits by document, each answerable question's first gold answer in its document's text), without the
balance that larger set promises.

    .venv/bin/python evals/datasets/specs/check.py
    .venv/bin/python evals/datasets/specs/check.py --no-text
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.exit(runpy.run_path(str(HERE.parent / "manuals" / "check.py"))["main"](folder=HERE, balance=False))
