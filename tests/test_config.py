import pytest

from rag.core.config import load_settings
from rag.core.errors import ConfigError


def test_defaults_and_env_nesting(tmp_path):
    s = load_settings(environ={"RAG_HOME": str(tmp_path), "RAG_RETRIEVAL__K": "8", "RAG_LLM__PROVIDER": "openai",
                               "RAG_CHROMA_URL": "http://127.0.0.1:9000"})
    assert s.home == tmp_path
    assert s.retrieval.k == 8
    assert s.llm.provider == "openai"
    assert s.chroma_url == "http://127.0.0.1:9000"
    assert s.cache_dir == tmp_path / "cache"
    assert s.ui.host == "127.0.0.1"


def test_precedence_toml_env_overrides(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('collection = "from-toml"\n[retrieval]\nk = 3\ncandidates = 20\n')
    s = load_settings(environ={"RAG_HOME": str(tmp_path), "RAG_RETRIEVAL__K": "4"}, retrieval={"candidates": 9})
    assert s.collection == "from-toml"  # <home>/config.toml is read
    assert s.retrieval.k == 4  # env beats TOML
    assert s.retrieval.candidates == 9  # overrides beat env


def test_openai_key_from_environment(tmp_path):
    s = load_settings(environ={"RAG_HOME": str(tmp_path), "OPENAI_API_KEY": "sk-test"})
    assert s.llm.api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(s)


def test_missing_config_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={"RAG_HOME": str(tmp_path), "RAG_CONFIG": str(tmp_path / "nope.toml")})


def test_invalid_values_rejected(tmp_path):
    # pydantic's ValidationError becomes one ConfigError line naming the variable (tests/robustness)
    with pytest.raises(ConfigError, match="RAG_RETRIEVAL__MODE='magic'"):
        load_settings(environ={"RAG_HOME": str(tmp_path), "RAG_RETRIEVAL__MODE": "magic"})
    with pytest.raises(ConfigError, match="overlap_tokens"):
        load_settings(environ={"RAG_HOME": str(tmp_path)}, chunking={"chunk_tokens": 50, "overlap_tokens": 50})


def test_no_import_time_side_effects(tmp_path):
    import subprocess
    import sys

    code = "import rag, sys; print(any(m in sys.modules for m in ('torch', 'chromadb', 'sentence_transformers', 'llama_cpp', 'gradio')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
