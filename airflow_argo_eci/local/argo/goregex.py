"""Regular expressions as Argo evaluates them: Go's ``regexp`` (RE2 syntax, linear time).

Used by ``=~``/``matches`` in expressions and by the sprig ``regex*`` functions. Python's ``re``
backtracks (``^(a+)+$`` against ``"a" * 27 + "!"`` takes seconds), so patterns are compiled with
RE2 (the ``google-re2`` binding). A pattern RE2 rejects (back-references, look-around...) raises
:class:`RegexError` with RE2's reason, as Go's ``regexp.Compile`` would.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import re2

#: compiled patterns kept (a workflow evaluates the same few patterns on every pass)
_CACHE_SIZE = 256
#: RE2's memory budget for one compiled pattern (bounds huge repetitions such as ``(a{1000}){1000}``)
_MAX_PROGRAM_BYTES = 8 << 20

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would write every rejected pattern to the server's stderr
_OPTIONS.max_mem = _MAX_PROGRAM_BYTES
_CACHE: OrderedDict[str, Any] = OrderedDict()


class RegexError(ValueError):
    """A pattern Go's ``regexp`` (RE2) does not accept, or input it cannot take."""


def compile_go(pattern: str) -> Any:
    """The compiled RE2 pattern (cached); :class:`RegexError` if RE2 rejects it."""
    compiled = _CACHE.get(pattern)
    if compiled is not None:
        _CACHE.move_to_end(pattern)
        return compiled
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(f"error parsing regexp {pattern[:200]!r}: {reason} "
                         "(Argo uses Go's RE2 syntax: no back-references or look-around)") from None
    except (UnicodeError, TypeError, ValueError) as exc:
        raise RegexError(f"invalid regexp {pattern[:200]!r}: {exc}") from None
    _CACHE[pattern] = compiled
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return compiled


def _search(pattern: str, text: str) -> Any:
    compiled = compile_go(pattern)
    try:
        return compiled.search(text)
    except (UnicodeError, TypeError, ValueError) as exc:
        raise RegexError(f"regexp {pattern[:200]!r} cannot match this input: {exc}") from None


def match_string(pattern: str, text: str) -> bool:
    """Go's ``regexp.MatchString``: whether ``pattern`` matches anywhere in ``text``."""
    return _search(pattern, text) is not None


def find_string(pattern: str, text: str) -> str:
    """Go's ``Regexp.FindString``: the leftmost match, or ``""``."""
    found = _search(pattern, text)
    return "" if found is None else str(found.group(0))


def find_all_string(pattern: str, text: str, n: int) -> list[str]:
    """Go's ``Regexp.FindAllString(text, n)`` (``n < 0``: all matches)."""
    compiled = compile_go(pattern)
    out: list[str] = []
    try:
        for found in compiled.finditer(text):
            if 0 <= n <= len(out):
                break
            out.append(str(found.group(0)))
    except (UnicodeError, TypeError, ValueError) as exc:
        raise RegexError(f"regexp {pattern[:200]!r} cannot match this input: {exc}") from None
    return out


def replace_all_string(pattern: str, text: str, template: str) -> str:
    """Go's ``Regexp.ReplaceAllString``: ``$1``, ``${1}``, ``$name``, ``${name}`` and ``$$`` in
    ``template`` expand as in Go's ``Regexp.Expand``."""
    compiled = compile_go(pattern)
    try:
        return str(compiled.sub(lambda found: _expand(template, found, compiled), text))
    except (UnicodeError, TypeError, ValueError) as exc:
        raise RegexError(f"regexp {pattern[:200]!r} cannot replace in this input: {exc}") from None


def replace_all_literal_string(pattern: str, text: str, replacement: str) -> str:
    """Go's ``Regexp.ReplaceAllLiteralString`` (no ``$`` expansion)."""
    compiled = compile_go(pattern)
    try:
        return str(compiled.sub(lambda _found: replacement, text))
    except (UnicodeError, TypeError, ValueError) as exc:
        raise RegexError(f"regexp {pattern[:200]!r} cannot replace in this input: {exc}") from None


def split(pattern: str, text: str, n: int) -> list[str]:
    """Go's ``Regexp.Split(text, n)``: ``n < 0`` all parts, ``n == 0`` none, else at most ``n``."""
    if n == 0:
        return []
    compiled = compile_go(pattern)
    if pattern and not text:
        return [""]
    parts: list[str] = []
    begin = end = 0
    try:
        for found in compiled.finditer(text):
            if 0 < n and len(parts) == n - 1:
                break
            end = found.start()
            if found.end() != 0:
                parts.append(text[begin:end])
            begin = found.end()
    except (UnicodeError, TypeError, ValueError) as exc:
        raise RegexError(f"regexp {pattern[:200]!r} cannot split this input: {exc}") from None
    if end != len(text):
        parts.append(text[begin:])
    return parts


def _is_name_char(ch: str) -> bool:
    return ch == "_" or (ch.isascii() and ch.isalnum())


def _expand(template: str, found: Any, compiled: Any) -> str:
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = template.find("}", i + 2)
            name = template[i + 2:end] if end > 0 else ""
            if not name or not all(_is_name_char(c) for c in name):
                out.append("$")
                i += 1
                continue
            i = end + 1
        else:
            j = i + 1
            while j < n and _is_name_char(template[j]):
                j += 1
            name = template[i + 1:j]
            if not name:
                out.append("$")
                i += 1
                continue
            i = j
        out.append(_group(found, compiled, name))
    return "".join(out)


def _group(found: Any, compiled: Any, name: str) -> str:
    """The text of group ``name`` (a number or a group name); ``""`` when there is none."""
    if name.isdigit():
        index = int(name)
        if index > compiled.groups:
            return ""
        value = found.group(index)
    else:
        if name not in compiled.groupindex:
            return ""
        value = found.group(name)
    return "" if value is None else str(value)
