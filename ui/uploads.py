"""Storing browser uploads: safe names under the uploads folder, type and size checks.

The UI never serves these files back; they are only read by ingest.

Example::

    safe_filename("../../etc/passwd.txt")   # 'passwd.txt'
    safe_filename("my report (v2).pdf")     # 'my report _v2_.pdf'
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from rag.types import FileResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._\- ]")
_MAX_STEM = 100


def safe_filename(name: str) -> str:
    """A file name with no directories, no leading dots and only `[A-Za-z0-9._- ]`, suffix kept.

    Both `/` and `\\` count as directory separators, whatever the server's OS.
    """
    base = re.split(r"[/\\]", str(name))[-1]
    base = re.sub(r"\.{2,}", ".", _UNSAFE.sub("_", base)).strip()
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = stem.strip(" .")[:_MAX_STEM].strip(" .")  # no hidden files, no '..', no trailing dots
    suffix = suffix.strip(" .").lower()
    if not stem:
        stem = "upload"
    return f"{stem}.{suffix}" if suffix else stem


def save_uploads(files: list[str | Path], dest: Path, *, allowed: frozenset[str] | set[str],
                 max_bytes: int) -> tuple[list[Path], list[FileResult]]:
    """Copy uploaded temp files into `dest` under safe names.

    A file whose name is taken by different content gets a `-1`, `-2`… suffix;
    re-uploading the same bytes reuses the stored file (ingest then reports it
    `unchanged`).

    Args:
        files: temp paths as received from the browser (their names are the user's file names).
        dest: the uploads folder (created if missing).
        allowed: accepted suffixes, lower case with the dot (`.pdf`).
        max_bytes: largest accepted file.

    Returns:
        (stored paths to ingest, a `skipped` FileResult for each rejected file).
    """
    dest.mkdir(parents=True, exist_ok=True)
    stored: list[Path] = []
    rejected: list[FileResult] = []
    for item in files:
        src = Path(item)
        name = safe_filename(src.name)
        suffix = Path(name).suffix.lower()
        if suffix not in allowed:
            what = f"file type {suffix}" if suffix else "a file without an extension"
            rejected.append(FileResult(name, "skipped", reason=f"{what} is not accepted "
                                                             f"(accepted: {', '.join(sorted(allowed))})"))
            continue
        size = src.stat().st_size
        if size > max_bytes:
            rejected.append(FileResult(name, "skipped", reason=f"{size / 2**20:.1f} MB is over the upload limit of "
                                                             f"{max_bytes / 2**20:g} MB (RAG_UI__UPLOAD_MAX_MB)"))
            continue
        target = _free_target(dest, name, _digest(src))
        if not target.exists():
            shutil.copyfile(src, target)
        if target not in stored:
            stored.append(target)
    return stored, rejected


def _free_target(dest: Path, name: str, digest: str) -> Path:
    """`dest/name`, or the first `name-N` that is free or already holds the same bytes."""
    stem, suffix = Path(name).stem, Path(name).suffix
    for i in range(10_000):
        candidate = dest / (name if i == 0 else f"{stem}-{i}{suffix}")
        if not candidate.exists() or _digest(candidate) == digest:
            return candidate
    raise OSError(f"too many uploads named {name!r} in {dest}")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
