"""Who a pod runs as: its ``securityContext`` and ``hostNetwork``, validated as the kubelet does.

Kept apart from :mod:`.sandbox` (which applies it) so the rules read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: the pod's uid/gid when its securityContext names none (an unprivileged user, as most images')
DEFAULT_POD_UID = 1000
DEFAULT_POD_GID = 1000
#: the largest uid/gid Kubernetes accepts in a securityContext
MAX_ID = 2**31 - 1


class SandboxError(ValueError):
    """A pod's paths cannot be laid out (bad path in the spec) or the sandbox is unavailable."""


@dataclass(frozen=True)
class PodSecurity:
    """Who the pod runs as inside its user namespace, and whether it shares the host's network."""

    uid: int = DEFAULT_POD_UID
    gid: int = DEFAULT_POD_GID
    host_network: bool = False
    #: the runtime put the pod into a network namespace of its own making (:mod:`.podnetwork`)
    shared_network: bool = False


def _context_id(context: dict[str, Any], key: str, where: str) -> int | None:
    value = context.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise SandboxError(f"{where}.{key} must be an integer between 0 and {MAX_ID}, inclusive, got {value!r}")
    return value


def pod_security(pod_context: object, container_context: object, host_network: object) -> PodSecurity:
    """The :class:`PodSecurity` of a pod from its ``spec.securityContext`` (workflow, template or
    podSpecPatch), the main container's ``securityContext`` (wins field by field, as on Kubernetes)
    and ``spec.hostNetwork``. ``runAsUser`` defaults to :data:`DEFAULT_POD_UID`; ``runAsGroup`` to
    :data:`DEFAULT_POD_GID` when neither names a uid, else to 0 (the group a container gets when
    its image does not know the uid). ``runAsNonRoot: true`` with uid 0 is refused, as the kubelet
    does; ``privileged`` and ``capabilities.add`` are refused: pods never get capabilities here."""
    merged: dict[str, Any] = {}
    for context, where in ((pod_context, "spec.securityContext"),
                           (container_context, "container.securityContext")):
        if context is None:
            continue
        if not isinstance(context, dict):
            raise SandboxError(f"{where} must be an object, got {type(context).__name__}")
        for key in ("runAsUser", "runAsGroup"):
            if _context_id(context, key, where) is not None:
                merged[key] = context[key]
        if context.get("runAsNonRoot") is not None:
            if not isinstance(context["runAsNonRoot"], bool):
                raise SandboxError(f"{where}.runAsNonRoot must be a boolean, got {context['runAsNonRoot']!r}")
            merged["runAsNonRoot"] = context["runAsNonRoot"]
        if context.get("privileged"):
            raise SandboxError(f"{where}.privileged: the local cluster never runs privileged pods (they "
                               "get no capabilities at all); remove it")
        added = (context.get("capabilities") or {}).get("add") if isinstance(context.get("capabilities"), dict) \
            else None
        if added:
            raise SandboxError(f"{where}.capabilities.add: the local cluster grants no capabilities "
                               f"(asked for {added!r}); remove it")
    if host_network is not None and not isinstance(host_network, bool):
        raise SandboxError(f"spec.hostNetwork must be a boolean, got {host_network!r}")
    uid = merged.get("runAsUser", DEFAULT_POD_UID)
    gid = merged.get("runAsGroup", DEFAULT_POD_GID if "runAsUser" not in merged else 0)
    if uid == 0 and merged.get("runAsNonRoot"):
        raise SandboxError('container has runAsNonRoot and image will run as root (container: "main"); '
                           "set securityContext.runAsUser to a non-zero uid or drop runAsNonRoot")
    return PodSecurity(uid, gid, bool(host_network))
