"""How an EciProfile uses ECI image caches: the cache annotations, their legacy aliases, and imagePullPolicy.

Pure helpers of :class:`~airflow_argo_eci.eci.EciProfile`:

- the pod annotations of the current ECI documentation ("Use an ImageCache to accelerate pod
  creation"): ``k8s.aliyun.com/eci-auto-imc`` (automatic matching), ``k8s.aliyun.com/imc-perfect-match``
  (use a cache only when it holds every image of the pod) and ``k8s.aliyun.com/eci-imc-id`` (pin one
  cache). Older ECI and ACK pages spell the last one ``k8s.aliyun.com/eci-image-snapshot-id`` and
  automatic matching ``k8s.aliyun.com/eci-image-cache``; a workflow that already carries one of those
  legacy annotations holds the same setting, so it must agree with the profile;
- ``imagePullPolicy`` on every container a workflow's pods run: ``container``, ``script``,
  ``containerSet.containers[]``, ``initContainers[]`` and ``sidecars[]`` of a template (or of
  ``spec.templateDefaults``), never overwriting a policy the workflow sets differently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from airflow_argo_eci.eci_conventions import (
    ANNOTATION_AUTO_IMAGE_CACHE,
    ANNOTATION_IMAGE_CACHE_ID,
    ANNOTATION_IMAGE_CACHE_PERFECT_MATCH,
    ANNOTATION_LEGACY_IMAGE_CACHE,
    ANNOTATION_LEGACY_IMAGE_SNAPSHOT_ID,
    IMAGE_CACHE_ID_PREFIX,
)
from airflow_argo_eci.errors import WorkflowSpecError

__all__ = [
    "IMAGE_PULL_POLICIES",
    "LEGACY_ANNOTATIONS",
    "check_image_cache_id",
    "check_legacy_annotations",
    "containers_of",
    "image_cache_annotations",
    "is_template",
    "not_if_not_present",
    "resolve_image_cache_id",
    "set_image_pull_policy",
]

#: the values of a container's ``imagePullPolicy``
IMAGE_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
#: a legacy pod annotation -> the current annotation holding the same setting
LEGACY_ANNOTATIONS = {
    ANNOTATION_LEGACY_IMAGE_SNAPSHOT_ID: ANNOTATION_IMAGE_CACHE_ID,
    ANNOTATION_LEGACY_IMAGE_CACHE: ANNOTATION_AUTO_IMAGE_CACHE,
}
_IMAGE_CACHE_ID_RE = re.compile("^" + re.escape(IMAGE_CACHE_ID_PREFIX) + "[a-z0-9]+$")
#: the container lists of a template, besides its single ``container`` / ``script``
_CONTAINER_LISTS = (("containerSet", "containers"), (None, "initContainers"), (None, "sidecars"))


def _fail(message: str) -> NoReturn:
    raise WorkflowSpecError(message)


def is_template(value: Any) -> bool:
    """Whether ``value`` is a string holding an Airflow (Jinja) template, still to be rendered."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def check_image_cache_id(field: str, value: Any) -> None:
    """Raise naming ``field`` unless ``value`` is ``None``, an ``imc-...`` id or a Jinja template
    (which :class:`~airflow_argo_eci.operators.argo.ArgoWorkflowOperator` renders before applying)."""
    if value is None or is_template(value):
        return
    if not isinstance(value, str) or not _IMAGE_CACHE_ID_RE.match(value):
        _fail(f"EciProfile.{field}: {value!r} is not an image cache ID: use the 'imc-...' ID of an ImageCache "
              "(its status.imageCacheId), or a template such as \"{{ ti.xcom_pull(task_ids='cache_images') }}\"")


def resolve_image_cache_id(image_cache_id: str | None, image_snapshot_id: str | None) -> str | None:
    """The pinned cache: ``image_cache_id``, else its legacy alias ``image_snapshot_id``; both set
    to different values is an error naming both."""
    if image_cache_id is not None and image_snapshot_id is not None and image_cache_id != image_snapshot_id:
        _fail(f"EciProfile.image_cache_id is {image_cache_id!r} and EciProfile.image_snapshot_id (its legacy alias) "
              f"is {image_snapshot_id!r}: they pin the same annotation ({ANNOTATION_IMAGE_CACHE_ID}), set only "
              "image_cache_id")
    return image_cache_id if image_cache_id is not None else image_snapshot_id


def image_cache_annotations(auto_match: bool | None, perfect_match: bool | None,
                            cache_id: str | None) -> dict[str, str]:
    """The pod annotations of the image-cache settings, under their current keys."""
    annotations: dict[str, str] = {}
    if auto_match is not None:
        annotations[ANNOTATION_AUTO_IMAGE_CACHE] = "true" if auto_match else "false"
    if perfect_match is not None:
        annotations[ANNOTATION_IMAGE_CACHE_PERFECT_MATCH] = "true" if perfect_match else "false"
    if cache_id is not None:
        if is_template(cache_id):
            _fail(f"EciProfile.image_cache_id is the unrendered template {cache_id!r}: pass the profile as eci= of "
                  "ArgoWorkflowOperator (which renders it first), or give the 'imc-...' ID itself")
        annotations[ANNOTATION_IMAGE_CACHE_ID] = cache_id
    return annotations


def check_legacy_annotations(existing: Any, rendered: Mapping[str, str], where: str) -> None:
    """Raise when ``existing`` (a workflow's annotations at ``where``) holds a legacy alias of an
    annotation in ``rendered`` with another value; the same value is fine."""
    if not isinstance(existing, Mapping):
        return
    for legacy, current in LEGACY_ANNOTATIONS.items():
        if legacy in existing and current in rendered and str(existing[legacy]) != rendered[current]:
            _fail(f"{where}.{legacy} is {existing[legacy]!r}, but the profile sets {current} (the current spelling "
                  f"of the same setting) to {rendered[current]!r}: remove the legacy annotation or give the same "
                  "value")


def containers_of(template: Mapping[str, Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, container)`` of every container the template's pod runs: its ``container`` or
    ``script``, ``containerSet.containers[]``, ``initContainers[]`` and ``sidecars[]``."""
    for kind in ("container", "script"):
        container = template.get(kind)
        if container is None:
            continue
        if not isinstance(container, dict):
            _fail(f"{where}.{kind} must be a mapping, got {type(container).__name__}")
        yield f"{where}.{kind} ({container.get('name') or 'main'})", container
    for parent, key in _CONTAINER_LISTS:
        holder: Any = template.get(parent) if parent else template
        if not isinstance(holder, Mapping) or holder.get(key) is None:
            continue
        path = f"{where}.{parent}.{key}" if parent else f"{where}.{key}"
        items = holder[key]
        if not isinstance(items, list):
            _fail(f"{path} must be a list of containers, got {type(items).__name__}")
        for index, container in enumerate(items):
            if not isinstance(container, dict):
                _fail(f"{path}[{index}] must be a mapping, got {type(container).__name__}")
            yield f"{path}[{container.get('name') or index}]", container


def set_image_pull_policy(template: Mapping[str, Any], policy: str, where: str) -> None:
    """Set ``imagePullPolicy: policy`` on every container of ``template`` (in place); a container
    that sets another policy raises naming the template, the container and both values."""
    for name, container in containers_of(template, where):
        current = container.get("imagePullPolicy")
        if current is None:
            container["imagePullPolicy"] = policy
        elif current != policy:
            _fail(f"{name} has imagePullPolicy {current!r}, which conflicts with image_pull_policy {policy!r}: "
                  "remove it from the container, give the same value, or override image_pull_policy for this "
                  "template")


def not_if_not_present(templates: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Where each container of ``templates`` (name -> template) that does not pull ``IfNotPresent`` is."""
    return [name for tmpl_name, tmpl in templates.items()
            for name, container in containers_of(tmpl, f"templates[{tmpl_name}]")
            if container.get("imagePullPolicy") != "IfNotPresent"]
