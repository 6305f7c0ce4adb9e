#!/usr/bin/env python3
"""Fetch the documents of the `specs` evaluation set (the FHS 3.0 and the Debian Policy Manual, PDF) from Debian.

The same script as the manuals set's (`../manuals/fetch.py`), on this set's documents.json and cache folder:

    python evals/datasets/specs/fetch.py                # into ~/.cache/rag-evals/specs
    python evals/datasets/specs/fetch.py --dest /data/specs
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _manuals_script(name: str):
    spec = importlib.util.spec_from_file_location(f"manuals_{name}", HERE.parent / "manuals" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    fetch = _manuals_script("fetch")
    sys.exit(fetch.main(["--documents", str(HERE / "documents.json"),
                         "--dest", str(Path.home() / ".cache" / "rag-evals" / HERE.name), *sys.argv[1:]]))
