"""The tokenizer of Argo's expression languages: expr-lang text (or, with ``govaluate=True``, a
``when`` condition whose bare words are strings) as a list of ``(kind, value)`` tokens."""

from __future__ import annotations

import re
from typing import Any

from airflow_argo_eci.local.argo.budget import excerpt
from airflow_argo_eci.local.argo.expressions.errors import ExpressionError

_OPERATORS = [
    "**", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "=~", "..",
    "<", ">", "+", "-", "*", "/", "%", "!", "?", ":", ".", ",", "(", ")", "[", "]", "{", "}",
]
_WORD_OPS = {"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"}
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
_GOVALUATE_WORD = re.compile(r"[\w\-.:]+")
_NAME = re.compile(r"[\w$@]+")
_DASHED_NAME = re.compile(r"[\w$@]+(?:-[\w$@]+)*")


def tokenize(text: str, govaluate: bool) -> list[tuple[str, Any]]:
    """The tokens of ``text``, ending with ``("eof", None)``; kinds are ``str``, ``num``, ``word`` (a
    govaluate bare word), ``name``, ``op`` and ``hash`` (the closure pointer ``#``)."""
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

