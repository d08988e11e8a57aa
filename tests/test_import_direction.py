"""Imports run one way and never in a circle, read from the source (every import, at any level).

The layers, lowest first: container (the image's code) <- modelbuild (the pipeline) <-
modeldeploy (deployment) <- template (packages the seeds) <- local (the local runtime and the
`mme` CLI). A module may import its own layer or a lower one, never a higher one: modeldeploy
ships as a seed repository of its own, and an upward import there is a ModuleNotFoundError on
AWS. TYPE_CHECKING-guarded imports count too: the rule is about what a module knows, and a
type-only upward import is still a lower layer naming a higher one.

A cycle between modules (also through imports inside functions) means neither can be read or
changed alone; the graph's strongly connected components (Tarjan) must all be single modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("container", "modelbuild", "modeldeploy", "template", "local")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((REPO / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _imported(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, first-party module) for every import in the file, at any depth; `from a import b`
    names the module a.b when that is a module, else a."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield node.lineno, candidate if candidate in MODULES else base


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for _, imported in _imported(path, name):
            # The nearest first-party module: `import a.b.c` of a module a.b.c, or a.b's name c.
            target = imported
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for name, path in MODULES.items()
        for line, imported in _imported(path, name)
        if imported.split(".")[0] in LAYERS and _layer(imported) > _layer(name)
    ]
    assert upward == [], "imports against the layer order:\n" + "\n".join(upward)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on a long import chain)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def test_there_is_no_import_cycle() -> None:
    cycles = [c for c in strongly_connected(_graph()) if len(c) > 1]
    assert cycles == [], "modules importing each other (also inside functions):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_cycle_finder_finds_cycles(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert [c for c in strongly_connected(graph) if len(c) > 1] == expected


def test_the_reader_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "planted.py"
    source.write_text("def f():\n    from local.home import LocalHome\n    return LocalHome\n")
    assert (2, "local.home") in list(_imported(source, "modeldeploy.planted"))
