"""Storing browser uploads: safe names under the uploads folder, type and size checks.

The UI never serves these files back; they are only read by ingest.

Example::

    safe_filename("../../etc/passwd.txt")   # 'passwd.txt'
    safe_filename("my report (v2).pdf")     # 'my report _v2_.pdf'
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

from rag.core.types import FileResult

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
                 max_bytes: int, max_files: int | None = None,
                 max_total_bytes: int | None = None) -> tuple[list[Path], list[FileResult]]:
    """Copy uploaded temp files into `dest` under safe names.

    A file whose name is taken by different content gets a `-1`, `-2`… suffix;
    re-uploading the same bytes reuses the stored file (ingest then reports it
    `unchanged`). Each file is copied to a unique temp name first and then
    claimed under its final name atomically (`os.link` fails if the name
    exists), so two users uploading the same name at once never overwrite each
    other and no reader sees a half-written file.

    Args:
        files: temp paths as received from the browser (their names are the user's file names).
        dest: the uploads folder (created if missing).
        allowed: accepted suffixes, lower case with the dot (`.pdf`).
        max_bytes: largest accepted file.
        max_files: most files accepted from one upload (the rest are skipped); None: no limit.
        max_total_bytes: most bytes the uploads folder may hold; None: no limit.

    Returns:
        (stored paths to ingest, a `skipped` FileResult for each rejected file).
    """
    dest.mkdir(parents=True, exist_ok=True)
    stored: list[Path] = []
    rejected: list[FileResult] = []
    for i, item in enumerate(files):
        src = Path(item)
        name = safe_filename(src.name)
        if max_files is not None and i >= max_files:
            rejected.append(FileResult(name, "skipped", reason=f"only {max_files} files are accepted per upload "
                                                             "(RAG_UI__UPLOAD_MAX_FILES): upload the rest separately"))
            continue
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
        target, reason = _store_one(src, dest, name, size, max_total_bytes)
        if target is None:
            rejected.append(FileResult(name, "skipped", reason=reason))
        elif target not in stored:
            stored.append(target)
    return stored, rejected


_QUOTA_LOCK = threading.Lock()
_PART = ".part-"  # prefix of temp copies (hidden: ingest never sees them)


def uploads_size(dest: Path) -> int:
    """Bytes held by the stored uploads (temp copies in progress not counted)."""
    total = 0
    for entry in os.scandir(dest) if dest.exists() else ():
        if entry.is_file(follow_symlinks=False) and not entry.name.startswith(_PART):
            total += entry.stat(follow_symlinks=False).st_size
    return total


def _store_one(src: Path, dest: Path, name: str, size: int,
               max_total_bytes: int | None) -> tuple[Path | None, str]:
    """Copy `src` to a unique temp file in `dest`, then claim `name` (or `name-N`) for it atomically."""
    tmp = dest / f"{_PART}{uuid.uuid4().hex}{Path(name).suffix}"
    try:
        shutil.copyfile(src, tmp)
        digest = _digest(tmp)
        # the quota check and the claim happen under one lock, so two uploads cannot both fit in the last space
        with _QUOTA_LOCK:
            target = _free_target(dest, name, digest)
            if target.exists():  # the same bytes are already stored: nothing new on disk
                return target, ""
            if max_total_bytes is not None and uploads_size(dest) + size > max_total_bytes:
                return None, (f"the uploads folder would exceed {max_total_bytes / 2**20:g} MB "
                              "(RAG_UI__UPLOADS_MAX_TOTAL_MB): delete documents first")
            return _claim(tmp, dest, name, digest), ""
    finally:
        tmp.unlink(missing_ok=True)


def _claim(tmp: Path, dest: Path, name: str, digest: str) -> Path:
    """Give `tmp` the first free name; a name taken meanwhile (another process) moves on to the next."""
    for _ in range(10_000):
        target = _free_target(dest, name, digest)
        if target.exists():
            return target
        try:
            os.link(tmp, target)  # atomic: fails if the name exists, never overwrites
            return target
        except FileExistsError:
            continue
        except OSError:  # no hard links here: reserve the name exclusively, then move the copy over it
            try:
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            shutil.copyfile(tmp, f"{tmp}.x")
            os.replace(f"{tmp}.x", target)
            return target
    raise OSError(f"too many uploads named {name!r} in {dest}")


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


def remove_upload(source: str | Path, dest: Path) -> bool:
    """Delete the stored upload behind `source` if it lies in `dest` (never anything outside it)."""
    path = Path(source)
    try:
        inside = path.resolve().parent == dest.resolve()
    except OSError:
        return False
    if inside and path.is_file() and not path.is_symlink():
        path.unlink(missing_ok=True)
        return True
    return False
