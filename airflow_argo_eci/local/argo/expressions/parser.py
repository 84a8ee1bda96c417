"""The parser of Argo's expression languages: a Pratt parser from tokens to a tree of tuples
(:data:`Node`), and :func:`parse`, which checks the length and caches the trees of short texts."""

from __future__ import annotations

from typing import Any

from airflow_argo_eci.local.argo.budget import MAX_EXPRESSION_LENGTH, MAX_EXPRESSION_NESTING, excerpt
from airflow_argo_eci.local.argo.expressions.errors import ExpressionError
from airflow_argo_eci.local.argo.expressions.lexer import tokenize

#: an expression tree: ``(kind, *operands)``, e.g. ``("bin", "+", left, right)`` or ``("var", name)``
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


class Parser:
    """A Pratt parser over the tokens of one text; :meth:`parse` returns its :data:`Node` tree."""

    def __init__(self, text: str, govaluate: bool) -> None:
        self.text = text
        self.tokens = tokenize(text, govaluate)
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
        """The tree of the whole text; :class:`ExpressionError` if anything is left over."""
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
            tree = Parser(text, govaluate).parse()
        except ExpressionError:
            raise
        except RecursionError:
            raise ExpressionError(f"expression nests too deeply: {excerpt(text)}") from None
        if len(text) <= _CACHED_LENGTH:
            if len(_CACHE) > 4096:
                _CACHE.clear()
            _CACHE[key] = tree
    return tree
