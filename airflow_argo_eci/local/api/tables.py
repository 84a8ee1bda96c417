"""Server-side printing: ``meta.k8s.io/v1`` ``Table`` responses with each kind's printer columns.

``kubectl get`` asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
table the server answers. Workflows get Argo's CRD ``additionalPrinterColumns`` (Status, Age from
``.status.startedAt``, Message); pods the columns the Kubernetes API server prints (Ready, Status,
Restarts, Age, and with ``-o wide`` IP and Node); the other built-in kinds their usual columns;
everything else Name and Age, like a CRD without printer columns. ``kubectl get -A`` adds the
NAMESPACE column itself, from each row's object metadata.
"""

from __future__ import annotations

import time
from calendar import timegm
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_argo_eci import eci_conventions as eci
from airflow_argo_eci import fluid_conventions as fluid
from airflow_argo_eci.conventions import GROUP
from airflow_argo_eci.local.api.errors import bad_request

#: the media type parameters that select a Table response
TABLE_GROUP = "meta.k8s.io"
TABLE_VERSION = "v1"

Cell = str | int | None


@dataclass(frozen=True)
class Column:
    """One printer column: header, type (``string``/``integer``/``date``), priority (1 = wide only)
    and how to compute its cell from an object."""

    name: str
    type: str
    description: str
    cell: Callable[[dict[str, Any], float], Cell]
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        """The ``columnDefinitions`` entry."""
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


def wants_table(accept: str) -> bool:
    """Whether an ``Accept`` header asks for a ``meta.k8s.io/v1`` Table (anywhere in its list)."""
    for media in accept.split(","):
        parts = [p.strip() for p in media.split(";")]
        if parts[0] not in ("application/json", "*/*", "application/*"):
            continue
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if (params.get("as") == "Table" and params.get("g") == TABLE_GROUP
                and params.get("v", TABLE_VERSION) == TABLE_VERSION):
            return True
    return False


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (``2024-01-01T00:00:00Z``), None if unset
    or unreadable."""
    if not isinstance(value, str) or len(value) < 19:
        return None
    try:
        parsed = time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return float(timegm(parsed))


def human_duration(seconds: float) -> str:
    """An age the way kubectl prints it: ``45s``, ``3m20s``, ``15m``, ``5h10m``, ``3d4h``, ``2y``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _age_of(value: Any, now: float) -> str | None:
    at = parse_time(value)
    return None if at is None else human_duration(now - at)


def _path(obj: dict[str, Any], *keys: str) -> Any:
    cur: Any = obj
    for key in keys:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ------------------------------------------------------------------ cells


def _name(obj: dict[str, Any], now: float) -> Cell:
    return _text(_path(obj, "metadata", "name"))


def _created_age(obj: dict[str, Any], now: float) -> Cell:
    return _age_of(_path(obj, "metadata", "creationTimestamp"), now)


def _workflow_status(obj: dict[str, Any], now: float) -> Cell:
    return _text(_path(obj, "status", "phase"))


def _workflow_age(obj: dict[str, Any], now: float) -> Cell:
    return _age_of(_path(obj, "status", "startedAt"), now)


def _workflow_message(obj: dict[str, Any], now: float) -> Cell:
    return _text(_path(obj, "status", "message"))


def _pod_ready(obj: dict[str, Any], now: float) -> Cell:
    total = len(_list(_path(obj, "spec", "containers")))
    ready = sum(1 for cs in _list(_path(obj, "status", "containerStatuses")) if _dict(cs).get("ready"))
    return f"{ready}/{total}"


def _pod_restarts(obj: dict[str, Any], now: float) -> Cell:
    return sum(int(_dict(cs).get("restartCount") or 0)
               for cs in _list(_path(obj, "status", "containerStatuses")))


def _container_reason(statuses: list[Any], init: bool) -> str | None:
    """The reason a pod's containers give for its STATUS column, like the API server's printer."""
    for index, raw in enumerate(statuses):
        state = _dict(_dict(raw).get("state"))
        terminated, waiting = _dict(state.get("terminated")), _dict(state.get("waiting"))
        if init:
            if terminated and terminated.get("exitCode") == 0:
                continue
            if terminated:
                reason = terminated.get("reason") or (
                    f"Signal:{terminated['signal']}" if terminated.get("signal")
                    else f"ExitCode:{terminated.get('exitCode')}")
                return f"Init:{reason}"
            if waiting.get("reason") and waiting.get("reason") != "PodInitializing":
                return f"Init:{waiting['reason']}"
            return f"Init:{index}/{len(statuses)}"
        if waiting.get("reason"):
            return str(waiting["reason"])
        if terminated.get("reason"):
            return str(terminated["reason"])
        if terminated:
            return (f"Signal:{terminated['signal']}" if terminated.get("signal")
                    else f"ExitCode:{terminated.get('exitCode')}")
    return None


def _pod_status(obj: dict[str, Any], now: float) -> Cell:
    status = _dict(obj.get("status"))
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    init = _container_reason(_list(status.get("initContainerStatuses")), True)
    if init is not None:
        reason = init
    else:
        main = _container_reason(list(reversed(_list(status.get("containerStatuses")))), False)
        if main is not None:
            reason = main
    if _path(obj, "metadata", "deletionTimestamp") and status.get("reason") != "NodeLost":
        reason = "Terminating"
    return reason


def _pod_ip(obj: dict[str, Any], now: float) -> Cell:
    return _text(_path(obj, "status", "podIP")) or "<none>"


def _pod_node(obj: dict[str, Any], now: float) -> Cell:
    return _text(_path(obj, "spec", "nodeName")) or "<none>"


def _pod_nominated(obj: dict[str, Any], now: float) -> Cell:
    return _text(_path(obj, "status", "nominatedNodeName")) or "<none>"


def _pod_gates(obj: dict[str, Any], now: float) -> Cell:
    gates = _list(_path(obj, "spec", "readinessGates"))
    if not gates:
        return "<none>"
    conditions = {_dict(c).get("type"): _dict(c).get("status")
                  for c in _list(_path(obj, "status", "conditions"))}
    ready = sum(1 for g in gates if conditions.get(_dict(g).get("conditionType")) == "True")
    return f"{ready}/{len(gates)}"


def _data_count(obj: dict[str, Any], now: float) -> Cell:
    return len(_dict(obj.get("data"))) + len(_dict(obj.get("binaryData")))


def _secret_type(obj: dict[str, Any], now: float) -> Cell:
    return _text(obj.get("type")) or "Opaque"


def _phase(obj: dict[str, Any], now: float) -> Cell:
    return _text(_path(obj, "status", "phase"))


def _event_last_seen(obj: dict[str, Any], now: float) -> Cell:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        age = _age_of(obj.get(key), now)
        if age is not None:
            return age
    return _created_age(obj, now)


def _event_object(obj: dict[str, Any], now: float) -> Cell:
    ref = _dict(obj.get("involvedObject"))
    return f"{str(ref.get('kind') or '').lower()}/{ref.get('name') or ''}"


def _field(*keys: str) -> Callable[[dict[str, Any], float], Cell]:
    def cell(obj: dict[str, Any], now: float) -> Cell:
        return _text(_path(obj, *keys))
    return cell


def _joined(*keys: str) -> Callable[[dict[str, Any], float], Cell]:
    def cell(obj: dict[str, Any], now: float) -> Cell:
        values = _list(_path(obj, *keys))
        return ",".join(_short_mode(str(v)) for v in values) if values else None
    return cell


def _short_mode(mode: str) -> str:
    return {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
            "ReadWriteOncePod": "RWOP"}.get(mode, mode)


_NAME = Column("Name", "string", "Name must be unique within a namespace.", _name, format="name")
_AGE = Column("Age", "string", "CreationTimestamp is a timestamp of when this object was created.",
              _created_age)

#: the printer columns of each served kind, by (group, plural); other kinds get Name and Age
COLUMNS: dict[tuple[str, str], tuple[Column, ...]] = {
    (GROUP, "workflows"): (
        _NAME,
        Column("Status", "string", "Status of the workflow", _workflow_status),
        Column("Age", "date", "When the workflow was started", _workflow_age, format="date-time"),
        Column("Message", "string", "Human readable message indicating details about why the workflow is in "
               "this condition.", _workflow_message),
    ),
    ("", "pods"): (
        _NAME,
        Column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", _pod_ready),
        Column("Status", "string", "The aggregate status of the containers in this pod.", _pod_status),
        Column("Restarts", "string", "The number of times the containers in this pod have been restarted.",
               _pod_restarts),
        _AGE,
        Column("IP", "string", "IP address allocated to the pod.", _pod_ip, priority=1),
        Column("Node", "string", "Name of the node where the pod is scheduled.", _pod_node, priority=1),
        Column("Nominated Node", "string", "Name of the node where the pod is nominated to run.", _pod_nominated,
               priority=1),
        Column("Readiness Gates", "string", "The readiness gates of the pod that are met.", _pod_gates,
               priority=1),
    ),
    ("", "configmaps"): (_NAME, Column("Data", "integer", "Number of keys in the ConfigMap.", _data_count), _AGE),
    ("", "secrets"): (
        _NAME,
        Column("Type", "string", "The type of the secret.", _secret_type),
        Column("Data", "integer", "Number of keys in the Secret.", _data_count),
        _AGE,
    ),
    ("", "namespaces"): (_NAME, Column("Status", "string", "The status of the namespace.", _phase), _AGE),
    ("", "events"): (
        Column("Last Seen", "string", "Time since the event was last seen.", _event_last_seen),
        Column("Type", "string", "Type of this event.", _field("type")),
        Column("Reason", "string", "Why the event was generated.", _field("reason")),
        Column("Object", "string", "The object this event is about.", _event_object),
        Column("Message", "string", "A human-readable description of the event.", _field("message")),
    ),
    ("", "persistentvolumeclaims"): (
        _NAME,
        Column("Status", "string", "The phase of the claim.", _phase),
        Column("Volume", "string", "The volume bound to the claim.", _field("spec", "volumeName")),
        Column("Capacity", "string", "The capacity of the bound volume.", _field("status", "capacity", "storage")),
        Column("Access Modes", "string", "The access modes of the bound volume.", _joined("status", "accessModes")),
        Column("StorageClass", "string", "The storage class of the claim.", _field("spec", "storageClassName")),
        _AGE,
    ),
    ("", "persistentvolumes"): (
        _NAME,
        Column("Capacity", "string", "The capacity of the volume.", _field("spec", "capacity", "storage")),
        Column("Access Modes", "string", "The access modes of the volume.", _joined("spec", "accessModes")),
        Column("Reclaim Policy", "string", "What happens to the volume when its claim is released.",
               _field("spec", "persistentVolumeReclaimPolicy")),
        Column("Status", "string", "The phase of the volume.", _phase),
        Column("Claim", "string", "The claim bound to the volume.", _field("spec", "claimRef", "name")),
        _AGE,
    ),
    # Fluid's kinds: their CRDs' additionalPrinterColumns
    (fluid.GROUP, fluid.DATASETS): (
        _NAME,
        Column("Ufs Total Size", "string", "Total size of the dataset in the under file system.",
               _field("status", "ufsTotal")),
        Column("Cached", "string", "Size of the cached data.", _field("status", "cacheStates", "cached")),
        Column("Cache Capacity", "string", "Capacity of the cache.", _field("status", "cacheStates", "cacheCapacity")),
        Column("Cached Percentage", "string", "Cached part of the dataset.",
               _field("status", "cacheStates", "cachedPercentage")),
        Column("Phase", "string", "The phase of the dataset.", _phase),
        Column("Total Files", "string", "Files in the dataset.", _field("status", "fileNum"), priority=11),
        _AGE,
    ),
    (fluid.GROUP, fluid.DATALOADS): (
        _NAME,
        Column("Dataset", "string", "The dataset loaded.", _field("spec", "dataset", "name")),
        Column("Phase", "string", "The phase of the load.", _phase),
        _AGE,
        Column("Duration", "string", "How long the load took.", _field("status", "duration")),
    ),
    **{(fluid.GROUP, plural): (
        _NAME,
        Column("Master Phase", "string", "The phase of the master.", _field("status", "masterPhase")),
        Column("Worker Phase", "string", "The phase of the cache workers.", _field("status", "workerPhase")),
        Column("Fuse Phase", "string", "The phase of the FUSE clients.", _field("status", "fusePhase")),
        _AGE,
    ) for plural in fluid.RUNTIME_PLURALS.values()},
    # ECI's ImageCache: its CRD's additionalPrinterColumns
    (eci.GROUP, eci.IMAGE_CACHES): (
        _NAME,
        _AGE,
        Column("CacheID", "string", "The id of the image cache.", _field("status", "imageCacheId")),
        Column("Phase", "string", "The phase of the image cache.", _phase),
        Column("Progress", "string", "How far the image cache's creation is.", _field("status", "progress")),
    ),
}


def columns_for(group: str, plural: str) -> tuple[Column, ...]:
    """The printer columns of a kind."""
    return COLUMNS.get((group, plural), (_NAME, _AGE))


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    meta = {k: v for k, v in _dict(obj.get("metadata")).items() if k != "managedFields"}
    return {"kind": "PartialObjectMetadata", "apiVersion": f"{TABLE_GROUP}/{TABLE_VERSION}", "metadata": meta}


def table_row(columns: Sequence[Column], obj: dict[str, Any], include: str, now: float) -> dict[str, Any]:
    """One ``rows`` entry: the cells, and the object as ``includeObject`` asks (default: its metadata)."""
    row: dict[str, Any] = {"cells": [column.cell(obj, now) for column in columns]}
    embedded = _row_object(obj, include)
    if embedded is not None:
        row["object"] = embedded
    return row


def check_include_object(value: str | None) -> str:
    """The ``includeObject`` query parameter (``None``, ``Metadata`` (default), ``Object``)."""
    if value in (None, ""):
        return "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise bad_request(f'includeObject must be one of None, Metadata, Object, got "{value}"')
    return value


def build_table(
    group: str, plural: str, objects: Sequence[dict[str, Any]], *, list_meta: dict[str, Any] | None = None,
    include: str = "Metadata", with_definitions: bool = True, now: float | None = None,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` ``Table`` of ``objects`` (of kind ``group``/``plural``).

    ``list_meta`` becomes the table's ``metadata`` (resourceVersion, continue); watch events after
    the first leave out the column definitions (``with_definitions=False``), as the API server does.
    """
    columns = columns_for(group, plural)
    at = time.time() if now is None else now
    return {
        "kind": "Table",
        "apiVersion": f"{TABLE_GROUP}/{TABLE_VERSION}",
        "metadata": dict(list_meta or {}),
        "columnDefinitions": [c.definition() for c in columns] if with_definitions else None,
        "rows": [table_row(columns, obj, include, at) for obj in objects],
    }
