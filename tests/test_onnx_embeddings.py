"""The ONNX backends of the real embedding model: exported offline, close to torch, same truncation."""

from __future__ import annotations

import numpy as np
import pytest

from rag.core.config import load_settings
from rag.models.embedders.factory import make_embedder

pytestmark = pytest.mark.integration

TEXTS = [
    "Super Bowl 50 was an American football game to determine the champion of the NFL for the 2015 season.",
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
    "Steam drives a turbine connected to an electrical generator.",
    "word " * 400,  # longer than the model reads: truncated at 256 word-pieces by every backend
]


@pytest.fixture(scope="module")
def embedders(tmp_path_factory):
    from tests.conftest import shared_cache

    home = tmp_path_factory.mktemp("onnx-home")
    return {b: make_embedder(load_settings(environ={}, home=home, cache=shared_cache(), embedding={"backend": b}))
            for b in ("torch", "onnx", "onnx-int8")}


def test_onnx_vectors_match_torch(embedders):
    torch_docs = np.array(embedders["torch"].embed_documents(TEXTS))
    for backend, floor in (("onnx", 0.9999), ("onnx-int8", 0.98)):
        emb = embedders[backend]
        docs = np.array(emb.embed_documents(TEXTS))
        assert docs.shape == torch_docs.shape
        assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
        assert (docs * torch_docs).sum(1).min() > floor, backend
        # the query path computes the same vector as the batch path; int8 quantises activations with one
        # scale per batch, so there a text's vector moves a little with the texts batched beside it
        query = np.array(emb.embed_query(TEXTS[2]))
        if backend == "onnx":
            assert np.allclose(query, docs[2], atol=1e-4)
        else:
            assert query @ docs[2] > 0.98
        assert emb.dimension == 384 and emb.max_wordpieces == embedders["torch"].max_wordpieces
        assert emb.count_wordpieces(TEXTS[0]) == embedders["torch"].count_wordpieces(TEXTS[0])


def test_export_is_provisioned_once(embedders, tmp_path):
    from rag.models.embedders.files import ensure_onnx_embedding
    from tests.conftest import shared_cache

    settings = load_settings(environ={}, home=tmp_path, cache=shared_cache())
    paths = ensure_onnx_embedding(settings)
    stamp = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    assert ensure_onnx_embedding(settings) == paths
    assert {k: p.stat().st_mtime_ns for k, p in paths.items()} == stamp  # not exported again
    from rag.models.provision import provision_all

    assert provision_all(settings, include_llm=False)["embedding-onnx"] == paths["onnx-int8"]  # the default backend


def test_runs_embedded_side_by_side_come_back_to_their_texts(embedders):
    """Documents go out in short runs, one thread per run, several runs at once: order must survive."""
    from rag.models.embedders.onnx import RUN_ROWS, OnnxEmbeddings

    emb = embedders["onnx-int8"]
    texts = [f"{i}. " + " ".join(TEXTS[i % 3].split()[: 4 + (7 * i) % 15]) for i in range(5 * RUN_ROWS + 1)]
    args = (emb.model_dir, emb.onnx_path)
    serial = OnnxEmbeddings(*args, name=emb.name, backend=emb.backend, threads=1)  # one run after another
    side_by_side = OnnxEmbeddings(*args, name=emb.name, backend=emb.backend, threads=3)
    expected = np.array(serial.embed_documents(texts))
    assert np.array_equal(np.array(side_by_side.embed_documents(texts)), expected)
    # and each row is its own text's vector (torch embeds the same texts in its own order)
    torch_docs = np.array(embedders["torch"].embed_documents(texts))
    assert (expected * torch_docs).sum(1).min() > 0.98


def test_layer_norms_run_unfused(embedders, tmp_path):
    """ONNX Runtime's SkipLayerNormalization kernel was the slow one here (rag.models.embedders.onnx._UNFUSED):
    neither the provisioned graphs nor the graphs the sessions run hold it."""
    import onnx

    from rag.models.embedders.onnx import open_session

    for backend in ("onnx", "onnx-int8"):
        path = embedders[backend].onnx_path
        ops = {n.op_type for n in onnx.load(str(path)).graph.node}
        assert "SkipLayerNormalization" not in ops and "LayerNormalization" in ops, backend
        open_session(path, 1, optimized_to=tmp_path / f"{backend}.onnx")
        ran = {n.op_type for n in onnx.load(str(tmp_path / f"{backend}.onnx")).graph.node}
        assert "SkipLayerNormalization" not in ran and "LayerNormalization" in ran, backend


CHILD = """
import sys, threading, time
from pathlib import Path

import rag.models.embedders.onnx as onnx_module
from rag.core.config import load_settings
from rag.models.embedders.files import ensure_onnx_embedding


started = threading.Event()


def slow_export(source, target):  # stands in for the real export (~10 s): files written after a while
    started.set()
    time.sleep(1.0)
    for name in onnx_module.FILES.values():
        (Path(target) / name).write_bytes(b"exported")


onnx_module.export_onnx = slow_export
home = Path(sys.argv[1])
settings = load_settings(environ={}, home=home, cache=home / "cache")
threading.Thread(target=ensure_onnx_embedding, args=(settings,), daemon=True).start()  # as the warm-up does
assert started.wait(60)  # the export is under way; the program ends here
"""


def test_an_export_begun_in_the_background_finishes_when_the_program_ends(tmp_path):
    """A script that opens the index and exits at once must not leave a half-provisioned cache that every
    later start exports again."""
    import subprocess
    import sys

    from rag.core.config import load_settings
    from rag.models.embedders.files import onnx_dir

    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    target = onnx_dir(load_settings(environ={}, home=tmp_path, cache=tmp_path / "cache"))
    assert (target / "export.stamp").is_file(), sorted(p.name for p in target.iterdir())
    assert (target / "model-int8.onnx").read_bytes() == b"exported"
