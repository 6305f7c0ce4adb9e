"""Runs the real `rag` CLI with the fake embedder made slow and observable (tests only).

$RAG_TEST_EMBED_DELAY: seconds slept per `embed_documents` call (a batch), so a
test can stop or race an ingest at a known stage; $RAG_TEST_EMBED_LOG: a file
that gets one line per call, the number of texts embedded.
"""

import os
import sys
import time

from rag.models.embedders import fake

_delay = float(os.environ.get("RAG_TEST_EMBED_DELAY", "0"))
_log = os.environ.get("RAG_TEST_EMBED_LOG")
_embed = fake.FakeEmbeddings.embed_documents


def _observed(self, texts):
    time.sleep(_delay)
    vectors = _embed(self, texts)
    if _log:
        with open(_log, "a") as fh:
            fh.write(f"{len(texts)}\n")
    return vectors


fake.FakeEmbeddings.embed_documents = _observed

if __name__ == "__main__":
    from rag.cli import main

    main(sys.argv[1:])
