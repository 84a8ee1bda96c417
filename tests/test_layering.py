"""The package's import layering, checked from the source with ``ast``.

Rules (see ``docs/architecture.md``, "Data flow"):

* no import cycle among the package's modules, function-level and ``TYPE_CHECKING`` imports
  included (each strongly connected component is named, with its edges);
* ``airflow_argo_eci.local`` is imported only by ``local`` itself, by ``stack`` (which starts and
  connects to a local cluster) and by the top-level command line ``cli`` (which composes the
  ``local`` and ``stack`` command groups); the provider (hooks, operators, sensors, triggers,
  links, plugins, lifecycle) and the pure shared modules never import it;
* ``airflow_argo_eci.local`` never imports Airflow (``airflow`` / ``airflow.*``) nor a provider
  module (hooks, operators, sensors, triggers, links, plugins, lifecycle, stack).

Import graph: ``import a.b`` is an edge to ``a.b``; ``from a import b`` is an edge to ``a.b`` when
that is a module of the package, else to ``a``; a package stands for its ``__init__.py``; relative
imports are resolved against the importing module's package. Parent packages executed on the way
are not edges (they would make every ``__init__`` that re-exports look like a cycle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "airflow_argo_eci"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: the subpackage that must stay importable without Airflow or the provider
LOCAL = f"{PACKAGE}.local"
#: the only modules / packages outside ``local`` that may import it
LOCAL_IMPORTERS = (f"{PACKAGE}.stack", f"{PACKAGE}.cli")
#: the provider layers and the stack: ``local`` imports none of them
PROVIDER = tuple(
    f"{PACKAGE}.{name}"
    for name in ("hooks", "operators", "sensors", "triggers", "links", "plugins", "lifecycle", "fluid_lifecycle",
                 "fluid_datasets", "eci_image_caches", "preflight", "preflight_cli", "stack")
)


@dataclass(frozen=True)
class Edge:
    """One import statement: ``source`` imports ``target`` (``line`` of ``path``, relative to the package)."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.path}:{self.line})"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file of every ``.py`` under ``root`` (the directory of ``package``)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package, *parts])] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, list[str], int]]:
    """``(base, names, line)`` per import: ``import a.b`` gives ``("a.b", [], line)``."""
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base, [alias.name for alias in node.names], node.lineno


def import_graph(root: Path, package: str) -> tuple[dict[str, Path], list[Edge], list[Edge]]:
    """The package's modules, its internal import edges and its imports of other distributions."""
    modules = module_names(root, package)
    internal: list[Edge] = []
    external: list[Edge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = path.relative_to(root).as_posix()
        for base, names, line in _imports(tree, module, _is_package(path)):
            if not _within(base, package):
                external.append(Edge(module, base, where, line))
                continue
            targets = [f"{base}.{name}" for name in names if f"{base}.{name}" in modules]
            if len(targets) < len(names) or not names:
                targets.append(base)
            for target in targets:
                internal.append(Edge(module, target, where, line))
    return modules, internal, external


def strongly_connected(nodes: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (or with a self-import)."""
    succ: dict[str, list[str]] = {}
    loops: set[str] = set()
    for edge in edges:
        succ.setdefault(edge.source, []).append(edge.target)
        if edge.source == edge.target:
            loops.add(edge.source)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # iterative Tarjan: (node, iterator over its successors)
        work: list[tuple[str, Iterator[str]]] = [(start, iter(succ.get(start, [])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ.get(nxt, []))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1 or node in loops:
                        found.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return sorted(found)


def layering_violations(
    root: Path, package: str, *, local: str, local_importers: tuple[str, ...], provider: tuple[str, ...]
) -> list[str]:
    """Every broken rule of the module docstring, one readable line (or block) each."""
    modules, internal, external = import_graph(root, package)
    problems: list[str] = []
    for component in strongly_connected(modules, internal):
        members = set(component)
        inner = sorted({str(e) for e in internal if e.source in members and e.target in members})
        problems.append("import cycle among " + ", ".join(component) + ":\n    " + "\n    ".join(inner))
    for edge in internal:
        if _within(edge.target, local) and not _within(edge.source, local):
            if not any(_within(edge.source, allowed) for allowed in local_importers):
                problems.append(f"outside {local} (only {', '.join(local_importers)} may import it): {edge}")
        if _within(edge.source, local) and any(_within(edge.target, layer) for layer in provider):
            problems.append(f"{local} imports a provider module: {edge}")
    for edge in external:
        if _within(edge.source, local) and _within(edge.target, "airflow"):
            problems.append(f"{local} imports Airflow: {edge}")
    return problems


def test_package_layering() -> None:
    problems = layering_violations(
        ROOT, PACKAGE, local=LOCAL, local_importers=LOCAL_IMPORTERS, provider=PROVIDER
    )
    assert not problems, "layering violations:\n" + "\n".join(problems)


def test_import_graph_sees_the_package() -> None:
    """The graph is not vacuous: it holds known modules and known edges, function-level ones too."""
    modules, internal, external = import_graph(ROOT, PACKAGE)
    assert f"{PACKAGE}.hooks.argo" in modules and f"{PACKAGE}.local.server" in modules
    pairs = {(e.source, e.target) for e in internal}
    assert (f"{PACKAGE}.hooks.argo", f"{PACKAGE}.errors") in pairs
    # a function-level import (the transport is imported on first use)
    assert (f"{PACKAGE}.hooks.argo", f"{PACKAGE}.hooks.argo_server_transport") in pairs
    assert any(e.source == f"{PACKAGE}.hooks.argo" and e.target == "airflow.sdk" for e in external)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_finds_cycles_and_forbidden_imports(tmp_path: Path) -> None:
    """The checker on a tiny synthetic package: it cannot pass silently."""
    root = tmp_path / "pkg"
    _write(root, {
        "__init__.py": '"""pkg."""\n',
        "errors.py": "import json\n",
        # a cycle through a relative import and a function-level, TYPE_CHECKING-guarded one
        "local/__init__.py": "",
        "local/a.py": "from . import b\n",
        "local/b.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg.local.c import C\n"
        ),
        "local/c.py": "def f():\n    from ..local import a\n",
        # the local cluster imports Airflow and a hook
        "local/d.py": "import airflow.models\nfrom pkg.hooks import h\nimport airflow_like\n",
        # the provider imports the local cluster; the stack may
        "hooks/__init__.py": "",
        "hooks/h.py": "from pkg.errors import *\nfrom pkg.local.a import x\n",
        "stack/__init__.py": "",
        "stack/s.py": "import pkg.local.d\n",
        "self.py": "import pkg.self\n",
    })
    problems = layering_violations(
        root, "pkg", local="pkg.local", local_importers=("pkg.stack",),
        provider=("pkg.hooks", "pkg.stack"),
    )
    text = "\n".join(problems)
    assert "import cycle among pkg.local.a, pkg.local.b, pkg.local.c" in text
    assert "pkg.local.c -> pkg.local.a (local/c.py:2)" in text
    assert "import cycle among pkg.self" in text
    assert "pkg.hooks.h -> pkg.local.a (hooks/h.py:2)" in text
    assert "imports Airflow: pkg.local.d -> airflow.models (local/d.py:1)" in text
    assert "imports a provider module: pkg.local.d -> pkg.hooks.h (local/d.py:2)" in text
    assert "airflow_like" not in text
    assert "pkg.stack" not in text.replace("only pkg.stack may", "")
    assert len(problems) == 5, text
