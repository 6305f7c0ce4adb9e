"""Does the installed llama.cpp build run on this machine? Checked once, in a child process.

llama.cpp's native build uses every instruction set the build machine's CPU reports. Some kernels and
sandboxes report AMX but do not enable its tile state: the first prompt of more than one token then dies
with a general protection fault in `ldtilecfg`, which kills the whole process (a UI, a server) with no
Python error. `check_llama_runs` evaluates a short prompt in a child process, so a crash becomes a clear
error with the fix, and records a pass per build so that later calls cost one `stat`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from rag.core.errors import LLMUnavailableError

REBUILD = ('CMAKE_ARGS="-DCMAKE_C_FLAGS=\'-mno-amx-tile -mno-amx-int8 -mno-amx-bf16\' '
           '-DCMAKE_CXX_FLAGS=\'-mno-amx-tile -mno-amx-int8 -mno-amx-bf16\'" '
           'pip install --force-reinstall --no-cache-dir --no-deps llama-cpp-python')

_CHILD = """
import sys, llama_cpp
llm = llama_cpp.Llama(sys.argv[1], n_ctx=256, n_threads=1, n_batch=64, verbose=False)
llm.eval(llm.tokenize(b"A prompt of a few tokens, evaluated as one batch, as every answer starts."))
print("ok")
"""


def build_signature() -> dict[str, object] | None:
    """The installed llama-cpp-python's version and native libraries (name, size, mtime); None if absent."""
    try:
        from importlib.metadata import PackageNotFoundError, files, version

        libs = sorted(str(f) for f in files("llama-cpp-python") or () if ".so" in f.name or f.suffix == ".dll")
        dist = version("llama-cpp-python")
    except PackageNotFoundError:
        return None
    from importlib.metadata import distribution

    root = Path(distribution("llama-cpp-python").locate_file(""))
    stats = []
    for lib in libs:
        try:
            st = (root / lib).stat()
        except OSError:
            continue
        stats.append([lib, st.st_size, st.st_mtime_ns])
    return {"version": dist, "libs": stats}


def check_llama_runs(model_path: Path, cache_dir: Path, *, timeout_s: float = 300.0) -> None:
    """Raise `LLMUnavailableError` with the fix when llama.cpp crashes evaluating a prompt here.

    The check runs once per llama-cpp-python build and model file: a pass is recorded in `cache_dir`.
    """
    signature = build_signature()
    if signature is None:
        return  # not installed: the factory's own error says what to install
    record = Path(cache_dir) / "llama-runtime-check.json"
    key = {"build": signature, "model": str(model_path), "model_size": Path(model_path).stat().st_size}
    try:
        if json.loads(record.read_text()) == key:
            return
    except (OSError, ValueError):
        pass
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(model_path)], capture_output=True, text=True,
                              timeout=timeout_s, env={**os.environ, "PYTHONFAULTHANDLER": ""})
    except subprocess.TimeoutExpired:
        return  # slow (a loaded machine), not broken: the answer path will tell
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise LLMUnavailableError(
            f"the installed llama-cpp-python crashes on this machine ({name} while evaluating a prompt): it was "
            f"built for CPU features this system does not enable (AMX, for one). Rebuild it without them: {REBUILD}")
    if proc.returncode != 0 or "ok" not in proc.stdout:
        return  # the model does not load (not a GGUF, say): loading it for an answer reports why
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(key))
