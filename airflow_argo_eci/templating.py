"""Airflow's Jinja and Argo's ``{{...}}`` in one workflow.

Both template languages use ``{{ }}``. Before Airflow renders a workflow, every Argo expression
(``{{inputs.parameters.x}}``, ``{{steps.a.outputs.result}}``, ``{{item}}``, ``{{=expr}}``, ...)
is wrapped in ``{% raw %}`` so Jinja leaves it for Argo, while Airflow's own variables
(``{{ ds }}``, ``{{ params.x }}``, ``{{ dag_run.conf }}``, ...) are rendered as usual.
"""

from __future__ import annotations

import re
from typing import Any

#: the roots of Argo's variable language; anything else inside {{ }} is Airflow's Jinja
ARGO_ROOTS = (
    "inputs", "outputs", "steps", "tasks", "workflow", "item", "pod", "node", "retries", "lastRetry",
    "exitCode", "status", "cronworkflow",
)
_ARGO_EXPR = re.compile(
    r"\{\{\s*(?:=|(?:" + "|".join(ARGO_ROOTS) + r")\b)(?:(?!\}\}).)*\}\}", re.DOTALL
)


def protect_argo_expressions(text: str) -> str:
    """Wrap each Argo ``{{...}}`` expression of ``text`` in a Jinja raw block."""
    if "{{" not in text:
        return text
    return _ARGO_EXPR.sub(lambda m: "{% raw %}" + m.group(0) + "{% endraw %}", text)


def protect_in(value: Any) -> Any:
    """:func:`protect_argo_expressions` applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return protect_argo_expressions(value)
    if isinstance(value, dict):
        return {k: protect_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [protect_in(v) for v in value]
    if isinstance(value, tuple):
        return tuple(protect_in(v) for v in value)
    return value
