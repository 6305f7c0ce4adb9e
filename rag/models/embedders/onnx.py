"""The ONNX Runtime backend of the local embedding model, fp32 or int8.

`export_onnx` turns the packaged sentence-transformers folder into one ONNX
graph that does the whole computation (transformer, mean pooling over the
attention mask, L2 normalisation), offline, with `torch.onnx`; ONNX Runtime's
transformer optimiser fuses attention and GELU, and `quantize_dynamic`
stores the weights of the matrix products as int8 for the `onnx-int8` backend.
`rag provision` does this once per cache; `OnnxEmbeddings` then runs it with the
model's own fast tokenizer, truncating exactly where sentence-transformers does.

Example::

    paths = export_onnx(model_dir, cache / "models" / "all-MiniLM-L6-v2-onnx")
    emb = OnnxEmbeddings(model_dir, paths["onnx-int8"], name="all-MiniLM-L6-v2", backend="onnx-int8")
    emb.embed_query("What is BM25?")  # 384 floats, unit length
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

# bump when the exported graph changes: provisioned files are then redone. "2": residual additions and layer
# norms are left unfused (vectors as close to torch as version 1's, each within the int8 noise of the other)
EXPORT_VERSION = "2"

# ONNX Runtime's fused SkipLayerNormalization kernel took 18% of the int8 model's time on a 2-core AMD EPYC
# (AVX-512), where Add + LayerNormalization take 5%: the whole model ran 15-19% faster without it (264 squad
# chunks, alternating runs). The export leaves these unfused, and sessions do not fuse them back at load time.
_UNFUSED = ["SkipLayerNormFusion"]
FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}


def _st_config(model_dir: Path) -> dict:
    """max_seq_length and lower-casing as sentence-transformers reads them."""
    path = Path(model_dir) / "sentence_bert_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


# --------------------------------------------------------------------------- #
# Export (provision time)
# --------------------------------------------------------------------------- #

def export_onnx(model_dir: Path, out_dir: Path) -> dict[str, Path]:
    """Write `model.onnx` (fp32, fused) and `model-int8.onnx` (dynamic int8) into `out_dir`.

    Nothing is downloaded: the weights are read from `model_dir`. The files are
    written under temporary names and moved into place, so a killed export leaves
    no half file behind. Returns {"onnx": path, "onnx-int8": path}.
    """
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # eager attention exports as plain MatMul/Softmax, the pattern ONNX Runtime fuses into its Attention op
    st = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True,
                             model_kwargs={"attn_implementation": "eager"})
    transformer = st[0].auto_model.eval()
    config = transformer.config

    class Pooled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=-1)

    raw = out_dir / f".raw.{os.getpid()}.onnx"
    fused = out_dir / f".fused.{os.getpid()}.onnx"
    int8 = out_dir / f".int8.{os.getpid()}.onnx"
    try:
        ids = torch.ones(2, 16, dtype=torch.long)
        with torch.inference_mode():
            torch.onnx.export(
                Pooled(transformer), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(raw),
                input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["sentence_embedding"],
                dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                              "token_type_ids": {0: "batch", 1: "seq"}, "sentence_embedding": {0: "batch"}},
                opset_version=17, do_constant_folding=True, dynamo=False,
            )
        _fuse(raw, fused, config)
        # the fused graph has com.microsoft ops shape inference cannot type: their outputs are float
        quantize_dynamic(str(fused), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        paths = {"onnx": out_dir / FILES["onnx"], "onnx-int8": out_dir / FILES["onnx-int8"]}
        os.replace(fused, paths["onnx"])
        os.replace(int8, paths["onnx-int8"])
    finally:
        for tmp in (raw, fused, int8):
            tmp.unlink(missing_ok=True)
    return paths


def _fuse(src: Path, dest: Path, config) -> None:
    """ONNX Runtime's BERT graph fusions (attention, GELU; not `_UNFUSED`); a plain copy if they do not apply."""
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        options = FusionOptions("bert")
        options.enable_skip_layer_norm = False
        model = optimize_model(str(src), model_type="bert", num_heads=int(config.num_attention_heads),
                               hidden_size=int(config.hidden_size), opt_level=1, optimization_options=options)
        model.save_model_to_file(str(dest))
    except Exception as exc:  # an unknown architecture: the unfused graph is still correct
        import logging
        import shutil

        logging.getLogger(__name__).warning("ONNX graph fusion skipped (%s); using the plain export", exc)
        shutil.copyfile(src, dest)


# --------------------------------------------------------------------------- #
# Inference
# --------------------------------------------------------------------------- #

# rows per ONNX Runtime call: on CPU, small runs of similar length are faster than large ones (they stay in
# cache). Documents are embedded one single-threaded run per core, side by side (ONNX Runtime releases the
# GIL), which beats one run at a time spread over all cores: 264 squad chunks on 2 cores took 1.75-1.85 s in
# runs of 2-4 rows side by side, 1.9-2.05 s one run at a time over 2 threads (runs of 4-8), 3.5 s on 1 core
RUN_ROWS = 4

_SESSIONS: dict[tuple[str, int], object] = {}
_LOCK = threading.Lock()


def _session(path: Path, threads: int):
    """The process's one ONNX Runtime session for `path` with `threads` threads per run."""
    key = (str(path), threads)
    with _LOCK:
        if key not in _SESSIONS:
            _SESSIONS[key] = open_session(path, threads)
        return _SESSIONS[key]


def open_session(path: Path, threads: int, *, optimized_to: Path | None = None):
    """A new session; `optimized_to` writes the graph it runs (after ONNX Runtime's load-time fusions) there."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # no busy-waiting between ops: ingest chunks the next files on the same cores meanwhile
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_to is not None:
        opts.optimized_model_filepath = str(optimized_to)
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=_UNFUSED)


class OnnxEmbeddings(Embeddings):
    """Normalised MiniLM embeddings computed by ONNX Runtime (cosine = dot product)."""

    def __init__(self, model_dir: Path, onnx_path: Path, *, name: str, backend: str, batch_size: int = 64,
                 threads: int | None = None):
        self.model_dir = Path(model_dir)
        self.onnx_path = Path(onnx_path)
        self.name = name
        self.backend = backend
        self.version = EXPORT_VERSION  # the embedding cache keeps each graph version's vectors apart
        self.batch_size = batch_size
        self.threads = threads or os.cpu_count() or 1

    @cached_property
    def session(self):
        return _session(self.onnx_path, self.threads)

    @cached_property
    def _inputs(self) -> set[str]:
        return {i.name for i in self.session.get_inputs()}

    @cached_property
    def dimension(self) -> int:
        config = json.loads((self.model_dir / "config.json").read_text())
        pooling = self.model_dir / "1_Pooling" / "config.json"
        if pooling.is_file():
            return int(json.loads(pooling.read_text()).get("word_embedding_dimension", config["hidden_size"]))
        return int(config["hidden_size"])

    @cached_property
    def max_wordpieces(self) -> int:
        """Word-pieces the model reads (sentence-transformers' max_seq_length); longer input is truncated."""
        return int(_st_config(self.model_dir).get("max_seq_length") or 256)

    @cached_property
    def _tokenizer(self):
        """The model's fast tokenizer, truncating at `max_wordpieces` like sentence-transformers."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(self.max_wordpieces)
        return tok

    @cached_property
    def _counter(self):
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        return tok

    def count_wordpieces(self, text: str) -> int:
        """Word-pieces of `text` without the [CLS]/[SEP] the model adds."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    @cached_property
    def _do_lower(self) -> bool:
        return bool(_st_config(self.model_dir).get("do_lower_case"))

    def _lower(self, texts: list[str]) -> list[str]:
        return [t.lower() for t in texts] if self._do_lower else texts

    def _run(self, encodings, session=None) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        return (session or self.session).run(None, feed)[0]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(self._lower(list(texts)))
        # runs of similar length waste no work on padding
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids), reverse=True)
        rows = min(self.batch_size, RUN_ROWS)
        runs = [order[i:i + rows] for i in range(0, len(order), rows)]
        out = np.empty((len(encodings), self.dimension), dtype=np.float32)
        workers = min(self.threads, len(runs))
        if workers == 1:  # one run (a query-sized batch), or one core: all threads on it
            vectors = [self._run([encodings[j] for j in run]) for run in runs]
        else:  # one thread per run, `workers` runs at a time
            single = _session(self.onnx_path, 1)
            with ThreadPoolExecutor(workers, thread_name_prefix="rag-embed") as pool:
                vectors = list(pool.map(lambda run: self._run([encodings[j] for j in run], single), runs))
        for run, part in zip(runs, vectors):
            out[run] = part
        return out.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._run([self._tokenizer.encode(self._lower([text])[0])])[0].tolist()
