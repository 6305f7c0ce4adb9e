"""The package layout is the architecture: layers only point down, and no two modules import each other.

Reads every module of `rag/` and `ui/` with `ast` (nothing is imported): each import, at the top or inside a
function, is an edge; imports under `if TYPE_CHECKING:` are not, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own layer or a lower one, never a higher one.
LAYERS = (
    "rag.core",     # types at the boundary, errors, settings
    "rag.text",     # sentence splitting, tokens, word lists, markers
    "rag.models",   # provisioning, embedders, chat models
    "rag.index",    # vector store, sentence view, BM25, manifest, retrieval
    "rag.ingest",   # loaders, tables, OCR, chunking, the pipeline, uploads, watched folders
    "rag.answer",   # the answer path and its checks
    "rag.memory",   # conversations, feedback
    "rag.serve",    # DocQA, the HTTP API, MCP, LangChain views
    "rag.eval",     # datasets, metrics, the runner, reports
    "ui",           # the Gradio app
    "rag.cli",      # the `rag` command
    "rag",          # the public names of `from rag import DocQA`
)


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest layer name that `module` is or lies under."""
    best = None
    for i, name in enumerate(LAYERS):
        if (module == name or module.startswith(name + ".")) and (best is None or len(name) > len(LAYERS[best])):
            best = i
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add its package to LAYERS in {__file__}")
    return best


def module_files() -> dict[str, Path]:
    files = {}
    for top in ("rag", "ui"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports when it runs (a `from pkg import name` of a submodule counts)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - child.level + 1] + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return {m for m in found if m in known and m != module}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    files = module_files()
    return {module: imports_of(module, path, set(files)) for module, path in files.items()}


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_layers_only_point_down(graph):
    upward = sorted(f"{m} ({LAYERS[layer_of(m)]}) imports {t} ({LAYERS[layer_of(t)]})"
                    for m, targets in graph.items() for t in targets
                    if layer_of(t) > layer_of(m) and not m.startswith(t + "."))
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle between modules, as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        # a package's __init__ is imported with each of its modules: that edge is not a cycle
        for target in sorted(t for t in graph[node] if not node.startswith(t + ".")):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := walk(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := walk(start)):
            return found
    return None


def test_no_import_cycles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_what_they_are_for():
    """The test would fail on the regressions it exists for: an upward import, a cycle."""
    assert layer_of("rag.index.store") < layer_of("rag.ingest.pipeline")  # so store -> pipeline is upward
    assert layer_of("ui.app") > layer_of("rag.serve.http")
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    upward = {"rag.index.store": {"rag.ingest.pipeline"}, "rag.ingest.pipeline": set()}
    assert any(layer_of(t) > layer_of(m) for m, ts in upward.items() for t in ts)


def test_imports_are_read_from_the_source(tmp_path):
    """Lazy imports count; TYPE_CHECKING imports do not; `from pkg import module` names the module."""
    source = tmp_path / "mod.py"
    source.write_text("from typing import TYPE_CHECKING\n"
                      "from rag.index import store\n"
                      "if TYPE_CHECKING:\n    from rag.serve.api import DocQA\n"
                      "def f():\n    from rag.answer.flow import answer_stream\n")
    known = {"rag.index", "rag.index.store", "rag.serve.api", "rag.answer.flow", "rag.text.mod"}
    assert imports_of("rag.text.mod", source, known) == {"rag.index", "rag.index.store", "rag.answer.flow"}
