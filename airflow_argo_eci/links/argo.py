"""Operator extra link "Argo Workflow": the Argo UI when the connection has a ``ui_url``, else the
Argo view this provider adds to the Airflow UI.

Airflow 3 calls ``get_link`` once, in the task's own process when the task finishes, and stores
the result for the UI. The link is built from the operator instance that ran (it knows the
workflow it submitted or reattached to); it never looks up an XCom that may not exist, so a task
that created no workflow, or a connection without ``ui_url``, logs no error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

#: XCom key holding the workflow's Argo UI URL (pushed as soon as the workflow exists, with ``ui_url``)
XCOM_WORKFLOW_URL = "argo_workflow_url"

#: the ``url_route`` of the task-instance view registered by :mod:`airflow_argo_eci.plugins.argo_view`
TI_VIEW_ROUTE = "argo-workflow"


def airflow_view_url(ti_key: Any) -> str:
    """The Airflow UI's page of the Argo view for this task instance: ``[api] base_url`` plus
    ``/dags/<dag>/runs/<run>/tasks/<task>[/mapped/<i>]/plugin/argo-workflow`` (a root-relative URL
    when ``base_url`` is not set)."""
    from airflow.sdk import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    path = (f"/dags/{quote(str(ti_key.dag_id), safe='')}/runs/{quote(str(ti_key.run_id), safe='')}"
            f"/tasks/{quote(str(ti_key.task_id), safe='')}")
    map_index = getattr(ti_key, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        path += f"/mapped/{map_index}"
    return f"{base}{path}/plugin/{TI_VIEW_ROUTE}"


class ArgoWorkflowLink(BaseOperatorLink):
    """"Argo Workflow": the workflow in the Argo UI (connection extra ``ui_url``), else in the Argo
    view inside the Airflow UI; empty when the task created no workflow.

    A link that cannot be built is an empty string: a broken link never fails a task or the UI."""

    name = "Argo Workflow"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        ref = getattr(operator, "_ref", None)
        if ref is None:
            return ""  # nothing was submitted (failed before submit, or not an operator that submits)
        try:
            url = operator.hook.workflow_url(ref.name, ref.namespace)
        except Exception as exc:  # a link must never break the task or the page
            log.debug("no Argo UI URL for %s: %s", ti_key, exc)
            url = None
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            return url
        return airflow_view_url(ti_key)
