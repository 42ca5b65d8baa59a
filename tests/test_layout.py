"""The code's shape: no import cycle between modules, each package imports only the layers below it
in the flow (the contract in pyproject.toml, checked by import-linter), and the read path's modules
and classes stay small enough to follow (docs/architecture.md)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def _cycles(graph) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), i.e. the import cycles."""
    modules = sorted(graph.modules - {"recsys"})  # the root only re-exports, lazily
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) - {"recsys"}) for m in modules}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges.get(module, ()):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("recsys", cache_dir=None)  # type-only imports count too
    assert _cycles(graph) == []


def test_the_packages_keep_to_their_layers():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_the_read_path_has_no_module_over_400_lines_and_no_class_over_300():
    found = []
    for folder in ("serve", "worker"):
        for path in sorted((ROOT / "recsys" / folder).glob("*.py")):
            source = path.read_text()
            if len(source.splitlines()) > 400:
                found.append(f"{path.name}: {len(source.splitlines())} lines")
            for node in ast.parse(source).body:
                if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > 300:
                    found.append(f"{path.name}: class {node.name}, {node.end_lineno - node.lineno + 1} lines")
    assert found == []
