"""The functions of Argo's expression languages: expr-lang's builtins (``len``, ``map``, ``filter``,
``toJSON``, ``jsonpath``, ...) and the ``sprig.*`` functions the Argo examples use."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from airflow_argo_eci.conventions import now_rfc3339
from airflow_argo_eci.local.argo import goregex
from airflow_argo_eci.local.argo.budget import MAX_EXPRESSION_ALLOCATION
from airflow_argo_eci.local.argo.expressions.errors import ExpressionError
from airflow_argo_eci.local.argo.expressions.jsonpath_query import query
from airflow_argo_eci.local.argo.expressions.values import (
    as_float,
    as_int,
    as_list,
    from_json,
    number,
    truthy,
)
from airflow_argo_eci.local.argo.nodes import go_json, go_string, parse_time


def jsonpath(doc: Any, path: str) -> Any:
    """Evaluate a JSONPath (``$.a.b``, ``$[0]``, ``$.a[*].b``, ``$.a[0:2]``, ``$.a[?(@.x>1)]``, ``..``)
    whose filters may call the builtins.

    Like PaesslerAG/jsonpath (used by Argo), a path with wildcards, slices, filters or recursive
    descent returns a list; a definite path returns the single value.
    """
    return query(doc, path, FUNCTIONS)


def _closure_arg(fn: Any) -> Callable[[Any], Any]:
    if not callable(fn):
        raise ExpressionError("expected a predicate such as {# > 1}")
    return fn


def _length(value: Any) -> int:
    if isinstance(value, (list, dict, str)):
        return len(value)
    raise ExpressionError(f"len() of {type(value).__name__}")


#: expr-lang's builtin functions
BUILTINS: dict[str, Callable[..., Any]] = {
    "len": _length,
    "map": lambda arr, fn: [_closure_arg(fn)(x) for x in as_list(arr, "map")],
    "filter": lambda arr, fn: [x for x in as_list(arr, "filter") if truthy(_closure_arg(fn)(x))],
    "all": lambda arr, fn: all(truthy(_closure_arg(fn)(x)) for x in as_list(arr, "all")),
    "any": lambda arr, fn: any(truthy(_closure_arg(fn)(x)) for x in as_list(arr, "any")),
    "none": lambda arr, fn: not any(truthy(_closure_arg(fn)(x)) for x in as_list(arr, "none")),
    "one": lambda arr, fn: sum(1 for x in as_list(arr, "one") if truthy(_closure_arg(fn)(x))) == 1,
    "count": lambda arr, fn: sum(1 for x in as_list(arr, "count") if truthy(_closure_arg(fn)(x))),
    "toJson": go_json,
    "toJSON": go_json,
    "fromJson": from_json,
    "fromJSON": from_json,
    "asInt": as_int,
    "int": as_int,
    "asFloat": as_float,
    "float": as_float,
    "string": go_string,
    "jsonpath": lambda doc, path: jsonpath(from_json(doc) if isinstance(doc, str) else doc, str(path)),
    "keys": lambda m: sorted(m) if isinstance(m, dict) else [],
    "values": lambda m: [m[k] for k in sorted(m)] if isinstance(m, dict) else [],
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "trim": lambda s, cut=None: str(s).strip() if cut is None else str(s).strip(str(cut)),
    "split": lambda s, sep: str(s).split(str(sep)),
    "join": lambda arr, sep="": str(sep).join(go_string(x) for x in as_list(arr, "join")),
    "first": lambda arr: as_list(arr, "first")[0] if as_list(arr, "first") else None,
    "last": lambda arr: as_list(arr, "last")[-1] if as_list(arr, "last") else None,
    "abs": lambda x: abs(number(x)),
    "max": lambda *xs: max(number(x) for x in xs),
    "min": lambda *xs: min(number(x) for x in xs),
}


def _sprig_int(value: Any) -> int:
    try:
        return as_int(value)
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


#: the ``sprig.*`` functions
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
    "float64": lambda v: as_float(v),
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
    "now": now_rfc3339,
    "default": lambda d, v=None: v if v not in (None, "", [], {}, 0, False) else d,
    "empty": lambda v: v in (None, "", [], {}, 0, False),
    "list": lambda *xs: list(xs),
    "join": lambda sep, arr: str(sep).join(go_string(x) for x in as_list(arr, "join")),
    "split": lambda sep, s: {f"_{i}": part for i, part in enumerate(go_string(s).split(str(sep)))},
    "splitList": lambda sep, s: go_string(s).split(str(sep)),
    "toJson": go_json,
    "fromJson": from_json,
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
    "ternary": lambda a, b, cond: a if truthy(cond) else b,
}


#: the names an expression resolves when its variables lack them: the builtins and the ``sprig`` table
FUNCTIONS: dict[str, Any] = {**BUILTINS, "sprig": SPRIG}
