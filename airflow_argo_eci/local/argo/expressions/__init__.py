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

The package is split by stage: :mod:`.lexer`, :mod:`.parser` (with the parse cache),
:mod:`.evaluator`, :mod:`.values` (coercions and comparisons), :mod:`.functions` (builtins and
sprig) and :mod:`.jsonpath_query`; this module holds the entry points.
"""

from __future__ import annotations

from typing import Any

from airflow_argo_eci.local.argo.budget import Budget, excerpt
from airflow_argo_eci.local.argo.expressions.errors import ExpressionError, UnresolvedError
from airflow_argo_eci.local.argo.expressions.evaluator import Evaluator
from airflow_argo_eci.local.argo.expressions.functions import BUILTINS, FUNCTIONS, SPRIG, jsonpath
from airflow_argo_eci.local.argo.expressions.parser import Node, parse

__all__ = [
    "BUILTINS",
    "SCALAR_WINS",
    "SPRIG",
    "ExpressionError",
    "Node",
    "UnresolvedError",
    "evaluate",
    "evaluate_when",
    "jsonpath",
    "nest",
    "parse",
]


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
        return _plain(Evaluator(env, False, FUNCTIONS, Budget(ExpressionError, text)).eval(parse(text)), text)
    except ExpressionError:
        raise
    except Exception as exc:  # whatever the input does, the caller gets one error type
        raise ExpressionError(f"{_shown(text)}: {_failure(exc)}") from None


def evaluate_when(text: str) -> bool:
    """Evaluate a ``when`` condition (already substituted) the way govaluate would."""
    try:
        result = Evaluator({}, True, FUNCTIONS, Budget(ExpressionError, text)).eval(parse(text, govaluate=True))
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
