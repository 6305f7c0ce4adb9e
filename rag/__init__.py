"""Ask questions of your documents; every claim cites the passage it came from.

    from rag import DocQA
    qa = DocQA.open()
    qa.ingest(["corpus/"])
    qa.retrieve("...")
"""

from rag.core.config import Settings, load_settings
from rag.core.errors import RagError
from rag.core.types import (
           Answer,
           Chunk,
           Citation,
           Evidence,
           IngestReport,
           SourceInfo,
           Waiting,
)
from rag.serve.api import DocQA

__all__ = ["DocQA", "Settings", "load_settings", "RagError", "Answer", "Chunk", "Citation", "IngestReport", "SourceInfo",
           "Evidence", "Waiting"]
