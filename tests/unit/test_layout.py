"""The package's folders show its layers, and imports only point down (docs/architecture.md).

Every import in the package, module level or inside a function, is read with ``ast``: none
may reach a higher layer, and no two modules may import each other, however indirectly.
"""

import ast
import pathlib
from typing import Dict, List, Set

import pytest

ROOT = pathlib.Path(__file__).parents[2]
PACKAGE = ROOT / "orchestration_client"
TESTS = ROOT / "tests"

#: Top to bottom; a module may import its own layer and the layers below it.
LAYERS = [
    ("public face", {"__init__", "__main__", "schemas", "filters", "states", "sorting", "exceptions"}),
    ("client", {"_client", "_get_client"}),
    ("call semantics", {"_calls"}),
    ("local server", {"_local_server"}),
    ("HTTP", {"_http"}),
    ("settings", {"_settings"}),
    ("models", {"_models"}),
    ("errors and constants", {"_exceptions", "_retry_after", "_version"}),
]  # fmt: skip


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts.pop()
    return ".".join(parts)


def modules() -> Dict[str, pathlib.Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def rank(module: str) -> int:
    first = module.split(".")[1] if "." in module else "__init__"
    for index, (_, members) in enumerate(LAYERS):
        if first in members:
            return index
    raise AssertionError(f"{module} is in no layer of LAYERS")


def imports(module: str, path: pathlib.Path, known: Set[str]) -> Set[str]:
    """The package modules ``module`` imports (a package's ``__init__`` counts as itself)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in known and name != module}


@pytest.fixture(scope="module")
def graph() -> Dict[str, Set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_top_level_stays_small() -> None:
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    subpackages = sorted(path.parent.name for path in PACKAGE.glob("*/__init__.py"))
    assert len(top) <= 16, top
    assert len(subpackages) >= 3, subpackages
    assert {"schemas", "filters", "states", "sorting", "exceptions", "_client", "_get_client"} <= set(top)


def test_every_module_is_in_a_layer_and_subpackages_say_what_they_may_import() -> None:
    for name, path in modules().items():
        rank(name)
        if path.name == "__init__.py" and path.parent != PACKAGE:
            docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "may import" in docstring.lower(), f"{name}: its docstring must say what it may import"


def test_imports_point_down(graph: Dict[str, Set[str]]) -> None:
    upward = [f"{name} ({LAYERS[rank(name)][0]}) imports {target} ({LAYERS[rank(target)][0]})"
              for name, targets in graph.items() for target in targets if rank(target) < rank(name)]  # fmt: skip
    assert not upward, "\n".join(upward)


def test_no_import_cycles(graph: Dict[str, Set[str]]) -> None:
    def cycle_from(start: str) -> List[str]:
        stack: List[List[str]] = [[start]]
        while stack:
            path = stack.pop()
            for target in graph[path[-1]]:
                if target == start:
                    return [*path, start]
                if target not in path:
                    stack.append([*path, target])
        return []

    cycles = [" -> ".join(found) for name in graph if (found := cycle_from(name))]
    assert not cycles, "\n".join(cycles)


def test_lower_layers_never_import_the_local_server_or_the_client(graph: Dict[str, Set[str]]) -> None:
    """The local server is loaded lazily, only by the client, and nothing below the client
    knows about it."""
    for name, targets in graph.items():
        if rank(name) > rank("orchestration_client._client"):
            assert not {t for t in targets if t.startswith("orchestration_client._local_server")
                        and not name.startswith("orchestration_client._local_server")}, name  # fmt: skip


def test_support_code_lives_apart_from_the_tests() -> None:
    support = TESTS / "support"
    assert not list(support.rglob("test_*.py")), "tests/support holds no test module"
    stray = [str(path.relative_to(TESTS)) for path in TESTS.rglob("*.py")
             if not path.name.startswith("test_") and path.name != "conftest.py"
             and support not in path.parents and path.parent.name != "regressions"]  # fmt: skip
    assert not stray, f"support code outside tests/support: {stray}"
    kinds = {path.parent.name for path in TESTS.rglob("test_*.py") if support not in path.parents}
    assert kinds == {"unit", "integration", "compat", "worlds", "scale", "checks"}, kinds
