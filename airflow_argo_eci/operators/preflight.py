"""``ArgoPreflightOperator``: hold the cluster of an ``argo_workflows`` connection against the seed's practices.

Runs :func:`airflow_argo_eci.preflight.run_preflight` through a
:class:`~airflow_argo_eci.hooks.cluster.ClusterHook`, logs the report's table, fails the task when a
check ends in one of ``fail_on`` (unless ``warn_only``), and returns the report as XCom.
Importing this module is cheap (no kubernetes imports).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_argo_eci.eci_conventions import ARGO_NAMESPACE
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.operators._base import ExplainedTemplatesMixin
from airflow_argo_eci.preflight_checks import STATUSES

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_argo_eci.hooks.cluster import ClusterHook


class ArgoPreflightOperator(ExplainedTemplatesMixin, BaseOperator):
    """Check a cluster before a DAG relies on it: Argo's CRDs, version, resources and executor, the
    artifact repository, ECI's vSwitches, the ImageCache / Fluid CRDs (when required) and the
    connection's RBAC; each check with its status, evidence and fix.

    :param argo_conn_id: the ``argo_workflows`` connection (the ``kubernetes`` transport reads everything;
        ``argo_server`` reads only the Argo version, the rest is ``unknown``)
    :param namespace: the workflows' namespace (default: the connection's)
    :param argo_namespace: where Argo is installed (``argo``)
    :param require: optional components the DAGs use: ``"imagecache"``, ``"fluid"`` (a list, or comma-separated)
    :param fail_on: the statuses that fail the task (``("fail",)``; add ``"unknown"`` to also fail on what
        could not be read, ``"warn"`` to fail on any deviation from the seed's practices)
    :param warn_only: log the checks that would fail the task as warnings and succeed
    :return: the report (``Report.to_dict()``: target, namespace, error, summary, checks)
    """

    template_fields: Sequence[str] = ("namespace", "argo_namespace", "require")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        argo_conn_id: str = "argo_default",
        namespace: str | None = None,
        argo_namespace: str = ARGO_NAMESPACE,
        require: str | Sequence[str] = (),
        fail_on: Sequence[str] = ("fail",),
        warn_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        bad = [s for s in fail_on if s not in STATUSES]
        if isinstance(fail_on, str) or bad:
            raise WorkflowSpecError(f"task {self.task_id}: fail_on must be a list of {', '.join(STATUSES)} "
                                    f"(got {fail_on!r})")
        self.argo_conn_id = argo_conn_id
        self.namespace = namespace
        self.argo_namespace = argo_namespace
        self.require = require
        self.fail_on = tuple(fail_on)
        self.warn_only = warn_only
        self._hook: ClusterHook | None = None

    @property
    def hook(self) -> ClusterHook:
        """The hook for ``argo_conn_id`` (made on first use, so DAG parsing stays cheap)."""
        if self._hook is None:
            from airflow_argo_eci.hooks.cluster import ClusterHook

            self._hook = ClusterHook(argo_conn_id=self.argo_conn_id)
        return self._hook

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.exceptions import AirflowException

        from airflow_argo_eci.preflight import PreflightOptions, parse_require, run_preflight

        try:
            reader = self.hook.get_conn()
            options = PreflightOptions(self.namespace or reader.default_namespace(), self.argo_namespace,
                                       parse_require(self.require))
            report = run_preflight(reader, options)
        finally:
            self.hook.close()
        self.log.info("%s", report.table())
        failing = report.matching(self.fail_on)
        problems = [f"{c.id}: {c.status} ({c.evidence})" for c in failing]
        if report.error:
            problems.insert(0, f"the cluster could not be reached: {report.error}")
        if problems and self.warn_only:
            for line in problems:
                self.log.warning("preflight (warn_only): %s", line)
        elif problems:
            raise AirflowException(f"preflight of {report.target}: {len(problems)} problem(s):\n  "
                                   + "\n  ".join(problems))
        return report.to_dict()
