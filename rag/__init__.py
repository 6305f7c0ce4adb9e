"""Ask questions of your documents; every claim cites the passage it came from.

    from rag import DocQA
    qa = DocQA.open()
    qa.ingest(["corpus/"])
    qa.retrieve("...")
"""

from rag.api import DocQA
from rag.config import Settings, load_settings
from rag.errors import RagError
from rag.types import Answer, Chunk, Citation, Evidence, IngestReport, SourceInfo, Waiting

__all__ = ["DocQA", "Settings", "load_settings", "RagError", "Answer", "Chunk", "Citation", "IngestReport", "SourceInfo",
           "Evidence", "Waiting"]
