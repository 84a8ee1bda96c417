"""The evaluator of Argo's expression languages: walks a :data:`~.parser.Node` tree against the
variables in scope and a table of functions, within a :class:`~airflow_argo_eci.local.argo.budget.Budget`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_argo_eci.local.argo import goregex
from airflow_argo_eci.local.argo.budget import Budget
from airflow_argo_eci.local.argo.expressions.errors import ExpressionError, UnresolvedError
from airflow_argo_eci.local.argo.expressions.parser import Node
from airflow_argo_eci.local.argo.expressions.values import comparable, equal, member, number, truthy
from airflow_argo_eci.local.argo.nodes import go_string

_MISSING = object()


class _Closure:
    """A ``{...}`` argument: called with an item, evaluates its body with ``#`` bound to it."""

    def __init__(self, body: Node, evaluator: Evaluator) -> None:
        self.body = body
        self.evaluator = evaluator

    def __call__(self, pointer: Any) -> Any:
        return self.evaluator.eval(self.body, pointer)


class Evaluator:
    """Evaluates trees against ``env`` (the variables in scope) and ``functions`` (the names that
    resolve when ``env`` lacks them); ``govaluate=True`` makes unknown bare names strings and ``==``
    compare loosely, as in ``when`` conditions."""

    def __init__(self, env: Mapping[str, Any], govaluate: bool, functions: Mapping[str, Any],
                 budget: Budget | None = None) -> None:
        self.env = env
        self.govaluate = govaluate
        self.functions = functions
        self.budget = budget or Budget(ExpressionError, "")

    def eval(self, node: Node, pointer: Any = _MISSING) -> Any:
        """The value of ``node``; ``pointer`` is what ``#`` stands for inside a closure."""
        self.budget.step()
        op = node[0]
        if op in ("array", "map", "slice", "call", "bin"):
            return self.budget.charge(self._eval(op, node, pointer))
        return self._eval(op, node, pointer)

    def _eval(self, op: str, node: Node, pointer: Any) -> Any:
        if op == "lit":
            return node[1]
        if op == "var":
            name = node[1]
            if name in self.env:
                return self.env[name]
            if name in self.functions:
                return self.functions[name]
            if self.govaluate:
                return name
            raise UnresolvedError(f"unknown name {name}")
        if op == "pointer":
            if pointer is _MISSING:
                raise ExpressionError("'#' used outside of a closure")
            return pointer
        if op == "array":
            return [self.eval(item, pointer) for item in node[1]]
        if op == "map":
            return {self.eval(k, pointer): self.eval(v, pointer) for k, v in node[1]}
        if op == "member":
            target = self.eval(node[1], pointer)
            key = self.eval(node[2], pointer)
            return member(target, key)
        if op == "slice":
            target = self.eval(node[1], pointer)
            lo = self.eval(node[2], pointer) if node[2] is not None else None
            hi = self.eval(node[3], pointer) if node[3] is not None else None
            if not isinstance(target, (list, str)):
                raise ExpressionError(f"cannot slice {type(target).__name__}")
            return target[lo:hi]
        if op == "closure":
            return _Closure(node[1], self)
        if op == "call":
            fn = self.eval(node[1], pointer)
            args = [self.eval(a, pointer) for a in node[2]]
            if not callable(fn):
                raise ExpressionError(f"{_describe(node[1])} is not a function")
            return fn(*args)
        if op == "not":
            return not truthy(self.eval(node[1], pointer))
        if op == "neg":
            return -number(self.eval(node[1], pointer))
        if op == "cond":
            return self.eval(node[2] if truthy(self.eval(node[1], pointer)) else node[3], pointer)
        if op == "bin":
            return self.binary(node[1], node[2], node[3], pointer)
        raise ExpressionError(f"unknown expression node {op}")

    def _logical(self, is_and: bool, left_node: Node, right_node: Node, pointer: Any) -> bool:
        """Short-circuit ``&&`` (``is_and``) or ``||``. A left-nested chain of the same operator
        (``a && b && c ...``: a DAG task with a thousand dependencies) is walked in a loop, so its
        length needs no recursion depth."""
        same = ("&&", "and") if is_and else ("||", "or")
        operands = [right_node]
        node = left_node
        while node[0] == "bin" and node[1] in same:
            self.budget.step()
            operands.append(node[3])
            node = node[2]
        value = truthy(self.eval(node, pointer))
        for operand in reversed(operands):
            if value is not is_and:  # false in an && chain, true in an || chain: decided
                break
            value = truthy(self.eval(operand, pointer))
        return value

    def binary(self, op: str, left_node: Node, right_node: Node, pointer: Any) -> Any:
        """The value of the binary operation ``op`` on the two operand trees."""
        if op in ("&&", "and", "||", "or"):
            return self._logical(op in ("&&", "and"), left_node, right_node, pointer)
        if op == "??":
            try:
                left = self.eval(left_node, pointer)
            except UnresolvedError:
                left = None
            return left if left is not None else self.eval(right_node, pointer)
        left = self.eval(left_node, pointer)
        right = self.eval(right_node, pointer)
        if op == "==":
            return equal(left, right, self.govaluate)
        if op == "!=":
            return not equal(left, right, self.govaluate)
        if op in ("<", ">", "<=", ">="):
            a, b = comparable(left, right)
            return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        if op in ("=~", "matches"):
            return goregex.match_string(go_string(right), go_string(left))
        if op == "in":
            if isinstance(right, dict):
                return left in right
            if isinstance(right, list):
                return any(equal(left, item, False) for item in right)
            if isinstance(right, str):
                return str(left) in right
            raise ExpressionError(f"'in' needs an array or map, got {type(right).__name__}")
        if op == "contains":
            return str(right) in str(left)
        if op == "startsWith":
            return str(left).startswith(str(right))
        if op == "endsWith":
            return str(left).endswith(str(right))
        if op == "..":
            lo, hi = int(left), int(right)
            self.budget.allocate(max(0, hi - lo + 1))
            return list(range(lo, hi + 1))
        if op == "+":
            if isinstance(left, str) or isinstance(right, str):
                if self.govaluate or (isinstance(left, str) and isinstance(right, str)):
                    return go_string(left) + go_string(right)
                raise ExpressionError(f"invalid operation: {left!r} + {right!r}")
            if isinstance(left, list) and isinstance(right, list):
                return left + right
            return number(left) + number(right)
        a, b = number(left), number(right)
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                raise ExpressionError("division by zero")
            return a / b
        if op == "%":
            if b == 0:
                raise ExpressionError("division by zero")
            return int(a) % int(b)
        if op == "**":
            return float(a) ** float(b)
        raise ExpressionError(f"unknown operator {op}")


def _describe(node: Node) -> str:
    if node[0] == "var":
        return str(node[1])
    if node[0] == "member" and node[2][0] == "lit":
        return f"{_describe(node[1])}.{node[2][1]}"
    return "expression"

