"""One lock for every call into pdfium (pypdfium2): PDFium is not thread-safe, not even across documents.

The loader (text, outline, table cells), OCR's page rendering and the UI's page view all take it, so
an upload ingested in one thread and a page rendered for another user never call pdfium at once.
"""

from __future__ import annotations

import threading

PDFIUM_LOCK = threading.RLock()
