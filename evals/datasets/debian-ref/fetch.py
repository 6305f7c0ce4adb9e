#!/usr/bin/env python3
"""Fetch the document of the `debian-ref` evaluation set: the Debian Reference PDF, from its Debian package.

    python evals/datasets/debian-ref/fetch.py               # into ~/.cache/rag-evals/debian-ref
    python evals/datasets/debian-ref/fetch.py --dest DIR

The work is the manuals set's fetch script (`apt-get download`, `dpkg -x`, sha256 check) run on this
folder's documents.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "manuals"))

import fetch as manuals_fetch  # noqa: E402

if __name__ == "__main__":
    sys.exit(manuals_fetch.main(["--documents", str(HERE / "documents.json"),
                                 "--dest", str(Path.home() / ".cache" / "rag-evals" / "debian-ref"), *sys.argv[1:]]))
