from tests.test_chroma_server import chroma_server  # noqa: F401  (the `chroma run` fixture)
