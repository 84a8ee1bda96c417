"""The status of a running Pod as the kubelet reports it: its IP, each container's status and the
pod's conditions, and the change when its readiness probe passes."""

from __future__ import annotations

from typing import Any

from airflow_argo_eci.local.runtime import PodResult

#: the address of the (only) node, as ``status.hostIP``
HOST_IP = "127.0.0.1"


def _condition(kind: str, ready: bool, now: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ready else "False", "lastProbeTime": None,
            "lastTransitionTime": now}


def running_status(spec: dict[str, Any], address: str, now: str) -> dict[str, Any]:
    """The ``status`` fields of a pod whose containers just started: ``Running``, ``podIP`` (and
    ``podIPs``), one running ``containerStatuses`` entry per container (main, a container set's and
    sidecars), each ready except a ``main`` container with a ``readinessProbe`` (the runtime probes
    main's only; sidecars count as ready when started), and the pod's conditions."""
    statuses = []
    for container in spec.get("containers") or []:
        image = str(container.get("image", ""))
        probed = container.get("name") == "main" and container.get("readinessProbe") is not None
        statuses.append({
            "name": container.get("name", "main"), "ready": not probed, "started": True, "restartCount": 0,
            "image": image, "imageID": "local://" + image,
            "state": {"running": {"startedAt": now}},
        })
    ready = all(s["ready"] for s in statuses)
    return {
        "phase": "Running", "startTime": now, "podIP": address, "podIPs": [{"ip": address}], "hostIP": HOST_IP,
        "containerStatuses": statuses,
        "conditions": [_condition("Initialized", True, now), _condition("Ready", ready, now),
                       _condition("ContainersReady", ready, now), _condition("PodScheduled", True, now)],
    }


def mark_ready(status: dict[str, Any], now: str) -> None:
    """The readiness probe passed: every container and the pod's Ready conditions become true."""
    for entry in status.get("containerStatuses") or []:
        entry["ready"] = True
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Ready", "ContainersReady") and condition.get("status") != "True":
            condition["status"] = "True"
            condition["lastTransitionTime"] = now


def is_ready(status: dict[str, Any]) -> bool:
    """Whether a Running pod's containers are all ready (Argo's test before a daemon counts as up)."""
    statuses = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(statuses) and all(s.get("ready") for s in statuses)


def finished_containers(spec: dict[str, Any], result: PodResult) -> dict[str, Any]:
    """``containerStatuses`` (and ``initContainerStatuses``) of a pod that ended: the main
    container's from ``result``, every other one's from the exit code the pod's supervisor recorded
    (``result.extra["containers"]``); a container with no recorded code never ran (``waiting``)."""
    codes = result.extra.get("containers") or {}
    main_name = next((str(c.get("name")) for c in spec.get("containers") or [] if c.get("name") == "main"),
                     str(((spec.get("containers") or [{}])[0]).get("name", "main")))

    def entry(container: dict[str, Any], main: bool) -> dict[str, Any]:
        image = str(container.get("image", ""))
        out: dict[str, Any] = {"name": container.get("name", "main"), "ready": False, "started": False,
                               "restartCount": 0, "image": image, "imageID": "local://" + image}
        if main:
            terminated: dict[str, Any] = {
                "exitCode": result.exit_code if result.exit_code >= 0 else 137,
                "reason": "Completed" if result.phase == "Succeeded" else (
                    result.reason if result.reason == "OOMKilled" else "Error"),
                "startedAt": result.started_at, "finishedAt": result.finished_at,
            }
            if result.message:
                terminated["message"] = result.message
            out["state"] = {"terminated": terminated}
        elif isinstance(codes.get(out["name"]), int):
            code = codes[out["name"]]
            out["state"] = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                           "startedAt": result.started_at, "finishedAt": result.finished_at}}
        else:
            out["state"] = {"waiting": {"reason": "PodInitializing" if result.phase != "Succeeded" else "Completed"}}
        return out

    status: dict[str, Any] = {"containerStatuses": [entry(c, c.get("name") == main_name)
                                                    for c in spec.get("containers") or []]}
    if spec.get("initContainers"):
        status["initContainerStatuses"] = [entry(c, False) for c in spec["initContainers"]]
    return status
