"""Mounting a Fluid Dataset in a workflow: :class:`DatasetMount` (the Dataset's PVC as a volume,
mounted at a path in the templates that ask for it) and :func:`mount_datasets`, which
:class:`~airflow_argo_eci.eci.EciProfile` applies (with the pod label
``alibabacloud.com/fluid-sidecar-target: eci`` Fluid needs on ECI). Pure: no Airflow, no HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from airflow_argo_eci.errors import WorkflowSpecError

_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_FIELDS = ("dataset", "mount_path", "templates", "volume_name", "read_only")
#: template kinds whose pod has one main container to mount into
_CONTAINER_KINDS = ("container", "script")


def _fail(message: str) -> NoReturn:
    raise WorkflowSpecError(message)


@dataclass(frozen=True)
class DatasetMount:
    """A Fluid Dataset's PVC (the Dataset's name) mounted at ``mount_path`` in ``templates``.

    :param dataset: the Dataset's name, which is its PVC's name once it is Bound.
    :param mount_path: where the dataset's files appear in the container (absolute).
    :param templates: the names of the (container or script) templates that mount it.
    :param volume_name: the pod volume's name (default: the Dataset's name).
    :param read_only: mount it ``readOnly`` (Fluid's datasets are read-only anyway; default False
        leaves the field out, as the seed document does).
    """

    dataset: str
    mount_path: str
    templates: tuple[str, ...]
    volume_name: str = ""
    read_only: bool = False

    def __post_init__(self) -> None:
        where = f"DatasetMount({self.dataset!r})"
        if not isinstance(self.dataset, str) or not _DNS_LABEL_RE.match(self.dataset):
            _fail(f"DatasetMount.dataset: {self.dataset!r} is not a Dataset name (a lower-case DNS label)")
        if not isinstance(self.mount_path, str) or not self.mount_path.startswith("/") or self.mount_path == "/":
            _fail(f"{where}.mount_path: {self.mount_path!r} must be an absolute path other than '/', e.g. '/data'")
        templates = (self.templates,) if isinstance(self.templates, str) else self.templates
        if not isinstance(templates, Sequence) or not templates \
                or not all(isinstance(t, str) and t for t in templates):
            _fail(f"{where}.templates must name at least one template, got {self.templates!r}")
        object.__setattr__(self, "templates", tuple(templates))
        if not isinstance(self.volume_name, str) or (self.volume_name and not _DNS_LABEL_RE.match(self.volume_name)):
            _fail(f"{where}.volume_name: {self.volume_name!r} is not a volume name (a lower-case DNS label)")
        if not isinstance(self.read_only, bool):
            _fail(f"{where}.read_only must be true or false, got {self.read_only!r}")

    @property
    def volume(self) -> str:
        """The pod volume's name."""
        return self.volume_name or self.dataset

    @classmethod
    def coerce(cls, value: Any) -> DatasetMount:
        """``value`` as a mount: a mount as is, or a mapping of its fields."""
        if isinstance(value, DatasetMount):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(_FIELDS))
            if unknown:
                _fail(f"DatasetMount: unknown field(s) {', '.join(map(str, unknown))}: use {', '.join(_FIELDS)}")
            return cls(**dict(value))
        _fail(f"a dataset mount must be a DatasetMount or a mapping of its fields, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable mapping :meth:`coerce` turns back into an equal mount."""
        result: dict[str, Any] = {"dataset": self.dataset, "mount_path": self.mount_path,
                                  "templates": list(self.templates)}
        if self.volume_name:
            result["volume_name"] = self.volume_name
        if self.read_only:
            result["read_only"] = True
        return result


def coerce_mounts(value: Any) -> tuple[DatasetMount, ...]:
    """A sequence of mounts (or their mappings) as a tuple of :class:`DatasetMount`."""
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        _fail(f"EciProfile.datasets must be a list of DatasetMount, got {type(value).__name__}")
    return tuple(DatasetMount.coerce(item) for item in value)


def _add_once(items: list[Any], entry: dict[str, Any], key: str, where: str) -> None:
    """Append ``entry`` unless an equal one with the same ``name`` is there; a different one is an error."""
    for item in items:
        if isinstance(item, Mapping) and item.get("name") == entry["name"]:
            if dict(item) != entry:
                _fail(f"{where} already has a {key} named {entry['name']!r} that differs from {entry!r}: rename "
                      "the volume (DatasetMount.volume_name) or remove it from the workflow")
            return
    items.append(entry)


def mount_datasets(templates: Mapping[str, dict[str, Any]], mounts: Sequence[DatasetMount]) -> None:
    """Add each mount's volume (``persistentVolumeClaim.claimName``: the Dataset) and its
    ``volumeMounts`` entry to the templates it names, in place; the same entries already there
    are fine, conflicting ones (same volume name, or another volume at the same path) are errors
    naming the template."""
    for mount in mounts:
        for name in mount.templates:
            where = f"workflow.spec.templates[{name}]"
            template = templates.get(name)
            if template is None:
                known = ", ".join(templates) or "none"
                _fail(f"DatasetMount({mount.dataset!r}).templates: {name!r} names no template of the workflow: "
                      f"templates are {known}")
            kind = next((k for k in _CONTAINER_KINDS if isinstance(template.get(k), dict)), None)
            if kind is None:
                _fail(f"{where} has no container or script to mount Dataset {mount.dataset!r} into")
            volumes = template.setdefault("volumes", [])
            if not isinstance(volumes, list):
                _fail(f"{where}.volumes must be a list")
            _add_once(volumes, {"name": mount.volume, "persistentVolumeClaim": {"claimName": mount.dataset}},
                      "volume", f"{where}.volumes")
            container = template[kind]
            mounts_list = container.setdefault("volumeMounts", [])
            if not isinstance(mounts_list, list):
                _fail(f"{where}.{kind}.volumeMounts must be a list")
            entry: dict[str, Any] = {"name": mount.volume, "mountPath": mount.mount_path}
            if mount.read_only:
                entry["readOnly"] = True
            taken = [m for m in mounts_list if isinstance(m, Mapping) and m.get("mountPath") == mount.mount_path
                     and m.get("name") != mount.volume]
            if taken:
                _fail(f"{where}.{kind}.volumeMounts: {mount.mount_path} is already the mount path of volume "
                      f"{taken[0].get('name')!r}")
            _add_once(mounts_list, entry, "volumeMount", f"{where}.{kind}.volumeMounts")
