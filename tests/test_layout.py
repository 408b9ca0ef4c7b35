"""The package's layout as ARCHITECTURE.md describes it: no import cycles (lazy imports inside functions
included), dependencies flowing one way, and modules a newcomer can read in one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitsum"
MOST_LINES = 230  # "no module over about 200 lines"


def module_name(path: Path) -> str:
    parts = ["digitsum", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The digitsum modules that ``name`` imports anywhere in its file, top level or inside functions."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # `from . import x` names a module
    return {m for m in found if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_the_import_reader_sees_relative_lazy_and_package_imports(graph):
    assert "digitsum.errors" in graph["digitsum.predict"]
    assert "digitsum.preprocess" in graph["digitsum.predict"]
    assert "digitsum.cli.common" in graph["digitsum.cli.train"]
    assert "digitsum.training" in graph["digitsum.cli.train"]  # imported inside run()


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle in ``graph`` (module -> modules it imports), or None. Package ``__init__`` modules
    re-export their parts, so a part naming its own package (to reach its siblings) is not an edge."""
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = 1
        for other in sorted(graph[name]):
            if name.startswith(other + "."):
                continue
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state and (cycle := visit(other, path + [other])):
                return cycle
        state[name] = 2
        return None

    for name in graph:
        if name not in state and (cycle := visit(name, [name])):
            return cycle
    return None


def test_the_cycle_finder_finds_lazy_cycles_and_allows_package_parts():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"p": {"p.x"}, "p.x": {"p", "p.y"}, "p.y": set()}) is None


def test_no_import_cycles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("lower, upper", [
    ("digitsum.data", "digitsum.model"), ("digitsum.data", "digitsum.training"),
    ("digitsum.model", "digitsum.training"), ("digitsum.model", "digitsum.data"),
    ("digitsum.preprocess", "digitsum.training"), ("digitsum.preprocess", "digitsum.model"),
    ("digitsum.predict", "digitsum.training"), ("digitsum.predict", "digitsum.data"),
    ("digitsum.export", "digitsum.data"), ("digitsum.serve", "digitsum.training"),
    ("digitsum.serve", "digitsum.data"), ("digitsum.training", "digitsum.serve"),
    ("digitsum.training", "digitsum.report"),
    ("digitsum.predict", "digitsum.export"), ("digitsum.onnx_runtime", "digitsum.export"),  # inference never exports
])
def test_dependencies_flow_one_way(graph, lower, upper):
    """Nothing in ``lower`` imports anything in ``upper`` (inference never reaches back into training data)."""
    def inside(name: str, part: str) -> bool:
        return name == part or name.startswith(part + ".")

    wrong = sorted(f"{a} imports {b}" for a, targets in graph.items() if inside(a, lower)
                   for b in targets if inside(b, upper))
    assert wrong == []


def test_only_the_cli_imports_the_cli(graph):
    outside = [a for a in graph if not a.startswith("digitsum.cli") and a != "digitsum.__main__"]
    assert sorted(a for a in outside if any(b.startswith("digitsum.cli") for b in graph[a])) == []


def test_no_module_is_long():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MOST_LINES}
    assert long == {}
