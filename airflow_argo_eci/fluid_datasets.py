"""A Fluid Dataset and its runtime from Airflow: the request (checked before anything is created),
its OSS credentials Secret, create-or-adopt, and the wait until ``Bound``."""

from __future__ import annotations

import base64
import copy
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.errors import NotFoundError, WorkflowSpecError
from airflow_argo_eci.fluid_conventions import API_VERSION, DATASET_KIND, OSS_SCHEME, RUNTIME_PLURALS
from airflow_argo_eci.fluid_lifecycle import dataset_readiness, progress_line

if TYPE_CHECKING:
    from airflow_argo_eci.hooks.fluid import FluidHook

log = logging.getLogger(__name__)

#: the option names of the OSS keys (Fluid's OSS runtimes read them from ``encryptOptions``)
KEY_ID_OPTION = "fs.oss.accessKeyId"
KEY_SECRET_OPTION = "fs.oss.accessKeySecret"  # noqa: S105 - an option name
ENDPOINT_OPTION = "fs.oss.endpoint"
#: the bucket naming rule of OSS: 3-63 of [a-z0-9-], starting and ending with a letter or digit
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
PLACEMENTS = ("Exclusive", "Shared")


def check_mount_point(value: Any, where: str = "mount_point") -> str:
    """``oss://bucket/prefix/`` with a valid bucket name and no ``.``/``..`` components; else a
    :class:`WorkflowSpecError` naming ``where``."""
    if not isinstance(value, str) or not value.startswith(OSS_SCHEME):
        raise WorkflowSpecError(f"{where}={value!r} is not an OSS mount point: use oss://<bucket>/<prefix>/")
    bucket, _, prefix = value[len(OSS_SCHEME):].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise WorkflowSpecError(f"{where}={value!r}: {bucket!r} is not an OSS bucket name (3-63 characters of "
                                "a-z, 0-9 and '-', starting and ending with a letter or digit)")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise WorkflowSpecError(f"{where}={value!r} must not hold '.' or '..' components")
    return value


@dataclass(frozen=True)
class DatasetRequest:
    """A Dataset over one OSS prefix and its runtime (the operator's rendered arguments)."""

    name: str
    mount_point: str
    runtime_kind: str = "JindoRuntime"
    runtime_spec: Mapping[str, Any] = field(default_factory=dict)
    mount_name: str = "data"
    mount_path: str = "/"
    options: Mapping[str, str] = field(default_factory=dict)
    read_only: bool = True
    access_modes: tuple[str, ...] = ("ReadOnlyMany",)
    placement: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", self.name):
            raise WorkflowSpecError(f"name={self.name!r} is not a valid Dataset name (lower-case DNS label)")
        self.check_static(self.runtime_kind, self.mount_point, self.placement)
        if not isinstance(self.runtime_spec, Mapping):
            raise WorkflowSpecError(f"runtime_spec must be a mapping (the runtime's spec), got {self.runtime_spec!r}")
        if not isinstance(self.mount_path, str) or not self.mount_path.startswith("/"):
            raise WorkflowSpecError(f"mount_path={self.mount_path!r} must be an absolute path ('/' for the root)")
        if ENDPOINT_OPTION in self.options or KEY_ID_OPTION in self.options or KEY_SECRET_OPTION in self.options:
            raise WorkflowSpecError(f"options: {ENDPOINT_OPTION} and the keys come from oss_conn_id / secret_name "
                                    "and endpoint, not from options")

    @staticmethod
    def check_static(runtime_kind: Any, mount_point: Any, placement: Any) -> None:
        """The checks that hold before templates render (templated values are checked at run time)."""
        if runtime_kind not in RUNTIME_PLURALS:
            raise WorkflowSpecError(f"runtime_kind={runtime_kind!r} is not a Fluid runtime: use one of "
                                    f"{', '.join(RUNTIME_PLURALS)}")
        if not (isinstance(mount_point, str) and "{{" in mount_point):
            check_mount_point(mount_point)
        if placement is not None and placement not in PLACEMENTS:
            raise WorkflowSpecError(f"placement={placement!r}: use one of {', '.join(PLACEMENTS)} or None")

    def dataset_body(self, namespace: str, secret: str, endpoint: str) -> dict[str, Any]:
        """The Dataset object: one mount with the endpoint option and the keys from ``secret``."""
        mount: dict[str, Any] = {
            "mountPoint": self.mount_point, "name": self.mount_name, "path": self.mount_path,
            "options": {**dict(self.options), ENDPOINT_OPTION: endpoint}, "readOnly": self.read_only,
            "encryptOptions": [
                {"name": option, "valueFrom": {"secretKeyRef": {"name": secret, "key": option}}}
                for option in (KEY_ID_OPTION, KEY_SECRET_OPTION)],
        }
        spec: dict[str, Any] = {"mounts": [mount], "accessModes": list(self.access_modes)}
        if self.placement:
            spec["placement"] = self.placement
        return {"apiVersion": API_VERSION, "kind": DATASET_KIND,
                "metadata": {"name": self.name, "namespace": namespace, "labels": dict(self.labels)}, "spec": spec}

    def runtime_body(self, namespace: str) -> dict[str, Any]:
        """The runtime object, bearing the Dataset's name (Fluid's rule)."""
        return {"apiVersion": API_VERSION, "kind": self.runtime_kind,
                "metadata": {"name": self.name, "namespace": namespace, "labels": dict(self.labels)},
                "spec": copy.deepcopy(dict(self.runtime_spec))}


def spec_differences(wanted: Mapping[str, Any], current: Mapping[str, Any], where: str) -> list[str]:
    """The fields of ``wanted`` whose value differs in ``current`` (``where.key``), recursively;
    fields only ``current`` has (defaults a controller filled in) are not differences."""
    found: list[str] = []
    for key, value in wanted.items():
        here = f"{where}.{key}"
        other = current.get(key)
        if isinstance(value, Mapping) and isinstance(other, Mapping):
            found += spec_differences(value, other, here)
        elif isinstance(value, list) and isinstance(other, list) and len(value) == len(other):
            for i, (a, b) in enumerate(zip(value, other, strict=True)):
                if isinstance(a, Mapping) and isinstance(b, Mapping):
                    found += spec_differences(a, b, f"{here}[{i}]")
                elif a != b:
                    found.append(f"{here}[{i}]")
        elif value != other:
            found.append(here)
    return found


def _endpoint_host(endpoint: str) -> str:
    """An endpoint as Fluid's ``fs.oss.endpoint`` spells it: without ``https://``."""
    return endpoint[len("https://"):] if endpoint.startswith("https://") else endpoint


class DatasetSetup:
    """Create or adopt one Dataset and its runtime through a :class:`FluidHook`, and wait until Bound."""

    def __init__(self, hook: FluidHook, namespace: str, *, logger: Any = None) -> None:
        self.hook = hook
        self.namespace = namespace
        self.log = logger or log

    def secret_from_connection(self, request: DatasetRequest, oss_conn_id: str) -> tuple[str, str]:
        """A Secret ``<name>-oss`` with the ``oss`` connection's keys (created, or kept when it
        holds the same keys); returns its name and the connection's endpoint."""
        from airflow_argo_eci.hooks.oss import OSSArtifactHook

        settings = OSSArtifactHook(oss_conn_id=oss_conn_id).settings
        name = f"{request.name}-oss"
        wanted = {KEY_ID_OPTION: settings.access_key_id, KEY_SECRET_OPTION: settings.access_key_secret}
        try:
            current = self.hook.get_secret(name, self.namespace)
        except NotFoundError:
            self.hook.create_secret({"metadata": {"name": name, "namespace": self.namespace,
                                                  "labels": dict(request.labels)}, "stringData": wanted},
                                    self.namespace)
            self.log.info("Created Secret %s/%s with the keys of connection %r", self.namespace, name, oss_conn_id)
            return name, _endpoint_host(settings.endpoint)
        if _secret_values(current) != wanted:
            raise WorkflowSpecError(f"Secret {self.namespace}/{name} exists with other keys than connection "
                                    f"{oss_conn_id!r}'s: delete it, or pass secret_name= to use it as it is")
        return name, _endpoint_host(settings.endpoint)

    def existing_secret(self, name: str) -> str:
        """``name`` if the Secret exists and holds both keys; else a :class:`WorkflowSpecError`."""
        try:
            values = _secret_values(self.hook.get_secret(name, self.namespace))
        except NotFoundError as exc:
            raise WorkflowSpecError(f"secret_name={name!r}: there is no Secret {self.namespace}/{name}") from exc
        missing = [key for key in (KEY_ID_OPTION, KEY_SECRET_OPTION) if key not in values]
        if missing:
            raise WorkflowSpecError(f"secret_name={name!r}: Secret {self.namespace}/{name} has no key "
                                    f"{', '.join(missing)}")
        return name

    def create_or_adopt(self, request: DatasetRequest, secret: str, endpoint: str) -> None:
        """Create the Dataset and its runtime, or adopt each that exists with the same spec; an
        existing one with another spec is a :class:`WorkflowSpecError` naming the fields."""
        dataset = request.dataset_body(self.namespace, secret, endpoint)
        runtime = request.runtime_body(self.namespace)
        # check both before creating either, so a conflict creates nothing
        existing = {kind: self._current(kind, request.name) for kind in (DATASET_KIND, request.runtime_kind)}
        for kind, body in ((DATASET_KIND, dataset), (request.runtime_kind, runtime)):
            current = existing[kind]
            if current is not None:
                differences = spec_differences(body["spec"], current.get("spec") or {}, "spec")
                if differences:
                    raise WorkflowSpecError(f"{kind} {self.namespace}/{request.name} exists with another spec "
                                            f"({', '.join(differences)}): delete it or give the same settings")
        other = self.hook.find_runtime(request.name, self.namespace)
        if other is not None and other[0] != request.runtime_kind:
            raise WorkflowSpecError(f"runtime_kind={request.runtime_kind!r}: Dataset {self.namespace}/{request.name} "
                                    f"already has a {other[0]}")
        for kind, body in ((DATASET_KIND, dataset), (request.runtime_kind, runtime)):
            if existing[kind] is None:
                self.hook.create_object(kind, body, self.namespace)
                self.log.info("Created %s %s/%s", kind, self.namespace, request.name)
            else:
                self.log.info("Adopted %s %s/%s (same spec)", kind, self.namespace, request.name)

    def _current(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.get_object(kind, name, self.namespace)
        except NotFoundError:
            return None

    def is_bound(self, name: str) -> bool:
        """Whether the Dataset is ``Bound`` now."""
        return dataset_readiness(self.hook.get_object(DATASET_KIND, name, self.namespace), None) == "success"

    def wait_bound(self, name: str, *, poll_interval: float, deadline: float | None) -> dict[str, Any]:
        """Poll until the Dataset is ``Bound``; its ``ufsTotal``, ``fileNum`` and PVC name.
        ``Failed`` raises :class:`WorkflowSpecError` with its conditions; past ``deadline``
        :class:`TimeoutError`."""
        while True:
            dataset = self.hook.get_object(DATASET_KIND, name, self.namespace)
            decision = dataset_readiness(dataset, None)
            if decision == "failure":
                conditions = (dataset.get("status") or {}).get("conditions") or []
                detail = "; ".join(f"{c.get('reason', '')}: {c.get('message', '')}" for c in conditions
                                   if isinstance(c, Mapping))
                raise WorkflowSpecError(f"Dataset {self.namespace}/{name} Failed: {detail or 'no conditions'}")
            if decision == "success":
                break
            if deadline is not None and time.time() >= deadline:
                raise TimeoutError(f"Dataset {self.namespace}/{name} was not Bound before the timeout")
            time.sleep(poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.time())))
        self.log.info("%s", progress_line(dataset))
        claim = self.hook.get_claim(name, self.namespace)
        status = dataset.get("status") or {}
        return {"name": name, "namespace": self.namespace, "phase": status.get("phase"),
                "ufsTotal": status.get("ufsTotal", ""), "fileNum": status.get("fileNum", ""),
                "pvc": (claim.get("metadata") or {}).get("name", name)}


def _secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    values = {str(k): str(v) for k, v in (secret.get("stringData") or {}).items()}
    for key, raw in (secret.get("data") or {}).items():
        try:
            values.setdefault(str(key), base64.b64decode(str(raw)).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
    return values
