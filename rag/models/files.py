"""Helpers shared by the model files' provisioning: no network, sha256, atomic writes, verified markers.

`offline_env()` is the only thing here that touches `os.environ`; nothing runs at import.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

# --------------------------------------------------------------------------- #
# Environment
# --------------------------------------------------------------------------- #

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def offline_env() -> None:
    """Forbid Hugging Face libraries from reaching the network in this process."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


# --------------------------------------------------------------------------- #
# Files
# --------------------------------------------------------------------------- #


def file_sha256(path: Path) -> str | None:
    """The sha256 of the file at `path` (hex), or None if there is none."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path` and move it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def human_size(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


# --------------------------------------------------------------------------- #
# Verified markers: `<file>.sha256`, newer than the file it vouches for
# --------------------------------------------------------------------------- #


def marker_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def is_verified(dest: Path, size: int, sha256: str) -> bool:
    """Whether `dest` was verified earlier: right size and a marker at least as new as it."""
    try:
        st = dest.stat()
        marker = marker_path(dest)
        mst = marker.stat()
        return st.st_size == size and mst.st_mtime >= st.st_mtime and marker.read_text().strip() == sha256
    except (FileNotFoundError, NotADirectoryError):
        return False


def write_marker(dest: Path, sha256: str) -> None:
    atomic_write(marker_path(dest), (sha256 + "\n").encode())
