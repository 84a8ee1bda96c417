"""Argo's ``{{...}}`` template language: simple tags (``{{inputs.parameters.x}}``) and expression
tags (``{{=expr}}``), substituted into strings and, recursively, into template objects.

A *scope* is a flat mapping ``"inputs.parameters.x" -> value``. Simple tags are looked up
verbatim; expression tags are evaluated with the scope turned into nested maps. With
``allow_unresolved`` a tag whose variables are not in scope stays as it is (so a later pass with
more variables can resolve it), exactly like Argo's ``template.Replace(..., allowUnresolved)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from airflow_argo_eci.local.argo.expressions import ExpressionError, UnresolvedError, evaluate, nest
from airflow_argo_eci.local.argo.nodes import go_string


def _tags(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of every ``{{...}}`` tag, in one linear scan (a regular expression such as
    ``{{(.*?)}}`` rescans the rest of the text for every unclosed ``{{``)."""
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            return
        end = text.find("}}", start + 2)
        if end < 0:
            return
        yield start, end + 2
        pos = end + 2


def _cut(tag: str, limit: int = 200) -> str:
    """A tag's text for a message, cut to ``limit`` characters."""
    return tag if len(tag) <= limit else tag[:limit] + "..."


def _replace_tags(text: str, repl: Callable[[str, str], str]) -> str:
    """``text`` with each tag replaced by ``repl(whole tag, inner text)``."""
    out: list[str] = []
    last = 0
    for start, end in _tags(text):
        out.append(text[last:start])
        out.append(repl(text[start:end], text[start + 2:end - 2]))
        last = end
    out.append(text[last:])
    return "".join(out)


class TemplateError(ValueError):
    """A tag that cannot be resolved (and unresolved tags are not allowed) or a failing expression."""


class Scope:
    """A flat variable scope with a lazily built nested view for expressions."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self._nested: dict[str, Any] | None = None

    def set(self, key: str, value: Any) -> None:
        """Add or replace one variable."""
        self.values[key] = value
        self._nested = None

    def update(self, values: dict[str, Any]) -> None:
        """Add or replace several variables."""
        self.values.update(values)
        self._nested = None

    def child(self, extra: dict[str, Any] | None = None) -> Scope:
        """A copy with ``extra`` added."""
        scope = Scope(self.values)
        if extra:
            scope.update(extra)
        return scope

    def env(self) -> dict[str, Any]:
        """The nested view used by expressions."""
        if self._nested is None:
            self._nested = nest(self.values)
        return self._nested


def _expression_value(tag: str, scope: Scope) -> Any:
    expr = tag[1:].strip()
    expr = expr.replace("&#39;", "'").replace("&quot;", '"')
    return evaluate(expr, scope.env())


def substitute(text: str, scope: Scope, *, allow_unresolved: bool = True) -> str:
    """Replace every ``{{...}}`` tag of ``text`` using ``scope``."""
    if "{{" not in text:
        return text

    def repl(whole: str, tag: str) -> str:
        stripped = tag.strip()
        if stripped.startswith("="):
            try:
                value = _expression_value(stripped, scope)
            except UnresolvedError as exc:
                if allow_unresolved:
                    return whole
                raise TemplateError(f"failed to evaluate expression {{{{{_cut(tag)}}}}}: {exc}") from exc
            except ExpressionError as exc:
                if allow_unresolved and _mentions_missing(stripped, scope):
                    return whole
                raise TemplateError(f"failed to evaluate expression {{{{{_cut(tag)}}}}}: {exc}") from exc
            if value is None:
                if allow_unresolved:
                    return whole
                raise TemplateError(f"failed to evaluate expression {{{{{_cut(tag)}}}}}: the result is nil")
            return go_string(value)
        if stripped in scope.values:
            return go_string(scope.values[stripped])
        if allow_unresolved:
            return whole
        raise TemplateError(f"failed to resolve {{{{{_cut(stripped)}}}}}")

    return _replace_tags(text, repl)


_ROOT_VARS = ("inputs", "outputs", "steps", "tasks", "item", "workflow", "pod", "node", "retries",
              "lastRetry", "exitCode", "status")


def _mentions_missing(expr: str, scope: Scope) -> bool:
    env = scope.env()
    for root in _ROOT_VARS:
        if re.search(rf"(?<![\w.]){root}\b", expr) and root not in env:
            return True
    return False


def substitute_obj(obj: Any, scope: Scope, *, allow_unresolved: bool = True, skip: frozenset[str] = frozenset()) -> Any:
    """Substitute tags in every string of a JSON-like object (keys in ``skip`` are left alone)."""
    if isinstance(obj, str):
        return substitute(obj, scope, allow_unresolved=allow_unresolved)
    if isinstance(obj, list):
        return [substitute_obj(v, scope, allow_unresolved=allow_unresolved, skip=skip) for v in obj]
    if isinstance(obj, dict):
        return {
            k: (v if k in skip else substitute_obj(v, scope, allow_unresolved=allow_unresolved, skip=skip))
            for k, v in obj.items()
        }
    return obj


def has_tags(obj: Any) -> bool:
    """Whether any string in ``obj`` still contains a ``{{`` tag."""
    if isinstance(obj, str):
        return "{{" in obj
    if isinstance(obj, list):
        return any(has_tags(v) for v in obj)
    if isinstance(obj, dict):
        return any(has_tags(v) for v in obj.values())
    return False


def unresolved_tags(obj: Any) -> list[str]:
    """The ``{{...}}`` tags left in ``obj`` (for error messages)."""
    found: list[str] = []
    if isinstance(obj, str):
        found.extend(obj[start:end] for start, end in _tags(obj))
    elif isinstance(obj, list):
        for v in obj:
            found.extend(unresolved_tags(v))
    elif isinstance(obj, dict):
        for v in obj.values():
            found.extend(unresolved_tags(v))
    return found
