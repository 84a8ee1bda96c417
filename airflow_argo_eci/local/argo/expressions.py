"""The expression languages of Argo: the expr-lang subset of ``{{=...}}`` tags, ``depends`` and
output ``expression``s, and the govaluate-style ``when`` conditions.

One small Pratt parser serves both; the govaluate flavour (``govaluate=True``) treats bare words
that are not variables as strings, so ``heads == heads`` and ``Succeeded != Failed`` work the way
Argo users write them. Included: literals, arrays, maps, member and index access (``a.b``,
``a['b-c']``, ``?.``), slices, calls, closures (``{# > 1}``, ``#[0]``), ``! not - + * / % **``,
comparisons, ``=~``/``matches``, ``in``, ``contains``, ``startsWith``, ``endsWith``, ``&& and || or``,
``??`` and the ternary ``?:``; builtins (``len``, ``map``, ``filter``, ``all``, ``any``, ``none``,
``count``, ``toJson``/``toJSON``, ``fromJson``/``fromJSON``, ``asInt``, ``asFloat``, ``string``,
``int``, ``float``, ``jsonpath``, ``keys``, ``values``, ``upper``, ``lower``, ``trim``, ``split``,
``join``) and the ``sprig.*`` functions the Argo examples use.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from airflow_argo_eci.local.argo import goregex
from airflow_argo_eci.local.argo.budget import (
    MAX_EXPRESSION_ALLOCATION,
    MAX_EXPRESSION_LENGTH,
    MAX_EXPRESSION_NESTING,
    Budget,
    excerpt,
)
from airflow_argo_eci.local.argo.nodes import go_json, go_string, parse_time


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated."""


class UnresolvedError(ExpressionError):
    """The expression names a variable that is not (yet) in scope."""


# ---------------------------------------------------------------- tokenizer

_OPERATORS = [
    "**", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "=~", "..",
    "<", ">", "+", "-", "*", "/", "%", "!", "?", ":", ".", ",", "(", ")", "[", "]", "{", "}",
]
_WORD_OPS = {"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"}
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
_GOVALUATE_WORD = re.compile(r"[\w\-.:]+")
_NAME = re.compile(r"[\w$@]+")
_DASHED_NAME = re.compile(r"[\w$@]+(?:-[\w$@]+)*")
_JSONPATH_KEY = re.compile(r"[\w\-]+|\*")


def _tokenize(text: str, govaluate: bool) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "'\"`":
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] != ch:
                if text[j] == "\\" and ch != "`" and j + 1 < n:
                    esc = text[j + 1]
                    buf.append({"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}.get(esc, "\\" + esc))
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ExpressionError(f"unterminated string in expression: {excerpt(text)}")
            tokens.append(("str", "".join(buf)))
            i = j + 1
            continue
        if ch.isdigit():
            m = _NUMBER.match(text, i)
            assert m is not None
            literal = m.group(0)
            # a word such as 2024-01-01 or 1abc in govaluate mode is a bare string
            end = i + len(literal)
            if govaluate and end < n and (text[end].isalpha() or text[end] in "_-") :
                m2 = _GOVALUATE_WORD.match(text, i)
                assert m2 is not None
                tokens.append(("word", m2.group(0)))
                i += len(m2.group(0))
                continue
            tokens.append(("num", float(literal) if ("." in literal or "e" in literal.lower()) else int(literal)))
            i = end
            continue
        if ch.isalpha() or ch in "_$@":
            m = _NAME.match(text, i)
            assert m is not None
            word = m.group(0)
            if govaluate:
                # govaluate words may contain dashes (hello-world) when not followed by spaces
                m2 = _DASHED_NAME.match(text, i)
                assert m2 is not None
                word = m2.group(0)
            i += len(word)
            if word in _WORD_OPS:
                tokens.append(("op", word))
            else:
                tokens.append(("name", word))
            continue
        if ch == "#":
            tokens.append(("hash", "#"))
            i += 1
            continue
        for op in _OPERATORS:
            if text.startswith(op, i):
                tokens.append(("op", op))
                i += len(op)
                break
        else:
            raise ExpressionError(f"unexpected character {ch!r} in expression: {excerpt(text)}")
    tokens.append(("eof", None))
    return tokens


# ---------------------------------------------------------------- parser

Node = tuple[Any, ...]

_BINARY_PRECEDENCE = {
    "??": 1,
    "||": 2, "or": 2,
    "&&": 3, "and": 3,
    "==": 4, "!=": 4, "<": 4, ">": 4, "<=": 4, ">=": 4, "=~": 4, "in": 4, "matches": 4,
    "contains": 4, "startsWith": 4, "endsWith": 4,
    "..": 5,
    "+": 6, "-": 6,
    "*": 7, "/": 7, "%": 7,
    "**": 8,
}


class _Parser:
    def __init__(self, text: str, govaluate: bool) -> None:
        self.text = text
        self.tokens = _tokenize(text, govaluate)
        self.pos = 0
        self.depth = 0

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_NESTING:
            raise ExpressionError(f"expression nests deeper than {MAX_EXPRESSION_NESTING} levels (parentheses, "
                                  f"brackets, calls, operators); simplify it: {excerpt(self.text)}")

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.pos]

    def next(self) -> tuple[str, Any]:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.next()
        if tok != ("op", value):
            raise ExpressionError(f"expected {value!r} but found {tok[1]!r} in expression: {excerpt(self.text)}")

    def parse(self) -> Node:
        node = self.expression()
        if self.peek()[0] != "eof":
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in expression: {excerpt(self.text)}")
        return node

    def expression(self) -> Node:
        self._enter()
        cond = self.binary(1)
        if self.peek() == ("op", "?"):
            self.next()
            yes = self.expression()
            self.expect(":")
            no = self.expression()
            cond = ("cond", cond, yes, no)
        self.depth -= 1
        return cond

    def binary(self, min_prec: int) -> Node:
        left = self.unary()
        while True:
            kind, value = self.peek()
            negate = False
            if kind == "op" and value == "not" and self.tokens[self.pos + 1] == ("op", "in"):
                prec = 4
                negate = True
            elif kind != "op" or value not in _BINARY_PRECEDENCE:
                return left
            else:
                prec = _BINARY_PRECEDENCE[value]
            if prec < min_prec:
                return left
            self.next()
            if negate:
                self.next()
                value = "in"
            self._enter()
            right = self.binary(prec + 1 if value != "**" else prec)
            self.depth -= 1
            left = ("bin", value, left, right)
            if negate:
                left = ("not", left)

    def unary(self) -> Node:
        tok = self.peek()
        if tok in (("op", "!"), ("op", "not"), ("op", "-"), ("op", "+")):
            self.next()
            self._enter()
            operand = self.unary()
            self.depth -= 1
            if tok[1] == "+":
                return operand
            return ("neg", operand) if tok[1] == "-" else ("not", operand)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.peek()
            if tok in (("op", "."), ("op", "?.")):
                self.next()
                kind, name = self.next()
                if kind not in ("name", "op") or not isinstance(name, str):
                    raise ExpressionError(f"expected a field name after '.' in expression: {excerpt(self.text)}")
                node = ("member", node, ("lit", name))
            elif tok == ("op", "["):
                self.next()
                if self.peek() == ("op", ":"):
                    self.next()
                    hi = None if self.peek() == ("op", "]") else self.expression()
                    self.expect("]")
                    node = ("slice", node, None, hi)
                    continue
                index = self.expression()
                if self.peek() == ("op", ":"):
                    self.next()
                    hi = None if self.peek() == ("op", "]") else self.expression()
                    self.expect("]")
                    node = ("slice", node, index, hi)
                    continue
                self.expect("]")
                node = ("member", node, index)
            elif tok == ("op", "("):
                self.next()
                args: list[Node] = []
                while self.peek() != ("op", ")"):
                    if self.peek() == ("op", "{") and not self._looks_like_map():
                        self.next()
                        body = self.expression()
                        self.expect("}")
                        args.append(("closure", body))
                    else:
                        args.append(self.expression())
                    if self.peek() == ("op", ","):
                        self.next()
                self.expect(")")
                node = ("call", node, args)
            else:
                return node

    def _looks_like_map(self) -> bool:
        nxt = self.tokens[self.pos + 1]
        after = self.tokens[self.pos + 2] if self.pos + 2 < len(self.tokens) else ("eof", None)
        if nxt == ("op", "}"):
            return True
        return nxt[0] in ("name", "str", "num") and after == ("op", ":")

    def primary(self) -> Node:
        kind, value = self.next()
        if kind in ("num", "str"):
            return ("lit", value)
        if kind == "word":
            return ("lit", value)
        if kind == "hash":
            return ("pointer",)
        if kind == "name":
            if value in ("true", "false"):
                return ("lit", value == "true")
            if value in ("nil", "null"):
                return ("lit", None)
            return ("var", value)
        if (kind, value) == ("op", "("):
            node = self.expression()
            self.expect(")")
            return node
        if (kind, value) == ("op", "["):
            items: list[Node] = []
            while self.peek() != ("op", "]"):
                items.append(self.expression())
                if self.peek() == ("op", ","):
                    self.next()
            self.expect("]")
            return ("array", items)
        if (kind, value) == ("op", "{"):
            pairs: list[tuple[Node, Node]] = []
            while self.peek() != ("op", "}"):
                kkind, kval = self.next()
                if kkind not in ("name", "str", "num"):
                    raise ExpressionError(f"invalid map key {kval!r} in expression: {excerpt(self.text)}")
                self.expect(":")
                pairs.append((("lit", str(kval) if kkind != "num" else kval), self.expression()))
                if self.peek() == ("op", ","):
                    self.next()
            self.expect("}")
            return ("map", pairs)
        raise ExpressionError(f"unexpected {value!r} in expression: {excerpt(self.text)}")


# ---------------------------------------------------------------- evaluation

_MISSING = object()


class _Closure:
    def __init__(self, body: Node, evaluator: _Evaluator) -> None:
        self.body = body
        self.evaluator = evaluator

    def __call__(self, pointer: Any) -> Any:
        return self.evaluator.eval(self.body, pointer)


class _Evaluator:
    def __init__(self, env: dict[str, Any], govaluate: bool, budget: Budget | None = None) -> None:
        self.env = env
        self.govaluate = govaluate
        self.budget = budget or Budget(ExpressionError, "")

    def eval(self, node: Node, pointer: Any = _MISSING) -> Any:
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
            if name in BUILTINS:
                return BUILTINS[name]
            if name == "sprig":
                return SPRIG
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
            return _member(target, key)
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
            return not _truthy(self.eval(node[1], pointer))
        if op == "neg":
            return -_number(self.eval(node[1], pointer))
        if op == "cond":
            return self.eval(node[2] if _truthy(self.eval(node[1], pointer)) else node[3], pointer)
        if op == "bin":
            return self.binary(node[1], node[2], node[3], pointer)
        raise ExpressionError(f"unknown expression node {op}")

    def binary(self, op: str, left_node: Node, right_node: Node, pointer: Any) -> Any:
        if op in ("&&", "and"):
            return _truthy(self.eval(left_node, pointer)) and _truthy(self.eval(right_node, pointer))
        if op in ("||", "or"):
            return _truthy(self.eval(left_node, pointer)) or _truthy(self.eval(right_node, pointer))
        if op == "??":
            try:
                left = self.eval(left_node, pointer)
            except UnresolvedError:
                left = None
            return left if left is not None else self.eval(right_node, pointer)
        left = self.eval(left_node, pointer)
        right = self.eval(right_node, pointer)
        if op == "==":
            return _equal(left, right, self.govaluate)
        if op == "!=":
            return not _equal(left, right, self.govaluate)
        if op in ("<", ">", "<=", ">="):
            a, b = _comparable(left, right)
            return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
        if op in ("=~", "matches"):
            return goregex.match_string(go_string(right), go_string(left))
        if op == "in":
            if isinstance(right, dict):
                return left in right
            if isinstance(right, list):
                return any(_equal(left, item, False) for item in right)
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
            return _number(left) + _number(right)
        a, b = _number(left), _number(right)
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


def _member(target: Any, key: Any) -> Any:
    if target is None:
        return None
    if isinstance(target, dict):
        return target.get(key if not isinstance(key, float) else int(key))
    if isinstance(target, (list, str)):
        if isinstance(key, bool) or not isinstance(key, (int, float)):
            raise ExpressionError(f"cannot index {type(target).__name__} with {key!r}")
        idx = int(key)
        if idx < 0:
            idx += len(target)
        if idx < 0 or idx >= len(target):
            raise ExpressionError(f"index out of range: {int(key)} (array of length {len(target)})")
        return target[idx]
    raise ExpressionError(f"cannot access {key!r} of {type(target).__name__}")


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value == "true":
            return True
        if value == "false":
            return False
    if value is None:
        return False
    raise ExpressionError(f"expected a boolean but got {go_string(value)!r}")


def _to_number_or_none(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _number(value: Any) -> float | int:
    number = _to_number_or_none(value)
    if number is None:
        raise ExpressionError(f"expected a number but got {go_string(value)!r}")
    return number


def _equal(left: Any, right: Any, loose: bool) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        if loose:
            return go_string(left) == go_string(right)
        return left is right or (left == right and type(left) is type(right))
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return float(left) == float(right)
    if loose:
        a, b = _to_number_or_none(left), _to_number_or_none(right)
        if a is not None and b is not None:
            return float(a) == float(b)
        return go_string(left) == go_string(right)
    return bool(left == right)


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    a, b = _to_number_or_none(left), _to_number_or_none(right)
    if a is not None and b is not None:
        return float(a), float(b)
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    raise ExpressionError(f"cannot compare {go_string(left)!r} with {go_string(right)!r}")


# ---------------------------------------------------------------- builtins


def _closure_arg(fn: Any) -> Callable[[Any], Any]:
    if not callable(fn):
        raise ExpressionError("expected a predicate such as {# > 1}")
    return fn


def _as_list(value: Any, fn: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    raise ExpressionError(f"{fn}() needs an array, got {go_string(value)!r}")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ExpressionError(f"cannot convert {value!r} to int")
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            return int(float(str(value).strip()))
        except ValueError as exc:
            raise ExpressionError(f"cannot convert {value!r} to int") from exc


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ExpressionError(f"cannot convert {value!r} to float") from exc


def _from_json(value: Any) -> Any:
    try:
        return json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"fromJSON: invalid JSON {value!r}: {exc}") from exc


def _len(value: Any) -> int:
    if isinstance(value, (list, dict, str)):
        return len(value)
    raise ExpressionError(f"len() of {type(value).__name__}")


BUILTINS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "map": lambda arr, fn: [_closure_arg(fn)(x) for x in _as_list(arr, "map")],
    "filter": lambda arr, fn: [x for x in _as_list(arr, "filter") if _truthy(_closure_arg(fn)(x))],
    "all": lambda arr, fn: all(_truthy(_closure_arg(fn)(x)) for x in _as_list(arr, "all")),
    "any": lambda arr, fn: any(_truthy(_closure_arg(fn)(x)) for x in _as_list(arr, "any")),
    "none": lambda arr, fn: not any(_truthy(_closure_arg(fn)(x)) for x in _as_list(arr, "none")),
    "one": lambda arr, fn: sum(1 for x in _as_list(arr, "one") if _truthy(_closure_arg(fn)(x))) == 1,
    "count": lambda arr, fn: sum(1 for x in _as_list(arr, "count") if _truthy(_closure_arg(fn)(x))),
    "toJson": go_json,
    "toJSON": go_json,
    "fromJson": _from_json,
    "fromJSON": _from_json,
    "asInt": _as_int,
    "int": _as_int,
    "asFloat": _as_float,
    "float": _as_float,
    "string": go_string,
    "jsonpath": lambda doc, path: jsonpath(_from_json(doc) if isinstance(doc, str) else doc, str(path)),
    "keys": lambda m: sorted(m) if isinstance(m, dict) else [],
    "values": lambda m: [m[k] for k in sorted(m)] if isinstance(m, dict) else [],
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "trim": lambda s, cut=None: str(s).strip() if cut is None else str(s).strip(str(cut)),
    "split": lambda s, sep: str(s).split(str(sep)),
    "join": lambda arr, sep="": str(sep).join(go_string(x) for x in _as_list(arr, "join")),
    "first": lambda arr: _as_list(arr, "first")[0] if _as_list(arr, "first") else None,
    "last": lambda arr: _as_list(arr, "last")[-1] if _as_list(arr, "last") else None,
    "abs": lambda x: abs(_number(x)),
    "max": lambda *xs: max(_number(x) for x in xs),
    "min": lambda *xs: min(_number(x) for x in xs),
}


def _sprig_int(value: Any) -> int:
    try:
        return _as_int(value)
    except ExpressionError:
        return 0


_GO_LAYOUT = [
    ("2006", "%Y"), ("01", "%m"), ("02", "%d"), ("15", "%H"), ("04", "%M"), ("05", "%S"),
    ("Jan", "%b"), ("Mon", "%a"), ("MST", "%Z"), ("06", "%y"),
]


def _repeat(text: str, count: int) -> str:
    if count > 0 and len(text) * count > MAX_EXPRESSION_ALLOCATION:
        raise ExpressionError(f"sprig.repeat: {count} x {len(text)} characters is more than the "
                              f"{MAX_EXPRESSION_ALLOCATION} an expression may build")
    return text * max(0, count)


def _quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``."""
    return "".join("\\" + ch if ch in "\\.+*?()|[]{}^$" else ch for ch in text)


def _sprig_date(layout: Any, value: Any) -> str:
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, timezone.utc)
    else:
        parsed = parse_time(str(value))
        if parsed is None:
            raise ExpressionError(f"sprig.date: invalid time {value!r}")
        moment = parsed
    fmt = str(layout)
    out = ""
    i = 0
    while i < len(fmt):
        for go, py in _GO_LAYOUT:
            if fmt.startswith(go, i):
                out += moment.strftime(py)
                i += len(go)
                break
        else:
            out += fmt[i]
            i += 1
    return out


SPRIG: dict[str, Callable[..., Any]] = {
    "trim": lambda s: go_string(s).strip(),
    "trimAll": lambda cut, s: go_string(s).strip(str(cut)),
    "trimPrefix": lambda p, s: go_string(s)[len(p):] if go_string(s).startswith(p) else go_string(s),
    "trimSuffix": lambda p, s: go_string(s)[: -len(p)] if p and go_string(s).endswith(p) else go_string(s),
    "upper": lambda s: go_string(s).upper(),
    "lower": lambda s: go_string(s).lower(),
    "title": lambda s: go_string(s).title(),
    "repeat": lambda n, s: _repeat(go_string(s), _sprig_int(n)),
    "replace": lambda old, new, s: go_string(s).replace(str(old), str(new)),
    "contains": lambda sub, s: str(sub) in go_string(s),
    "hasPrefix": lambda p, s: go_string(s).startswith(str(p)),
    "hasSuffix": lambda p, s: go_string(s).endswith(str(p)),
    "quote": lambda s: json.dumps(go_string(s)),
    "squote": lambda s: f"'{go_string(s)}'",
    "int": _sprig_int,
    "int64": _sprig_int,
    "atoi": _sprig_int,
    "float64": lambda v: _as_float(v),
    "toString": go_string,
    "add": lambda *xs: sum(_sprig_int(x) for x in xs),
    "add1": lambda x: _sprig_int(x) + 1,
    "sub": lambda a, b: _sprig_int(a) - _sprig_int(b),
    "mul": lambda *xs: math.prod(_sprig_int(x) for x in xs),
    "div": lambda a, b: int(_sprig_int(a) / _sprig_int(b)),
    "mod": lambda a, b: _sprig_int(a) % _sprig_int(b),
    "max": lambda *xs: max(_sprig_int(x) for x in xs),
    "min": lambda *xs: min(_sprig_int(x) for x in xs),
    "b64enc": lambda s: base64.b64encode(go_string(s).encode()).decode(),
    "b64dec": lambda s: base64.b64decode(go_string(s).encode()).decode(errors="replace"),
    "date": _sprig_date,
    "now": lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "default": lambda d, v=None: v if v not in (None, "", [], {}, 0, False) else d,
    "empty": lambda v: v in (None, "", [], {}, 0, False),
    "list": lambda *xs: list(xs),
    "join": lambda sep, arr: str(sep).join(go_string(x) for x in _as_list(arr, "join")),
    "split": lambda sep, s: {f"_{i}": part for i, part in enumerate(go_string(s).split(str(sep)))},
    "splitList": lambda sep, s: go_string(s).split(str(sep)),
    "toJson": go_json,
    "fromJson": _from_json,
    "regexMatch": lambda rx, s: goregex.match_string(go_string(rx), go_string(s)),
    "mustRegexMatch": lambda rx, s: goregex.match_string(go_string(rx), go_string(s)),
    "regexFind": lambda rx, s: goregex.find_string(go_string(rx), go_string(s)),
    "mustRegexFind": lambda rx, s: goregex.find_string(go_string(rx), go_string(s)),
    "regexFindAll": lambda rx, s, n: goregex.find_all_string(go_string(rx), go_string(s), _sprig_int(n)),
    "mustRegexFindAll": lambda rx, s, n: goregex.find_all_string(go_string(rx), go_string(s), _sprig_int(n)),
    "regexReplaceAll": lambda rx, s, repl: goregex.replace_all_string(go_string(rx), go_string(s), go_string(repl)),
    "mustRegexReplaceAll": lambda rx, s, repl: goregex.replace_all_string(go_string(rx), go_string(s),
                                                                          go_string(repl)),
    "regexReplaceAllLiteral": lambda rx, s, repl: goregex.replace_all_literal_string(go_string(rx), go_string(s),
                                                                                     go_string(repl)),
    "regexSplit": lambda rx, s, n: goregex.split(go_string(rx), go_string(s), _sprig_int(n)),
    "mustRegexSplit": lambda rx, s, n: goregex.split(go_string(rx), go_string(s), _sprig_int(n)),
    "regexQuoteMeta": lambda s: _quote_meta(go_string(s)),
    "ternary": lambda a, b, cond: a if _truthy(cond) else b,
}


# ---------------------------------------------------------------- jsonpath


def jsonpath(doc: Any, path: str) -> Any:
    """Evaluate a JSONPath (``$.a.b``, ``$[0]``, ``$.a[*].b``, ``$.a[0:2]``, ``$.a[?(@.x>1)]``, ``..``).

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
            m = _JSONPATH_KEY.match(text, pos)
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
            m = _JSONPATH_KEY.match(text, pos)
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
                tree = _Parser(expr, False).parse()
                selected = []
                for item in current:
                    for child in _children(item):
                        try:
                            ok = _Evaluator({"@": child}, False).eval(_rewrite_at(tree))
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


# ---------------------------------------------------------------- public API

_CACHE: dict[tuple[str, bool], Node] = {}
#: expressions longer than this are parsed again each time instead of being cached
_CACHED_LENGTH = 4096


def _check_length(text: str) -> None:
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long; the limit is {MAX_EXPRESSION_LENGTH}: "
                              f"{excerpt(text)}")


def parse(text: str, *, govaluate: bool = False) -> Node:
    """Parse (and cache) an expression; :class:`ExpressionError` for text that is too long, nests too
    deeply or is not an expression."""
    key = (text, govaluate)
    tree = _CACHE.get(key)
    if tree is None:
        _check_length(text)
        try:
            tree = _Parser(text, govaluate).parse()
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError(f"expression nests too deeply: {excerpt(text)}") from None
        if len(text) <= _CACHED_LENGTH:
            if len(_CACHE) > 4096:
                _CACHE.clear()
            _CACHE[key] = tree
    return tree


def _failure(exc: BaseException) -> str:
    """What went wrong while evaluating (any Python error), for an :class:`ExpressionError`."""
    if isinstance(exc, RecursionError):
        return "the expression nests too deeply to evaluate"
    if isinstance(exc, MemoryError):
        return "the expression needs more memory than is available"
    return (str(exc) or type(exc).__name__)[:500]


def _shown(text: str) -> str:
    return text.strip() if len(text) <= 400 else excerpt(text, 400)


def _plain(value: Any, text: str) -> Any:
    """``value`` if it is data (what JSON can hold); a function or the ``sprig`` table is not."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif callable(item):
            raise ExpressionError(f"expression evaluates to a function, not a value (call it with (...)): "
                                  f"{excerpt(text)}")
    return value


def evaluate(text: str, env: dict[str, Any]) -> Any:
    """Evaluate an expr-lang expression against ``env`` (nested dicts).

    Raises only :class:`ExpressionError` (:class:`UnresolvedError` for a name not in ``env``):
    evaluation runs within the step, allocation and time budget of
    :class:`~airflow_argo_eci.local.argo.budget.Budget`, and any failure inside it is reported as
    an :class:`ExpressionError`."""
    try:
        return _plain(_Evaluator(env, False, Budget(ExpressionError, text)).eval(parse(text)), text)
    except ExpressionError:
        raise
    except Exception as exc:  # whatever the input does, the caller gets one error type
        raise ExpressionError(f"{_shown(text)}: {_failure(exc)}") from None


def evaluate_when(text: str) -> bool:
    """Evaluate a ``when`` condition (already substituted) the way govaluate would."""
    try:
        result = _Evaluator({}, True, Budget(ExpressionError, text)).eval(parse(text, govaluate=True))
    except ExpressionError:
        raise
    except Exception as exc:  # whatever the input does, the caller gets one error type
        raise ExpressionError(f"invalid when expression {excerpt(text)}: {_failure(exc)}") from None
    if isinstance(result, str) and result in ("true", "false"):
        return result == "true"
    if not isinstance(result, bool):
        raise ExpressionError(f"when expression {excerpt(text)} did not evaluate to a boolean")
    return result


#: variables whose scalar value is what expressions see, though sub-keys exist for simple tags
SCALAR_WINS = frozenset({"workflow.creationTimestamp"})


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn ``{"a.b.c": v}`` into ``{"a": {"b": {"c": v}}}``; deeper keys win over a scalar prefix
    (except for :data:`SCALAR_WINS`)."""
    env: dict[str, Any] = {}
    for key in sorted(flat, key=lambda k: k.count(".")):
        parts = key.split(".")
        if any(".".join(parts[:i]) in SCALAR_WINS for i in range(1, len(parts))):
            continue
        cur = env
        for part in parts[:-1]:
            nxt = cur.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                cur[part] = nxt
            cur = nxt
        if not isinstance(cur.get(parts[-1]), dict):
            cur[parts[-1]] = flat[key]
    return env
