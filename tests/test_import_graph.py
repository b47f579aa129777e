"""The service's modules and parts import one another without a cycle, the tracker library never imports
the service, and the repository's scripts and benchmarks run on the installed packages alone.

Every module is parsed with `ast`, so nothing is imported to check it, and every import counts, deferred ones
inside functions included: a deferred import is still a dependency. The module graph has an edge from each
service module to each service module it imports, and one to its parent package (importing `a.b` runs
`a/__init__.py` first), and must have no cycle. Its modules grouped by part, a sub-package
(`siamstream_services.core.sessions` -> `core`) or a top-level module (`settings`, `wiring`), give the part
graph, which must have none either: parts in a cycle can be neither understood, tested nor changed apart.
The gRPC front end and the camera worker in particular each build on the session core and the camera
domain, and neither reaches the other by any path; the core reaches neither of them, nor the wire format,
nor the wiring.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE = "siamstream_services"
SERVICE_ROOT = ROOT / "services"
LIBRARY_ROOT = ROOT / "models"
# Run as `python bench/x.py` or `python scripts/x.py`: they import the installed packages, never the tests.
SCRIPT_DIRS = ("bench", "scripts")
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


def module_graph(source_root: Path, package: str) -> dict[str, set[str]]:
    """Each module of `package` under `source_root` -> the modules of `package` it imports, and its parent
    package. An imported name that is no module (`from a import SomeClass`) gives no edge of its own."""
    modules = {
        name: (path, package_name)
        for path in sorted((source_root / package).rglob("*.py"))
        for name, package_name in [module_of(path, source_root)]
    }
    graph: dict[str, set[str]] = {}
    for name, (path, package_name) in modules.items():
        imported = {
            module for module in imported_modules(path.read_text(), package_name) if module in modules
        }
        parent = name.rpartition(".")[0]
        graph[name] = (imported | {parent} if parent else imported) - {name}
    return graph


def part_graph(modules: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
    """The graph of the service's parts that its module graph `modules` gives: part -> the other parts
    its modules import."""
    graph: dict[str, set[str]] = {}
    for module, imported in modules.items():
        part = part_of(module)
        if part is None:
            continue
        others = {part_of(other) for other in imported}
        graph.setdefault(part, set()).update(other for other in others if other not in (None, part))
    return graph


def find_path(graph: Mapping[str, Collection[str]], start: str, goal: str) -> list[str] | None:
    """A shortest path of `graph` from `start` to `goal` (both included); None when `goal` is unreachable."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while (previous := came_from[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for successor in sorted(graph.get(node, ())):
            if successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    return None


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


def test_the_service_modules_import_each_other_without_a_cycle() -> None:
    graph = module_graph(SERVICE_ROOT, SERVICE)

    # The walk found the modules, their imports and their packages.
    assert "siamstream_services.wiring" in graph["siamstream_services.grpc_api.server"]
    assert graph["siamstream_services.store.memory"] >= {"siamstream_services.store"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between modules of siamstream_services: " + " -> ".join(cycle or [])


def test_the_service_parts_import_each_other_without_a_cycle() -> None:
    graph = part_graph(module_graph(SERVICE_ROOT, SERVICE))

    # The walk found the parts and their imports: an empty graph would pass for the wrong reason.
    assert {"core", "cameras", "grpc_api", "ingest", "settings", "wiring"} <= graph.keys()
    assert {"core", "cameras", "wiring"} <= graph["grpc_api"] & graph["ingest"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between parts of siamstream_services: " + " -> ".join(cycle or [])
    # Neither process reaches the other, directly or through a third part.
    for start, goal in (("grpc_api", "ingest"), ("ingest", "grpc_api")):
        path = find_path(graph, start, goal)
        assert path is None, f"{start} reaches {goal}: " + " -> ".join(path or [])
    # The core knows neither the wire format nor the processes that drive it, nor how they are wired.
    for goal in ("v1", "convert", "grpc_api", "ingest", "wiring"):
        path = find_path(graph, "core", goal)
        assert path is None, f"core reaches {goal}: " + " -> ".join(path or [])


def test_the_library_sub_packages_import_each_other_without_a_cycle() -> None:
    # Sub-packages only (nn, tracking, training, ...): the library's top modules (config, registry, api)
    # are shared by all of them, and its root package re-exports the public API.
    library = LIBRARY_ROOT / "siamstream"
    packages = {f"siamstream.{path.parent.name}" for path in library.glob("*/__init__.py")}
    graph: dict[str, set[str]] = {package: set() for package in packages}
    for module, imported in module_graph(LIBRARY_ROOT, "siamstream").items():
        source = ".".join(module.split(".")[:2])
        if source in packages:
            graph[source].update(".".join(other.split(".")[:2]) for other in imported)
    graph = {package: (targets & packages) - {package} for package, targets in graph.items()}

    assert "siamstream.nn" in graph["siamstream.training"]  # the walk found the imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between sub-packages of siamstream: " + " -> ".join(cycle or [])


def test_the_library_never_imports_the_service() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((LIBRARY_ROOT / "siamstream").rglob("*.py"))
        for module in imported_modules(path.read_text(), module_of(path, LIBRARY_ROOT)[1])
        if module.split(".")[0] == SERVICE
    ]
    assert offenders == []


def touches_sys_path(source: str) -> bool:
    """Whether `source` reads or changes `sys.path` (`sys.path.insert(...)`, `from sys import path`)."""
    return any(
        (isinstance(node, ast.Attribute) and node.attr == "path" and ast.unparse(node.value) == "sys")
        or (
            isinstance(node, ast.ImportFrom)
            and node.module == "sys"
            and any(alias.name == "path" for alias in node.names)
        )
        for node in ast.walk(ast.parse(source))
    )


def test_scripts_and_benchmarks_run_on_the_installed_packages() -> None:
    paths = [path for directory in SCRIPT_DIRS for path in sorted((ROOT / directory).glob("*.py"))]
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in paths
        for module in imported_modules(path.read_text(), "")
        if module.split(".")[0] == "tests"
    ]
    offenders += [
        f"{path.relative_to(ROOT)} touches sys.path" for path in paths if touches_sys_path(path.read_text())
    ]

    assert paths, "no script found: the check would pass for the wrong reason"
    assert offenders == []


def test_sys_path_and_tests_imports_are_found() -> None:
    assert touches_sys_path("import sys\nsys.path.insert(0, 'tests')\n")
    assert touches_sys_path("import sys\n\ndef f():\n    return list(sys.path)\n")
    assert touches_sys_path("from sys import path\n")
    assert not touches_sys_path("import os.path\nfrom pathlib import Path\nos.path.join('a', 'b')\n")
    deferred = (
        "def f():\n    from tests.services.session_fixtures import TRACKER\n    import tests.conftest\n"
    )
    assert {module.split(".")[0] for module in imported_modules(deferred, "")} == {"tests"}


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


def test_find_path_on_hand_built_graphs() -> None:
    graph = {"grpc_api": {"core", "wiring"}, "wiring": {"core", "store"}, "ingest": {"wiring"}}
    assert find_path(graph, "grpc_api", "store") == ["grpc_api", "wiring", "store"]
    assert find_path(graph, "grpc_api", "grpc_api") == ["grpc_api"]
    assert find_path(graph, "grpc_api", "ingest") is None
    assert find_path(graph, "core", "wiring") is None  # a node only pointed to has no successors
    # Through a third node is still a path: what a check of direct edges alone misses.
    assert find_path({**graph, "store": {"ingest"}}, "grpc_api", "ingest") == [
        "grpc_api",
        "wiring",
        "store",
        "ingest",
    ]


def test_module_graph_of_a_hand_built_package(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    # A package that re-exports its modules: each of them first runs this __init__, which imports them.
    (package / "sub" / "__init__.py").write_text("from pkg.sub.b import Thing\n")
    (package / "sub" / "b.py").write_text("import json\n\nclass Thing: ...\n")
    (package / "a.py").write_text("from pkg.sub import Thing\nfrom . import sub\n")

    graph = module_graph(tmp_path, "pkg")

    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg", "pkg.sub"},  # `Thing` is no module: no edge of its own
        "pkg.sub": {"pkg", "pkg.sub.b"},
        "pkg.sub.b": {"pkg.sub"},
    }
    assert find_cycle(graph) == ["pkg.sub", "pkg.sub.b", "pkg.sub"]
    assert part_graph(
        {"siamstream_services.core.x": {"siamstream_services.core", "siamstream_services.v1.y"}}
    ) == {"core": {"v1"}}
