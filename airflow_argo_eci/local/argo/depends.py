"""DAG task dependencies: Argo's enhanced ``depends`` expressions and the order tasks run in."""

from __future__ import annotations

import re

from airflow_argo_eci.local.argo.expressions import ExpressionError, evaluate

_DEP_TOKEN = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_\-]*)(?:\.(Succeeded|Failed|Errored|Skipped|Omitted|Daemoned|"
                        r"AnySucceeded|AllFailed))?")


def evaluate_depends(expression: str, states: dict[str, dict[str, bool]]) -> bool:
    """Evaluate an enhanced ``depends`` expression against the states of the finished tasks.

    ``A`` alone means ``A.Succeeded || A.Skipped || A.Daemoned`` (plus ``A.Failed``/``A.Errored`` when
    A has ``continueOn``), as in Argo's ``expandDependency``.
    """

    def repl(m: re.Match[str]) -> str:
        name, result = m.group(1), m.group(2)
        if name in ("true", "false") and not result:
            return name
        state = states.get(name)
        if state is None:
            raise ExpressionError(f"depends references unknown or unfinished task '{name}'")
        value = state.get(result or "_default", False)
        return "true" if value else "false"

    text = _DEP_TOKEN.sub(repl, expression)
    return bool(evaluate(text, {}))


def dependency_order(targets: list[str], deps: dict[str, list[str]]) -> list[str]:
    """The tasks ``targets`` need, each after its dependencies (depth-first, iterative so that a
    chain of thousands of tasks needs no deep recursion). ``deps`` must be acyclic."""
    order: list[str] = []
    done: set[str] = set()
    for target in targets:
        stack: list[tuple[str, int]] = [(target, 0)]
        while stack:
            name, index = stack.pop()
            if name in done:
                continue
            names = deps[name]
            if index < len(names):
                stack.append((name, index + 1))
                if names[index] not in done:
                    stack.append((names[index], 0))
                continue
            done.add(name)
            order.append(name)
    return order

