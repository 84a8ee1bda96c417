"""Keeping the controller's workflow writes under the size the API accepts, as Argo's status packer
(``workflow/packer``) does: a workflow over :data:`~airflow_argo_eci.local.argo.budget.MAX_WORKFLOW_SIZE`
has its ``status.nodes`` replaced by ``status.compressedNodes`` (base64 of gzipped JSON); one still
too large fails with Argo's ``workflow is longer than maximum allowed size.`` message.

Reading goes through :func:`airflow_argo_eci.workflows.workflow_nodes`, shared with the provider.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from airflow_argo_eci.local.argo.budget import MAX_WORKFLOW_SIZE, TOO_LARGE_MESSAGE


def encode_nodes(nodes: dict[str, Any]) -> str:
    """``status.compressedNodes`` for ``nodes``: base64 of the gzipped compact JSON."""
    raw = json.dumps(nodes, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def workflow_size(wf: dict[str, Any], status: dict[str, Any]) -> int:
    """Bytes of ``wf`` serialized (compact JSON) with ``status`` as its status."""
    body = {k: v for k, v in wf.items() if k != "status"}
    body["status"] = status
    return len(json.dumps(body, separators=(",", ":")).encode())


def pack_status(wf: dict[str, Any], status: dict[str, Any], limit: int = MAX_WORKFLOW_SIZE
                ) -> tuple[dict[str, Any], str]:
    """``(status to write, "")`` where the status fits into ``limit`` (nodes compressed if they had
    to be), or ``(status, message)`` with Argo's too-large message when even compressed it does not."""
    if workflow_size(wf, status) <= limit:
        return status, ""
    packed = {k: v for k, v in status.items() if k != "nodes"}
    packed["compressedNodes"] = encode_nodes(status.get("nodes") or {})
    size = workflow_size(wf, packed)
    if size <= limit:
        return packed, ""
    return status, f"{TOO_LARGE_MESSAGE} compressed size {size} > maxSize {limit}"
