"""Operator extra link to the workflow in the Argo UI."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

#: XCom key holding the workflow's UI URL (pushed as soon as the workflow exists)
XCOM_WORKFLOW_URL = "argo_workflow_url"


class ArgoWorkflowLink(BaseOperatorLink):
    """"Argo Workflow": the workflow's page in the Argo UI, read from XCom.

    A link that cannot be built (no UI URL configured, no XCom yet, any error) is an empty
    string: a broken link never fails a task or the UI."""

    name = "Argo Workflow"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        try:
            from airflow.sdk.execution_time.xcom import XCom

            url = XCom.get_value(ti_key=ti_key, key=XCOM_WORKFLOW_URL)
        except Exception as exc:  # a link must never break the page
            log.debug("no Argo workflow link for %s: %s", ti_key, exc)
            return ""
        return url if isinstance(url, str) and url.startswith(("http://", "https://")) else ""
