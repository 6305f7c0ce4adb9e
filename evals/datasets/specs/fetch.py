#!/usr/bin/env python3
"""Fetch the documents of the `specs` evaluation set (the FHS 3.0 and the Debian Policy Manual, PDF) from Debian.

The manuals set's script (`../manuals/fetch.py`, `fetch_set`) on this set's documents.json and cache folder:

    python evals/datasets/specs/fetch.py                # into ~/.cache/rag-evals/specs
    python evals/datasets/specs/fetch.py --dest /data/specs
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.exit(runpy.run_path(str(HERE.parent / "manuals" / "fetch.py"))["fetch_set"](HERE, sys.argv[1:]))
