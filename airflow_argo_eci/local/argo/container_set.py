"""Argo's ``containerSet`` templates: checking a set and turning its containers into pod containers.

A container set runs several containers in one pod: each starts once the containers named in its
``dependencies`` succeeded, all share the set's ``volumeMounts`` (a workspace volume), and the
container named ``main`` gives the template's outputs (``outputs.result`` is its stdout). The
controller shows one ``Container`` node per container, a child of the pod's node, named
``<pod node>.<container>``.
"""

from __future__ import annotations

import copy
from typing import Any

#: Argo's own container names, which no container of a set may take
RESERVED_NAMES = ("wait", "init")


def container_set_problem(where: str, cset: Any, has_outputs: bool = False) -> str | None:
    """What is wrong with the ``containerSet`` of the template at ``where`` (None when nothing):
    containers missing or unnamed, a duplicate or reserved name, a dependency on a container the
    set does not hold, a dependency cycle, outputs without a ``main`` container, bad retries."""
    if not isinstance(cset, dict):
        return f"{where}.containerSet must be an object"
    containers = cset.get("containers")
    if not isinstance(containers, list) or not containers:
        return f"{where}.containerSet.containers must hold at least one container"
    names: list[str] = []
    for index, container in enumerate(containers):
        name = container.get("name") if isinstance(container, dict) else None
        if not isinstance(name, str) or not name:
            return f"{where}.containerSet.containers[{index}].name is required"
        if name in names:
            return f'{where}.containerSet.containers[{index}].name: Duplicate value: "{name}"'
        if name in RESERVED_NAMES:
            return (f'{where}.containerSet.containers[{index}].name: "{name}" is reserved for Argo\'s own '
                    "container; choose another name")
        names.append(name)
    graph: dict[str, list[str]] = {}
    for container in containers:
        deps = container.get("dependencies") or []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            return f"{where}.containerSet.containers.{container['name']}.dependencies must be a list of names"
        for dep in deps:
            if dep not in names:
                return (f'{where}.containerSet.containers.{container["name"]}.dependencies: container "{dep}" '
                        f"not found (the set holds: {', '.join(names)})")
        graph[container["name"]] = list(deps)
    cycle = _cycle(graph)
    if cycle:
        return (f"{where}.containerSet.containers: dependency cycle {' -> '.join(cycle)}; "
                "remove one of these dependencies")
    if has_outputs and "main" not in names:
        return (f'{where}.containerSet: a container named "main" is required when the template has '
                "outputs (its outputs are taken from main)")
    retries = (cset.get("retryStrategy") or {}).get("retries", 0)
    try:
        if int(str(retries)) < 0:
            raise ValueError(retries)
    except ValueError:
        return f"{where}.containerSet.retryStrategy.retries: invalid value {retries!r} (a whole number >= 0)"
    return None


def _cycle(graph: dict[str, list[str]]) -> list[str]:
    state: dict[str, int] = {}
    for start in graph:
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            name, index = stack.pop()
            if index == 0:
                if state.get(name) == 2:
                    continue
                if state.get(name) == 1:
                    return [*path[path.index(name):], name]
                state[name] = 1
                path.append(name)
            deps = graph[name]
            if index < len(deps):
                stack.append((name, index + 1))
                stack.append((deps[index], 0))
            else:
                state[name] = 2
                path.pop()
    return []


def set_containers(tmpl: dict[str, Any]) -> list[dict[str, Any]]:
    """The set's containers as pod containers (copies): the set's ``volumeMounts`` added to each
    (before the container's own)."""
    cset = tmpl["containerSet"]
    shared = cset.get("volumeMounts") or []
    out = []
    for raw in cset["containers"]:
        container = copy.deepcopy(raw)
        if shared:
            container["volumeMounts"] = [*copy.deepcopy(shared), *(container.get("volumeMounts") or [])]
        out.append(container)
    return out


def set_retries(tmpl: dict[str, Any]) -> int:
    """``containerSet.retryStrategy.retries`` (0 when not given)."""
    cset = tmpl.get("containerSet") or {}
    return int(str((cset.get("retryStrategy") or {}).get("retries", 0)))


def container_phase(code: int | None, pod_phase: str) -> tuple[str, str]:
    """The phase and message of a container's node from its exit code (None: it never ran, e.g.
    a dependency failed; it takes the pod's phase then)."""
    if code is None:
        if pod_phase == "Succeeded":
            return "Succeeded", ""
        return "Failed", "not started: it depends on failed containers"
    if code == 0:
        return "Succeeded", ""
    return "Failed", f"Error (exit code {code})"
