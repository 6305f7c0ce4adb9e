"""Chat models: `factory` builds the configured one (llama.cpp, OpenAI-compatible or fake).

`llama_cpp` is the local adapter, `gguf` provides its model file, `queue` serves one answer at a time.
"""
