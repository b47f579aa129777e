"""The service's parts import one another without a cycle, and the tracker library never imports the service.

Every module is parsed with `ast`, so nothing is imported to check it, and every import counts, deferred ones
inside functions included: a deferred import is still a dependency. Each import of `siamstream_services` is
resolved to the part it names, a sub-package (`siamstream_services.core.sessions` -> `core`) or a top-level
module (`settings`, `wiring`), and the graph of those parts must have no cycle: parts in a cycle can be
neither understood, tested nor changed apart. The gRPC front end and the camera worker in particular each
build on the session core and the camera domain, never on each other.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "siamstream_services"
SERVICE_ROOT = ROOT / "services"
LIBRARY_ROOT = ROOT / "models"
# Calls that import the module named by their first argument.
STRING_IMPORTS = frozenset({"import_module", "__import__"})


def module_of(path: Path, source_root: Path) -> tuple[str, str]:
    """The dotted name of the module in `path` under `source_root`, and of the package it is in (itself, for
    a package's `__init__.py`)."""
    parts = path.relative_to(source_root).with_suffix("").parts
    if parts[-1] == "__init__":
        name = ".".join(parts[:-1])
        return name, name
    return ".".join(parts), ".".join(parts[:-1])


def imported_modules(source: str, package: str) -> Iterator[str]:
    """The absolute names that the module `source` (in `package`) imports: `import a.b` gives `a.b`, `from
    a import b` gives `a` and `a.b` (b may be a module), relative imports are resolved against `package`,
    and `importlib.import_module("a.b")` with a literal name gives `a.b`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            first = node.args[0]
            if name in STRING_IMPORTS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value


def part_of(module: str) -> str | None:
    """The part of the service that `module` names (`siamstream_services.core.x` -> `core`); None for a
    module outside the service, or the service's root package itself."""
    top, _, rest = module.partition(".")
    return rest.split(".")[0] if top == SERVICE and rest else None


def service_graph() -> dict[str, set[str]]:
    """Each part of the service (sub-package or top-level module) -> the other parts it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted((SERVICE_ROOT / SERVICE).rglob("*.py")):
        name, package = module_of(path, SERVICE_ROOT)
        part = part_of(name)
        if part is None:
            continue
        parts = {part_of(module) for module in imported_modules(path.read_text(), package)}
        graph.setdefault(part, set()).update(other for other in parts if other not in (None, part))
    return graph


def find_cycle(graph: Mapping[str, Collection[str]]) -> list[str] | None:
    """A cycle of `graph` (node -> the nodes it points to) as its nodes in order, the first repeated last;
    None when there is none. A depth-first search: an edge back to a node still on the path closes a cycle."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            cycle = visit(successor)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle is not None:
            return cycle
    return None


def test_the_service_parts_import_each_other_without_a_cycle() -> None:
    graph = service_graph()

    # The walk found the parts and their imports: an empty graph would pass for the wrong reason.
    assert {"core", "cameras", "grpc_api", "ingest", "settings", "wiring"} <= graph.keys()
    assert {"core", "cameras", "wiring"} <= graph["grpc_api"] & graph["ingest"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between parts of siamstream_services: " + " -> ".join(cycle or [])
    assert "ingest" not in graph["grpc_api"] and "grpc_api" not in graph["ingest"]
    # The core knows neither the wire format nor the processes that drive it.
    assert graph["core"].isdisjoint({"v1", "convert", "grpc_api", "ingest", "wiring"})


def test_the_library_never_imports_the_service() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((LIBRARY_ROOT / "siamstream").rglob("*.py"))
        for module in imported_modules(path.read_text(), module_of(path, LIBRARY_ROOT)[1])
        if module.split(".")[0] == SERVICE
    ]
    assert offenders == []


def test_imports_are_resolved_to_the_parts_they_name() -> None:
    source = """
import siamstream_services.store.memory
from siamstream_services import settings
from ..core import sessions
from . import servicer


def later():
    import importlib

    from siamstream_services.cameras.directory import CameraDirectory
    return importlib.import_module("siamstream_services.wiring")
"""
    parts = {part_of(module) for module in imported_modules(source, "siamstream_services.grpc_api")}

    assert parts == {"store", "settings", "core", "grpc_api", "cameras", "wiring", None}
    library = "import numpy\nfrom siamstream.config import TrackerConfig\n"
    assert {part_of(module) for module in imported_modules(library, "siamstream")} == {None}


def test_find_cycle_on_hand_built_graphs() -> None:
    layered = {
        "grpc_api": {"core", "wiring"},
        "ingest": {"core", "wiring"},
        "wiring": {"core"},
        "core": set(),
    }
    assert find_cycle(layered) is None
    assert find_cycle({}) is None
    # The diamond above plus one edge back: the cycle is reported with its nodes in order.
    assert find_cycle({**layered, "core": {"ingest"}}) == ["core", "ingest", "core"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    # A cycle away from the first node visited, reached through nodes outside it.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"d"}, "d": {"c"}}) == ["c", "d", "c"]
    # Nodes only pointed to need no entry of their own.
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}}) is None
