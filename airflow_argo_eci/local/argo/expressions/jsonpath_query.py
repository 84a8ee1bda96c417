"""JSONPath as Argo's ``jsonpath()`` function evaluates it (PaesslerAG/jsonpath): names, indexes,
wildcards, slices, recursive descent and ``[?(...)]`` filters written in expr-lang."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from airflow_argo_eci.local.argo.expressions.errors import ExpressionError
from airflow_argo_eci.local.argo.expressions.evaluator import Evaluator
from airflow_argo_eci.local.argo.expressions.parser import Node, Parser

_KEY = re.compile(r"[\w\-]+|\*")


def query(doc: Any, path: str, functions: Mapping[str, Any]) -> Any:
    """Evaluate a JSONPath (``$.a.b``, ``$[0]``, ``$.a[*].b``, ``$.a[0:2]``, ``$.a[?(@.x>1)]``, ``..``);
    filters may call the ``functions``.

    Like PaesslerAG/jsonpath (used by Argo), a path with wildcards, slices, filters or recursive
    descent returns a list; a definite path returns the single value.
    """
    text = path.strip()
    if not text.startswith("$"):
        raise ExpressionError(f"jsonpath: path must start with '$': {path!r}")
    pos = 1
    current: list[Any] = [doc]
    definite = True
    while pos < len(text):
        ch = text[pos]
        if text.startswith("..", pos):
            pos += 2
            m = _KEY.match(text, pos)
            if not m:
                raise ExpressionError(f"jsonpath: expected a name after '..' in {path!r}")
            key = m.group(0)
            pos += len(key)
            found: list[Any] = []
            for item in current:
                _descend(item, key, found)
            current = found
            definite = False
        elif ch == ".":
            pos += 1
            m = _KEY.match(text, pos)
            if not m:
                raise ExpressionError(f"jsonpath: expected a name after '.' in {path!r}")
            key = m.group(0)
            pos += len(key)
            if key == "*":
                definite = False
                current = [v for item in current for v in _children(item)]
            else:
                current = [item[key] for item in current if isinstance(item, dict) and key in item]
        elif ch == "[":
            end = _matching_bracket(text, pos)
            inner = text[pos + 1 : end].strip()
            pos = end + 1
            if inner.startswith("?"):
                definite = False
                expr = inner[1:].strip()
                if expr.startswith("(") and expr.endswith(")"):
                    expr = expr[1:-1]
                tree = Parser(expr, False).parse()
                selected = []
                for item in current:
                    for child in _children(item):
                        try:
                            ok = Evaluator({"@": child}, False, functions).eval(_rewrite_at(tree))
                        except ExpressionError:
                            ok = False
                        if ok is True:
                            selected.append(child)
                current = selected
            elif inner == "*":
                definite = False
                current = [v for item in current for v in _children(item)]
            elif ":" in inner:
                definite = False
                lo_s, _, hi_s = inner.partition(":")
                lo = int(lo_s) if lo_s.strip() else None
                hi = int(hi_s.split(":")[0]) if hi_s.split(":")[0].strip() else None
                current = [v for item in current if isinstance(item, list) for v in item[lo:hi]]
            elif inner[:1] in "'\"":
                keys = [k.strip()[1:-1] for k in inner.split(",")]
                if len(keys) > 1:
                    definite = False
                current = [item[k] for item in current if isinstance(item, dict) for k in keys if k in item]
            else:
                idxs = [int(x) for x in inner.split(",")]
                if len(idxs) > 1:
                    definite = False
                current = [
                    item[i] for item in current if isinstance(item, list) for i in idxs if -len(item) <= i < len(item)
                ]
        else:
            raise ExpressionError(f"jsonpath: unexpected {ch!r} in {path!r}")
    if definite:
        if not current:
            raise ExpressionError(f"jsonpath: unknown key in {path!r}")
        return current[0]
    return current


def _rewrite_at(node: Node) -> Node:
    if node[0] == "var" and node[1].startswith("@") and node[1] != "@":
        return ("member", ("var", "@"), ("lit", node[1][1:]))
    return tuple(_rewrite_at(x) if isinstance(x, tuple) else
                 ([(_rewrite_at(a) if isinstance(a, tuple) else a) for a in x] if isinstance(x, list) else x)
                 for x in node)


def _matching_bracket(text: str, start: int) -> int:
    depth = 0
    quote = ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return i
    raise ExpressionError(f"jsonpath: unbalanced '[' in {text!r}")


def _children(item: Any) -> list[Any]:
    if isinstance(item, list):
        return list(item)
    if isinstance(item, dict):
        return [item[k] for k in sorted(item)]
    return []


def _descend(item: Any, key: str, out: list[Any]) -> None:
    if isinstance(item, dict):
        for k in sorted(item):
            if key in ("*", k):
                out.append(item[k])
            _descend(item[k], key, out)
    elif isinstance(item, list):
        for v in item:
            if key == "*":
                out.append(v)
            _descend(v, key, out)

