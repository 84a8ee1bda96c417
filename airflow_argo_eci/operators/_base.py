"""What the operator and the sensor share: their hook and namespace, from ``argo_conn_id``, and
template errors that name the field and the likely cause."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.templating import TemplateRenderError, explain_render_error, field_path

if TYPE_CHECKING:
    import jinja2

    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook


def positive_seconds(task_id: str, name: str, value: float | timedelta | None) -> float | None:
    """``value`` (seconds or a timedelta) in seconds, None for None; not > 0: a
    :class:`~airflow_argo_eci.errors.WorkflowSpecError` naming the task and the parameter."""
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if seconds is not None and seconds <= 0:
        raise WorkflowSpecError(f"task {task_id}: {name} must be > 0 seconds (got {value})")
    return seconds


def task_failure(reason: object) -> Exception:
    """The exception that fails a task with ``reason`` as its message (Airflow's, imported late)."""
    from airflow.exceptions import AirflowException

    return AirflowException(str(reason))


class ArgoHookMixin:
    """The lazily made :class:`~airflow_argo_eci.hooks.argo.ArgoWorkflowsHook` and the namespace of a
    task with ``argo_conn_id`` and ``namespace`` attributes (its ``__init__`` sets ``_hook = None``)."""

    argo_conn_id: str
    namespace: str | None
    _hook: ArgoWorkflowsHook | None

    @property
    def hook(self) -> ArgoWorkflowsHook:
        """The hook for ``argo_conn_id`` (made on first use, so DAG parsing stays cheap)."""
        if self._hook is None:
            from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

            self._hook = ArgoWorkflowsHook(argo_conn_id=self.argo_conn_id)
        return self._hook

    @property
    def resolved_namespace(self) -> str:
        """``namespace``, else the connection's (or its kubeconfig context's) default."""
        return self.namespace or self.hook.get_conn().default_namespace


class ExplainedTemplatesMixin:
    """Put before ``BaseOperator`` in the bases: a template field that fails to render raises
    :class:`~airflow_argo_eci.templating.TemplateRenderError` naming the field, the key or index
    inside it (``parameters['batch']``) and the likely cause, instead of Jinja's bare
    ``UndefinedError: 'ds' is undefined``.

    It hooks :meth:`render_template`, which Airflow calls once per template field (mapped tasks
    included) and which this mixin then walks itself through dicts, lists and tuples, so it
    knows the path to the string that failed.
    """

    task_id: str
    template_fields: Any
    _template_path: list[Any] | None = None

    def render_template(self, content: Any, context: Any, jinja_env: jinja2.Environment | None = None,
                        seen_oids: set[int] | None = None) -> Any:
        if self._template_path is not None:  # inside a field this mixin is walking
            return self._render_walk(content, context, jinja_env, seen_oids)
        field = next((name for name in self.template_fields if getattr(self, name, None) is content), "a template")
        self._template_path = []
        try:
            return self._render_walk(content, context, jinja_env, seen_oids)
        except TemplateRenderError:
            raise
        except Exception as exc:
            path = field_path(field, self._template_path)
            raise TemplateRenderError(self.task_id, path, explain_render_error(exc, context)) from exc
        finally:
            self._template_path = None

    def _render_walk(self, content: Any, context: Any, jinja_env: jinja2.Environment | None,
                     seen_oids: set[int] | None) -> Any:
        """Render ``content``, recording in ``_template_path`` the key of each level it enters
        (left pointing at the failed string when rendering raises)."""
        path = self._template_path
        assert path is not None
        if isinstance(content, dict):
            rendered = {}
            for key, value in content.items():
                path.append(key)
                rendered[key] = self._render_walk(value, context, jinja_env, seen_oids)
                path.pop()
            return rendered
        if type(content) in (list, tuple):
            items = []
            for index, value in enumerate(content):
                path.append(index)
                items.append(self._render_walk(value, context, jinja_env, seen_oids))
                path.pop()
            return type(content)(items)
        if path and isinstance(content, str) and content.endswith(tuple(self.template_ext)):  # type: ignore[attr-defined]
            # a string inside a dict or a list is text (an argument "out.json", a path "/tmp/x.yaml"), never
            # the name of a template file: only a whole field's value may be one
            env = jinja_env or self.get_template_env()  # type: ignore[attr-defined]
            return self._render(env.from_string(content), context)  # type: ignore[attr-defined]
        return super().render_template(content, context, jinja_env, seen_oids)  # type: ignore[misc]
