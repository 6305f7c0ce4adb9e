#!/usr/bin/env python3
"""Fetch the documents of the `postgres` evaluation set (pages of the PostgreSQL 15 manual, HTML) from Debian.

The manuals set's script (`../manuals/fetch.py`, `fetch_set`) on this set's documents.json and cache folder:

    python evals/datasets/postgres/fetch.py                # into ~/.cache/rag-evals/postgres
    python evals/datasets/postgres/fetch.py --dest /data/postgres
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    sys.exit(runpy.run_path(str(HERE.parent / "manuals" / "fetch.py"))["fetch_set"](HERE, sys.argv[1:]))
