"""What the zip-based formats (.pptx, .xlsx, .epub, .odt) check before a parser sees the bytes.

An OLE container where a zip should be is a password-protected Office file (or
an old binary one renamed); a truncated or corrupt zip is refused with one line;
a zip whose members would unzip past the limit is a zip bomb
(`rag.ingest.loaders.docx.check_unzipped_size`).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from rag.core.errors import DocumentError
from rag.ingest.loaders.base import short_cause
from rag.ingest.loaders.docx import check_unzipped_size

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def open_zip(path: Path, data: bytes, kind: str, *, ole_hint: str = "") -> zipfile.ZipFile:
    """The checked zip archive of a `kind` file ('.pptx'); raises `DocumentError` with a one-line reason.

    `ole_hint` says what an OLE container means for this format (password-protected or old binary file).
    """
    if data.startswith(OLE_MAGIC):
        raise DocumentError(str(path), f"not a valid {kind} file ({ole_hint or 'an OLE container, not a zip'})")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DocumentError(str(path), f"not a valid {kind} file (not a zip archive, or truncated)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DocumentError(str(path), f"not a valid {kind} file ({short_cause(exc)})") from None
    check_unzipped_size(path, data)
    return archive


def read_member(path: Path, archive: zipfile.ZipFile, name: str, kind: str) -> bytes:
    """One member's bytes; a missing or damaged member is a `DocumentError` naming it."""
    try:
        return archive.read(name)
    except KeyError:
        raise DocumentError(str(path), f"not a valid {kind} file (missing {name})") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise DocumentError(str(path), f"not a valid {kind} file ({name}: {short_cause(exc)})") from None
