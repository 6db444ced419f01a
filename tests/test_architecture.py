"""The room rule, read from the source (AST), so an import inside a function counts too.

``tests/test_package.py`` checks at run time what ``import gaze3d`` loads; it
cannot see an import made inside a function that the test never calls. These
tests parse every module instead (docs/architecture.md, "The rooms"):

* the core (``gaze3d/``) never imports the outer rooms (``gaze3d.viewer``,
  ``gaze3d.models``, ``gaze3d.calib``) nor torch/VTK/Open3D, anywhere; the
  drivers (``gaze3d/cli``, ``gaze3d/batch``) may, inside a function only;
* the models room never imports the viewer;
* the tracker package, and every core module it reaches, imports only the
  standard library, numpy, pyzmq and msgpack (a source may import its
  device SDK inside a function: ``optional_import`` or a probe);
* the protocol's topic names are written once, in ``gaze3d/protocol.py``;
* no import cycle between the modules of ``calib`` and ``models``, even
  through an import inside a function.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOMS = {"viewer": REPO / "viewer", "models": REPO / "models", "calib": REPO / "calib"}
OUTER = tuple(ROOMS)
HEAVY = ("torch", "vtk", "vtkmodules", "pyvista", "open3d")
DRIVERS = ("gaze3d.cli", "gaze3d.batch")       # command line and batch runner: rooms inside functions only
TRACKER_ALLOWED = {"numpy", "zmq", "msgpack"}


def _module_name(path: Path) -> str:
    """File -> dotted module name as installed (``viewer/app.py`` -> ``gaze3d.viewer.app``)."""
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in ROOMS:
        parts = ["gaze3d"] + parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _files(*folders: Path):
    for folder in folders:
        yield from sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path):
    """``[(module, line, local)]``: every import of ``path``, relative ones resolved; ``local`` = inside a def."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []

    def walk(node, local):
        for child in ast.iter_child_nodes(node):
            inside = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, inside) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[:len(package.split(".")) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                    # ``from . import x`` may name a submodule: list both, the resolver keeps what exists
                    out.extend((f"{target}.{a.name}", child.lineno, inside) for a in child.names)
                else:
                    target = child.module
                    out.extend((f"{target}.{a.name}", child.lineno, inside) for a in child.names)
                out.append((target, child.lineno, inside))
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr == "import_module" and child.args
                  and isinstance(child.args[0], ast.Constant) and isinstance(child.args[0].value, str)):
                # importlib.import_module("._spconv", __package__): an import all the same
                rel = child.args[0].value
                level = len(rel) - len(rel.lstrip("."))
                if level:
                    base = package.split(".")[:len(package.split(".")) - (level - 1)]
                    rel = ".".join(base + [rel.lstrip(".")])
                out.append((rel, child.lineno, True))
            walk(child, inside)

    walk(tree, False)
    return out


def _is_room(module: str) -> bool:
    parts = module.split(".")
    return parts[0] in OUTER or (parts[0] == "gaze3d" and len(parts) > 1 and parts[1] in OUTER)


def _where(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_core_never_imports_the_outer_rooms_or_heavy_packages():
    bad = []
    for path in _files(REPO / "gaze3d"):
        name = _module_name(path)
        driver = name.startswith(DRIVERS)
        for module, line, local in _imports(path):
            if not (_is_room(module) or module.split(".")[0] in HEAVY):
                continue
            if driver and local:
                continue                 # `gaze3d segment` loads torch when it runs, not at `gaze3d --help`
            bad.append(f"{_where(path)}:{line} imports {module}{' (inside a function)' if local else ''}")
    assert not bad, "the core reaches into an outer room or a heavy package:\n" + "\n".join(bad)


def test_models_never_import_the_viewer_nor_vtk():
    # pyvista's example .vti label volumes are read with gaze3d.io.vti (numpy), not with pyvista
    vtk_like = ("vtk", "vtkmodules", "pyvista")
    bad = [f"{_where(p)}:{line} imports {m}" for p in _files(REPO / "models") for m, line, _ in _imports(p)
           if m.startswith("gaze3d.viewer") or m.split(".")[0] in vtk_like]
    assert not bad, "models use the core, never the viewer or VTK:\n" + "\n".join(bad)


def _resolve(module: str):
    """A gaze3d module name -> its file, or None (a name imported *from* a module, or not ours)."""
    parts = module.split(".")
    if parts[0] != "gaze3d":
        return None
    base = ROOMS[parts[1]] if len(parts) > 1 and parts[1] in ROOMS else REPO / "gaze3d"
    rest = parts[2:] if len(parts) > 1 and parts[1] in ROOMS else parts[1:]
    folder = base.joinpath(*rest)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    if folder.with_suffix(".py").is_file():
        return folder.with_suffix(".py")
    return None


def _closure(start):
    """Every gaze3d file reachable from ``start`` through imports (module level and in functions)."""
    seen, todo = set(), list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module, _, _ in _imports(path):
            parts = module.split(".")
            # importing gaze3d.a.b runs gaze3d/__init__ and gaze3d/a/__init__ as well
            for k in range(1, len(parts) + 1):
                target = _resolve(".".join(parts[:k]))
                if target is not None and target not in seen:
                    todo.append(target)
    return seen


def test_tracker_reaches_only_numpy_pyzmq_msgpack_and_the_standard_library():
    reached = _closure(list(_files(REPO / "gaze3d" / "tracker")))
    bad = []
    for path in sorted(reached):
        source = path.parent == REPO / "gaze3d" / "tracker" / "sources"
        for module, line, local in _imports(path):
            top = module.split(".")[0]
            if top in ("gaze3d", "__future__") or top in sys.stdlib_module_names or top in TRACKER_ALLOWED:
                continue
            if source and local:
                continue                 # a device SDK, imported by its source when that source opens
            bad.append(f"{_where(path)}:{line} imports {module}")
    assert not any(_is_room(_module_name(p)) for p in reached), sorted(map(_where, reached))
    assert not bad, "the tracker process (and the core modules it uses) must stay lean:\n" + "\n".join(bad)


def test_topic_names_are_written_once():
    from gaze3d import protocol

    topics = set(protocol.GAZE_TOPICS)
    bad = []
    for path in _files(REPO / "gaze3d", *ROOMS.values()):
        if path == REPO / "gaze3d" / "protocol.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in topics:
                bad.append(f"{_where(path)}:{node.lineno} writes {node.value!r}")
    assert not bad, "use gaze3d.protocol.TOPIC_GAZE_2D / TOPIC_GAZE_3D:\n" + "\n".join(bad)


def _import_graph():
    """module -> the gaze3d modules it imports, at module level or inside a function."""
    graph = {}
    for path in _files(REPO / "gaze3d", *ROOMS.values()):
        name = _module_name(path)
        deps = set()
        for module, _, _ in _imports(path):
            target = _resolve(module)
            if target is not None:
                dep = _module_name(target)
                if dep != name and not name.startswith(dep + "."):   # a package importing its own parent
                    deps.add(dep)
        graph[name] = deps
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("package", ["gaze3d.calib", "gaze3d.models"])
def test_no_import_cycles_between_modules(package):
    # An import inside a function counts (it hides the arrow, it does not remove it); a
    # package's __init__ re-exporting its modules is not a cycle between modules.
    graph = {k: {d for d in v if not _resolve(d).name == "__init__.py"} for k, v in _import_graph().items()}
    for cycle in _cycles(graph):
        assert not any(m.startswith(package + ".") for m in cycle), f"import cycle: {' <-> '.join(cycle)}"
