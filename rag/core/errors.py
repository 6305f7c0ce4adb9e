"""Errors a user can act on.

Every message says what went wrong *and* what to do about it. The CLI and the
UI translate these into exit messages / notices at the edge; library code only
raises them.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class for every error this package raises on purpose."""


class ConfigError(RagError):
    """A setting is missing or invalid."""


class ModelNotInstalledError(RagError):
    """A model package or optional backend is not installed."""

    def __init__(self, what: str, install: str):
        super().__init__(f"{what} is not installed: run `{install}`")
        self.install = install


class ModelIntegrityError(RagError):
    """An assembled model file does not match its recorded checksum."""


class DocumentError(RagError):
    """A document could not be ingested; `reason` is shown in the ingest summary."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UnsupportedFileError(DocumentError):
    """The file type is not one we can read."""


class EmptyDocumentError(DocumentError):
    """The file holds no extractable text."""


class IndexMismatchError(RagError):
    """The collection was built with a different embedding model."""


class NoDocumentsError(RagError):
    """The collection is empty."""

    def __init__(self, collection: str = "default"):
        super().__init__(
            f"no documents indexed yet in collection {collection!r}: "
            "run `rag ingest corpus/` (or upload files in the UI)"
        )


class UnknownSourceError(RagError):
    """A source named by the user is not in the index."""


class IngestLockedError(RagError):
    """Another process is writing to the same collection."""


class StoreUnavailableError(RagError):
    """The vector store (e.g. a Chroma server) cannot be reached."""


class StoreDamagedError(RagError):
    """The vector store refused a write with an internal error (a collection a crash left unloadable)."""


class LLMUnavailableError(RagError):
    """The configured language model backend cannot be used."""


class ConversationError(RagError):
    """A saved conversation or feedback record cannot be found, read or changed."""
