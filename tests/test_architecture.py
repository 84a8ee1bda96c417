"""``docs/architecture.md`` names every module of the package, and only modules that exist.

The format the test reads (the module map of the doc):

* module lines live in fenced code blocks (```` ``` ````); prose elsewhere in the doc is free;
* a module line starts with exactly two spaces, then the module's path relative to
  ``airflow_argo_eci/`` (``hooks/argo.py``, ``local/api/app.py``, ``__init__.py`` for the top-level
  package), then at least two spaces and what the module holds::

      ```
      airflow_argo_eci/
        __init__.py            provider info for the apache_airflow_provider entry point
        hooks/argo.py          ArgoWorkflowsHook over two transports
        local/api/app.py       the local API server's ASGI app: auth, routes, request log
                               (a continuation line: indented deeper, no path)
      ```

* any other line in a code block (a heading line such as ``airflow_argo_eci/``, a continuation
  line indented by more than two spaces) is not a module line;
* each module is listed once.

Which modules must be listed: every ``.py`` file under ``airflow_argo_eci/`` except the
``__init__.py`` of a package that holds nothing but a docstring, imports (re-exports) and
``__all__`` (such an ``__init__.py`` may be listed, it need not be); an ``__init__.py`` that
defines anything (functions, classes, constants) is a module like any other and must be listed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "airflow_argo_eci"
DOC = REPO / "docs" / "architecture.md"

_MODULE_LINE = re.compile(r"^  (?P<path>[\w./-]+\.py) {2,}\S")
_FENCE = re.compile(r"^\s*```")


def documented_modules(text: str) -> list[str]:
    """The module paths of the module lines in the fenced code blocks of ``text``, in order."""
    found: list[str] = []
    in_code = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            match = _MODULE_LINE.match(line)
            if match:
                found.append(match.group("path"))
    return found


def _only_reexports(path: Path) -> bool:
    """Whether ``path`` holds nothing but a docstring, imports and ``__all__``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for index, node in enumerate(tree.body):
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
        return False
    return True


def package_modules(package_dir: Path) -> set[str]:
    """Paths (relative to ``package_dir``) of the modules the doc must list."""
    modules: set[str] = set()
    for path in package_dir.rglob("*.py"):
        if path.name == "__init__.py" and _only_reexports(path):
            continue
        modules.add(path.relative_to(package_dir).as_posix())
    return modules


def doc_problems(text: str, package_dir: Path) -> list[str]:
    """Missing, unknown and repeated modules of the doc ``text`` against ``package_dir``."""
    listed = documented_modules(text)
    expected = package_modules(package_dir)
    problems = [f"not in the doc: {m}" for m in sorted(expected - set(listed))]
    problems += [
        f"in the doc but not a module of the package: {m}" for m in sorted(set(listed) - expected)
        if not (package_dir / m).is_file() or not m.endswith(".py")
    ]
    problems += [f"listed more than once: {m}" for m in sorted({m for m in listed if listed.count(m) > 1})]
    return problems


def test_architecture_doc_lists_every_module() -> None:
    problems = doc_problems(DOC.read_text(encoding="utf-8"), PACKAGE_DIR)
    assert not problems, (
        f"{DOC.relative_to(REPO)} and the package disagree (format: see tests/test_architecture.py):\n"
        + "\n".join(problems)
    )


def test_doc_checker_on_a_sample(tmp_path: Path) -> None:
    """The checker itself: module lines, continuation lines, prose, exemptions, all three errors."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Pkg."""\nfrom pkg.a import A\n__all__ = ["A"]\n')
    (pkg / "a.py").write_text("A = 1\n")
    (pkg / "b.py").write_text("B = 1\n")
    (pkg / "sub" / "__init__.py").write_text('"""Sub: defines something."""\nX = 1\n')
    (pkg / "sub" / "c.py").write_text("")
    text = "\n".join([
        "# Title",
        "  b.py  prose outside a code block does not count",
        "```",
        "pkg/",
        "  a.py          holds A",
        "                b.py is a continuation line, not a module line",
        "  sub/c.py      holds nothing",
        "  sub/c.py      again",
        "  gone.py       no such module",
        "  __init__.py   only re-exports",
        "```",
    ])
    assert documented_modules(text) == ["a.py", "sub/c.py", "sub/c.py", "gone.py", "__init__.py"]
    assert package_modules(pkg) == {"a.py", "b.py", "sub/__init__.py", "sub/c.py"}
    assert doc_problems(text, pkg) == [
        "not in the doc: b.py",
        "not in the doc: sub/__init__.py",
        "in the doc but not a module of the package: gone.py",
        "listed more than once: sub/c.py",
    ]
