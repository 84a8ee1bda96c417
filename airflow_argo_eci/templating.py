"""Airflow's Jinja and Argo's ``{{...}}`` in one workflow.

Both template languages use ``{{ }}``. Before Airflow renders a workflow, every Argo expression
(``{{inputs.parameters.x}}``, ``{{steps.a.outputs.result}}``, ``{{item}}``, ``{{=expr}}``, ...)
is wrapped in ``{% raw %}`` so Jinja leaves it for Argo, while Airflow's own variables
(``{{ ds }}``, ``{{ params.x }}``, ``{{ dag_run.conf }}``, ...) are rendered as usual.

A template that does not render becomes a :class:`TemplateRenderError` that names the field, the
key inside it and the likely cause (:func:`explain_render_error`): above all, a run triggered
without a logical date (Airflow 3's REST API and UI default) has no ``ds``, ``ts`` or
``logical_date``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_argo_eci.errors import WorkflowSpecError

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


# ---------------------------------------------------------------------- render errors

#: context keys Airflow defines only for a run that has a logical date
LOGICAL_DATE_KEYS = frozenset({
    "ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz", "logical_date", "data_interval_start",
    "data_interval_end", "prev_data_interval_start_success", "prev_data_interval_end_success",
})
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"^'([^']+)' has no attribute '([^']+)'$")


class TemplateRenderError(WorkflowSpecError):
    """A templated field did not render; the message names the field (with the key or index
    inside it) and the likely cause.

    :param task_id: the task whose field failed
    :param field: where, e.g. ``parameters['batch']`` or ``workflow``
    :param cause: what Jinja said, explained
    """

    def __init__(self, task_id: str, field: str, cause: str) -> None:
        super().__init__(f"task {task_id}: template of {field} did not render: {cause}")
        self.task_id = task_id
        self.field = field
        self.cause = cause


def field_path(field: str, keys: Sequence[Any]) -> str:
    """``parameters`` + ``['batch']`` -> ``parameters['batch']``; list indexes as ``[0]``."""
    return field + "".join(f"[{key!r}]" for key in keys)


def explain_render_error(exc: BaseException, context: Mapping[str, Any]) -> str:
    """What went wrong rendering a template with ``context``, and the likely fix."""
    import jinja2

    message = str(exc)
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"Jinja syntax error on line {exc.lineno}: {exc.message}"
    if isinstance(exc, jinja2.UndefinedError):
        undefined = _UNDEFINED_NAME.match(message)
        if undefined:
            name = undefined.group(1)
            if name in LOGICAL_DATE_KEYS and "logical_date" not in context:
                return (f"{message}: this run has no logical date (runs triggered through the REST API or the "
                        f"UI without one have no {name}); template "
                        "{{ (dag_run.logical_date or dag_run.run_after) | ds }} (or dag_run.run_after) instead")
            return (f"{message}: {name!r} is not in Airflow's template context; use a context variable "
                    "(ds, params, dag_run, ti, var, conn, macros, ...), and write an Argo expression with "
                    f"one of Argo's roots ({', '.join(ARGO_ROOTS)}) so it is left for Argo")
        missing = _NO_ATTRIBUTE.match(message)
        if missing and missing.group(1) in ("dict object", "ParamsDict object") and "params" in context:
            return (f"{message}: if this is params.{missing.group(2)}, the DAG and the task define no param "
                    f"{missing.group(2)!r}; add it to params= (a run's conf can then override it)")
        return f"{message}: the template uses a name or attribute this run's context does not have"
    return f"{type(exc).__name__}: {message}"
