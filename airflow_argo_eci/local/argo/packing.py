"""Keeping the controller's workflow writes under the size the API accepts, as Argo's status packer
(``workflow/packer``) does: a workflow over :data:`~airflow_argo_eci.local.argo.budget.MAX_WORKFLOW_SIZE`
has its ``status.nodes`` replaced by ``status.compressedNodes`` (base64 of gzipped JSON); one still
too large fails with Argo's ``workflow is longer than maximum allowed size.`` message, unless node
status offloading is on (Argo's hydrator ``Dehydrate``): then its nodes are saved by ``offload`` and
the status keeps only ``offloadNodeStatusVersion``; with ``always`` (``ALWAYS_OFFLOAD_NODE_STATUS``)
every status is offloaded, small or not.

Reading goes through :func:`airflow_argo_eci.workflows.workflow_nodes`, shared with the provider.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from typing import Any

from airflow_argo_eci.local.argo.budget import MAX_WORKFLOW_SIZE, TOO_LARGE_MESSAGE

#: saves a status's nodes to the offload repository and returns their version (raises on failure)
Offloader = Callable[[dict[str, Any]], str]


def encode_nodes(nodes: dict[str, Any]) -> str:
    """``status.compressedNodes`` for ``nodes``: base64 of the gzipped compact JSON."""
    raw = json.dumps(nodes, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def workflow_size(wf: dict[str, Any], status: dict[str, Any]) -> int:
    """Bytes of ``wf`` serialized (compact JSON) with ``status`` as its status."""
    body = {k: v for k, v in wf.items() if k != "status"}
    body["status"] = status
    return len(json.dumps(body, separators=(",", ":")).encode())


def pack_status(wf: dict[str, Any], status: dict[str, Any], limit: int = MAX_WORKFLOW_SIZE, *,
                offload: Offloader | None = None, always: bool = False) -> tuple[dict[str, Any], str]:
    """``(status to write, "")`` where the status fits into ``limit`` (nodes compressed if they had
    to be, or offloaded by ``offload`` when even compressed they do not fit, or always with
    ``always``), or ``(status, message)`` with Argo's too-large message when it does not fit and
    cannot be offloaded (``offload`` None, or failing: its error is added to the message)."""
    message = ""
    if not always:
        if workflow_size(wf, status) <= limit:
            return status, ""
        packed = {k: v for k, v in status.items() if k not in ("nodes", "offloadNodeStatusVersion")}
        packed["compressedNodes"] = encode_nodes(status.get("nodes") or {})
        size = workflow_size(wf, packed)
        if size <= limit:
            return packed, ""
        message = f"{TOO_LARGE_MESSAGE} compressed size {size} > maxSize {limit}"
        if offload is None:
            return status, message
    try:
        if offload is None:
            raise RuntimeError("offload node status is not supported")
        version = offload(status.get("nodes") or {})
    except Exception as exc:  # as Argo's Dehydrate: the workflow errs with both reasons
        return status, f"{message}Tried to offload but encountered error: {exc}"
    offloaded = {k: v for k, v in status.items() if k not in ("nodes", "compressedNodes")}
    offloaded["offloadNodeStatusVersion"] = version
    return offloaded, ""
